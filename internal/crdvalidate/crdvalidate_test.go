package crdvalidate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

func load(t *testing.T, name string) *Validator {
	t.Helper()
	p := testfix.SharedCRD(t, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("CRD %s missing: %v (the shared CRD copies are part of the test fixtures)", p, err)
	}
	v, err := Load(p)
	if err != nil {
		t.Fatalf("Load(%s): %v", p, err)
	}
	return v
}

func obj(t *testing.T, y string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(y), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const goodEFW = `
apiVersion: k8s.ovn.org/v1
kind: EgressFirewall
metadata: {name: default, namespace: openshift-monitoring}
spec:
  egress:
  - type: Allow
    to: {dnsName: "*.quay.io"}
    ports: [{protocol: TCP, port: 443}]
  - type: Deny
    to: {cidrSelector: 0.0.0.0/0}
`

func TestEgressFirewall(t *testing.T) {
	v := load(t, "k8s.ovn.org_egressfirewalls.yaml")
	if err := v.Validate(obj(t, goodEFW)); err != nil {
		t.Fatalf("valid EgressFirewall rejected: %v", err)
	}
	cases := []struct {
		name, from, to, want string
	}{
		{"unknown field", "type: Deny\n", "type: Deny\n    action: Deny\n", "spec.egress[1].action"},
		{"name must be default", "name: default,", "name: other,", "metadata.name"},
		{"port out of range", "port: 443", "port: 70000", "spec.egress[0].ports[0].port"},
		{"two peers", "{dnsName: \"*.quay.io\"}", "{dnsName: quay.io, cidrSelector: 1.2.3.0/24}", "spec.egress[0].to"},
		{"bad dnsName", `"*.quay.io"`, `"quay.*.io"`, "spec.egress[0].to.dnsName"},
		{"wrong version", "k8s.ovn.org/v1", "k8s.ovn.org/v2", "apiVersion"},
		{"wrong kind", "kind: EgressFirewall", "kind: EgressIP", "kind"},
		{"no namespace", ", namespace: openshift-monitoring", "", "metadata.namespace"},
		{"unknown metadata field", "namespace: openshift-monitoring}", "namespace: openshift-monitoring, bogus: 1}", "metadata.bogus"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := strings.Replace(goodEFW, c.from, c.to, 1)
			if y == goodEFW {
				t.Fatalf("case did not change the object (%q not found)", c.from)
			}
			err := v.Validate(obj(t, y))
			if err == nil {
				t.Fatalf("accepted invalid object:\n%s", y)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error does not name %q: %v", c.want, err)
			}
		})
	}
}

const goodANP = `
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: {name: egress-openshift-monitoring}
spec:
  priority: 10
  subject: {namespaces: {matchLabels: {kubernetes.io/metadata.name: openshift-monitoring}}}
  egress:
  - name: allow-registry
    action: Allow
    to: [{networks: [10.0.0.0/8]}]
    ports: [{portNumber: {port: 443}}]
`

// TestAdminNetworkPolicyCEL proves the CEL rules of the CRD run (isCIDR and the namedPort
// rule are x-kubernetes-validations, not OpenAPI) and that defaults apply before the required
// check (portNumber.protocol is required but defaulted to TCP).
func TestAdminNetworkPolicyCEL(t *testing.T) {
	v := load(t, "policy.networking.k8s.io_adminnetworkpolicies.yaml")
	if err := v.Validate(obj(t, goodANP)); err != nil {
		t.Fatalf("valid ANP rejected: %v", err)
	}
	cases := []struct{ name, from, to, want string }{
		{"isCIDR", "10.0.0.0/8", "10.0.0.0/33", "Invalid CIDR"},
		{"namedPort with networks", "{portNumber: {port: 443}}", "{namedPort: https}", "namedPorts"},
		{"priority bound", "priority: 10", "priority: 1001", "spec.priority"},
		{"namespace on cluster-scoped", "name: egress-openshift-monitoring}", "name: x, namespace: ns1}", "cluster-scoped"},
		{"duplicate set item", "[10.0.0.0/8]", "[10.0.0.0/8, 10.0.0.0/8]", "Duplicate value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			y := strings.Replace(goodANP, c.from, c.to, 1)
			if y == goodANP {
				t.Fatalf("case did not change the object (%q not found)", c.from)
			}
			err := v.Validate(obj(t, y))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}

func TestValidateDoesNotModifyInput(t *testing.T) {
	v := load(t, "policy.networking.k8s.io_adminnetworkpolicies.yaml")
	in := obj(t, goodANP+"  extra: 1\n")
	before, _ := yaml.Marshal(in)
	if err := v.Validate(in); err == nil {
		t.Fatal("unknown field spec.egress[0].extra accepted")
	}
	after, _ := yaml.Marshal(in)
	if string(before) != string(after) {
		t.Fatalf("Validate modified its input:\n%s\n---\n%s", before, after)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: ConfigMap\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("want error naming the file, got %v", err)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestLoadSharedCRDs loads every shared CRD copy: each must be structural and its CEL rules
// must compile, or other packages' validations would fail on Load instead of on their objects.
func TestLoadSharedCRDs(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(testfix.SharedCRDDir(t), "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no CRDs under %s: %v", testfix.SharedCRDDir(t), err)
	}
	for _, p := range paths {
		if _, err := Load(p); err != nil {
			t.Errorf("Load(%s): %v", p, err)
		}
	}
}
