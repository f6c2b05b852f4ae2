package netlab

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// TestLabCaptureLoss sends a burst of distinct TCP connections from one pod and counts
// which of them reached Loki, with the agent's flow map at its default size and raised, at
// the suite's cacheActiveTimeout (pkg/cluster/flowcollector.go). NETLAB_BURST sets the
// number of connections (default 20,000). Loss is reported, not hidden: with the raised
// map no connection may be lost.
func TestLabCaptureLoss(t *testing.T) {
	agent, flp, loki := needCapture(t)
	n := 20000
	if v := os.Getenv("NETLAB_BURST"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 || n > maxBurst {
			t.Fatalf("NETLAB_BURST=%q: give 1-%d", v, maxBurst)
		}
	}
	doc := fmt.Sprintf(`cluster: {version: "4.21", platform: aws, topology: HighlyAvailable}
nodes: [{name: worker-0, role: worker}]
workloads: [{namespace: lab-burst, name: client, kind: Deployment, node: worker-0}]
external: [{host: burst.example.com, tcp: [443]}]
traffic: [{from: lab-burst/client, to: burst.example.com, protocol: TCP, port: 443, connections: %d, burst: true}]
`, n)
	s, err := ParseScenario("loss.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		maxFlows int
		mustKeep bool
	}{
		{"agent default (5000)", 0, false},
		{"raised (100000, the operator's default)", 100000, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			res, err := Run(ctx, s, Options{AgentBin: agent, FLPBin: flp, LokiBin: loki, Out: out, NoPipeline: true,
				CacheMaxFlows: tc.maxFlows, CacheActiveTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			addr := res.addr(t, "burst.example.com")
			fwd, rev := map[int]bool{}, map[int]bool{}
			var fwdRecords int
			for _, r := range records(t, out) {
				switch {
				case r.DstAddr == addr && r.DstPort == 443:
					fwd[r.SrcPort] = true
					fwdRecords++
				case r.SrcAddr == addr && r.SrcPort == 443:
					rev[r.DstPort] = true
				}
			}
			window := res.Window.To.Sub(res.Window.From)
			lost := 0
			for p := burstPortBase; p < burstPortBase+n; p++ {
				if !fwd[p] {
					lost++
				}
			}
			t.Logf("phases: %s", res)
			t.Logf("%s: %d connections in %s (%.0f/s); Loki holds %d records of the window, %d client→server records covering %d connections, %d server→client legs: %d connections (%.2f %%) lost",
				tc.name, res.Connections, window.Round(time.Millisecond), float64(res.Connections)/window.Seconds(),
				res.Records, fwdRecords, len(fwd), len(rev), lost, 100*float64(lost)/float64(n))
			if res.Connections != n {
				t.Errorf("%d connections made, want %d", res.Connections, n)
			}
			if len(fwd) == 0 {
				t.Error("no record of the burst at all")
			}
			if tc.mustKeep && lost > 0 {
				t.Errorf("%d of %d connections lost with CACHE_MAX_FLOWS=%d", lost, n, tc.maxFlows)
			}
		})
	}
}
