package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

func TestCollectFromLoki(t *testing.T) {
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	to := time.Now().Add(-time.Hour).Truncate(time.Second)
	from := to.Add(-30 * time.Minute)
	gs := lokitest.Generate(lokitest.GenConfig{Records: 8000, From: from, To: to, Seed: 11, OldFormat: 0.2})
	if err := s.Push(context.Background(), lokitest.Entries(gs)); err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(t.TempDir(), "flows.jsonl")
	cmdArgs := []string{"matrix", "collect", "--loki-url", s.URL, "--tenant", s.Tenant,
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--ingest-wait", "0",
		"--save-flows", saved, "-o", "json"}
	opts := matrix.Options{NodeRoles: lokitest.NodeRoles()}
	for _, c := range lokitest.ClusterNetworks {
		cmdArgs = append(cmdArgs, "--cluster-network", c)
		opts.ClusterNetworks = append(opts.ClusterNetworks, netip.MustParsePrefix(c))
	}
	for n, r := range lokitest.NodeRoles() {
		cmdArgs = append(cmdArgs, "--node-role", n+"="+r)
	}
	out, errOut, code := run(t, cmdArgs...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(errOut, "egress flow records") {
		t.Errorf("stderr must say what was pulled: %s", errOut)
	}
	got, err := matrix.ReadJSON(strings.NewReader(out), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	var truth []flow.Record
	for _, g := range gs {
		if g.Truth.DstType == "" && g.Truth.DstSubnetLabel != "Pods" && g.Truth.DstSubnetLabel != "Services" && g.Truth.DstSubnetLabel != "Machines" {
			truth = append(truth, g.Truth)
		}
	}
	want := matrix.Build(truth, opts)
	// The DNS queries to the cluster DNS (--dns, on by default) add evidence, not entries:
	// the names of the matrix of every generated record, counted in DNSNamedOnly.
	var every []flow.Record
	for _, g := range gs {
		every = append(every, g.Truth)
	}
	all := matrix.Build(every, opts)
	wantStats := want.Stats
	wantStats.Records += all.Stats.DNSNamedOnly
	wantStats.DNSNamedOnly = all.Stats.DNSNamedOnly
	if len(want.Entries) == 0 || !reflect.DeepEqual(got.Entries, want.Entries) || got.Stats != wantStats {
		t.Fatalf("the collected matrix differs from the generated one:\n got %d entries %+v\nwant %d entries %+v", len(got.Entries), got.Stats, len(want.Entries), wantStats)
	}
	if len(all.DNSQueries) == 0 || !reflect.DeepEqual(got.DNSQueries, all.DNSQueries) {
		t.Fatalf("DNS evidence: got %d sources, want %d", len(got.DNSQueries), len(all.DNSQueries))
	}
	if !strings.Contains(errOut, "DNS query records") {
		t.Errorf("stderr must say what DNS evidence was pulled: %s", errOut)
	}

	// --save-flows: one JSON object per line, the aggregates' counts adding up to the
	// records: egress records with a destination address, DNS aggregates with a name.
	f, err := os.Open(saved)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var total, dns int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Count   int64
			DstAddr string
			DnsName string
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil || (line.DstAddr == "" && (line.DnsName == "" || line.Count < 1)) {
			t.Fatalf("saved line %q: %v", sc.Text(), err)
		}
		if line.DstAddr == "" {
			dns += line.Count
		} else {
			total += max(line.Count, 1)
		}
	}
	if total != int64(len(truth)) || dns != all.Stats.DNSNamedOnly {
		t.Fatalf("saved flows stand for %d egress and %d DNS records, want %d and %d", total, dns, len(truth), all.Stats.DNSNamedOnly)
	}

	// `matrix build --flows` replays the saved file into the same matrix.
	buildArgs := []string{"matrix", "build", "--flows", saved, "-o", "json"}
	buildArgs = append(buildArgs, cmdArgs[len(cmdArgs)-2*(len(lokitest.ClusterNetworks)+len(lokitest.NodeRoles())):]...)
	replayOut, replayErr, code := run(t, buildArgs...)
	if code != 0 {
		t.Fatalf("matrix build of the saved flows: exit %d: %s", code, replayErr)
	}
	replayed, err := matrix.ReadJSON(strings.NewReader(replayOut), "replay")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(replayed, got) {
		t.Fatalf("the replayed matrix differs:\n got %+v\nwant %+v", replayed.Stats, got.Stats)
	}

	// --dns=false: the egress records only.
	out, errOut, code = run(t, append(cmdArgs, "--dns=false")...)
	if code != 0 {
		t.Fatalf("--dns=false: exit %d: %s", code, errOut)
	}
	if got, err = matrix.ReadJSON(strings.NewReader(out), "stdout"); err != nil || got.Stats != want.Stats || len(got.DNSQueries) != len(want.DNSQueries) {
		t.Fatalf("--dns=false: %v, stats %+v, want %+v", err, got.Stats, want.Stats)
	}
}

func TestCollectFlagErrors(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("sha256~secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "1h"}, "--loki-url or --prometheus-url is required"},
		{[]string{"--loki-url", "http://127.0.0.1:1"}, "no window"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--from", "2026-01-01T00:00:00Z"}, "together"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "not before"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--token-file", tok}, "plain http"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--ca-file", tok}, "apply to https"},
		{[]string{"--loki-url", "https://127.0.0.1:1", "--since", "1h", "--ca-file", tok}, "no PEM certificate"},
		{[]string{"--loki-url", "ftp://x", "--since", "1h"}, "must be http"},
		// A password in the URL is refused, and never repeated.
		{[]string{"--loki-url", "http://admin:s3cretpw@127.0.0.1:1", "--since", "1h", "--token-file", tok}, "carries credentials"},
		{[]string{"--loki-url", "ftp://admin:s3cretpw@127.0.0.1:1", "--since", "1h"}, "carries credentials"},
		{[]string{"--loki-url", "https://admin:s3cretpw@127.0.0.1:1/%zz", "--since", "1h"}, "not a URL"},
		{[]string{"--loki-url", "https://127.0.0.1:1", "--since", "1h", "--token-file", "/nonexistent/token"}, "fix: pass a file that holds the token"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--ingest-wait", "-1s"}, "--ingest-wait -1s: fix"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--loki-timeout", "0s"}, "--loki-timeout 0s: fix"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--loki-concurrency", "0"}, "--loki-concurrency 0: fix"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--raw", "--counts-only"}, "--raw and --counts-only given together"},
	} {
		_, errOut, code := run(t, append([]string{"matrix", "collect"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, want 2 with %q in:\n%s", c.args, code, c.want, errOut)
		}
		if strings.Contains(errOut, "sha256~secret") || strings.Contains(errOut, "s3cretpw") {
			t.Errorf("%v: a secret leaked into the error:\n%s", c.args, errOut)
		}
	}
}

// Loki flags given with another source of flows would be ignored: they are refused.
func TestLokiFlagsWithoutLokiURL(t *testing.T) {
	_, errOut, code := run(t, append([]string{"matrix", "diff", "--version", "4.21", "--flows", filepath.Join("testdata", "flows.jsonl"),
		"--since", "1h", "--raw"}, naming...)...)
	if code != 2 || !strings.Contains(errOut, "--raw, --since apply to --loki-url, but the flows come from --flows") {
		t.Fatalf("exit %d, want 2 naming the ignored flags:\n%s", code, errOut)
	}
}

// A window where Loki holds flows but none is egress cannot prove anything without a
// canary: the DNS evidence must not make it look recorded.
func TestCollectNoEgressFails(t *testing.T) {
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	to := time.Now().Add(-time.Hour).Truncate(time.Second)
	from := to.Add(-30 * time.Minute)
	var internal []lokitest.Generated
	dns := 0
	for _, g := range lokitest.Generate(lokitest.GenConfig{Records: 3000, From: from, To: to, Seed: 11}) {
		r := g.Truth
		if r.DstType != "" || r.DstSubnetLabel == "Pods" || r.DstSubnetLabel == "Services" || r.DstSubnetLabel == "Machines" {
			internal = append(internal, g)
			if r.DNSName != "" {
				dns++
			}
		}
	}
	if dns == 0 {
		t.Fatal("the generated in-cluster records hold no DNS query")
	}
	if err := s.Push(context.Background(), lokitest.Entries(internal)); err != nil {
		t.Fatal(err)
	}
	window := []string{"--loki-url", s.URL, "--tenant", s.Tenant,
		"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--ingest-wait", "0"}
	for _, cmd := range [][]string{
		{"matrix", "collect"},
		{"matrix", "collect", "--dns=false"},
		{"matrix", "diff", "--version", "4.21"},
	} {
		out, errOut, code := run(t, append(cmd, window...)...)
		if code != 2 || !strings.Contains(errOut, "empty window: no egress flow record in") || strings.Contains(out, "PASS") {
			t.Errorf("%v: exit %d, want 2 with the empty window named:\n%s\n%s", cmd, code, lastLine(out), errOut)
		}
	}
}

// A collect that fails (here: sampled records) prints no matrix: a matrix on stdout with
// exit 2 is read as a result by whatever pipes it on.
func TestCollectFailurePrintsNoMatrix(t *testing.T) {
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	to := time.Now().Add(-time.Hour).Truncate(time.Second)
	from := to.Add(-30 * time.Minute)
	var entries []lokitest.Entry
	for i := range 5 {
		at := from.Add(time.Duration(i+1) * time.Minute)
		line := fmt.Sprintf(`{"SrcK8S_OwnerName":"insights-operator","SrcK8S_OwnerType":"Deployment","SrcAddr":"10.128.0.9","SrcPort":%d,"DstAddr":"192.0.2.44","DstPort":443,"Proto":6,"Flags":["SYN","ACK"],"Bytes":1000,"Packets":10,"Sampling":50,"Etype":2048,"SrcSubnetLabel":"Pods","TimeFlowStartMs":%d,"TimeFlowEndMs":%d}`,
			40000+i, at.UnixMilli()-5, at.UnixMilli())
		entries = append(entries, lokitest.Entry{Time: at, Line: []byte(line), Labels: map[string]string{
			"app": "netobserv-flowcollector", "SrcK8S_Namespace": "openshift-insights", "SrcK8S_Type": "Pod", "FlowDirection": "1"}})
	}
	if err := s.Push(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	for _, extra := range [][]string{nil, {"--counts-only"}, {"--raw"}} {
		args := append([]string{"matrix", "collect", "--loki-url", s.URL, "--tenant", s.Tenant, "--cluster-network", "10.128.0.0/14",
			"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--ingest-wait", "0", "--dns=false"}, extra...)
		out, errOut, code := run(t, args...)
		if code != 2 || out != "" || !strings.Contains(errOut, "sampling") {
			t.Errorf("%v: exit %d, %d bytes on stdout, stderr %s; want 2, nothing on stdout, the sampling named", extra, code, len(out), errOut)
		}
	}
}
