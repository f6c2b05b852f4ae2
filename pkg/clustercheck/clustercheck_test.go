package clustercheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/cluster"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
)

// generatedFacts describe the cluster lokitest.Generate simulates.
func generatedFacts(t *testing.T) *cluster.Facts {
	f := &cluster.Facts{
		Version: "4.21.3", Minor: "4.21", Platform: "AWS", ControlPlaneTopology: "HighlyAvailable",
		ClusterNetworks: []string{"10.128.0.0/14"}, ServiceNetworks: []string{"172.30.0.0/16"}, MachineNetworks: []string{"10.0.0.0/16"},
	}
	for i := range 6 {
		role := "worker"
		if i < 3 {
			role = "master"
		}
		f.Nodes = append(f.Nodes, cluster.Node{Name: fmt.Sprintf("ip-10-0-0-%d.ec2.internal", 10+i), Roles: []string{role}})
	}
	files, err := baseline.Select(filepath.Join("testdata", "baseline"), f.Version, f.Platform, f.ControlPlaneTopology)
	if err != nil {
		t.Fatal(err)
	}
	f.BaselineFiles = files
	return f
}

// canaryEntry turns a generated pod SYN flow to 198.51.100.10:443 into the canary's flow.
func canaryEntry(t *testing.T, gen []lokitest.Generated, from, to time.Time) (lokitest.Entry, string) {
	for _, g := range gen {
		tr := g.Truth
		if g.Time.Before(from) || !g.Time.Before(to) || !g.Egress || tr.SrcType != "Pod" || !tr.HasSYN() || tr.DstPort != 443 || g.Labels["SrcK8S_OwnerName"] == "" {
			continue
		}
		var line map[string]any
		if err := json.Unmarshal(g.Line, &line); err != nil {
			t.Fatal(err)
		}
		line["SrcK8S_Name"] = cluster.CanaryName + "-x7k2p"
		line["SrcK8S_OwnerType"] = "Job"
		data, _ := json.Marshal(line)
		labels := map[string]string{}
		for k, v := range g.Labels {
			labels[k] = v
		}
		labels["SrcK8S_Namespace"] = cluster.SuiteNamespace
		labels["SrcK8S_OwnerName"] = cluster.CanaryName
		labels["K8S_FlowLayer"] = "app"
		return lokitest.Entry{Labels: labels, Time: g.Time, Line: data}, tr.DstAddr
	}
	t.Fatal("the generator made no pod SYN flow to port 443")
	return lokitest.Entry{}, ""
}

func TestRunPipelineOnRealLoki(t *testing.T) {
	srv := lokitest.Start(t, lokitest.Limits{})
	now := time.Now().UTC()
	from, end := now.Add(-20*time.Minute), now.Add(-5*time.Minute)
	gen := lokitest.Generate(lokitest.GenConfig{Records: 4000, From: from, To: now.Add(-time.Minute), Seed: 7, Namespaces: 5})
	canary, canaryAddr := canaryEntry(t, gen, from, end)
	entries := []lokitest.Entry{canary}
	for _, g := range gen {
		entries = append(entries, g.Entry)
	}
	ctx := context.Background()
	if err := srv.Push(ctx, entries); err != nil {
		t.Fatal(err)
	}
	facts := generatedFacts(t)
	conn := &cluster.LokiConn{URL: srv.URL, Tenant: srv.Tenant, Describe: "test Loki"}
	win := Window{Start: from, End: end, Canary: &cluster.CanaryResult{Addresses: []string{canaryAddr}, Start: from, End: end}}
	// quay.io resolves to its address over the whole window; registry.redhat.io's answer
	// starts inside it, so its flows are pulled one by one and named only from then on.
	mid := from.Add(7 * time.Minute)
	win.Resolutions = []cluster.Resolution{
		{Address: netip.MustParseAddr("198.51.100.10"), Host: "quay.io", From: from, To: end},
		{Address: netip.MustParseAddr("198.51.100.12"), Host: "registry.redhat.io", From: mid, To: end},
	}
	names := matrix.NewNames()
	for _, r := range win.Resolutions {
		names.Add(r.Address, r.Host, r.From, r.To)
	}
	if got := observe.TimeSensitive(names, observe.Window{From: win.Start, To: win.End}); len(got) != 1 || got[0] != "198.51.100.12" {
		t.Fatalf("time-sensitive addresses %v", got)
	}

	out, err := Run(ctx, facts, conn, win, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(out.CanaryFlows) == 0 || out.SuiteFlows == 0 {
		t.Fatalf("canary not found: %+v", out.CanaryFlows)
	}
	checkDNSEvidence(t, out, gen, facts, from, end)
	for _, e := range out.Matrix.Entries {
		if e.SrcNamespace == cluster.SuiteNamespace {
			t.Errorf("the suite's own flow is in the matrix: %+v", e)
		}
	}
	if len(out.Diff.Matched) == 0 || len(out.Diff.Undocumented) == 0 {
		t.Fatalf("want both documented and undocumented flows, got %d matched, %d undocumented", len(out.Diff.Matched), len(out.Diff.Undocumented))
	}
	named := false
	for _, m := range out.Diff.Matched {
		named = named || m.Observed.DstName == "quay.io"
	}
	if !named {
		t.Errorf("no flow named quay.io through the resolver's answers: %+v", out.Diff.Matched)
	}
	// Flows to 198.51.100.12 are named registry.redhat.io only from when it resolved.
	var namedAfter, unnamedBefore int
	for _, e := range out.Matrix.Entries {
		if e.DstAddress != "198.51.100.12" {
			continue
		}
		if e.DstName == "registry.redhat.io" {
			namedAfter++
		} else if e.FirstSeen.Before(mid) {
			unnamedBefore++
		}
		if e.DstName == "registry.redhat.io" && e.FirstSeen.Before(mid) {
			t.Errorf("named before its resolution: %+v", e)
		}
		if e.DstName == "198.51.100.12" && !e.FirstSeen.Before(mid) {
			t.Errorf("unnamed after its resolution: %+v", e)
		}
	}
	if namedAfter == 0 || unnamedBefore == 0 {
		t.Errorf("want flows to 198.51.100.12 both before (unnamed: %d) and after (named: %d) its resolution", unnamedBefore, namedAfter)
	}

	dir := t.TempDir()
	if err := WriteArtifacts(dir, filepath.Join("testdata", "baseline"), out); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"flows.json", "names.json", "matrix.json", "matrix.csv", "matrix.md", "diff.txt", "diff.json", "baseline-update/4.21/common.yaml", "baseline-update/added.json"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Size() == 0 {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
	checkDNSArtifacts(t, dir, out)
	update, err := baseline.Load(filepath.Join(dir, "baseline-update", "4.21", "common.yaml"))
	if err != nil {
		t.Fatalf("the proposed update does not load: %v", err)
	}
	if len(update.Entries) <= 2 {
		t.Errorf("the proposed update adds nothing: %d entries", len(update.Entries))
	}
	if orig, _ := os.ReadFile(filepath.Join("testdata", "baseline", "4.21", "common.yaml")); strings.Count(string(orig), "component:") != 2 {
		t.Error("the proposed update changed the source baseline")
	}

	msg := FailureMessage(out, dir)
	t.Log(msg)
	for _, want := range []string{"UNDOCUMENTED EGRESS", "SOURCE", "DESTINATION", "FIRST SEEN", "baseline-update", "egress flow(s) leave the cluster"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}

	// Without the canary's flow the pipeline is broken, whatever the diff says.
	win.Canary = &cluster.CanaryResult{Addresses: []string{"192.0.2.200"}, Start: from, End: end}
	if _, err := Run(ctx, facts, conn, win, io.Discard); err == nil || !strings.Contains(err.Error(), "pipeline is broken") {
		t.Errorf("missing canary flow: %v", err)
	}
}

func TestIsCanaryFlow(t *testing.T) {
	c := &cluster.CanaryResult{Addresses: []string{"203.0.113.5"}}
	cases := []struct {
		r    flow.Record
		want bool
	}{
		{flow.Record{SrcOwnerName: cluster.CanaryName, DstAddr: "203.0.113.5"}, true},
		{flow.Record{SrcOwnerName: cluster.CanaryName, DstAddr: "172.30.0.1", XlatDstAddr: "203.0.113.5"}, true},
		{flow.Record{SrcOwnerName: cluster.ResolverName, DstAddr: "203.0.113.5"}, false},
		{flow.Record{SrcOwnerName: cluster.CanaryName, DstAddr: "203.0.113.6"}, false},
	}
	for _, tc := range cases {
		if got := isCanaryFlow(tc.r, c); got != tc.want {
			t.Errorf("%+v: %v", tc.r, got)
		}
	}
}

func TestEmbeddedBaselineExtracts(t *testing.T) {
	dir, cleanup, err := BaselineDir(&cluster.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	files, err := baseline.Select(dir, "4.21.0", "AWS", "HighlyAvailable")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := baseline.Load(files...); err != nil {
		t.Fatalf("the embedded baseline does not load: %v", err)
	}
	if d, _, _ := BaselineDir(&cluster.Config{BaselineDir: "/x"}); d != "/x" {
		t.Errorf("EGRESS_BASELINE_DIR ignored: %s", d)
	}
}

// checkDNSEvidence checks that the window's DNS queries reach the Outcome: the names each
// workload asked the cluster DNS for are those of every generated record of the window.
func checkDNSEvidence(t *testing.T, out *Outcome, gen []lokitest.Generated, facts *cluster.Facts, from, end time.Time) {
	t.Helper()
	if len(out.Batch.DNS) == 0 {
		t.Fatal("no DNS query retrieved")
	}
	var truth []flow.Record
	for _, g := range gen {
		if !g.Time.Before(from) && g.Time.Before(end) {
			truth = append(truth, g.Truth)
		}
	}
	want := matrix.Build(truth, matrix.Options{ClusterNetworks: clusterPrefixes(facts), NodeRoles: nodeRoles(facts), Ports: serverPorts})
	if len(want.DNSQueries) == 0 {
		t.Fatal("the generated window has no DNS query")
	}
	if !reflect.DeepEqual(out.Matrix.DNSQueries, want.DNSQueries) {
		t.Fatalf("DNS evidence of the matrix:\n got %+v\nwant %+v", out.Matrix.DNSQueries, want.DNSQueries)
	}
	if out.Matrix.Stats.DNSNamedOnly != want.Stats.DNSNamedOnly {
		t.Fatalf("DNSNamedOnly %d, want %d", out.Matrix.Stats.DNSNamedOnly, want.Stats.DNSNamedOnly)
	}
	// Pods of application namespaces ask the cluster DNS; their queries never leave the
	// cluster, so only the DNS aggregates can carry them.
	app := false
	for _, q := range out.Matrix.DNSQueries {
		app = app || strings.HasPrefix(q.SrcNamespace, "e2e-app-")
	}
	if !app {
		t.Fatalf("no application workload in the DNS evidence: %+v", out.Matrix.DNSQueries)
	}
}

// checkDNSArtifacts checks that the DNS evidence is in the stored matrix and flows.
func checkDNSArtifacts(t *testing.T, dir string, out *Outcome) {
	t.Helper()
	var m matrix.Matrix
	data, err := os.ReadFile(filepath.Join(dir, "matrix.json"))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil || !reflect.DeepEqual(m.DNSQueries, out.Matrix.DNSQueries) {
		t.Fatalf("matrix.json DNS evidence: %v, %d sources, want %d", err, len(m.DNSQueries), len(out.Matrix.DNSQueries))
	}
	var flows struct {
		DNSQuery   string        `json:"dnsQuery"`
		DNSQueries []flow.Record `json:"dnsQueries"`
	}
	data, err = os.ReadFile(filepath.Join(dir, "flows.json"))
	if err == nil {
		err = json.Unmarshal(data, &flows)
	}
	if err != nil || len(flows.DNSQueries) != len(out.Batch.DNS) || !strings.Contains(flows.DNSQuery, "DnsName") {
		t.Fatalf("flows.json DNS queries: %v, %d records, want %d; query %q", err, len(flows.DNSQueries), len(out.Batch.DNS), flows.DNSQuery)
	}
}

// One record sampled at 1:50 in the window means connections may be missing: the pipeline
// fails instead of reporting a diff.
func TestRunPipelineRefusesSampledFlows(t *testing.T) {
	srv := lokitest.Start(t, lokitest.Limits{})
	now := time.Now().UTC()
	from, end := now.Add(-20*time.Minute), now.Add(-5*time.Minute)
	gen := lokitest.Generate(lokitest.GenConfig{Records: 600, From: from, To: now.Add(-time.Minute), Seed: 11, Namespaces: 3})
	canary, canaryAddr := canaryEntry(t, gen, from, end)
	entries := []lokitest.Entry{canary}
	sampled := false
	for _, g := range gen {
		e := g.Entry
		if !sampled && g.Egress && g.Time.After(from) && g.Time.Before(end) && g.Truth.HasSYN() && g.Truth.SrcType == "Pod" {
			e.Line = []byte(strings.Replace(string(e.Line), `"Sampling":1`, `"Sampling":50`, 1))
			sampled = strings.Contains(string(e.Line), `"Sampling":50`)
		}
		entries = append(entries, e)
	}
	if !sampled {
		t.Fatal("no generated egress record in the window carries Sampling to change")
	}
	if err := srv.Push(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	conn := &cluster.LokiConn{URL: srv.URL, Tenant: srv.Tenant, Describe: "test Loki"}
	win := Window{Start: from, End: end, Canary: &cluster.CanaryResult{Addresses: []string{canaryAddr}, Start: from, End: end}}
	_, err := Run(context.Background(), generatedFacts(t), conn, win, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "sampling must be 1") {
		t.Fatalf("runPipeline with a sampled record: %v; want a failure saying sampling must be 1", err)
	}
}

func TestAgree(t *testing.T) {
	e := func(dst string, port int) matrix.Entry {
		return matrix.Entry{SrcNamespace: "openshift-insights", SrcWorkload: "insights-operator", SrcKind: "Deployment", DstName: dst, Protocol: "TCP", Port: port}
	}
	out := func(es ...matrix.Entry) *Outcome {
		return &Outcome{Outcome: &observe.Outcome{Matrix: &matrix.Matrix{Entries: es}}}
	}
	ctx := context.Background()
	if ex, err := Agree(ctx, nil, nil, Window{}, out(e("console.redhat.com", 443)), out(e("console.redhat.com", 443)), nil); err != nil || ex != nil {
		t.Fatalf("same entries: %v, %v", ex, err)
	}
	_, err := Agree(ctx, nil, nil, Window{}, out(e("console.redhat.com", 443)), out(e("console.redhat.com", 443), e("api.openshift.com", 443)), nil)
	var d *matrix.Disagreement
	if !errors.As(err, &d) || len(d.OnlyB) != 1 || !strings.Contains(err.Error(), "only in flowmetrics: openshift-insights/insights-operator (Deployment) -> api.openshift.com TCP:443") {
		t.Fatalf("an entry only in the FlowMetrics: %v", err)
	}
}
