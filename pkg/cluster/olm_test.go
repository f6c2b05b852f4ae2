package cluster

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

// simulateOLM makes the fake behave like OLM for a new Subscription: it records the CSV,
// which reaches phase, and establishes the operator's CRDs when phase is Succeeded.
func simulateOLM(f *fakes, o Operator, phase string) {
	f.dyn.PrependReactor("create", "subscriptions", func(a clienttesting.Action) (bool, runtime.Object, error) {
		sub := a.(clienttesting.CreateAction).GetObject().(*unstructured.Unstructured)
		csv := o.Package + ".v1.0.0"
		_ = unstructured.SetNestedField(sub.Object, csv, "status", "installedCSV")
		_ = unstructured.SetNestedField(sub.Object, "AtLatestKnown", "status", "state")
		_ = f.dyn.Tracker().Create(gvrCSV, u("operators.coreos.com/v1alpha1", "ClusterServiceVersion", sub.GetNamespace(), csv, map[string]any{
			"status": map[string]any{"phase": phase, "reason": "InstallSucceeded"},
		}), sub.GetNamespace())
		if phase == "Succeeded" {
			for _, crd := range o.CRDs {
				_ = f.dyn.Tracker().Create(GVRCRD, servedCRD(crd.Name, crd.Version), "")
			}
		}
		return false, nil, nil
	})
}

func TestEnsureOperatorInstallsWhatIsMissing(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t, nil, nil, packageManifest("netobserv-operator", "redhat-operators", "stable"),
		packageManifest("other-operator", "redhat-operators", "other"))
	simulateOLM(f, netObservOperator, "Succeeded")
	tr := &Tracker{}
	res, err := ensureOperator(ctx, f.Clients, tr, netObservOperator, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(createdNames(tr), []string{
		"Namespace/openshift-netobserv-operator",
		"operatorgroups openshift-netobserv-operator/openshift-netobserv-operator",
		"subscriptions openshift-netobserv-operator/netobserv-operator",
	}) {
		t.Errorf("created %v", createdNames(tr))
	}
	if res.Channel != "stable" || res.CSV != "netobserv-operator.v1.0.0" || res.Namespace != "openshift-netobserv-operator" {
		t.Errorf("result %+v", res)
	}
	ns, err := f.kube.CoreV1().Namespaces().Get(ctx, "openshift-netobserv-operator", metav1.GetOptions{})
	if err != nil || ns.Labels["openshift.io/cluster-monitoring"] != "true" {
		t.Errorf("namespace %v %v", ns, err)
	}
	sub, _ := f.dyn.Resource(gvrSubscription).Namespace("openshift-netobserv-operator").Get(ctx, "netobserv-operator", metav1.GetOptions{})
	spec, _, _ := unstructured.NestedStringMap(sub.Object, "spec")
	if spec["channel"] != "stable" || spec["source"] != "redhat-operators" || spec["sourceNamespace"] != "openshift-marketplace" || spec["name"] != "netobserv-operator" {
		t.Errorf("subscription spec %v", spec)
	}
	if !strings.Contains(f.out.String(), "phase Succeeded") {
		t.Errorf("no progress output:\n%s", f.out)
	}

	// Second run: everything is there, nothing is created.
	tr2 := &Tracker{}
	if _, err := ensureOperator(ctx, f.Clients, tr2, netObservOperator, time.Second); err != nil {
		t.Fatal(err)
	}
	if len(tr2.Created()) != 0 {
		t.Errorf("second run created %v", createdNames(tr2))
	}
}

func TestEnsureOperatorOutsideOLM(t *testing.T) {
	f := newFakes(t, nil, nil, servedCRD("flowcollectors.flows.netobserv.io", "v1beta2"))
	tr := &Tracker{}
	if _, err := ensureOperator(context.Background(), f.Clients, tr, netObservOperator, time.Second); err != nil {
		t.Fatal(err)
	}
	if len(tr.Created()) != 0 {
		t.Errorf("created %v although the CRD is served", createdNames(tr))
	}
}

func TestEnsureOperatorRefusals(t *testing.T) {
	ctx := context.Background()
	og := func(name string, targets ...any) *unstructured.Unstructured {
		spec := map[string]any{}
		if len(targets) > 0 {
			spec["targetNamespaces"] = targets
		}
		return u("operators.coreos.com/v1", "OperatorGroup", "openshift-netobserv-operator", name, map[string]any{"spec": spec})
	}
	cases := []struct {
		name  string
		objs  []runtime.Object
		inErr string
	}{
		{"no package", nil, "has no package netobserv-operator"},
		{"package of another catalog", []runtime.Object{packageManifest("netobserv-operator", "community-operators", "stable")}, "has no package netobserv-operator"},
		{"no default channel", []runtime.Object{packageManifest("netobserv-operator", "redhat-operators", "")}, "no status.defaultChannel"},
		{"single-namespace group", []runtime.Object{packageManifest("netobserv-operator", "redhat-operators", "stable"), og("og", "ns1")}, "AllNamespaces"},
		{"two groups", []runtime.Object{packageManifest("netobserv-operator", "redhat-operators", "stable"), og("a"), og("b")}, "2 OperatorGroups"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakes(t, nil, nil, tc.objs...)
			_, err := ensureOperator(ctx, f.Clients, &Tracker{}, netObservOperator, time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.inErr) {
				t.Fatalf("want %q, got %v", tc.inErr, err)
			}
		})
	}
}

func TestEnsureOperatorTimeoutSaysWhat(t *testing.T) {
	f := newFakes(t, nil, nil, packageManifest("loki-operator", "redhat-operators", "stable-6.4"))
	simulateOLM(f, lokiOperator, "Failed")
	_, err := ensureOperator(context.Background(), f.Clients, &Tracker{}, lokiOperator, 100*time.Millisecond)
	if !errors.Is(err, errNotReady) || !strings.Contains(err.Error(), "loki-operator CSV") || !strings.Contains(err.Error(), "phase Failed") {
		t.Fatalf("want a not-ready error naming the CSV and its phase, got %v", err)
	}
}

func TestCleanupRemovesOnlyWhatWasCreated(t *testing.T) {
	ctx := context.Background()
	keep := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "keep-me"}}
	f := newFakes(t, []runtime.Object{keep}, nil, packageManifest("netobserv-operator", "redhat-operators", "stable"))
	simulateOLM(f, netObservOperator, "Succeeded")
	tr := &Tracker{}
	if _, err := ensureOperator(ctx, f.Clients, tr, netObservOperator, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := tr.Cleanup(ctx, f.Clients, time.Second); err != nil {
		t.Fatal(err)
	}
	for _, gvr := range []GVR{gvrSubscription, gvrCSV, gvrOperatorGroup} {
		list, _ := f.dyn.Resource(gvr).Namespace("openshift-netobserv-operator").List(ctx, metav1.ListOptions{})
		if len(list.Items) != 0 {
			t.Errorf("%s left: %v", gvr.Resource, list.Items)
		}
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, "openshift-netobserv-operator", metav1.GetOptions{}); err == nil {
		t.Error("namespace left")
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, "keep-me", metav1.GetOptions{}); err != nil {
		t.Errorf("an object the suite did not create was deleted: %v", err)
	}
	out := f.out.String()
	if i, j := strings.Index(out, "deleting subscriptions"), strings.Index(out, "deleting Namespace"); i < 0 || j < i {
		t.Errorf("cleanup must go newest first:\n%s", out)
	}
}
