package firewall

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/internal/crdvalidate"
	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// testNetworks are the cluster networks of the test baseline, in test-only ranges.
func testNetworks() Networks {
	return Networks{
		Pod:     []netip.Prefix{netip.MustParsePrefix("10.128.0.0/14"), netip.MustParsePrefix("fd01::/48")},
		Service: []netip.Prefix{netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("fd02::/112")},
		Machine: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")},
	}
}

func entry(i int, component string, src baseline.Source, dst baseline.Destination, proto, port string) baseline.Entry {
	return baseline.Entry{Component: component, Source: src, Destination: dst, Protocol: proto, Port: port,
		Observed: true, Reason: "test", File: "testdata/baseline.yaml", Line: 10 + 8*i, Index: i}
}

func pods(ns, workload string) baseline.Source {
	return baseline.Source{Namespace: ns, Workload: workload, Kind: "Deployment"}
}

func node(role string) baseline.Source { return baseline.Source{NodeRole: role} }

func host(h string) baseline.Destination { return baseline.Destination{Host: h} }
func cidr(c string) baseline.Destination { return baseline.Destination{CIDR: c} }

// testBaseline covers every kind of entry the generators treat differently.
func testBaseline() *baseline.Baseline {
	es := []baseline.Entry{
		entry(0, "Monitoring", pods("openshift-monitoring", "prometheus-k8s"), host("telemeter.example.com"), "TCP", "443"),
		entry(1, "Monitoring", pods("openshift-monitoring", "alertmanager-main"), cidr("198.51.100.0/24"), "TCP", "443"),
		entry(2, "Monitoring", pods("openshift-monitoring", "alertmanager-main"), cidr("198.51.100.0/24"), "TCP", "8443"),
		entry(3, "Insights", pods("openshift-insights", "insights-operator"), host("*.example.com"), "TCP", "443"),
		entry(4, "Insights", pods("openshift-insights", "insights-operator"), cidr("2001:db8::/32"), "TCP", "443"),
		entry(5, "Image Registry", pods("openshift-image-registry", "image-registry"), baseline.Destination{SubnetLabel: "EXT:aws-s3"}, "TCP", "443"),
		entry(6, "Networking", pods("openshift-*", ""), cidr("192.0.2.53/32"), "UDP", "53"),
		entry(7, "Monitoring", pods("openshift-monitoring", "prometheus-k8s"), cidr("203.0.113.0/24"), "TCP", "30000-30100"),
		entry(8, "Monitoring", pods("openshift-monitoring", "prometheus-k8s"), cidr("203.0.113.7/32"), "ICMP", ""),
		entry(9, "Monitoring", pods("openshift-monitoring", "prometheus-k8s"), baseline.Destination{SubnetLabel: "Machines"}, "TCP", "9100"),
		entry(10, "Node", node("*"), host("registry.example.com"), "TCP", "443"),
		entry(11, "Node", node("*"), cidr("192.0.2.123/32"), "UDP", "123"),
		entry(12, "Node", node("worker"), cidr("198.51.100.0/24"), "TCP", "443"),
		entry(13, "Node", node("control-plane"), cidr("2001:db8:1::/48"), "TCP", "6443"),
		entry(14, "Node", node("worker"), cidr("203.0.113.0/24"), "TCP", "30000-32767"),
		entry(15, "Node", node("worker"), cidr("203.0.113.0/25"), "TCP", "30000-32767"), // covered by entry 14
		entry(16, "Node", node("worker"), cidr("203.0.113.9/32"), "ICMP", ""),
		entry(17, "Node", node("worker"), host("*.mirror.example.com"), "TCP", "443"),
		entry(18, "Node", node("worker"), baseline.Destination{SubnetLabel: "Services"}, "TCP", "443"),
		entry(19, "Node \"quoted\" ünïcode", node("worker"), cidr("192.0.2.200/32"), "TCP", "8080"),
	}
	return &baseline.Baseline{Files: []string{"testdata/baseline.yaml"}, Entries: es}
}

func fakeResolver(t *testing.T) func(string) ([]netip.Addr, error) {
	return func(h string) ([]netip.Addr, error) {
		switch h {
		case "registry.example.com":
			return []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8:2::10")}, nil
		}
		t.Errorf("unexpected resolution of %q", h)
		return nil, os.ErrNotExist
	}
}

func testOptions(t *testing.T) Options {
	return Options{Networks: testNetworks(), Meta: Meta{Baseline: "testdata", Version: "v0.0.0-test"}, Resolve: fakeResolver(t)}
}

// toMap turns a typed object into the JSON map the API server would decode.
func toMap(t *testing.T, obj any) map[string]any {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func loadCRD(t *testing.T, path string) *crdvalidate.Validator {
	t.Helper()
	v, err := crdvalidate.Load(path)
	if err != nil {
		t.Fatalf("load CRD: %v", err)
	}
	return v
}

// requiredModuleDir returns the directory of a module in our build list.
func requiredModuleDir(t *testing.T, mod string) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", mod).Output()
	dir := strings.TrimSpace(string(out))
	if err != nil || dir == "" {
		t.Fatalf("go list -m %s: %v", mod, err)
	}
	return dir
}

func crdPaths(t *testing.T, glob string) []string {
	t.Helper()
	ps, err := filepath.Glob(glob)
	if err != nil || len(ps) == 0 {
		t.Fatalf("no CRD matches %s", glob)
	}
	return ps
}
