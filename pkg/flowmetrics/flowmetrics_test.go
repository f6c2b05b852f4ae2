package flowmetrics

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strconv"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/openshift/egress-tests-ext/internal/crdvalidate"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// crd loads the real FlowMetric CRD from ../shared/crds beside the repository checkout.
func crd(t *testing.T) *crdvalidate.Validator {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "crds", "flows.netobserv.io_flowmetrics.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("real FlowMetric CRD not found at %s (%v): it lives in ../shared/crds beside the repository checkout; CI provides it", path, err)
	}
	v, err := crdvalidate.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func toMap(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestResourcesValidateAgainstCRD(t *testing.T) {
	v := crd(t)
	fms := Resources(Options{Namespace: "netobserv", Ports: matrix.PortPolicy{Extra: map[int]bool{6443: true, 4789: true}}})
	if len(fms) != 17 {
		t.Fatalf("%d FlowMetrics, want 17", len(fms))
	}
	for _, fm := range fms {
		if err := v.Validate(toMap(t, fm)); err != nil {
			t.Errorf("%s: %v", fm.Metadata.Name, err)
		}
	}
	// The validator must be able to fail: a bad matchType is refused.
	bad := fms[0]
	bad.Spec.Filters = append([]Filter(nil), bad.Spec.Filters...)
	bad.Spec.Filters[0].MatchType = "Like"
	if err := v.Validate(toMap(t, bad)); err == nil {
		t.Error("a FlowMetric with matchType Like validated")
	}
}

func TestServerPortRegex(t *testing.T) {
	re := regexp.MustCompile(serverPortRegex(matrix.PortPolicy{Extra: map[int]bool{6443: true, 8443: false}}))
	for port := 0; port <= 65535; port++ {
		want := (port > 0 && port < 1024) || port == 6443
		if got := re.MatchString(strconv.Itoa(port)); got != want {
			t.Fatalf("port %d: match %v, want %v", port, got, want)
		}
	}
	if re.MatchString("-1") || re.MatchString("") || re.MatchString("0443") {
		t.Error("matched a non-port")
	}
}

func TestOwnerTypeRegexesSplitEveryValue(t *testing.T) {
	pod, other := regexp.MustCompile(podOwnerTypes), regexp.MustCompile(otherOwnerTypes)
	for _, s := range []string{"", "Node", "Pod", "Deployment", "DaemonSet", "N", "No", "Nod", "Nodes", "P", "Po", "Pods", "NodePool", "ReplicaSet", "x", "Pox", "Nox"} {
		if pod.MatchString(s) == other.MatchString(s) {
			t.Errorf("owner type %q: pod variant %v, workload variant %v; want exactly one", s, pod.MatchString(s), other.MatchString(s))
		}
	}
}

// TestRender checks the operator's rendering rules on hand-written FlowMetrics of the shapes
// the operator's own tests use (a flow-matrix counter with flatten, a byte counter with a
// generated name, an ingress metric with every match type).
func TestRender(t *testing.T) {
	in := []FlowMetric{
		{Metadata: Metadata{Name: "syn-out"}, Spec: Spec{MetricName: "workload_syn_out", Type: "Counter",
			Labels: []string{"SrcK8S_Namespace", "DstPort", "Flags"}, Flatten: []string{"Flags"},
			Filters: []Filter{{Field: "Flags", Value: "SYN"}}, Direction: "Egress"}},
		{Metadata: Metadata{Name: "bytes.by-ns"}, Spec: Spec{Type: "Counter", ValueField: "Bytes",
			Labels: []string{"DstK8S_Namespace"}, Remap: map[string]string{"DstK8S_Namespace": "namespace"}}},
		{Metadata: Metadata{Name: "in"}, Spec: Spec{MetricName: "in_total", Type: "Gauge", Direction: "Ingress",
			Filters: []Filter{
				{Field: "A", Value: "1", MatchType: NotEqual}, {Field: "B", MatchType: Presence},
				{Field: "C", MatchType: Absence}, {Field: "D", Value: "x|y", MatchType: MatchRegex},
				{Field: "E", Value: "z", MatchType: NotMatchRegex},
			}}},
	}
	got, err := Render(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"prefix":"netobserv_","metrics":[
{"name":"workload_syn_out","type":"counter","filters":[{"key":"Flags","value":"SYN","type":"equal"},{"key":"FlowDirection","value":"0","type":"not_equal"}],"labels":["SrcK8S_Namespace","DstPort","Flags"],"flatten":["Flags"]},
{"name":"bytes_by_ns","type":"counter","filters":[],"valueKey":"Bytes","labels":["DstK8S_Namespace"],"remap":{"DstK8S_Namespace":"namespace"}},
{"name":"in_total","type":"gauge","filters":[{"key":"A","value":"1","type":"not_equal"},{"key":"B","type":"presence"},{"key":"C","type":"absence"},{"key":"D","value":"x|y","type":"match_regex"},{"key":"E","value":"z","type":"not_match_regex"},{"key":"FlowDirection","value":"1","type":"not_equal"}],"labels":null}]}`
	var gotV, wantV any
	b, _ := json.Marshal(got)
	_ = json.Unmarshal(b, &gotV)
	if err := json.Unmarshal([]byte(want), &wantV); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(gotV, wantV) {
		t.Errorf("rendered:\n%s\nwant:\n%s", b, want)
	}
	// The YAML FLP reads has the same keys.
	y, err := yaml.Marshal(got)
	if err != nil || !regexp.MustCompile(`(?m)^- filters:`).Match(y) && !regexp.MustCompile(`(?m)^  - filters:`).Match(y) {
		t.Errorf("YAML rendering: %v\n%s", err, y)
	}

	if _, err := Render([]FlowMetric{in[0], in[0]}); err == nil {
		t.Error("two FlowMetrics with one metric name rendered")
	}
	bad := in[0]
	bad.Spec.Direction = "Out"
	if _, err := Render([]FlowMetric{bad}); err == nil {
		t.Error("direction Out rendered")
	}
}

func TestRenderResourcesEgressSelection(t *testing.T) {
	p, err := Render(Resources(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Metrics) != 17 {
		t.Fatalf("%d metrics", len(p.Metrics))
	}
	for _, m := range p.Metrics {
		keys := map[string]string{}
		for _, f := range m.Filters {
			keys[f.Key+" "+f.Type] = f.Value
		}
		if v, ok := keys["FlowDirection not_equal"]; !ok || v != "0" {
			t.Errorf("%s: no FlowDirection != 0 filter", m.Name)
		}
		if _, ok := keys["DstK8S_Type absence"]; !ok {
			t.Errorf("%s: no DstK8S_Type absence filter", m.Name)
		}
		if keys["DstSubnetLabel not_match_regex"] != "^(Pods|Services|Machines)$" {
			t.Errorf("%s: no internal-subnet filter", m.Name)
		}
		for _, l := range m.Labels {
			if l == "SrcPort" && m.Name != DatagramBoth && m.Name != DatagramBoth+VariantPod && m.Name != DatagramResponse {
				t.Errorf("%s: SrcPort label without a server-port filter", m.Name)
			}
		}
	}
}
