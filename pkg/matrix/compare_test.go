package matrix

import (
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	e := func(ns, wl, dst string, port int) Entry {
		return Entry{SrcNamespace: ns, SrcWorkload: wl, SrcKind: "Deployment", DstName: dst, Protocol: TCP, Port: port, Flows: 3}
	}
	a := &Matrix{Entries: []Entry{e("a", "x", "quay.io", 443), e("b", "y", "github.com", 443)}}
	same := &Matrix{Entries: []Entry{e("b", "y", "github.com", 443), e("a", "x", "quay.io", 443)}}
	same.Entries[0].Flows = 9 // flows are not compared
	if d := Compare("loki", a, "flowmetrics", same); d != nil {
		t.Fatalf("same keys disagree: %v", d)
	}
	b := &Matrix{Entries: []Entry{e("a", "x", "quay.io", 443), e("b", "y", "github.com", 8443)}}
	d := Compare("loki", a, "flowmetrics", b)
	if d == nil || len(d.OnlyA) != 1 || len(d.OnlyB) != 1 {
		t.Fatalf("disagreement %+v", d)
	}
	msg := d.Error()
	for _, want := range []string{"only in loki: b/y (Deployment) -> github.com TCP:443", "only in flowmetrics: b/y (Deployment) -> github.com TCP:8443"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
}
