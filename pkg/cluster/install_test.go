package cluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

// A fresh cluster: everything is installed in order, and cleanup undoes it newest first.
func TestInstallMonolithicFromScratch(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t, []runtime.Object{defaultStorageClass("gp3")}, nil, packageManifest("netobserv-operator", "redhat-operators", "stable"))
	simulateOLM(f, netObservOperator, "Succeeded")
	readyOnCreate(f)
	f.dyn.PrependReactor("create", "flowcollectors", func(a clienttesting.Action) (bool, runtime.Object, error) {
		fc := a.(clienttesting.CreateAction).GetObject().(*unstructured.Unstructured)
		_ = unstructured.SetNestedSlice(fc.Object, []any{map[string]any{"type": "Ready", "status": "True", "reason": "Ready"}}, "status", "conditions")
		return false, nil, nil
	})
	cfg, _ := FromEnv(env(nil))
	cfg.InstallTimeout = time.Second
	tr := &Tracker{}
	s, err := Install(ctx, f.Clients, cfg, tr)
	if err != nil {
		t.Fatalf("%v\n%s", err, f.out)
	}
	if !s.CollectorCreated || s.Store.Mode != ModeMonolithic || !s.Store.Installed || s.NetObserv.Channel != "stable" {
		t.Errorf("setup %+v", s)
	}
	want := []string{
		"Namespace/egress-flow-matrix", "ServiceAccount egress-flow-matrix/egress-flow-reader",
		"ClusterRole/egress-flow-matrix-loki-reader", "ClusterRoleBinding/egress-flow-matrix-loki-reader",
		"Namespace/openshift-netobserv-operator", "operatorgroups openshift-netobserv-operator/openshift-netobserv-operator",
		"subscriptions openshift-netobserv-operator/netobserv-operator",
		"PersistentVolumeClaim egress-flow-matrix/loki-store", "ConfigMap egress-flow-matrix/loki-config",
		"Service egress-flow-matrix/loki", "Deployment egress-flow-matrix/loki", "flowcollectors/cluster",
	}
	if got := strings.Join(createdNames(tr), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("created:\n%s", got)
	}

	if err := tr.Cleanup(ctx, f.Clients, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dyn.Resource(GVRFlowCollector).Get(ctx, FlowCollectorName, metav1.GetOptions{}); err == nil {
		t.Error("FlowCollector left after cleanup")
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, SuiteNamespace, metav1.GetOptions{}); err == nil {
		t.Error("suite namespace left after cleanup")
	}
}

// A FlowCollector sampling above 1 is refused before anything is installed.
func TestInstallRefusesSampledCollectorFirst(t *testing.T) {
	f := newFakes(t, nil, nil, servedCRD("flowcollectors.flows.netobserv.io", "v1beta2"), flowCollector(map[string]any{"agent": ebpf(int64(100))}))
	cfg, _ := FromEnv(env(nil))
	tr := &Tracker{}
	_, err := Install(context.Background(), f.Clients, cfg, tr)
	if err == nil || !strings.Contains(err.Error(), "1 packet in 100") {
		t.Fatalf("got %v", err)
	}
	if len(tr.Created()) != 0 {
		t.Errorf("created %v before refusing", createdNames(tr))
	}
}

// An existing LokiStack that would filter the suite's view by namespace is refused.
func TestInstallRefusesFilteringLokiStack(t *testing.T) {
	sub := u("operators.coreos.com/v1alpha1", "Subscription", "openshift-netobserv-operator", "netobserv-operator", map[string]any{
		"spec": map[string]any{"name": "netobserv-operator"}, "status": map[string]any{"installedCSV": "n.v1"},
	})
	csv := u("operators.coreos.com/v1alpha1", "ClusterServiceVersion", "openshift-netobserv-operator", "n.v1", map[string]any{"status": map[string]any{"phase": "Succeeded"}})
	fc := flowCollector(map[string]any{"agent": ebpf(int64(1), "DNSTracking", "PacketTranslation"), "loki": map[string]any{"mode": "LokiStack", "lokiStack": map[string]any{"name": "loki"}}})
	ls := u("loki.grafana.com/v1", "LokiStack", "netobserv", "loki", map[string]any{"spec": map[string]any{"tenants": map[string]any{"mode": "openshift-network"}}})
	f := newFakes(t, nil, nil, servedCRD("flowcollectors.flows.netobserv.io", "v1beta2"), sub, csv, fc, ls)
	cfg, _ := FromEnv(env(nil))
	cfg.InstallTimeout = time.Second
	_, err := Install(context.Background(), f.Clients, cfg, &Tracker{})
	if err == nil || !strings.Contains(err.Error(), "adminGroups") {
		t.Fatalf("got %v", err)
	}
	_ = unstructured.SetNestedStringSlice(ls.Object, []string{"system:cluster-admins", "system:serviceaccounts:" + SuiteNamespace}, "spec", "tenants", "openshift", "adminGroups")
	fcReady := fc.DeepCopy()
	_ = unstructured.SetNestedSlice(fcReady.Object, []any{map[string]any{"type": "Ready", "status": "True"}}, "status", "conditions")
	f = newFakes(t, nil, nil, servedCRD("flowcollectors.flows.netobserv.io", "v1beta2"), sub, csv, fcReady, ls)
	s, err := Install(context.Background(), f.Clients, cfg, &Tracker{})
	if err != nil || s.CollectorCreated || s.Store.Installed || s.Store.String() != "LokiStack netobserv/loki (tenant network)" {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestCollectDiagnostics(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "netobserv-controller-1", Namespace: "openshift-netobserv-operator"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "manager"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "manager",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "pull failed"}}}}}}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "e1", Namespace: "openshift-netobserv-operator"}, Type: "Warning", Reason: "Failed",
		Message: "Failed to pull image", InvolvedObject: corev1.ObjectReference{Kind: "Pod", Name: "netobserv-controller-1"}, LastTimestamp: metav1.Now()}
	csv := u("operators.coreos.com/v1alpha1", "ClusterServiceVersion", "openshift-netobserv-operator", "n.v1", map[string]any{"status": map[string]any{"phase": "Failed", "reason": "InstallCheckFailed"}})
	f := newFakes(t, []runtime.Object{pod, ev}, nil, csv)
	dir := t.TempDir()
	if err := CollectDiagnostics(context.Background(), f.Clients, dir, []string{"openshift-netobserv-operator"}); err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "diagnostics", "openshift-netobserv-operator")
	for file, want := range map[string]string{
		"events.txt":                  "Warning Pod/netobserv-controller-1 Failed: Failed to pull image",
		"pods.txt":                    "waiting ImagePullBackOff pull failed",
		"clusterserviceversions.yaml": "InstallCheckFailed",
		"logs/netobserv-controller-1_manager.log": "fake logs",
	} {
		data, err := os.ReadFile(filepath.Join(base, file))
		if err != nil || !strings.Contains(string(data), want) {
			t.Errorf("%s: want %q in %q (%v)", file, want, data, err)
		}
	}
}

func TestArtifactDir(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if d, err := ArtifactDir(env(map[string]string{"EXTENSION_ARTIFACT_DIR": a, "ARTIFACT_DIR": b})); err != nil || d != filepath.Join(a, "egress-flow-matrix") {
		t.Errorf("%s %v", d, err)
	}
	if d, err := ArtifactDir(env(map[string]string{"ARTIFACT_DIR": b})); err != nil || d != filepath.Join(b, "egress-flow-matrix") {
		t.Errorf("%s %v", d, err)
	}
	d, err := ArtifactDir(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(d)
	if err := WriteJSONArtifact(d, "sub/x.json", map[string]int{"a": 1}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(d, "sub", "x.json")); string(data) != "{\n  \"a\": 1\n}\n" {
		t.Errorf("%q", data)
	}
}

func TestExistingConn(t *testing.T) {
	dir := t.TempDir()
	ca, tok := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "token")
	_ = os.WriteFile(ca, []byte(selfSignedPEM(t)), 0o600)
	_ = os.WriteFile(tok, []byte("tok-1\n"), 0o600)
	c, err := existingConn(&ExistingLoki{URL: "https://loki.example.test", Tenant: "netobserv", CAFile: ca, TokenFile: tok})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Token(context.Background()); got != "tok-1" || c.TLS == nil || c.TLS.RootCAs == nil {
		t.Errorf("token %q tls %+v", got, c.TLS)
	}
	_ = os.WriteFile(tok, []byte("tok-2"), 0o600)
	if got, _ := c.Token(context.Background()); got != "tok-2" {
		t.Errorf("rotated token not read: %q", got)
	}
	if _, err := existingConn(&ExistingLoki{URL: "x", TokenFile: filepath.Join(dir, "none")}); err == nil {
		t.Error("missing token file accepted")
	}
	_ = os.WriteFile(ca, []byte("junk"), 0o600)
	if _, err := existingConn(&ExistingLoki{URL: "x", CAFile: ca}); err == nil || strings.Contains(err.Error(), "tok-") {
		t.Errorf("bad CA: %v", err)
	}
}

func TestDiagnosticNamespaces(t *testing.T) {
	if got := DiagnosticNamespaces(nil); strings.Join(got, " ") != "openshift-netobserv-operator netobserv egress-flow-matrix" {
		t.Errorf("nil setup: %v", got)
	}
	s := &Setup{Store: &LokiStore{Mode: ModeLokiStack, Namespace: "logs"}, Collector: &Collector{Namespace: "nobs"}}
	if got := DiagnosticNamespaces(s); strings.Join(got, " ") != "openshift-netobserv-operator netobserv egress-flow-matrix openshift-operators-redhat logs nobs" {
		t.Errorf("lokistack setup: %v", got)
	}
}

func TestConnectExistingLoki(t *testing.T) {
	conn, err := ConnectLoki(context.Background(), &Clients{}, &LokiStore{Mode: ModeExisting, Existing: &ExistingLoki{URL: "http://127.0.0.1:3100", Tenant: "t"}})
	if err != nil || conn.URL != "http://127.0.0.1:3100" || conn.Tenant != "t" || conn.Token != nil || conn.Close() != nil {
		t.Errorf("%+v %v", conn, err)
	}
	if _, err := ConnectLoki(context.Background(), &Clients{}, &LokiStore{Mode: "Other"}); err == nil {
		t.Error("unknown mode accepted")
	}
}
