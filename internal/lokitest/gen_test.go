package lokitest

import (
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// TestGenerateSNAT checks the SNAT option: every node-side leg is the translated 5-tuple
// of exactly one pod record, every line decodes to its truth, and without the option
// nothing is translated and no leg is added.
func TestGenerateSNAT(t *testing.T) {
	to := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	cfg := GenConfig{Records: 3000, From: to.Add(-time.Hour), To: to, Seed: 5, OldFormat: 0.2}
	plain := Generate(cfg)
	for _, g := range plain {
		if g.SNATLeg || g.Truth.XlatSrcAddr != "" {
			t.Fatalf("SNAT is off but a record is translated: %+v", g.Truth)
		}
	}
	cfg.SNAT = 1
	snat := Generate(cfg)
	type tuple struct {
		src, dst         string
		srcPort, dstPort int
		proto            int
	}
	pods := map[tuple]int{}
	var legs []tuple
	lowPorts := 0
	for _, g := range snat {
		got, err := flow.DecodeLine(g.Labels, g.Line)
		if err != nil {
			t.Fatalf("%s: %v", g.Line, err)
		}
		if got != g.Truth {
			t.Fatalf("line %s decodes to\n%+v\nwant\n%+v", g.Line, got, g.Truth)
		}
		r := g.Truth
		switch {
		case g.SNATLeg:
			if r.SrcType != "Node" {
				t.Fatalf("a SNAT leg is not from a node: %+v", r)
			}
			legs = append(legs, tuple{r.SrcAddr, r.DstAddr, r.SrcPort, r.DstPort, r.Proto})
		case r.XlatSrcAddr != "":
			pods[tuple{r.XlatSrcAddr, r.XlatDstAddr, r.XlatSrcPort, r.XlatDstPort, r.Proto}]++
			if r.XlatSrcPort < 32768 {
				lowPorts++
			}
		}
	}
	if len(legs) == 0 || lowPorts == 0 {
		t.Fatalf("%d legs, %d translated below the dynamic range: the capture does not exercise SNAT", len(legs), lowPorts)
	}
	for _, l := range legs {
		if pods[l] == 0 {
			t.Fatalf("leg %+v is no pod record's translation", l)
		}
		pods[l]--
	}
	for k, n := range pods {
		if n != 0 {
			t.Fatalf("pod translation %+v has %d records without a leg", k, n)
		}
	}
}
