package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/promtest"
	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// pushEgress writes into a real Prometheus what scrapes of FLP would hold for one pod's
// TCP egress to 198.18.0.10:443 (3 connections inside [from, to)), every second.
func pushEgress(t *testing.T, p *promtest.Server, from, to time.Time) {
	t.Helper()
	tgt := map[string]string{"job": "flowlogs-pipeline", "instance": "127.0.0.1:9401"}
	up := promtest.Series{Labels: map[string]string{"__name__": "up"}}
	tcp := promtest.Series{Labels: map[string]string{"__name__": flowmetrics.Prefix + flowmetrics.TCPSYN,
		"SrcK8S_Namespace": "shop", "SrcK8S_OwnerName": "api", "SrcK8S_OwnerType": "Deployment", "SrcK8S_Type": "Pod",
		"DstAddr": "198.18.0.10", "DstPort": "443", "Flags": "SYN"}}
	for k, v := range tgt {
		up.Labels[k], tcp.Labels[k] = v, v
	}
	for ts := from.Add(-time.Minute); !ts.After(to); ts = ts.Add(time.Second) {
		n := 1.0
		if ts.After(from.Add(time.Minute)) {
			n = 4
		}
		up.Samples = append(up.Samples, promtest.Sample{T: ts.UnixMilli(), V: 1})
		tcp.Samples = append(tcp.Samples, promtest.Sample{T: ts.UnixMilli(), V: n})
	}
	if err := p.Push(context.Background(), []promtest.Series{up, tcp}, 0); err != nil {
		t.Fatal(err)
	}
}

func TestCollectPrometheus(t *testing.T) {
	p := promtest.Start(t, promtest.Config{RemoteWrite: true, OutOfOrder: time.Hour})
	to := time.Now().Add(-10 * time.Minute).Truncate(time.Second)
	from := to.Add(-3 * time.Minute)
	pushEgress(t, p, from, to)
	window := []string{"--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)}

	out, errOut, code := run(t, append([]string{"matrix", "collect", "--prometheus-url", p.URL}, window...)...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, errOut)
	}
	var m matrix.Matrix
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(m.Entries) != 1 || m.Entries[0].Flows != 3 || m.Entries[0].Port != 443 || strings.Join(m.Lacks, ",") != "bytes,firstSeen,lastSeen" {
		t.Fatalf("matrix %+v", m)
	}

	// The same through `matrix diff`: the entry is not in the baseline.
	dout, errOut, code := run(t, append([]string{"matrix", "diff", "--version", "4.21", "--prometheus-url", p.URL}, window...)...)
	if code != 1 || !strings.Contains(dout, "198.18.0.10") {
		t.Errorf("diff: exit %d, want 1 with the undocumented entry:\n%s", code, errOut)
	}

	// A window whose end was never scraped fails closed.
	late := []string{"--from", from.Format(time.RFC3339), "--to", to.Add(5 * time.Minute).Format(time.RFC3339)}
	_, errOut, code = run(t, append([]string{"matrix", "collect", "--prometheus-url", p.URL}, late...)...)
	if code != 2 || !strings.Contains(errOut, "not covered by scrapes") {
		t.Errorf("uncovered end: exit %d, want 2:\n%s", code, errOut)
	}
	// Loki-only flags and a token over http are refused.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--raw"}, "--raw applies to --loki-url"},
		{[]string{"--token-file", "/nonexistent"}, "refusing to send a bearer token over plain http"},
	} {
		_, errOut, code = run(t, append(append([]string{"matrix", "collect", "--prometheus-url", p.URL}, window...), c.args...)...)
		if code != 2 || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, want 2 with %q:\n%s", c.args, code, c.want, errOut)
		}
	}
}
