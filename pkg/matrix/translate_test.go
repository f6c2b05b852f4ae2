package matrix

import (
	"bytes"
	"fmt"
	"math/rand"
	"slices"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// w0IP is the address of node w0 (testOptions' machine network).
const w0IP = "10.0.2.20"

// podOut is the pod side of web (10.128.0.5:sport on w0) → 52.1.2.3:443 with SYN, which
// PacketTranslation says left as w0IP:xport.
func podOut(sport, xport int, mods ...func(*flow.Record)) flow.Record {
	return rec(append([]func(*flow.Record){func(r *flow.Record) {
		r.SrcPort, r.XlatSrcAddr, r.XlatSrcPort, r.XlatDstAddr, r.XlatDstPort = sport, w0IP, xport, r.DstAddr, r.DstPort
		r.Interfaces, r.IfDirections = "ovn-k8s-mp0,br-ex", "1,1"
	}}, mods...)...)
}

// nodeLeg is a record from node w0's address and port sport to 52.1.2.3:443 with SYN: a
// connection of the node's own, or a pod's after SNAT.
func nodeLeg(sport int, mods ...func(*flow.Record)) flow.Record {
	return rec(append([]func(*flow.Record){func(r *flow.Record) {
		r.SrcType, r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcHostName = "Node", "", "Node", "w0", "w0", "w0"
		r.SrcAddr, r.SrcPort, r.SrcSubnetLabel = w0IP, sport, "Machines"
		r.Interfaces, r.IfDirections = "br-ex,ens5", "1,1"
	}}, mods...)...)
}

// aggregated makes a record a server-side aggregate of n records that lost the client port.
func aggregated(n int64) func(*flow.Record) {
	return func(r *flow.Record) {
		r.Count, r.Bytes, r.SrcPort = n, 100*n, flow.EphemeralPort
		if r.XlatSrcAddr != "" {
			r.XlatSrcPort = 0
		}
	}
}

func tcpTo(addr string, port int, flags uint32) func(*flow.Record) {
	return func(r *flow.Record) { r.DstAddr, r.DstPort, r.Flags = addr, port, flags }
}

// buildAnyOrder builds recs in their order, reversed and shuffled, checks that every order
// gives the same matrix (and a second Matrix call the same again), and returns it.
func buildAnyOrder(t *testing.T, recs ...flow.Record) *Matrix {
	t.Helper()
	orders := [][]flow.Record{slices.Clone(recs), slices.Clone(recs)}
	slices.Reverse(orders[1])
	for seed := int64(0); seed < 4; seed++ {
		o := slices.Clone(recs)
		rand.New(rand.NewSource(seed)).Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		orders = append(orders, o)
	}
	var first *Matrix
	var want []byte
	for i, o := range orders {
		b := NewBuilder(testOptions())
		for _, r := range o {
			b.Add(r)
		}
		m := b.Matrix()
		checkStats(t, m)
		var got, again bytes.Buffer
		if err := WriteJSON(&got, m); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(&again, b.Matrix()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), again.Bytes()) {
			t.Fatalf("order %d: a second Matrix() call differs:\n%s\n%s", i, got.Bytes(), again.Bytes())
		}
		if first == nil {
			first, want = m, got.Bytes()
		} else if !bytes.Equal(want, got.Bytes()) {
			t.Fatalf("order %d gives another matrix:\n%s\nwant\n%s", i, got.Bytes(), want)
		}
	}
	return first
}

func entryByKey(m *Matrix, key string) (Entry, bool) {
	for _, e := range m.Entries {
		if e.Key() == key {
			return e, true
		}
	}
	return Entry{}, false
}

func TestSNATFolding(t *testing.T) {
	const (
		web     = "app/Deployment/web -> 52.1.2.3 TCP/443 syn"
		worker  = "/Node/worker -> 52.1.2.3 TCP/443"
		workerE = worker + " syn"
	)
	ack := flow.FlagACK | flow.FlagPSH
	cases := []struct {
		name       string
		recs       []flow.Record
		want       string           // entries and evidence
		translated int64            // Stats.Translated
		nodeFlows  int64            // Flows of the worker → 52.1.2.3:443 entry, when there is one
		nodeXlat   int64            // its Translated
		stat       func(Stats) bool // further bucket checks
	}{
		{name: "exact: one record each side",
			recs: []flow.Record{podOut(40000, 50000), nodeLeg(50000)}, want: web, translated: 1},
		{name: "exact: a long connection, more records on the node side",
			recs: []flow.Record{podOut(40000, 50000), podOut(40000, 50000, func(r *flow.Record) { r.Flags = ack }),
				nodeLeg(50000), nodeLeg(50000, func(r *flow.Record) { r.Flags = ack }), nodeLeg(50000, func(r *flow.Record) { r.Flags = ack | flow.FlagFIN })},
			want: web, translated: 3},
		{name: "exact: node aggregate with the client port kept",
			recs: []flow.Record{podOut(40000, 50000), nodeLeg(50000, func(r *flow.Record) { r.Count = 3 })}, want: web, translated: 3},
		{name: "exact: port-preserving SNAT",
			recs: []flow.Record{podOut(40000, 40000), nodeLeg(40000)}, want: web, translated: 1},
		{name: "another client port is the node's own connection",
			recs: []flow.Record{podOut(40000, 50000), nodeLeg(50001)}, want: workerE + "; " + web, nodeFlows: 1},
		{name: "another destination port",
			recs: []flow.Record{podOut(40000, 50000), nodeLeg(50000, tcpTo("52.1.2.3", 8443, flow.FlagSYN))},
			want: "/Node/worker -> 52.1.2.3 TCP/8443 syn; " + web},
		{name: "another protocol",
			recs: []flow.Record{podOut(40000, 50000), nodeLeg(50000, func(r *flow.Record) { r.Proto, r.Flags = flow.ProtoUDP, 0 })},
			want: "/Node/worker -> 52.1.2.3 UDP/443 well-known; " + web},
		{name: "another destination",
			recs: []flow.Record{podOut(40000, 50000), nodeLeg(50000, tcpTo("52.1.2.4", 443, flow.FlagSYN))},
			want: "/Node/worker -> 52.1.2.4 TCP/443 syn; " + web},
		{name: "translated destination is the one matched",
			recs: []flow.Record{
				podOut(40000, 50000, func(r *flow.Record) { r.XlatDstAddr, r.XlatDstPort = "52.9.9.9", 8443 }),
				nodeLeg(50000, tcpTo("52.9.9.9", 8443, flow.FlagSYN)),
				nodeLeg(50000), // the untranslated destination: not this connection
			},
			want: workerE + "; " + web, translated: 1, nodeFlows: 1},
		{name: "EgressIP: the SNAT'd leg leaves another node from the egress IP",
			recs: []flow.Record{
				podOut(40000, 50000, func(r *flow.Record) { r.XlatSrcAddr = "10.0.9.100" }),
				nodeLeg(50000, func(r *flow.Record) {
					r.SrcAddr, r.SrcType, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcHostName = "10.0.9.100", "", "", "", "", "w1"
				}),
			},
			want: web, translated: 1},
		{name: "EgressIP address with another port stays a node flow",
			recs: []flow.Record{
				podOut(40000, 50000, func(r *flow.Record) { r.XlatSrcAddr = "10.0.9.100" }),
				nodeLeg(50001, func(r *flow.Record) {
					r.SrcAddr, r.SrcType, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcHostName = "10.0.9.100", "", "", "", "", "w1"
				}),
			},
			want: "/Node/node -> 52.1.2.3 TCP/443 syn; " + web},
		{name: "a pod record that is not egress explains nothing",
			recs: []flow.Record{
				podOut(40000, 50000, func(r *flow.Record) { r.DstAddr, r.DstSubnetLabel = "172.30.0.10", "Services" }),
				nodeLeg(50000),
			},
			want: workerE, nodeFlows: 1, stat: func(s Stats) bool { return s.NotEgress == 1 && s.Egress == 1 }},
		{name: "responses stay responses",
			recs: []flow.Record{
				podOut(443, 443, tcpTo("52.1.2.3", 40000, ack)),
				nodeLeg(443, tcpTo("52.1.2.3", 40000, ack)),
			},
			stat: func(s Stats) bool { return s.Responses == 2 }},
		{name: "node flows beside translated ones",
			recs:       []flow.Record{podOut(40000, 50000), nodeLeg(50000), nodeLeg(50001), nodeLeg(50002)},
			want:       workerE + "; " + web,
			translated: 1, nodeFlows: 2, nodeXlat: 1},
		{name: "an undecided connection folds into the pod's undecided flows",
			recs: []flow.Record{
				podOut(40000, 50000, tcpTo("52.1.2.3", 9000, ack), func(r *flow.Record) { r.XlatDstPort = 9000 }),
				nodeLeg(50000, tcpTo("52.1.2.3", 9000, ack)),
			},
			translated: 1, stat: func(s Stats) bool { return s.Undecided == 1 }},
		{name: "held node records still join their SYN's entry",
			recs:      []flow.Record{nodeLeg(50000, tcpTo("52.1.2.3", 9000, ack)), nodeLeg(50001, tcpTo("52.1.2.3", 9000, flow.FlagSYN))},
			want:      "/Node/worker -> 52.1.2.3 TCP/9000 syn",
			nodeFlows: 0},
		{name: "held node records count as UDP sources",
			recs: []flow.Record{
				nodeLeg(40000, func(r *flow.Record) { r.Proto, r.Flags, r.DstPort = flow.ProtoUDP, 0, 50001 }),
				nodeLeg(40001, func(r *flow.Record) { r.Proto, r.Flags, r.DstPort = flow.ProtoUDP, 0, 50001 }),
				nodeLeg(40002, func(r *flow.Record) { r.Proto, r.Flags, r.DstPort = flow.ProtoUDP, 0, 50001 }),
			},
			want: "/Node/worker -> 52.1.2.3 UDP/50001 many-sources"},
		{name: "no translation fields: nothing folds",
			recs:      []flow.Record{rec(), nodeLeg(40000)},
			want:      workerE + "; " + web,
			nodeFlows: 1},

		// Aggregates that lost the client port fold by counts.
		{name: "aggregates: as many node flows as pod flows",
			recs: []flow.Record{podOut(0, 0, aggregated(5)), nodeLeg(0, aggregated(5))}, want: web, translated: 5},
		{name: "aggregates: fewer node flows",
			recs: []flow.Record{podOut(0, 0, aggregated(5)), nodeLeg(0, aggregated(3))}, want: web, translated: 3},
		{name: "aggregates: more node flows than pod flows explain",
			recs: []flow.Record{podOut(0, 0, aggregated(5)), nodeLeg(0, aggregated(8))},
			want: workerE + "; " + web, translated: 5, nodeFlows: 3, nodeXlat: 5},
		{name: "aggregates: pod flows translated to another node explain nothing here",
			recs: []flow.Record{podOut(0, 0, aggregated(5), func(r *flow.Record) { r.XlatSrcAddr = "10.0.2.21" }), nodeLeg(0, aggregated(5))},
			want: workerE + "; " + web, nodeFlows: 5},
		{name: "aggregates: node flows split by evidence, explained in a stable order",
			recs: []flow.Record{
				podOut(0, 0, aggregated(5)),
				nodeLeg(0, aggregated(3)),
				nodeLeg(0, aggregated(4), func(r *flow.Record) { r.Flags = ack }),
			},
			want: workerE + "; " + web, translated: 5, nodeFlows: 2, nodeXlat: 5},
		{name: "aggregates: raw pod records without a node match count",
			recs:       []flow.Record{podOut(40000, 50000), podOut(40001, 50001), nodeLeg(0, aggregated(3))},
			want:       workerE + "; " + web,
			translated: 2, nodeFlows: 1, nodeXlat: 2},
		{name: "aggregates: a node aggregate without its address cannot be matched",
			recs: []flow.Record{podOut(0, 0, aggregated(5)), nodeLeg(0, aggregated(5), func(r *flow.Record) { r.SrcAddr = "" })},
			want: workerE + "; " + web, nodeFlows: 5},
		{name: "aggregates: a raw node record is never folded by counts",
			recs: []flow.Record{podOut(0, 0, aggregated(5)), nodeLeg(50000)}, want: workerE + "; " + web, nodeFlows: 1},
		{name: "aggregates: a pod record matched exactly is not counted again",
			recs:       []flow.Record{podOut(40000, 50000), nodeLeg(50000), nodeLeg(0, aggregated(1))},
			want:       workerE + "; " + web,
			translated: 1, nodeFlows: 1, nodeXlat: 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := buildAnyOrder(t, c.recs...)
			if got := keys(m); got != c.want {
				t.Fatalf("entries %q, want %q (stats %+v)", got, c.want, m.Stats)
			}
			if m.Stats.Translated != c.translated {
				t.Fatalf("Stats.Translated %d, want %d (%+v)", m.Stats.Translated, c.translated, m.Stats)
			}
			e, ok := entryByKey(m, worker)
			if ok != (c.nodeFlows > 0) || e.Flows != c.nodeFlows || e.Translated != c.nodeXlat {
				t.Fatalf("node entry %+v (present %v), want %d flows, %d translated", e, ok, c.nodeFlows, c.nodeXlat)
			}
			for _, e := range m.Entries {
				if e.SrcKind != KindNode && e.Translated != 0 {
					t.Fatalf("pod entry %s says Translated %d", e.Key(), e.Translated)
				}
			}
			if c.stat != nil && !c.stat(m.Stats) {
				t.Fatalf("stats %+v: not the buckets expected", m.Stats)
			}
			hasXlat := false
			for _, r := range c.recs {
				hasXlat = hasXlat || r.XlatSrcAddr != ""
			}
			if m.PacketTranslation != hasXlat {
				t.Fatalf("PacketTranslation %v, want %v", m.PacketTranslation, hasXlat)
			}
		})
	}
}

func TestSNATResidual(t *testing.T) {
	m := buildAnyOrder(t, podOut(0, 0, aggregated(5)), nodeLeg(0, aggregated(8), func(r *flow.Record) {
		r.Bytes, r.Start, r.End = 8000, t0.Add(time.Minute), t0.Add(time.Hour)
	}))
	e, ok := entryByKey(m, "/Node/worker -> 52.1.2.3 TCP/443")
	if !ok || e.Flows != 3 || e.Translated != 5 || e.Bytes != 3000 || !e.FirstSeen.Equal(t0.Add(time.Minute)) || !e.LastSeen.Equal(t0.Add(time.Hour)) ||
		e.DstAddress != "52.1.2.3" || e.PortEvidence != PortBySYN {
		t.Fatalf("residual node entry %+v (present %v): want 3 flows of 8, 3/8 of the bytes, its times, 5 translated", e, ok)
	}
	if m.Stats.Egress != 8 || m.Stats.Translated != 5 || m.Stats.Records != 13 {
		t.Fatalf("stats %+v", m.Stats)
	}
	if got := scale(1<<62, 3, 4); got != 3<<60 {
		t.Fatalf("scale overflowed: %d", got)
	}
}

// TestSNATMatrixRepeatable: Matrix decides held records without consuming them, so a node
// record shown as the node's before its pod record arrived folds once the pod record does.
func TestSNATMatrixRepeatable(t *testing.T) {
	b := NewBuilder(testOptions())
	b.Add(nodeLeg(50000))
	b.Add(nodeLeg(50001, tcpTo("52.1.2.3", 9000, flow.FlagACK))) // pending: undecided alone
	b.Add(rec(func(r *flow.Record) { r.Flags, r.SrcPort, r.DstPort = flow.FlagACK, 40000, 9000 }))
	for i := 0; i < 2; i++ {
		m := b.Matrix()
		checkStats(t, m)
		if got := keys(m); got != "/Node/worker -> 52.1.2.3 TCP/443 syn" || m.Stats.Undecided != 2 || m.Stats.Translated != 0 || m.PacketTranslation {
			t.Fatalf("call %d: entries %q stats %+v", i, got, m.Stats)
		}
	}
	if len(b.pending) != 1 || len(b.entries) != 0 {
		t.Fatalf("Matrix changed the builder: %d pending groups, %d entries", len(b.pending), len(b.entries))
	}
	b.Add(podOut(40000, 50000))
	b.Add(podOut(40001, 50001, tcpTo("52.1.2.3", 9000, flow.FlagACK), func(r *flow.Record) { r.XlatDstPort = 9000 }))
	for i := 0; i < 2; i++ {
		m := b.Matrix()
		checkStats(t, m)
		if got := keys(m); got != "app/Deployment/web -> 52.1.2.3 TCP/443 syn" || m.Stats.Undecided != 2 || m.Stats.Translated != 2 || !m.PacketTranslation {
			t.Fatalf("call %d after the pod records: entries %q stats %+v", i, got, m.Stats)
		}
		for _, u := range m.Undecided {
			if u.SrcKind == KindNode {
				t.Fatalf("the node-side leg of an undecided pod connection is listed: %+v", u)
			}
		}
	}
}

// snatRecords returns n records of pod connections seen at the pod and again after SNAT
// (half of them in aggregates), plus the node's own connections, for the benchmark.
func snatRecords(n int) []flow.Record {
	out := make([]flow.Record, 0, n)
	for i := 0; len(out) < n; i++ {
		dst := fmt.Sprintf("52.0.%d.%d", i%3, 1+i%5)
		node := fmt.Sprintf("10.0.2.%d", 20+i%3)
		switch i % 4 {
		case 0, 1: // a raw pod connection and its node-side leg
			xport := 32768 + (i*7919)%28000
			out = append(out,
				podOut(40000+i%20000, xport, tcpTo(dst, 443, flow.FlagSYN), func(r *flow.Record) { r.XlatSrcAddr, r.XlatDstAddr = node, dst }),
				nodeLeg(xport, tcpTo(dst, 443, flow.FlagSYN), func(r *flow.Record) { r.SrcAddr = node }))
		case 2: // aggregates
			out = append(out,
				podOut(0, 0, tcpTo(dst, 443, flow.FlagACK), aggregated(3), func(r *flow.Record) { r.XlatSrcAddr, r.XlatDstAddr = node, dst }),
				nodeLeg(0, tcpTo(dst, 443, flow.FlagACK), aggregated(int64(2+i%3)), func(r *flow.Record) { r.SrcAddr = node }))
		case 3: // the node's own
			out = append(out, nodeLeg(32768+(i*31)%28000, tcpTo(dst, 443, flow.FlagSYN), func(r *flow.Record) { r.SrcAddr = node }))
		}
	}
	return out[:n]
}

func TestSNATSynthetic(t *testing.T) {
	recs := snatRecords(4000)
	if m := buildAnyOrder(t, recs[:400]...); m.Stats.Translated == 0 {
		t.Fatalf("synthetic SNAT records fold nothing: %+v", m.Stats)
	}
	m := Build(recs, testOptions())
	checkStats(t, m)
	// What the rules say, counted the simple way: a raw node record folds when a pod record
	// has its 5-tuple; aggregates fold up to the pod count of their (address, destination).
	type host struct{ addr, dst string }
	// Raw pod records whose node leg is missing (cut off at the end) count with aggregates.
	pods, conns := map[host]int64{}, map[string]host{}
	for _, r := range recs {
		if r.XlatSrcAddr != "" && r.Count > 1 {
			pods[host{r.XlatSrcAddr, r.DstAddr}] += r.Count
		} else if r.XlatSrcAddr != "" {
			conns[fmt.Sprint(r.XlatSrcAddr, r.XlatSrcPort, r.DstAddr)] = host{r.XlatSrcAddr, r.DstAddr}
		}
	}
	nodes, matched := map[host]int64{}, map[string]bool{}
	var wantTranslated, wantNode int64
	for _, r := range recs {
		k := fmt.Sprint(r.SrcAddr, r.SrcPort, r.DstAddr)
		_, isPod := conns[k]
		switch {
		case r.SrcType != "Node":
		case r.Count > 1:
			nodes[host{r.SrcAddr, r.DstAddr}] += r.Count
		case isPod:
			wantTranslated++
			matched[k] = true
		default:
			wantNode++
		}
	}
	for k, h := range conns {
		if !matched[k] {
			pods[h]++
		}
	}
	for h, n := range nodes {
		f := min(n, pods[h])
		wantTranslated += f
		wantNode += n - f
	}
	var node int64
	for _, e := range m.Entries {
		if e.SrcKind == KindNode {
			node += e.Flows
		}
	}
	if node != wantNode || m.Stats.Translated != wantTranslated || wantNode == 0 || wantTranslated == 0 {
		t.Fatalf("node flows %d, translated %d; want %d and %d (%+v)", node, m.Stats.Translated, wantNode, wantTranslated, m.Stats)
	}
}

// BenchmarkBuildSNAT measures the cost of folding SNAT'd legs: every other record is held
// until Matrix.
func BenchmarkBuildSNAT(b *testing.B) {
	recs := snatRecords(100000)
	opts := testOptions()
	b.ReportAllocs()
	var total int64
	for b.Loop() {
		m := Build(recs, opts)
		total += m.Stats.Records
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}
