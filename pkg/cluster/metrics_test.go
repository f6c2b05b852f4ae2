package cluster

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// The FlowMetrics the spec applies are valid against the real CRD, created in the
// collector's namespace, tracked for cleanup, and an existing one with another spec is
// refused rather than read.
func TestEnsureFlowMetrics(t *testing.T) {
	fms := flowmetrics.Resources(flowmetrics.Options{Namespace: "netobserv", Ports: matrix.PortPolicy{Extra: map[int]bool{6443: true}}})
	crd := sharedCRD(t, "flows.netobserv.io_flowmetrics.yaml")
	for _, fm := range fms {
		u, err := toUnstructured(fm)
		if err != nil {
			t.Fatal(err)
		}
		if err := crd.Validate(u.Object); err != nil {
			t.Errorf("%s: %v", fm.Metadata.Name, err)
		}
	}
	f := newFakes(t, nil, nil)
	tr := &Tracker{}
	ctx := context.Background()
	if err := EnsureFlowMetrics(ctx, f.Clients, tr, fms); err != nil {
		t.Fatal(err)
	}
	list, err := f.dyn.Resource(GVRFlowMetric).Namespace("netobserv").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != len(fms) {
		t.Fatalf("%d FlowMetrics on the cluster, want %d (%v)", len(list.Items), len(fms), err)
	}
	if got := len(tr.Created()); got != len(fms) {
		t.Errorf("%d objects tracked, want %d", got, len(fms))
	}
	// Again: the same specs are left as they are, nothing more tracked.
	tr2 := &Tracker{}
	if err := EnsureFlowMetrics(ctx, f.Clients, tr2, fms); err != nil || len(tr2.Created()) != 0 {
		t.Fatalf("second run: %v, %d tracked", err, len(tr2.Created()))
	}
	// Another spec under our name is refused.
	other := flowmetrics.Resources(flowmetrics.Options{Namespace: "netobserv"})
	err = EnsureFlowMetrics(ctx, f.Clients, &Tracker{}, other)
	if err == nil || !strings.Contains(err.Error(), "another spec") || !strings.Contains(err.Error(), "EGRESS_SOURCE=loki") {
		t.Fatalf("a FlowMetric with another spec: %v", err)
	}
}

func TestMetricsReaderRBAC(t *testing.T) {
	b := metricsReaderRBAC(SuiteNamespace)
	want := rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-monitoring-view"}
	if b.RoleRef != want || len(b.Subjects) != 1 || b.Subjects[0].Name != readerServiceAccount || b.Subjects[0].Namespace != SuiteNamespace {
		t.Fatalf("binding %+v", b)
	}
}
