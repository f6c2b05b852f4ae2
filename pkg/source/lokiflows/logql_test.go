package lokiflows

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

func TestPipelineValidate(t *testing.T) {
	for _, c := range []struct {
		p    lokiquery.Pipeline
		want string
	}{
		{lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: ""}}}, "non-empty value"},
		{lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpNeq, Value: "x"}}}, "non-empty value"},
		{lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: App}, {Name: "bad-name", Op: lokiquery.OpEq, Value: "x"}}}, "not a valid label name"},
		{lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: App}, {Name: "a", Op: lokiquery.OpRe, Value: "("}}}, "missing closing"},
		{lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: App}, {Name: "a", Op: "==", Value: "x"}}}, "operator"},
		{lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: App}}, JSONFields: []string{"a b"}}, "json field"},
	} {
		err := c.p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.p, err, c.want)
		}
	}
	if err := EgressPipeline([]lokiquery.Matcher{{Name: "K8S_ClusterName", Op: lokiquery.OpEq, Value: "ci"}}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []lokiquery.Metric{
		{Pipeline: EgressPipeline(nil), Agg: lokiquery.AggCount, Range: time.Second + time.Microsecond},
		{Pipeline: EgressPipeline(nil), Agg: lokiquery.AggSum, Range: time.Second},
		{Pipeline: EgressPipeline(nil), Agg: lokiquery.AggCount, Unwrap: "Bytes", Range: time.Second},
		{Pipeline: EgressPipeline(nil), Agg: "rate", Range: time.Second},
	} {
		if m.Validate() == nil {
			t.Errorf("%s must be rejected", m)
		}
	}
}

// The egress selection keeps node and pod sources (the enhancement's query keeps only
// SrcSubnetLabel="Pods") and drops in-cluster destinations in both formats.
func TestEgressPipelineShape(t *testing.T) {
	q := EgressPipeline(nil).String()
	for _, want := range []string{`app="netobserv-flowcollector"`, `DstK8S_Type=""`, `DstK8S_Namespace=""`, `DstK8S_OwnerName=""`, `| DstK8S_Type=""`, `DstSubnetLabel!~"^(?:Pods|Services|Machines)$"`} {
		if !strings.Contains(q, want) {
			t.Errorf("%s lacks %s", q, want)
		}
	}
	for _, bad := range []string{"SrcSubnetLabel", "FlowDirection", "K8S_FlowLayer"} {
		if strings.Contains(q, bad) {
			t.Errorf("%s must not filter on %s (it would drop node or unknown-direction egress)", q, bad)
		}
	}
}

func TestParseFlagsLabel(t *testing.T) {
	for in, want := range map[string]uint32{
		"":                    0,
		"[]":                  0,
		`["SYN","ACK"]`:       flow.FlagSYN | flow.FlagACK,
		`["SYN_ACK","PSH"]`:   flow.FlagSYNACK | flow.FlagPSH,
		"18":                  18,
		`["FIN", "RST_ACK"]`:  flow.FlagFIN | flow.FlagRSTACK,
		`["SYN","NEW_THING"]`: flow.FlagSYN,
		`[2, 16]`:             flow.FlagSYN | flow.FlagACK,
	} {
		got, err := parseFlagsLabel(in)
		if err != nil || got != want {
			t.Errorf("%q: got %#x, %v; want %#x", in, got, err, want)
		}
	}
	if _, err := parseFlagsLabel("SYN"); err == nil {
		t.Error("a bare name is neither format")
	}
}

// Splitting a shard gives parts whose matchers cover every value of the parent, including
// values that were not listed and an absent label, each exactly once.
func TestSplitShardCovers(t *testing.T) {
	var all []map[string]string
	for i := range 20 {
		all = append(all, map[string]string{"SrcK8S_Namespace": fmt.Sprintf("ns-%02d", i), "SrcK8S_OwnerName": fmt.Sprintf("w-%d", i%3)})
	}
	all = append(all, map[string]string{"SrcK8S_OwnerName": "node-a"})
	list := func(fixed []lokiquery.Matcher) ([]map[string]string, error) {
		var out []map[string]string
		for _, l := range all {
			if matchAll(l, fixed) {
				out = append(out, l)
			}
		}
		return out, nil
	}
	probe := []map[string]string{{"SrcK8S_Namespace": "unlisted"}, {}, {"SrcK8S_OwnerName": "node-a"}}
	probe = append(probe, all...)
	var check func(p piece, depth int)
	check = func(p piece, depth int) {
		parts, err := cutShard(p, list)
		if err != nil {
			t.Fatal(err)
		}
		if parts == nil || depth > 3 {
			return
		}
		for _, l := range probe {
			if !matchAll(l, p.shard.matchers()) {
				continue
			}
			n := 0
			for _, q := range parts {
				if matchAll(l, q.shard.matchers()) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("depth %d: %v is in %d parts of %v", depth, l, n, p.shard.matchers())
			}
		}
		for _, q := range parts {
			check(q, depth+1)
		}
	}
	check(piece{shard: shard{dim: -1}}, 0)
}

func TestProject(t *testing.T) {
	p := matrix.PortPolicy{Extra: map[int]bool{6443: true, 40000: true}}
	base := flow.Record{SrcType: "Pod", SrcOwnerType: "Deployment", SrcName: "web-1", SrcHostName: "n1", SrcAddr: "10.128.0.5",
		DstAddr: "198.51.100.1", Proto: flow.ProtoTCP, SrcPort: 45000, DstPort: 443, Flags: flow.FlagSYN, Bytes: 10, AgentIP: "10.0.0.1"}
	for _, c := range []struct {
		name string
		mod  func(*flow.Record)
		want func(*flow.Record)
	}{
		{"client port", nil, func(r *flow.Record) { r.SrcPort = flow.EphemeralPort }},
		{"extra port kept", func(r *flow.Record) { r.SrcPort = 40000 }, func(r *flow.Record) { r.SrcPort = 40000 }},
		{"registered port kept", func(r *flow.Record) { r.SrcPort = 5000 }, func(r *flow.Record) { r.SrcPort = 5000 }},
		{"UDP to a client port keeps the source port", func(r *flow.Record) { r.Proto, r.DstPort, r.Flags = flow.ProtoUDP, 50000, 0 },
			func(r *flow.Record) { r.Proto, r.DstPort, r.Flags = flow.ProtoUDP, 50000, 0; r.SrcPort = 45000 }},
		{"response leg", func(r *flow.Record) { r.SrcPort, r.DstPort, r.Flags = 443, 45000, flow.FlagACK|flow.FlagSYNACK },
			func(r *flow.Record) { r.SrcPort, r.DstPort, r.Flags = 443, flow.EphemeralPort, flow.FlagSYNACK }},
		{"a SYN keeps its port", func(r *flow.Record) { r.SrcPort, r.DstPort = 443, 45000 },
			func(r *flow.Record) { r.SrcPort, r.DstPort = 443, 45000 }},
		{"mirror pod keeps names", func(r *flow.Record) { r.SrcOwnerType = "Node" },
			func(r *flow.Record) {
				r.SrcOwnerType, r.SrcName, r.SrcHostName, r.SrcPort = "Node", "web-1", "n1", flow.EphemeralPort
			}},
		{"unknown source keeps its address", func(r *flow.Record) { r.SrcType = "" },
			func(r *flow.Record) {
				r.SrcType, r.SrcName, r.SrcHostName, r.SrcAddr, r.SrcPort = "", "web-1", "n1", "10.128.0.5", flow.EphemeralPort
			}},
	} {
		in := base
		if c.mod != nil {
			c.mod(&in)
		}
		want := flow.Record{SrcType: "Pod", SrcOwnerType: "Deployment", DstAddr: "198.51.100.1", Proto: flow.ProtoTCP,
			DstPort: 443, Flags: flow.FlagSYN, Bytes: 10, Count: 1}
		if in.Flags&flow.FlagSYN == 0 {
			want.Flags = 0
		}
		c.want(&want)
		if got := matrix.Project(in, p); got != want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, want)
		}
	}
}

// Pieces are LogQL ranges, whole milliseconds, however short MinPiece is asked to be.
func TestMinPieceWholeMilliseconds(t *testing.T) {
	from := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	for asked, want := range map[time.Duration]time.Duration{0: time.Minute, time.Microsecond: time.Millisecond, 1500 * time.Microsecond: 2 * time.Millisecond, time.Second: time.Second} {
		o, err := Options{From: from, To: from.Add(10 * time.Millisecond), MinPiece: asked}.normalized()
		if err != nil || o.MinPiece != want {
			t.Errorf("MinPiece %s: %s, %v; want %s", asked, o.MinPiece, err, want)
		}
		r := &run{o: o}
		for _, p := range r.splitTime(piece{from: o.From, to: o.To}, 7) {
			if d := p.to.Sub(p.from); d%time.Millisecond != 0 {
				t.Errorf("MinPiece %s: piece of %s", asked, d)
			}
		}
	}
}
