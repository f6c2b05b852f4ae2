package capture

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	configfake "github.com/openshift/client-go/config/clientset/versioned/fake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/openshift/egress-tests-ext/pkg/cluster"
)

type fakes struct {
	*cluster.Clients
	kube *kubefake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
	out  *bytes.Buffer
}

func newFakes(t *testing.T, kubeObjs ...runtime.Object) *fakes {
	t.Helper()
	f := &fakes{
		kube: kubefake.NewClientset(kubeObjs...),
		dyn: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[cluster.GVR]string{
			cluster.GVRFlowCollector: "FlowCollectorList", cluster.GVRCRD: "CustomResourceDefinitionList",
		}),
		out: &bytes.Buffer{},
	}
	// Deployments report a ready replica once created, as the cluster would.
	f.kube.PrependReactor("create", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		a.(clienttesting.CreateAction).GetObject().(*appsv1.Deployment).Status.ReadyReplicas = 1
		return false, nil, nil
	})
	f.Clients = &cluster.Clients{Kube: f.kube, Config: configfake.NewClientset(), Dynamic: f.dyn, Out: f.out}
	return f
}

// fakeInstall is cluster.Install without OLM (which the fakes cannot run): the suite's
// namespace and reader, a monolithic Loki and our FlowCollector, through the real functions.
func fakeInstall(ctx context.Context, c *cluster.Clients, cfg *cluster.Config, t *cluster.Tracker) (*cluster.Setup, error) {
	store, err := cluster.PlanStore(cfg, nil)
	if err != nil {
		return nil, err
	}
	if err := cluster.EnsureReader(ctx, c, t); err != nil {
		return nil, err
	}
	if err := cluster.InstallMonolithicLoki(ctx, c, t, cfg, store); err != nil {
		return nil, err
	}
	_, created, err := cluster.EnsureFlowCollector(ctx, c, t, store)
	return &cluster.Setup{Store: store, CollectorCreated: created}, err
}

func config(t *testing.T) *cluster.Config {
	cfg, err := cluster.FromEnv(func(k string) string {
		return map[string]string{"EGRESS_TOOLS_IMAGE": "quay.io/openshift/origin-tools:latest", "EGRESS_INSTALL_TIMEOUT": "2s"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

var flowingAt = time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)

func flowing(context.Context, *cluster.Clients, *cluster.LokiStore) (time.Time, error) {
	return flowingAt, nil
}

func TestStartStatusStop(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t)
	rec, err := Start(ctx, f.Clients, Options{Config: config(t), Hosts: []string{"quay.io", "registry.redhat.io"},
		Install: fakeInstall, WaitFlowing: flowing, Now: func() time.Time { return flowingAt.Add(-time.Minute) }})
	if err != nil {
		t.Fatalf("%v\n%s", err, f.out)
	}
	if !rec.WindowStart.Equal(flowingAt) || !rec.CollectorCreated || len(rec.ResolverHosts) != 2 {
		t.Errorf("record %+v", rec)
	}

	// The spec's view: a record, read back from the ConfigMap alone.
	loaded, err := Load(ctx, f.Clients)
	if err != nil || loaded == nil {
		t.Fatalf("load: %v %v", loaded, err)
	}
	if !loaded.WindowStart.Equal(flowingAt) || loaded.Store.String() != rec.Store.String() || len(loaded.Created) != len(rec.Created) {
		t.Errorf("loaded %+v, started %+v", loaded, rec)
	}
	var names []string
	for _, c := range loaded.Created {
		names = append(names, c.String())
	}
	for _, want := range []string{"Namespace egress-flow-matrix", "Deployment egress-flow-matrix/loki", "flowcollectors cluster", "Deployment egress-flow-matrix/egress-resolver"} {
		if !strings.Contains(strings.Join(names, "\n"), want) {
			t.Errorf("record lacks %q: %v", want, names)
		}
	}
	var status bytes.Buffer
	if err := loaded.WriteText(&status, flowingAt.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"window start: 2026-12-02T08:00:00Z (1m30s ago", "monolithic Loki", "Deployment egress-flow-matrix/loki"} {
		if !strings.Contains(status.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, status.String())
		}
	}

	// A second start refuses: one capture at a time.
	if _, err := Start(ctx, f.Clients, Options{Config: config(t), Install: fakeInstall, WaitFlowing: flowing}); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second start: %v", err)
	}

	if _, err := Stop(ctx, f.Clients, time.Second); err != nil {
		t.Fatalf("stop: %v\n%s", err, f.out)
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, cluster.SuiteNamespace, metav1.GetOptions{}); err == nil {
		t.Error("suite namespace left after stop")
	}
	if _, err := f.kube.RbacV1().ClusterRoles().Get(ctx, "egress-flow-matrix-loki-reader", metav1.GetOptions{}); err == nil {
		t.Error("cluster role left after stop")
	}
	if _, err := f.dyn.Resource(cluster.GVRFlowCollector).Get(ctx, cluster.FlowCollectorName, metav1.GetOptions{}); err == nil {
		t.Error("FlowCollector left after stop")
	}
	if rec, err := Load(ctx, f.Clients); rec != nil || err != nil {
		t.Errorf("record after stop: %v %v", rec, err)
	}
	if _, err := Stop(ctx, f.Clients, time.Second); !errors.Is(err, ErrNoRecord) {
		t.Errorf("second stop: %v", err)
	}
}

// A start that cannot see flows removes what it installed and leaves no record.
func TestStartFailureCleansUp(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t)
	noFlows := func(context.Context, *cluster.Clients, *cluster.LokiStore) (time.Time, error) {
		return time.Time{}, errors.New("no NetObserv flow reached Loki within 5m0s")
	}
	_, err := Start(ctx, f.Clients, Options{Config: config(t), Install: fakeInstall, WaitFlowing: noFlows})
	if err == nil || !strings.Contains(err.Error(), "no NetObserv flow") || !strings.Contains(err.Error(), "was removed") {
		t.Fatalf("got %v", err)
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, cluster.SuiteNamespace, metav1.GetOptions{}); err == nil {
		t.Error("suite namespace left after a failed start")
	}
	if rec, err := Load(ctx, f.Clients); rec != nil || err != nil {
		t.Errorf("record after a failed start: %v %v", rec, err)
	}
}

// Objects that were there before start are not in the record, so stop leaves them.
func TestStopKeepsWhatWasThere(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cluster.SuiteNamespace}}
	f := newFakes(t, ns)
	if _, err := Start(ctx, f.Clients, Options{Config: config(t), Install: fakeInstall, WaitFlowing: flowing}); err != nil {
		t.Fatal(err)
	}
	if _, err := Stop(ctx, f.Clients, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, cluster.SuiteNamespace, metav1.GetOptions{}); err != nil {
		t.Errorf("pre-existing namespace removed: %v", err)
	}
	if _, err := f.kube.CoreV1().ConfigMaps(cluster.SuiteNamespace).Get(ctx, RecordName, metav1.GetOptions{}); err == nil {
		t.Error("record left after stop")
	}
}

// A failed deletion keeps the record, so stop can be run again.
func TestStopFailureKeepsRecord(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t)
	if _, err := Start(ctx, f.Clients, Options{Config: config(t), Install: fakeInstall, WaitFlowing: flowing}); err != nil {
		t.Fatal(err)
	}
	f.kube.PrependReactor("delete", "services", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcdserver: request timed out")
	})
	_, err := Stop(ctx, f.Clients, time.Second)
	if err == nil || !strings.Contains(err.Error(), "Service egress-flow-matrix/loki") || !strings.Contains(err.Error(), "is kept") {
		t.Fatalf("got %v", err)
	}
	if rec, err := Load(ctx, f.Clients); rec == nil || err != nil {
		t.Fatalf("record gone after a failed stop: %v", err)
	}
	f.kube.ReactionChain = f.kube.ReactionChain[1:]
	if _, err := Stop(ctx, f.Clients, time.Second); err != nil {
		t.Fatalf("second stop: %v", err)
	}
}

func TestParseRefusesBadRecords(t *testing.T) {
	cm := func(data string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: cluster.SuiteNamespace, Name: RecordName}, Data: map[string]string{RecordKey: data}}
	}
	for data, want := range map[string]string{
		`{"version":1,"windowStart":"2026-12-02T08:00:00Z","store":{},"created":[],"extra":1}`: `unknown field "extra"`,
		`{"version":2,"windowStart":"2026-12-02T08:00:00Z","store":{}}`:                        "format version 2",
		`{"version":1,"store":{}}`:                           "no windowStart",
		`{"version":1,"windowStart":"2026-12-02T08:00:00Z"}`: "no store",
		`not json`: "is not a capture record",
	} {
		_, err := Parse(cm(data))
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "egress-flow-matrix/egress-capture key record.json") {
			t.Errorf("%s: got %v, want %q", data, err, want)
		}
	}
	if _, err := Parse(&corev1.ConfigMap{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("no key: %v", err)
	}
}

// The spec's window: from the record when there is one, else as before.
func TestWindowStart(t *testing.T) {
	env := time.Date(2026, 12, 2, 7, 0, 0, 0, time.UTC)
	rec := &Record{WindowStart: flowingAt, WindowStartSource: "first flow", StartedAt: flowingAt.Add(-time.Minute)}
	if s, src, err := WindowStart(rec, time.Time{}); err != nil || !s.Equal(flowingAt) || !strings.Contains(src, "capture record egress-flow-matrix/egress-capture: first flow") {
		t.Errorf("record: %s %q %v", s, src, err)
	}
	if s, src, err := WindowStart(nil, env); err != nil || !s.Equal(env) || src != "EGRESS_WINDOW_START" {
		t.Errorf("env: %s %q %v", s, src, err)
	}
	if s, src, err := WindowStart(nil, time.Time{}); err != nil || !s.IsZero() || src != "" {
		t.Errorf("neither: %s %q %v", s, src, err)
	}
	if _, _, err := WindowStart(rec, env); err == nil || !strings.Contains(err.Error(), "unset EGRESS_WINDOW_START") {
		t.Errorf("both: %v", err)
	}
}

// The spec reads what start wrote, through the same clients, and cleans up when asked.
func TestSpecReadsRecordAndCleansUp(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t)
	if _, err := Start(ctx, f.Clients, Options{Config: config(t), Install: fakeInstall, WaitFlowing: flowing}); err != nil {
		t.Fatal(err)
	}
	rec, err := Load(ctx, f.Clients)
	if err != nil || rec == nil {
		t.Fatalf("%v %v", rec, err)
	}
	start, _, err := WindowStart(rec, time.Time{})
	if err != nil || !start.Equal(flowingAt) {
		t.Fatalf("window start %s %v", start, err)
	}
	if _, err := Stop(ctx, f.Clients, time.Second); err != nil {
		t.Fatal(err)
	}
	if rec, err := Load(ctx, f.Clients); rec != nil || err != nil {
		t.Errorf("after cleanup: %v %v", rec, err)
	}
}
