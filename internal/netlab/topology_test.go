package netlab

import (
	"context"
	"os"
	"testing"
	"time"
)

// needRoot skips without root, and fails on CI, where the lab tests must run.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		msg := "netlab needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) to create network namespaces"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// TestTopologyTraffic builds the lab's namespaces without any capture, runs the scenario's
// traffic through them, and checks that nothing is left behind.
func TestTopologyTraffic(t *testing.T) {
	needRoot(t)
	s, err := LoadScenario("testdata/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	topo, err := plan(s, Prefix())
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Build(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := topo.Teardown(); err != nil {
			t.Error(err)
		}
		r, err := Leftovers(topo.Prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Empty() {
			t.Errorf("left behind: %+v", r)
		}
	}()
	srv := newServers(topo)
	if err := srv.start(topo); err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tr := range s.Traffic {
		if tr.LongLived {
			l, err := topo.openLongLived(s, tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.exchange(); err != nil {
				t.Fatal(err)
			}
			l.close()
			continue
		}
		n, err := topo.runTraffic(ctx, s, tr)
		if err != nil {
			t.Fatal(err)
		}
		if n != tr.Connections {
			t.Errorf("%s → %s: %d connections, want %d", tr.From, tr.To, n, tr.Connections)
		}
	}
	for _, n := range topo.nodes {
		if err := sendCanary(n.ns); err != nil {
			t.Fatal(err)
		}
	}
	if len(srv.Answers()) == 0 {
		t.Error("the lab DNS gave no answer")
	}
	t.Logf("answers: %v", srv.Answers())
}
