package cli

import (
	"bufio"
	"context"
	"encoding/json"
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
		{[]string{"--since", "1h"}, "--loki-url is required"},
		{[]string{"--loki-url", "http://127.0.0.1:1"}, "no window"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--from", "2026-01-01T00:00:00Z"}, "together"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"}, "not before"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--token-file", tok}, "plain http"},
		{[]string{"--loki-url", "http://127.0.0.1:1", "--since", "1h", "--ca-file", tok}, "apply to https"},
		{[]string{"--loki-url", "https://127.0.0.1:1", "--since", "1h", "--ca-file", tok}, "no PEM certificate"},
		{[]string{"--loki-url", "ftp://x", "--since", "1h"}, "must be http"},
	} {
		_, errOut, code := run(t, append([]string{"matrix", "collect"}, c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, want 2 with %q in:\n%s", c.args, code, c.want, errOut)
		}
		if strings.Contains(errOut, "sha256~secret") {
			t.Errorf("%v: the token leaked into the error", c.args)
		}
	}
}
