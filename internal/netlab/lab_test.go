package netlab

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/openshift/egress-tests-ext/internal/cli"
	"github.com/openshift/egress-tests-ext/internal/netlab/netobserv"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// The lab tests capture testdata/lab.yaml once, live, and assert on what the real agent,
// FLP and Loki produced. They need root and BPF: without them they skip, and on CI
// (CI=true) they fail, since CI must run them.

// need fails on CI and skips elsewhere.
func need(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// binaries finds the agent, FLP and Loki: $AGENT_BIN, $FLP_BIN, $LOKI_BIN, else bin/ of the repo.
func binaries(t *testing.T) (agent, flp, loki string) {
	t.Helper()
	agent, flp, loki, _ = binariesWithProm(t)
	return agent, flp, loki
}

// binariesWithProm also finds Prometheus: $PROMETHEUS_BIN, else bin/prometheus.
func binariesWithProm(t *testing.T) (agent, flp, loki, prom string) {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	find := func(env, name, fix string) string {
		p := os.Getenv(env)
		if p == "" {
			p = filepath.Join(root, "bin", name)
		} else if !filepath.IsAbs(p) {
			p = filepath.Join(root, p)
		}
		if _, err := os.Stat(p); err != nil {
			need(t, name+" is missing ("+err.Error()+"): set "+env+" or run `"+fix+"`")
		}
		return p
	}
	return find("AGENT_BIN", "netobserv-ebpf-agent", "make agent"), find("FLP_BIN", "flowlogs-pipeline", "make flp"),
		find("LOKI_BIN", "loki", "make loki"), find("PROMETHEUS_BIN", "prometheus", "make prometheus")
}

func needCapture(t *testing.T) (agent, flp, loki string) {
	t.Helper()
	needRoot(t)
	if err := netobserv.CheckCapabilities(); err != nil {
		need(t, "this machine cannot run the NetObserv agent: "+err.Error())
	}
	return binaries(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.out != "" {
		os.RemoveAll(shared.out)
	}
	os.Exit(code)
}

var shared struct {
	once sync.Once
	res  *Result
	out  string
	err  error
	log  bytes.Buffer
}

// sharedLab is the one capture of testdata/lab.yaml the assertions share.
func sharedLab(t *testing.T) (*Result, string) {
	t.Helper()
	needCapture(t)
	agent, flp, loki, prom := binariesWithProm(t)
	shared.once.Do(func() {
		s, err := LoadScenario("testdata/lab.yaml")
		if err != nil {
			shared.err = err
			return
		}
		shared.out, shared.err = os.MkdirTemp("", "netlab-test-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		start := time.Now()
		shared.res, shared.err = Run(ctx, s, Options{AgentBin: agent, FLPBin: flp, LokiBin: loki, PrometheusBin: prom, Out: shared.out, Log: &shared.log})
		t.Logf("lab run took %s: %s", time.Since(start).Round(time.Millisecond), shared.res)
		if shared.err == nil {
			r, err := Leftovers(shared.res.Prefix)
			if err != nil {
				shared.err = err
			} else if !r.Empty() {
				t.Errorf("the lab left behind %+v", r)
			}
		}
	})
	if shared.err != nil {
		t.Fatalf("lab run: %v\n%s", shared.err, shared.log.String())
	}
	return shared.res, shared.out
}

// records decodes records.jsonl: the replayable file is what the assertions read.
func records(t *testing.T, out string) []flow.Record {
	t.Helper()
	var rs []flow.Record
	st, err := flow.DecodeFile(filepath.Join(out, "records.jsonl"), func(r flow.Record) error {
		rs = append(rs, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Undecodable > 0 {
		t.Errorf("records.jsonl: %d undecodable records: %+v", st.Undecodable, st)
	}
	return rs
}

func entry(m *matrix.Matrix, src, dst, proto string, port int) *matrix.Entry {
	for i := range m.Entries {
		e := &m.Entries[i]
		s := e.SrcNamespace + "/" + e.SrcWorkload
		if e.SrcKind == matrix.KindNode {
			s = "node/" + e.SrcWorkload
		}
		if s == src && e.DstName == dst && e.Protocol == proto && e.Port == port {
			return e
		}
	}
	return nil
}

func mustEntry(t *testing.T, m *matrix.Matrix, src, dst, proto string, port int) *matrix.Entry {
	t.Helper()
	e := entry(m, src, dst, proto, port)
	if e == nil {
		var b strings.Builder
		for _, e := range m.Entries {
			b.WriteString("  " + e.SrcNamespace + "/" + e.SrcWorkload + " (" + e.SrcKind + ") → " + e.DstName + " " + e.Protocol + "/" + strconv.Itoa(e.Port) + " " + e.PortEvidence + "\n")
		}
		t.Fatalf("no entry %s → %s %s/%d; entries:\n%s", src, dst, proto, port, b.String())
	}
	return e
}

func (r *Result) addr(t *testing.T, host string) string {
	t.Helper()
	for _, a := range r.Answers {
		if a.Name == host {
			return a.Address.String()
		}
	}
	t.Fatalf("the lab DNS never answered %s", host)
	return ""
}

func TestLabSYNGivesServerPort(t *testing.T) {
	res, out := sharedLab(t)
	m := res.Outcome.Matrix
	e := mustEntry(t, m, "openshift-image-registry/image-registry", "s3.us-east-1.amazonaws.com", "TCP", 443)
	if e.PortEvidence != matrix.PortBySYN {
		t.Errorf("s3 entry port evidence %q, want syn", e.PortEvidence)
	}
	s3 := res.addr(t, "s3.us-east-1.amazonaws.com")
	var syn, responses int
	for _, r := range records(t, out) {
		if r.DstAddr == s3 && r.DstPort == 443 && r.HasSYN() {
			syn++
		}
		if r.SrcAddr == s3 && r.SrcPort == 443 {
			responses++
		}
	}
	if syn == 0 || responses == 0 {
		t.Errorf("records of the s3 connections: %d with SYN, %d response legs; want both", syn, responses)
	}
	// No response leg became an entry: every entry's port is a listener of the scenario.
	for _, e := range m.Entries {
		if e.Port != 443 && e.Port != 123 && e.Port != 53 {
			t.Errorf("entry with port %d (a client port: a response leg?): %+v", e.Port, e)
		}
	}
	if len(m.Undecided) > 0 {
		t.Errorf("undecided flows: %+v", m.Undecided)
	}
}

func TestLabLongLivedConnection(t *testing.T) {
	res, out := sharedLab(t)
	e := mustEntry(t, res.Outcome.Matrix, "openshift-machine-api/machine-api-controllers", "ec2.us-east-1.amazonaws.com", "TCP", 443)
	if e.PortEvidence != matrix.PortByWellKnown {
		t.Errorf("long-lived connection's port evidence %q, want well-known (no SYN in the window)", e.PortEvidence)
	}
	ec2 := res.addr(t, "ec2.us-east-1.amazonaws.com")
	n := 0
	for _, r := range records(t, out) {
		if r.DstAddr == ec2 {
			n++
			if r.HasSYN() {
				t.Errorf("a record of the long-lived connection in the window has a SYN: %+v", r)
			}
		}
	}
	if n == 0 {
		t.Error("no record of the long-lived connection in the window")
	}
}

func TestLabUDP(t *testing.T) {
	res, _ := sharedLab(t)
	m := res.Outcome.Matrix
	mustEntry(t, m, "node/control-plane", "2.rhel.pool.ntp.org", "UDP", 123)
	mustEntry(t, m, "lab-tenant/resolver-client", "dns.example.net", "UDP", 53)
}

func TestLabNames(t *testing.T) {
	res, out := sharedLab(t)
	m := res.Outcome.Matrix
	for _, e := range m.Entries {
		if e.DstNamedBy != matrix.NamedByHostname {
			t.Errorf("entry %s/%s → %s named by %s, want hostname (the lab DNS answered every name)", e.SrcNamespace, e.SrcWorkload, e.DstName, e.DstNamedBy)
		}
	}
	// DnsName is real: the agent saw the lookups. NetObserv puts it on the response leg
	// only (SrcPort 53), and not on every response: count.
	var responses, named, queryNamed int
	names := map[string]bool{}
	for _, r := range records(t, out) {
		switch {
		case r.SrcPort == 53 && r.DNSID != 0:
			responses++
			if r.DNSName != "" {
				named++
				names[strings.TrimSuffix(r.DNSName, ".")] = true
			}
		case r.DstPort == 53 && r.DNSName != "":
			queryNamed++
		}
	}
	t.Logf("DNS responses in the window: %d, %d with DnsName (%v); DnsName on query legs: %d", responses, named, names, queryNamed)
	// The agent copies a fixed 31 bytes of the question from each response into a per-CPU
	// buffer, best effort (bpf/dns_tracker.h): measured here, 0 to 6 of 9 responses of a run
	// carry the name. A run without any proves nothing of our side, so it is only logged;
	// the DNS pass itself is held by pkg/source/lokiflows' tests on records in this format.
	if responses == 0 {
		t.Errorf("no DNS response in the window: DNS tracking did not run (ENABLE_DNS_TRACKING)")
	}
	if named == 0 {
		t.Logf("the agent named none of the %d DNS responses of this run; the evidence checks below hold trivially", responses)
	}
	for h := range names {
		if _, ok := res.Names.Lookup(mustAddr(t, res, h), time.Time{}); !ok {
			t.Errorf("DnsName %s was never answered by the lab DNS", h)
		}
	}
	// The matrix's DNS evidence reads the named answers, credited to their destination (the
	// querier) and counted once, through the Loki source's DNS pass: every named answer of
	// the window is there.
	got := map[string]int64{}
	var total int64
	for _, q := range m.DNSQueries {
		for _, n := range q.Names {
			got[n.Name] += n.Flows
			total += n.Flows
		}
	}
	var counted int64
	for _, r := range records(t, out) {
		if r.SrcPort == 53 && r.DNSName != "" && r.FlowDirection != "1" {
			counted++
		}
	}
	for h := range names {
		if got[h] < 1 {
			t.Errorf("DNS evidence lacks the named answer for %s; found %v", h, got)
		}
	}
	if total != counted {
		t.Errorf("DNS evidence counts %d lookups; the window holds %d named answers on the queriers' nodes", total, counted)
	}
	t.Logf("DNS evidence: %v", m.DNSQueries)
}

func mustAddr(t *testing.T, res *Result, host string) netip.Addr {
	t.Helper()
	for _, a := range res.Answers {
		if a.Name == host || (len(host) == 32 && strings.HasPrefix(a.Name, host)) {
			return a.Address
		}
	}
	t.Fatalf("no lab DNS answer for %s", host)
	return netip.Addr{}
}

func TestLabHostNetwork(t *testing.T) {
	res, _ := sharedLab(t)
	mustEntry(t, res.Outcome.Matrix, "node/control-plane", "api.openshift.com", "TCP", 443)
	if e := entry(res.Outcome.Matrix, "openshift-cluster-version/cluster-version-operator", "api.openshift.com", "TCP", 443); e != nil {
		t.Errorf("a host-network workload became a pod entry: %+v", e)
	}
}

// A pod behind an SNAT node, without packet translation: the pod leg is the pod's entry and
// the node uplink leg stays a node entry (the builder folds only with Xlat fields), so the
// diff shows it rather than silently folding it.
func TestLabSNAT(t *testing.T) {
	res, out := sharedLab(t)
	m := res.Outcome.Matrix
	mustEntry(t, m, "openshift-monitoring/telemeter-client", "infogw.api.openshift.com", "TCP", 443)
	node := mustEntry(t, m, "node/worker", "infogw.api.openshift.com", "TCP", 443)
	if m.PacketTranslation || node.Translated != 0 {
		t.Errorf("packet translation %v, translated %d: this kernel has none", m.PacketTranslation, node.Translated)
	}
	infogw := res.addr(t, "infogw.api.openshift.com")
	var podLeg, nodeLeg bool
	for _, r := range records(t, out) {
		if r.DstAddr == infogw && r.DstPort == 443 {
			podLeg = podLeg || r.SrcNamespace == "openshift-monitoring"
			nodeLeg = nodeLeg || (r.SrcType == "Node" && r.SrcAddr == "10.0.0.12")
		}
	}
	if !podLeg || !nodeLeg {
		t.Errorf("SNAT records: pod leg %v, node leg %v; want both", podLeg, nodeLeg)
	}
	// The node without SNAT sends its pods' egress with the pod address: no node entry.
	if e := entry(m, "node/worker", "s3.us-east-1.amazonaws.com", "TCP", 443); e != nil {
		t.Errorf("a pod's egress through a non-SNAT node became a node entry: %+v", e)
	}
}

func TestLabDiff(t *testing.T) {
	res, out := sharedLab(t)
	d := res.Outcome.Diff
	got := map[string]bool{}
	for _, e := range d.Undocumented {
		got[e.SrcNamespace+"/"+e.SrcWorkload+" → "+e.DstName] = true
	}
	want := []string{
		"openshift-marketplace/community-operators → github.com",
		"lab-tenant/resolver-client → dns.example.net",
		"/worker → infogw.api.openshift.com", // the SNAT leg, see TestLabSNAT
	}
	for _, w := range want {
		if !got[w] {
			t.Errorf("undocumented lacks %s; undocumented: %v", w, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("undocumented: %v, want exactly %v", got, want)
	}
	var matched bool
	for _, mt := range d.Matched {
		matched = matched || (mt.Observed.SrcKind == matrix.KindNode && mt.Observed.DstName == "quay.io")
	}
	if !matched {
		t.Error("the nodes' quay.io pulls are not matched by the baseline")
	}

	// The replay path: records.jsonl and names.json through `matrix diff` exit 1 with the
	// same undocumented entries, and a documented-only selection of them would not.
	args := []string{"matrix", "diff", "--flows", filepath.Join(out, "records.jsonl"), "--names", filepath.Join(out, "names.json"),
		"--baseline", "../../baseline", "--version", "4.21", "--platform", "aws", "--topology", "HighlyAvailable", "--cluster-domain", "demo.example.com", "--region", "us-east-1",
		"--cluster-network", "10.128.0.0/14,172.30.0.0/16,10.0.0.0/16",
		"--node-role", "master-0=control-plane", "--node-role", "worker-0=worker", "--node-role", "worker-1=worker"}
	stdout, code := runCLI(t, args...)
	if code != 1 {
		t.Errorf("matrix diff on records.jsonl exited %d, want 1:\n%s", code, stdout)
	}
	for _, h := range []string{"github.com", "dns.example.net"} {
		if !strings.Contains(stdout, h) {
			t.Errorf("matrix diff output lacks %s:\n%s", h, stdout)
		}
	}
}

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	root := &cobra.Command{Use: "egress-tests-ext", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(cli.Commands()...)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		out.WriteString("Error: " + err.Error() + "\n")
	}
	return out.String(), cli.ExitCode(err)
}

// The same window from FLP's FlowMetrics counters, scraped by the real Prometheus, gives the
// Loki matrix's keys exactly: the SYN'd connections, the long-lived one (no SYN in the
// window), UDP, the host-network and SNAT node legs.
func TestLabFlowMetricsHaveTheLokiKeys(t *testing.T) {
	res, out := sharedLab(t)
	if res.FlowMetrics == nil {
		t.Fatal("the lab ran without the FlowMetrics path")
	}
	lm, pm := res.Outcome.Matrix, res.FlowMetrics.Matrix
	if d := matrix.Compare("loki", lm, "flowmetrics", pm); d != nil {
		t.Fatal(d)
	}
	if len(pm.Entries) < 8 {
		t.Errorf("the FlowMetrics matrix has %d entries; the scenario makes at least 8", len(pm.Entries))
	}
	// The long-lived connection is counted by its server port, without a SYN.
	mustEntry(t, pm, "openshift-machine-api/machine-api-controllers", "ec2.us-east-1.amazonaws.com", "TCP", 443)
	if got := strings.Join(pm.Lacks, ","); got != "bytes,firstSeen,lastSeen" {
		t.Errorf("FlowMetrics matrix lacks %q, want bytes,firstSeen,lastSeen", got)
	}
	for _, e := range pm.Entries {
		if e.Bytes != 0 || !e.FirstSeen.IsZero() || e.Flows <= 0 {
			t.Errorf("FlowMetrics entry %s: bytes %d, first seen %s, flows %d; want 0, unset, > 0", matrix.KeyOf(e), e.Bytes, e.FirstSeen, e.Flows)
		}
	}
	// The lab's post-window canaries fall in the counters' lag: excluded, and counted.
	if len(res.FlowMetrics.Excluded) == 0 {
		t.Error("no canary record excluded from the FlowMetrics window: the lag did not cover the barrier")
	}
	if _, err := os.Stat(filepath.Join(out, "matrix-flowmetrics.json")); err != nil {
		t.Error(err)
	}
	// The diffs agree too: the same undocumented entries.
	und := func(d []matrix.Entry) []string {
		var out []string
		for _, e := range d {
			out = append(out, matrix.KeyOf(e).String())
		}
		sort.Strings(out)
		return out
	}
	if a, b := und(res.Outcome.Diff.Undocumented), und(res.FlowMetrics.Diff.Undocumented); strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("undocumented from Loki %v, from FlowMetrics %v", a, b)
	}
}
