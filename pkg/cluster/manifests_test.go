package cluster

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/openshift/egress-tests-ext/internal/crdvalidate"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

// sharedCRD loads a CRD from ../shared/crds (relative to the repository), the real schemas
// of the operators whose objects the suite writes.
func sharedCRD(t *testing.T, file string) *crdvalidate.Validator {
	t.Helper()
	v, err := crdvalidate.Load(testfix.SharedCRD(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// olmCRD loads an OLM CRD from github.com/operator-framework/api@v0.31.0 in the module cache
// (downloaded on demand; the module is not a build dependency).
func olmCRD(t *testing.T, file string) *crdvalidate.Validator {
	t.Helper()
	// The OLM CRDs come from that module; it is not a build dependency.
	v, err := crdvalidate.Load(filepath.Join(testfix.ModuleDir(t, "github.com/operator-framework/api@v0.31.0"), "crds", file))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestFlowCollectorMatchesCRD(t *testing.T) {
	v := sharedCRD(t, "flows.netobserv.io_flowcollectors.yaml")
	cfg, _ := FromEnv(func(string) string { return "" })
	mono, _ := PlanStore(cfg, nil)
	stack := &LokiStore{Mode: ModeLokiStack, Namespace: netObservNamespace, LokiStackName: "loki", Tenant: lokiStackTenant}
	for _, store := range []*LokiStore{mono, stack} {
		fc, err := flowCollectorObject(store)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Validate(fc.Object); err != nil {
			t.Errorf("%s: %v", store.Mode, err)
		}
		col, err := inspectFlowCollector(fc)
		if err != nil {
			t.Fatalf("our own FlowCollector is refused: %v", err)
		}
		if col.Sampling != 1 || len(col.Warnings) != 0 || !reflect.DeepEqual(col.Store.Mode, store.Mode) {
			t.Errorf("%s: inspected as %+v", store.Mode, col)
		}
	}
	if _, err := flowCollectorObject(&LokiStore{Mode: ModeExisting}); err == nil {
		t.Error("a FlowCollector for an existing Loki must be refused: the suite does not know its in-cluster URL")
	}
}

// A typo or a bad value in a manifest must fail, not be dropped by the server.
func TestCRDValidationRejectsMistakes(t *testing.T) {
	v := sharedCRD(t, "flows.netobserv.io_flowcollectors.yaml")
	mono, _ := PlanStore(&Config{}, nil)
	cases := []struct {
		name  string
		edit  func(o map[string]any)
		inErr string
	}{
		{"unknown field", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, int64(1), "spec", "agent", "ebpf", "samplin")
		}, "samplin"},
		{"bad enum", func(o map[string]any) {
			_ = unstructured.SetNestedStringSlice(o, []string{"DNSTracing"}, "spec", "agent", "ebpf", "features")
		}, "DNSTracing"},
		{"below minimum", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, int64(-1), "spec", "agent", "ebpf", "sampling")
		}, "sampling"},
		{"namespace on cluster-scoped", func(o map[string]any) {
			_ = unstructured.SetNestedField(o, "x", "metadata", "namespace")
		}, "namespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc, _ := flowCollectorObject(mono)
			tc.edit(fc.Object)
			err := v.Validate(fc.Object)
			if err == nil || !strings.Contains(err.Error(), tc.inErr) {
				t.Fatalf("want an error naming %q, got %v", tc.inErr, err)
			}
		})
	}
}

func TestOLMObjectsMatchCRDs(t *testing.T) {
	sub := olmCRD(t, "operators.coreos.com_subscriptions.yaml")
	og := olmCRD(t, "operators.coreos.com_operatorgroups.yaml")
	for _, o := range []Operator{netObservOperator, lokiOperator} {
		if err := sub.Validate(o.SubscriptionObject("stable").Object); err != nil {
			t.Errorf("%s Subscription: %v", o.Package, err)
		}
		if err := og.Validate(o.OperatorGroupObject().Object); err != nil {
			t.Errorf("%s OperatorGroup: %v", o.Package, err)
		}
	}
	bad := netObservOperator.SubscriptionObject("stable")
	_ = unstructured.SetNestedField(bad.Object, "x", "spec", "sourceNamspace")
	if err := sub.Validate(bad.Object); err == nil || !strings.Contains(err.Error(), "sourceNamspace") {
		t.Errorf("a misspelt Subscription field must be rejected, got %v", err)
	}
}

// The Loki Operator's module is not served by the module proxy here, so the LokiStack is
// built from local types holding only documented fields. A round trip through those types
// with unknown fields disallowed proves every field we send is one of them; when the real
// CRD is available in ../shared/crds it is validated against it too.
func TestLokiStackObject(t *testing.T) {
	cfg := &Config{LokiStackSize: "1x.demo", ObjectStorageSecret: "s3-creds", ObjectStorageType: "s3"}
	store := &LokiStore{Mode: ModeLokiStack, Namespace: netObservNamespace, LokiStackName: "loki", Tenant: lokiStackTenant}
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	ls, err := lokiStackObject(store, cfg, "gp3-csi", now)
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(ls.Object)
	if err != nil {
		t.Fatal(err)
	}
	var typed lokiStack
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&typed); err != nil {
		t.Fatalf("LokiStack holds a field outside the documented ones: %v\n%s", err, data)
	}
	back, _ := json.Marshal(typed)
	var a, b map[string]any
	_ = json.Unmarshal(data, &a)
	_ = json.Unmarshal(back, &b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("round trip changed the LokiStack:\n%s\n%s", data, back)
	}
	checks := map[string]any{
		"spec.tenants.mode":                                  "openshift-network",
		"spec.storage.secret.name":                           "s3-creds",
		"spec.storage.schemas.0.effectiveDate":               "2026-03-01",
		"spec.limits.global.queries.maxEntriesLimitPerQuery": float64(100000),
		"spec.limits.global.queries.maxQuerySeries":          float64(10000),
		"spec.storageClassName":                              "gp3-csi",
	}
	for path, want := range checks {
		if got := dig(a, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	groups, _ := dig(a, "spec.tenants.openshift.adminGroups").([]any)
	if len(groups) == 0 || groups[len(groups)-1] != "system:serviceaccounts:"+SuiteNamespace {
		t.Errorf("adminGroups %v must let the suite's service accounts see every namespace", groups)
	}
	if _, err := os.Stat(testfix.Shared(t, "crds", "loki.grafana.com_lokistacks.yaml")); err == nil {
		if err := sharedCRD(t, "loki.grafana.com_lokistacks.yaml").Validate(ls.Object); err != nil {
			t.Error(err)
		}
	} else {
		t.Log("no loki.grafana.com_lokistacks.yaml in ../shared/crds: validated by the documented-fields round trip only")
	}
}

func dig(m any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch v := m.(type) {
		case map[string]any:
			m = v[k]
		case []any:
			i := int(k[0] - '0')
			if i >= len(v) {
				return nil
			}
			m = v[i]
		default:
			return nil
		}
	}
	return m
}

// assertRestricted checks what the restricted-v2 SCC requires of a pod the suite runs.
func assertRestricted(t *testing.T, what string, spec corev1.PodSpec) {
	t.Helper()
	if spec.SecurityContext == nil || spec.SecurityContext.RunAsUser != nil || spec.SecurityContext.FSGroup != nil {
		t.Errorf("%s: the pod must not fix a UID or fsGroup (restricted-v2 assigns them): %+v", what, spec.SecurityContext)
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Errorf("%s: host namespaces are not allowed", what)
	}
	for _, c := range append(spec.InitContainers, spec.Containers...) {
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s/%s: no security context", what, c.Name)
		case sc.RunAsUser != nil:
			t.Errorf("%s/%s: fixed UID %d", what, c.Name, *sc.RunAsUser)
		case sc.Privileged == nil || *sc.Privileged, sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
			t.Errorf("%s/%s: privilege must be off explicitly", what, c.Name)
		case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
			t.Errorf("%s/%s: runAsNonRoot must be true", what, c.Name)
		case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
			t.Errorf("%s/%s: must drop ALL capabilities and add none", what, c.Name)
		case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
			t.Errorf("%s/%s: seccomp must be RuntimeDefault", what, c.Name)
		}
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("%s: hostPath volume %s", what, v.Name)
		}
	}
}

func TestWorkloadsRunRestricted(t *testing.T) {
	for _, persistent := range []bool{true, false} {
		m := monolithicLokiObjects(SuiteNamespace, DefaultLokiImage, persistent)
		assertRestricted(t, "loki", m.Deployment.Spec.Template.Spec)
		store := m.Deployment.Spec.Template.Spec.Volumes[1]
		if persistent != (store.PersistentVolumeClaim != nil) || persistent == (store.EmptyDir != nil) || persistent != (m.PVC != nil) {
			t.Errorf("persistent=%v: store volume %+v, PVC %v", persistent, store.VolumeSource, m.PVC)
		}
		if m.Service.Spec.Ports[0].TargetPort.StrVal != m.Deployment.Spec.Template.Spec.Containers[0].Ports[0].Name {
			t.Error("the Service must target the container's named port")
		}
	}
	assertRestricted(t, "canary", CanaryJob(SuiteNamespace, "tools", "quay.io", 443).Spec.Template.Spec)
	assertRestricted(t, "resolver", ResolverDeployment(SuiteNamespace, "tools", []string{"quay.io"}, time.Second).Spec.Template.Spec)
}
