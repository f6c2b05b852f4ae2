package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

func TestPlanStore(t *testing.T) {
	existing := &Collector{Store: &LokiStore{Mode: ModeLokiStack, Namespace: "nobs", LokiStackName: "ls", Tenant: lokiStackTenant}}
	manual := &Collector{}
	tlsMono := &Collector{Unreachable: "FlowCollector cluster: monolithic Loki with TLS is not reachable by the suite's port-forward"}
	url := &ExistingLoki{URL: "https://loki.example.test", Tenant: "netobserv"}
	cases := []struct {
		name     string
		cfg      Config
		existing *Collector
		want     string
		inErr    string
	}{
		{"default monolithic", Config{}, nil, "monolithic Loki service egress-flow-matrix/loki:3100 (tenant netobserv)", ""},
		{"object storage", Config{ObjectStorageSecret: "s3"}, nil, "LokiStack netobserv/loki (tenant network)", ""},
		{"existing collector wins over storage", Config{ObjectStorageSecret: "s3"}, existing, "LokiStack nobs/ls (tenant network)", ""},
		{"url", Config{ExistingLoki: url}, manual, "existing Loki https://loki.example.test (tenant netobserv)", ""},
		{"url without collector", Config{ExistingLoki: url}, nil, "", "no FlowCollector writing into it"},
		{"manual collector", Config{}, manual, "", "EGRESS_LOKI_URL"},
		{"TLS monolithic collector", Config{}, tlsMono, "", "with TLS is not reachable by the suite's port-forward: set EGRESS_LOKI_URL"},
		{"TLS monolithic collector and url", Config{ExistingLoki: url}, tlsMono, "existing Loki https://loki.example.test (tenant netobserv)", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := PlanStore(&tc.cfg, tc.existing)
			if tc.inErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.inErr) {
					t.Fatalf("want %q, got %v", tc.inErr, err)
				}
				return
			}
			if err != nil || s.String() != tc.want {
				t.Fatalf("got %v %v", s, err)
			}
		})
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The monolithic Loki's configuration runs on the real Loki server, and its raised query
// limit holds: a query asking for 100000 lines is refused by a Loki with default limits.
func TestMonolithicLokiConfigRunsOnRealLoki(t *testing.T) {
	bin := lokitest.Binary(t)
	dir := t.TempDir()
	httpPort, grpcPort, mlPort := freePort(t), freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "loki.yaml")
	if err := os.WriteFile(cfgPath, []byte(monolithicLokiConfig(filepath.Join(dir, "data"), "127.0.0.1", httpPort, grpcPort, mlPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd := exec.Command(bin, "-config.file="+cfgPath)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", httpPort)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Loki with our configuration is not ready after 60s (%v); log:\n%s", err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A NetObserv-like write as tenant netobserv, read back by the same tenant.
	push := fmt.Sprintf(`{"streams":[{"stream":{"app":"netobserv-flowcollector"},"values":[["%d","{\"DstPort\":443}"]]}]}`, time.Now().Add(-time.Minute).UnixNano())
	preq, _ := http.NewRequest(http.MethodPost, base+"/loki/api/v1/push", strings.NewReader(push))
	preq.Header.Set("Content-Type", "application/json")
	preq.Header.Set("X-Scope-OrgID", "netobserv")
	presp, err := http.DefaultClient.Do(preq)
	if err != nil {
		t.Fatal(err)
	}
	pbody, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusNoContent {
		t.Fatalf("push refused (%d): %s", presp.StatusCode, pbody)
	}
	q := url.Values{"query": {`{app="netobserv-flowcollector"}`}, "limit": {"100000"},
		"start": {fmt.Sprint(time.Now().Add(-time.Hour).UnixNano())}, "end": {fmt.Sprint(time.Now().UnixNano())}}
	req, _ := http.NewRequest(http.MethodGet, base+"/loki/api/v1/query_range?"+q.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", "netobserv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query with limit 100000 refused (%d): %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), `\"DstPort\":443`) {
		t.Fatalf("the pushed record is not read back: %s", body)
	}
	// Another tenant sees nothing: reads and writes are per tenant, as NetObserv expects.
	req.Header.Set("X-Scope-OrgID", "other")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "DstPort") {
		t.Fatalf("tenant other reads netobserv's record: %s", body)
	}
}

func defaultStorageClass(name string) *storagev1.StorageClass {
	return &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}}, Provisioner: "x"}
}

// readyOnCreate makes created Deployments report a ready replica, as the cluster would.
func readyOnCreate(f *fakes) {
	f.kube.PrependReactor("create", "deployments", func(a clienttesting.Action) (bool, runtime.Object, error) {
		d := a.(clienttesting.CreateAction).GetObject().(*appsv1.Deployment)
		d.Status.ReadyReplicas = 1
		return false, nil, nil
	})
}

func TestInstallMonolithicLoki(t *testing.T) {
	ctx := context.Background()
	for _, sc := range []bool{true, false} {
		t.Run(fmt.Sprintf("default storage class %v", sc), func(t *testing.T) {
			var objs []runtime.Object
			if sc {
				objs = append(objs, defaultStorageClass("gp3"), &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: "other"}, Provisioner: "x"})
			}
			f := newFakes(t, objs, nil)
			readyOnCreate(f)
			cfg, _ := FromEnv(env(nil))
			cfg.InstallTimeout = time.Second
			store, _ := PlanStore(cfg, nil)
			tr := &Tracker{}
			if err := InstallMonolithicLoki(ctx, f.Clients, tr, cfg, store); err != nil {
				t.Fatal(err)
			}
			want := "Namespace/egress-flow-matrix ConfigMap egress-flow-matrix/loki-config Service egress-flow-matrix/loki Deployment egress-flow-matrix/loki"
			if sc {
				want = "Namespace/egress-flow-matrix PersistentVolumeClaim egress-flow-matrix/loki-store ConfigMap egress-flow-matrix/loki-config Service egress-flow-matrix/loki Deployment egress-flow-matrix/loki"
			}
			if got := strings.Join(createdNames(tr), " "); got != want {
				t.Errorf("created %s", got)
			}
			if !sc && !strings.Contains(f.out.String(), "WARNING: no default StorageClass") {
				t.Errorf("no warning:\n%s", f.out)
			}
			// Idempotent: a second run reuses the Deployment.
			tr2 := &Tracker{}
			if err := InstallMonolithicLoki(ctx, f.Clients, tr2, cfg, store); err != nil || len(tr2.Created()) != 0 {
				t.Errorf("second run: %v, created %v", err, createdNames(tr2))
			}
		})
	}
}

func TestInstallLokiStack(t *testing.T) {
	ctx := context.Background()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "ci"}, Data: map[string][]byte{"bucketnames": []byte("b")}}
	sub := u("operators.coreos.com/v1alpha1", "Subscription", "openshift-operators-redhat", "loki-operator", map[string]any{
		"spec":   map[string]any{"name": "loki-operator", "channel": "stable-6.4"},
		"status": map[string]any{"installedCSV": "loki-operator.v6.4.0"},
	})
	csv := u("operators.coreos.com/v1alpha1", "ClusterServiceVersion", "openshift-operators-redhat", "loki-operator.v6.4.0", map[string]any{"status": map[string]any{"phase": "Succeeded"}})
	f := newFakes(t, []runtime.Object{secret, defaultStorageClass("gp3")}, nil, sub, csv, servedCRD("lokistacks.loki.grafana.com", "v1"))
	f.dyn.PrependReactor("create", "lokistacks", func(a clienttesting.Action) (bool, runtime.Object, error) {
		ls := a.(clienttesting.CreateAction).GetObject().(*unstructured.Unstructured)
		_ = unstructured.SetNestedSlice(ls.Object, []any{map[string]any{"type": "Ready", "status": "True", "reason": "ReadyComponents"}}, "status", "conditions")
		return false, nil, nil
	})
	cfg, _ := FromEnv(env(map[string]string{"EGRESS_LOKI_OBJECT_STORAGE_SECRET": "ci/s3"}))
	cfg.InstallTimeout = time.Second
	store, _ := PlanStore(cfg, nil)
	tr := &Tracker{}
	if err := installLokiStack(ctx, f.Clients, tr, cfg, store); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(createdNames(tr), " "); got != "Namespace/netobserv Secret netobserv/s3 lokistacks netobserv/loki" {
		t.Errorf("created %s", got)
	}
	copied, err := f.kube.CoreV1().Secrets("netobserv").Get(ctx, "s3", metav1.GetOptions{})
	if err != nil || string(copied.Data["bucketnames"]) != "b" {
		t.Errorf("secret copy %v %v", copied, err)
	}
	if strings.Contains(f.out.String(), "bucketnames") {
		t.Error("secret content in the output")
	}
	ls, _ := f.dyn.Resource(gvrLokiStack).Namespace("netobserv").Get(ctx, "loki", metav1.GetOptions{})
	if sc, _, _ := unstructured.NestedString(ls.Object, "spec", "storageClassName"); sc != "gp3" {
		t.Errorf("storage class %q", sc)
	}

	f = newFakes(t, []runtime.Object{secret}, nil, sub, csv, servedCRD("lokistacks.loki.grafana.com", "v1"))
	if err := installLokiStack(ctx, f.Clients, &Tracker{}, cfg, store); err == nil || !strings.Contains(err.Error(), "EGRESS_LOKI_STORAGE_CLASS") {
		t.Errorf("no storage class: %v", err)
	}
	cfg.ObjectStorageSecretNamespace = ""
	f = newFakes(t, []runtime.Object{secret, defaultStorageClass("gp3")}, nil, sub, csv, servedCRD("lokistacks.loki.grafana.com", "v1"))
	if err := installLokiStack(ctx, f.Clients, &Tracker{}, cfg, store); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing secret: %v", err)
	}
}
