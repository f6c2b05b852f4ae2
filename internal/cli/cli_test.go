package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
)

// run executes the commands in-process as the binary would, and returns stdout, stderr and
// the exit code main would use.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := &cobra.Command{Use: "egress-tests-ext", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(Commands()...)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		errOut.WriteString("Error: " + err.Error() + "\n")
	}
	return out.String(), errOut.String(), ExitCode(err)
}

var naming = []string{
	"--names", filepath.Join("testdata", "names.json"),
	"--cluster-network", "10.128.0.0/14,172.30.0.0/16", "--cluster-network", "10.0.0.0/16",
	"--node-role", "w0=worker", "--node-role", "m0=master",
}

func args(a ...[]string) []string {
	var out []string
	for _, x := range a {
		out = append(out, x...)
	}
	return out
}

// TestRoundTrip is the acceptance test: build a matrix from flows, `baseline update`
// an empty baseline with it, and diff the same flows (exit 0); one new egress flow makes the
// diff fail (exit 1) naming only that flow.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join("testdata", "flows.jsonl")
	bfile := filepath.Join(dir, "common.yaml")
	if err := os.WriteFile(bfile, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	out, stderr, code := run(t, args([]string{"matrix", "build", "--flows", flows, "-o", "json"}, naming)...)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	mfile := filepath.Join(dir, "matrix.json")
	if err := os.WriteFile(mfile, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := matrix.ReadJSON(strings.NewReader(out), mfile)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 3 {
		t.Fatalf("matrix has %d entries, want 3 (CVO, node to quay CDN, prometheus):\n%s", len(m.Entries), out)
	}

	out, stderr, code = run(t, "baseline", "update", "--baseline", bfile, "--matrix", mfile)
	if code != 0 {
		t.Fatalf("update: exit %d: %s", code, stderr)
	}
	if !strings.Contains(out, "3 entries added") {
		t.Errorf("update output: %s", out)
	}

	// The same flows, rebuilt from records, diff clean.
	out, stderr, code = run(t, args([]string{"matrix", "diff", "--baseline", bfile, "--flows", flows}, naming)...)
	if code != 0 {
		t.Fatalf("diff after update: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.HasPrefix(lastLine(out), "PASS: 0 undocumented, 0 unobserved, 3 matched") {
		t.Errorf("summary: %q", lastLine(out))
	}
	// And from the matrix file.
	if _, stderr, code = run(t, "matrix", "diff", "--baseline", bfile, "--matrix", mfile); code != 0 {
		t.Fatalf("diff --matrix: exit %d: %s", code, stderr)
	}

	// One new egress flow: exit 1, and the report names only it.
	extra := filepath.Join("testdata", "extra-flow.jsonl")
	out, stderr, code = run(t, args([]string{"matrix", "diff", "--baseline", bfile, "--flows", flows, "--flows", extra, "-o", "json"}, naming)...)
	if code != 1 {
		t.Fatalf("diff with a new flow: exit %d, want 1\n%s%s", code, out, stderr)
	}
	var r struct {
		Undocumented []matrix.Entry    `json:"undocumented"`
		Unobserved   []baseline.Entry  `json:"unobserved"`
		Matched      []json.RawMessage `json:"matched"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("diff JSON: %v\n%s", err, out)
	}
	if len(r.Undocumented) != 1 || r.Undocumented[0].SrcNamespace != "openshift-insights" || r.Undocumented[0].DstName != "192.0.2.44" {
		t.Fatalf("undocumented = %+v, want only openshift-insights to 192.0.2.44", r.Undocumented)
	}
	if len(r.Matched) != 3 || len(r.Unobserved) != 0 {
		t.Errorf("matched %d, unobserved %d", len(r.Matched), len(r.Unobserved))
	}
	if !strings.Contains(stderr, "1 undocumented egress connection(s)") {
		t.Errorf("stderr: %s", stderr)
	}
	out, _, code = run(t, args([]string{"matrix", "diff", "--baseline", bfile, "--flows", flows, "--flows", extra}, naming)...)
	if code != 1 || !strings.Contains(out, "openshift-insights/insights-operator (Deployment)") || strings.Contains(out, "openshift-monitoring/prometheus") {
		t.Errorf("text report must list only the new flow:\n%s", out)
	}

	// The updated file carries placeholders that validate --reviewed rejects.
	if _, stderr, code = run(t, "baseline", "validate", "--baseline", bfile, "--reviewed"); code != 2 || !strings.Contains(stderr, "not reviewed") {
		t.Errorf("validate --reviewed: exit %d: %s", code, stderr)
	}
	if out, stderr, code = run(t, "baseline", "validate", "--baseline", bfile); code != 0 || !strings.Contains(out, "1 files, 3 entries: valid") {
		t.Errorf("validate: exit %d: %s%s", code, out, stderr)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestDiffIncompleteObservations(t *testing.T) {
	dir := t.TempDir()
	bfile := filepath.Join(dir, "b.yaml")
	os.WriteFile(bfile, []byte("entries: []\n"), 0o644)
	empty := filepath.Join(dir, "empty-matrix.json")
	os.WriteFile(empty, []byte(`{"entries":[],"stats":{"records":0}}`), 0o644)
	_, stderr, code := run(t, "matrix", "diff", "--baseline", bfile, "--matrix", empty)
	if code != 2 || !strings.Contains(stderr, "no flow records at all") {
		t.Errorf("empty observation: exit %d: %s", code, stderr)
	}
	_, stderr, code = run(t, "matrix", "diff", "--baseline", bfile, "--flows", filepath.Join("testdata", "sampled.jsonl"), "--cluster-network", "10.128.0.0/14")
	if code != 2 || !strings.Contains(stderr, "spec.agent.ebpf.sampling must be 1") {
		t.Errorf("sampled: exit %d: %s", code, stderr)
	}
	undecided := filepath.Join(dir, "undecided.json")
	os.WriteFile(undecided, []byte(`{"entries":[],"stats":{"records":4,"egress":0,"undecided":4},"undecided":[{"srcNamespace":"a","srcWorkload":"b","srcKind":"Job","dstName":"192.0.2.1","dstAddress":"192.0.2.1","protocol":"UDP","srcPort":40000,"dstPort":50000,"flows":4,"reason":"two dynamic ports"}],"undecidedDistinct":1}`), 0o644)
	out, stderr, code := run(t, "matrix", "diff", "--baseline", bfile, "--matrix", undecided)
	if code != 1 || !strings.Contains(stderr, "--allow-undecided") || !strings.Contains(out, "UNDECIDED EGRESS") {
		t.Errorf("undecided: exit %d: %s%s", code, out, stderr)
	}
	if _, stderr, code = run(t, "matrix", "diff", "--baseline", bfile, "--matrix", undecided, "--allow-undecided"); code != 0 {
		t.Errorf("--allow-undecided: exit %d: %s", code, stderr)
	}
}

func TestFlagErrors(t *testing.T) {
	dir := t.TempDir()
	bfile := filepath.Join(dir, "b.yaml")
	os.WriteFile(bfile, []byte("entries: []\n"), 0o644)
	flows := filepath.Join("testdata", "flows.jsonl")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"matrix", "diff", "--baseline", bfile}, "fix: pass one of --flows, --matrix"},
		{[]string{"matrix", "diff", "--baseline", bfile, "--flows", flows, "--matrix", "m.json"}, "--flows and --matrix given together"},
		{[]string{"matrix", "diff", "--baseline", bfile, "--matrix", "m.json", "--names", "n.json"}, "--names apply when building a matrix"},
		{[]string{"matrix", "diff", "--flows", flows}, "--baseline or --version is required"},
		{[]string{"matrix", "diff", "--version", "4.99", "--flows", flows}, "embedded baseline: no baseline for OpenShift 4.99"},
		{[]string{"matrix", "diff", "--baseline", dir, "--flows", flows}, "--version is required"},
		{[]string{"matrix", "diff", "--baseline", bfile, "--version", "4.21", "--flows", flows}, "is a file"},
		{[]string{"matrix", "diff", "--baseline", bfile, "--flows", flows, "-o", "csv"}, "fix: use one of text, json"},
		{[]string{"matrix", "diff", "--baseline", bfile, "--flows", flows, "--node-role", "w0"}, "fix: write NODE=ROLE"},
		{[]string{"matrix", "diff", "--baseline", bfile, "--flows", flows, "--cluster-network", "10.0.0.0/33"}, "is not a CIDR"},
		{[]string{"matrix", "diff", "--baseline", bfile, "--flows", flows, "--server-port", "70000"}, "within 1-65535"},
		{[]string{"matrix", "build", "--flows", flows, "-o", "xml"}, "fix: use one of json"},
		{[]string{"matrix", "build"}, `"flows" not set`},
		{[]string{"matrix", "render", "--baseline", bfile, "-o", "pdf"}, "fix: use one of asciidoc, csv, markdown"},
		{[]string{"baseline", "update", "--baseline", dir, "--flows", flows}, "is a directory"},
		{[]string{"matrix", "diff", "--baseline", filepath.Join(dir, "nope.yaml"), "--flows", flows}, "no such file"},
	} {
		_, stderr, code := run(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want 2 and %q", c.args, code, stderr, c.want)
		}
	}
}

func TestBaselineTreeSelection(t *testing.T) {
	tree := filepath.Join("..", "..", "baseline")
	out, stderr, code := run(t, "matrix", "render", "--baseline", tree, "--version", "4.21.3", "--platform", "AWS", "--topology", "HighlyAvailable", "-o", "markdown")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"common.yaml", "platform/aws.yaml", "topology/HighlyAvailable.yaml: nothing documented"} {
		if !strings.Contains(stderr, w) {
			t.Errorf("stderr lacks %q: %s", w, stderr)
		}
	}
	if !strings.Contains(out, "| registry.redhat.io | TCP | 443 |") || !strings.Contains(out, "| iam.amazonaws.com |") {
		t.Errorf("render output:\n%s", out)
	}
	if _, stderr, code = run(t, "matrix", "render", "--baseline", tree, "--version", "4.99"); code != 2 || !strings.Contains(stderr, "versions present: 4.21") {
		t.Errorf("missing version: exit %d: %s", code, stderr)
	}
	out2, stderr, code := run(t, "matrix", "render", "--version", "4.21", "--platform", "AWS", "-o", "markdown")
	if code != 0 || out2 != out || !strings.Contains(stderr, "embedded in the binary") {
		t.Errorf("the embedded tree must render like the one on disk: exit %d: %s", code, stderr)
	}
	if out, stderr, code = run(t, "baseline", "validate", "--baseline", tree, "--reviewed"); code != 0 {
		t.Errorf("validate the repository tree: exit %d: %s%s", code, out, stderr)
	}
}

func TestMatrixBuildFormats(t *testing.T) {
	flows := filepath.Join("testdata", "flows.jsonl")
	for f, want := range map[string]string{
		"csv":      "srcNamespace,srcWorkload,srcKind,dstName",
		"yaml":     "dstName: api.openshift.com",
		"markdown": "| openshift-cluster-version | cluster-version-operator | Deployment | api.openshift.com | hostname |",
		"asciidoc": "|===",
	} {
		out, stderr, code := run(t, args([]string{"matrix", "build", "--flows", flows, "-o", f}, naming)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("-o %s: exit %d: %s\n%s", f, code, stderr, out)
		}
	}
}

// fakeSource stands for a source another file registers (the Loki collector).
type fakeSource struct{ on bool }

func (s *fakeSource) flags() string { return "--fake" }
func (s *fakeSource) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&s.on, "fake", false, "")
}
func (s *fakeSource) isSet(fs *pflag.FlagSet) bool { return fs.Changed("fake") }
func (s *fakeSource) usesNaming() bool             { return true }
func (s *fakeSource) outcome(context.Context, matrix.Options, *baseline.Baseline, io.Writer) (*observe.Outcome, error) {
	return nil, errors.New("fake source reached")
}

func TestRegisteredMatrixSource(t *testing.T) {
	saved := extraSources
	defer func() { extraSources = saved }()
	registerMatrixSource(func() matrixSource { return &fakeSource{} })
	bfile := filepath.Join(t.TempDir(), "b.yaml")
	os.WriteFile(bfile, []byte("entries: []\n"), 0o644)
	_, stderr, code := run(t, "matrix", "diff", "--baseline", bfile, "--fake")
	if code != 2 || !strings.Contains(stderr, "fake source reached") {
		t.Errorf("exit %d: %s", code, stderr)
	}
	_, stderr, _ = run(t, "matrix", "diff", "--baseline", bfile)
	if !strings.Contains(stderr, "--flows, --matrix") || !strings.Contains(stderr, "--fake") {
		t.Errorf("the registered source is not offered: %s", stderr)
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(errors.New("x")) != 2 {
		t.Fatal("nil must be 0 and a plain error 2")
	}
	wrapped := errors.Join(errors.New("ctx"), &ExitError{Code: CodeUndocumented, Err: errors.New("u")})
	if ExitCode(wrapped) != 1 {
		t.Fatal("a wrapped ExitError keeps its code")
	}
}

// collect prints what it found but fails (2) on a window that proves nothing.
func TestIncompleteIsExit2(t *testing.T) {
	m := &matrix.Matrix{}
	if err := incomplete(m); ExitCode(err) != CodeError || !strings.Contains(err.Error(), "no flow records at all") {
		t.Errorf("empty matrix: %v (exit %d), want exit 2 naming the empty window", err, ExitCode(err))
	}
	m.Stats.Records, m.Stats.Egress = 3, 3
	if err := incomplete(m); err != nil {
		t.Errorf("complete matrix: %v", err)
	}
}

// matrix render never writes nothing with exit 0: an empty (0-byte, comment-only) file is an
// error, and so is a baseline with no entry at all.
func TestRenderEmptyBaselineFails(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"zero.yaml": "", "comments.yaml": "# truncated\n", "none.yaml": "entries: []\n"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, render := range [][]string{{"-o", "asciidoc"}, {"-o", "csv"},
			{"-o", "nftables", "--pod-cidr", "10.128.0.0/14", "--service-cidr", "172.30.0.0/16", "--machine-cidr", "10.0.0.0/16"}} {
			format := render[1]
			out, stderr, code := run(t, append([]string{"matrix", "render", "--baseline", p}, render...)...)
			if code != 2 || out != "" || !strings.Contains(stderr, p) {
				t.Errorf("%s -o %s: exit %d, %d bytes out, stderr %q: want exit 2, nothing out, an error naming the file", name, format, code, len(out), stderr)
			}
		}
	}
	if out, stderr, code := run(t, "baseline", "validate", "--baseline", filepath.Join(dir, "zero.yaml")); code != 2 || !strings.Contains(stderr, "entries: []") {
		t.Errorf("validate of a 0-byte file: exit %d: %s%s", code, out, stderr)
	}
}

// A custom subnet label without EXT: is egress named by its label, with a configuration
// warning; the diff sees it.
func TestCustomLabelWithoutEXTIsEgress(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows.jsonl")
	line := `{"SrcK8S_Namespace":"app","SrcK8S_OwnerName":"web","SrcK8S_OwnerType":"Deployment","SrcK8S_Type":"Pod","SrcAddr":"10.128.0.5","SrcPort":49308,"DstAddr":"3.5.246.1","DstPort":443,"Proto":6,"Flags":["SYN","ACK"],"FlowDirection":"1","Sampling":1,"Etype":2048,"SrcSubnetLabel":"Pods","DstSubnetLabel":"AWS_S3_eu-west-3","TimeFlowStartMs":1796190781291,"TimeFlowEndMs":1796190781294}` + "\n"
	if err := os.WriteFile(flows, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	bfile := filepath.Join(dir, "b.yaml")
	os.WriteFile(bfile, []byte("entries: []\n"), 0o644)
	out, stderr, code := run(t, "matrix", "diff", "--baseline", bfile, "--flows", flows, "--cluster-network", "10.128.0.0/14", "-o", "json")
	if code != 1 || !strings.Contains(out, `"dstName": "AWS_S3_eu-west-3"`) || !strings.Contains(stderr, "lack the EXT: prefix") {
		t.Fatalf("exit %d, want 1 with the flow undocumented and a warning:\n%s%s", code, out, stderr)
	}
}

// One CIDR rule for baseline files and the command line: a block with host bits set is
// refused with the fix, never masked silently.
func TestCIDRFlagsWithHostBits(t *testing.T) {
	dir := t.TempDir()
	bfile := filepath.Join(dir, "b.yaml")
	os.WriteFile(bfile, []byte(validBaselineEntry), 0o644)
	for _, c := range [][]string{
		{"matrix", "render", "--baseline", bfile, "-o", "nftables", "--pod-cidr", "10.128.0.1/14", "--service-cidr", "172.30.0.0/16", "--machine-cidr", "10.0.0.0/16"},
		{"matrix", "render", "--baseline", bfile, "-o", "nftables", "--pod-cidr", "10.128.0.0/14", "--service-cidr", "172.30.0.0/16", "--machine-cidr", "10.0.0.5/16"},
		{"matrix", "build", "--flows", filepath.Join("testdata", "flows.jsonl"), "--cluster-network", "10.128.0.1/14"},
	} {
		out, stderr, code := run(t, c...)
		if code != 2 || out != "" || !strings.Contains(stderr, "has host bits set") || !strings.Contains(stderr, "fix: write 10.") {
			t.Errorf("%v: exit %d, %d bytes out: %s; want 2 naming the host bits and the block to write", c, code, len(out), stderr)
		}
	}
	// A baseline entry with the same block is refused by the same rule.
	os.WriteFile(bfile, []byte(strings.Replace(validBaselineEntry, "host: api.openshift.com", "cidr: 10.128.0.1/14", 1)), 0o644)
	if _, stderr, code := run(t, "baseline", "validate", "--baseline", bfile); code != 2 || !strings.Contains(stderr, "has host bits set") {
		t.Errorf("baseline file: exit %d: %s", code, stderr)
	}
}

const validBaselineEntry = `entries:
  - component: Cluster Version Operator
    source:
      namespace: openshift-cluster-version
      workload: cluster-version-operator
    destination:
      host: api.openshift.com
    protocol: TCP
    port: "443"
    reason: update graph
`

// --from equal to --to is an empty window, not a reversed one.
func TestCollectEmptyWindowMessage(t *testing.T) {
	_, stderr, code := run(t, "matrix", "collect", "--loki-url", "http://127.0.0.1:1", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-02T00:00:00Z")
	if code != 2 || strings.Contains(stderr, "swap") || !strings.Contains(stderr, "the window is empty") {
		t.Errorf("exit %d: %s; want 2 saying the window is empty", code, stderr)
	}
}

// The offline paths follow the rule of the Loki one: records that hold no egress at all
// prove nothing (exit 2), through --flows and --matrix alike.
func TestOfflineDiffWithoutEgressFails(t *testing.T) {
	dir := t.TempDir()
	bfile := filepath.Join(dir, "b.yaml")
	os.WriteFile(bfile, []byte("entries: []\n"), 0o644)
	flows := filepath.Join(dir, "in-cluster.jsonl")
	// Pod to pod, pod to service, node to node: all in-cluster, as NetObserv labels them.
	lines := `{"SrcK8S_Namespace":"a","SrcK8S_OwnerName":"w","SrcK8S_OwnerType":"Deployment","SrcK8S_Type":"Pod","SrcAddr":"10.128.0.5","SrcPort":40000,"DstK8S_Namespace":"b","DstK8S_OwnerName":"x","DstK8S_OwnerType":"Deployment","DstK8S_Type":"Pod","DstAddr":"10.128.1.7","DstPort":8443,"Proto":6,"Flags":["SYN"],"FlowDirection":"1","Sampling":1,"SrcSubnetLabel":"Pods","DstSubnetLabel":"Pods"}
{"SrcK8S_Namespace":"a","SrcK8S_OwnerName":"w","SrcK8S_OwnerType":"Deployment","SrcK8S_Type":"Pod","SrcAddr":"10.128.0.5","SrcPort":40001,"DstK8S_Namespace":"default","DstK8S_OwnerName":"kubernetes","DstK8S_Type":"Service","DstAddr":"172.30.0.1","DstPort":443,"Proto":6,"Flags":["SYN"],"FlowDirection":"1","Sampling":1,"SrcSubnetLabel":"Pods","DstSubnetLabel":"Services"}
{"SrcK8S_Type":"Node","SrcK8S_Name":"m0","SrcAddr":"10.0.0.4","SrcPort":40002,"DstK8S_Type":"Node","DstK8S_Name":"m1","DstAddr":"10.0.0.5","DstPort":2379,"Proto":6,"Flags":["SYN"],"FlowDirection":"1","Sampling":1,"SrcSubnetLabel":"Machines","DstSubnetLabel":"Machines"}
`
	os.WriteFile(flows, []byte(lines), 0o644)
	out, stderr, code := run(t, "matrix", "diff", "--baseline", bfile, "--flows", flows)
	if code != 2 || strings.Contains(out, "PASS") || !strings.Contains(stderr, "no egress flow record") {
		t.Errorf("--flows: exit %d, want 2 naming the missing egress:\n%s%s", code, out, stderr)
	}
	mout, stderr, code := run(t, "matrix", "build", "--flows", flows, "-o", "json")
	mfile := filepath.Join(dir, "m.json")
	os.WriteFile(mfile, []byte(mout), 0o644)
	if code == 0 {
		out, stderr, code = run(t, "matrix", "diff", "--baseline", bfile, "--matrix", mfile)
		if code != 2 || strings.Contains(out, "PASS") || !strings.Contains(stderr, "no egress flow record") {
			t.Errorf("--matrix: exit %d, want 2 naming the missing egress:\n%s%s", code, out, stderr)
		}
	} else if !strings.Contains(stderr, "no egress flow record") {
		t.Errorf("build: exit %d: %s", code, stderr)
	}
}

// A pod record without DstAddr cannot be placed: undecodable, exit 2, never "not egress".
func TestDiffRecordWithoutDstAddrFails(t *testing.T) {
	dir := t.TempDir()
	bfile := filepath.Join(dir, "b.yaml")
	os.WriteFile(bfile, []byte("entries: []\n"), 0o644)
	flows := filepath.Join(dir, "flows.jsonl")
	data, err := os.ReadFile(filepath.Join("testdata", "flows.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, `{"SrcK8S_Namespace":"app","SrcK8S_OwnerName":"web","SrcK8S_OwnerType":"Deployment","SrcK8S_Type":"Pod","SrcAddr":"10.128.0.5","SrcPort":40000,"DstPort":443,"Proto":6,"Flags":["SYN"],"FlowDirection":"1","Sampling":1}`+"\n"...)
	os.WriteFile(flows, data, 0o644)
	out, stderr, code := run(t, args([]string{"matrix", "diff", "--baseline", bfile, "--flows", flows}, naming)...)
	if code != 2 || !strings.Contains(stderr, "no DstAddr") {
		t.Errorf("exit %d, want 2 naming the record without DstAddr:\n%s%s", code, lastLine(out), stderr)
	}
}

// baseline update refuses sampled records as diff does: observed: true from a sampled
// window would vouch for what it may have missed.
func TestBaselineUpdateRefusesSampled(t *testing.T) {
	dir := t.TempDir()
	bfile := filepath.Join(dir, "common.yaml")
	os.WriteFile(bfile, []byte(validBaselineEntry), 0o644)
	_, stderr, code := run(t, "baseline", "update", "--baseline", bfile, "--flows", filepath.Join("testdata", "sampled.jsonl"), "--cluster-network", "10.128.0.0/14")
	if code != 2 || !strings.Contains(stderr, "sampling must be 1") {
		t.Errorf("exit %d, want 2 naming the sampling: %s", code, stderr)
	}
	if b, _ := os.ReadFile(bfile); string(b) != validBaselineEntry {
		t.Errorf("the file was changed:\n%s", b)
	}
}
