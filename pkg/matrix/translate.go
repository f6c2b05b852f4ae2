package matrix

import (
	"maps"
	"math/bits"
	"net/netip"
	"sort"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// OVN-Kubernetes SNATs a pod's egress to its node's address (or an EgressIP) on br-ex, and
// the eBPF agent records the connection twice: at the pod (SrcAddr = pod IP) and after the
// SNAT (SrcAddr = node or egress IP, SrcK8S_Type Node). With the PacketTranslation feature
// the pod-side record carries the translated source address and port, which is how the
// second record is recognised and folded into the pod's entry instead of making up a
// "node → destination" entry. Node-side records are decided in Matrix, not in Add, because
// the pod record may come later.

// connKey is a connection's 5-tuple as it leaves the cluster (after SNAT).
type connKey struct {
	src, dst         netip.Addr
	srcPort, dstPort int
	proto            int
}

// hostKey is a connKey without the client port: what aggregates that lost it still share.
type hostKey struct {
	src, dst netip.Addr
	dstPort  int
	proto    int
}

func (k connKey) host() hostKey { return hostKey{k.src, k.dst, k.dstPort, k.proto} }

// legTarget says where held node-side records land when no pod record explains them (the
// entry or pending group Add would have put them in), and whether they are aggregates
// (folded by counts).
type legTarget struct {
	aggregated bool
	src        srcID
	dst        dstID
	proto      string
	port       int    // the entry's port when evidence is set
	evidence   string // PortBy*, or "" when the server port is not decided yet (pending)
	reason     string // why not, when pending
	label      string // DstSubnetLabel
}

// legAgg is the running total of held records.
type legAgg struct {
	flows, bytes int64
	first, last  time.Time
}

// legPart is the total of the records of one 5-tuple that share a target.
type legPart struct {
	t legTarget
	legAgg
}

// span returns a record's first and last time, each standing for the other when absent.
func span(r *flow.Record) (first, last time.Time) {
	first, last = r.Start, r.End
	if first.IsZero() {
		first = last
	}
	if last.IsZero() {
		last = first
	}
	return first, last
}

// holdNodeLeg keeps a node-sourced egress record (not a response) for Matrix to decide, and
// reports false when it cannot be a SNAT'd leg at all (no parsable source address).
func (b *Builder) holdNodeLeg(r *flow.Record, n int64, src srcID, dst dstID, dstAddr netip.Addr, proto string, port int, evidence, reason string) bool {
	srcAddr, ok := parseAddr(r.SrcAddr)
	if !ok {
		return false
	}
	c := connKey{src: srcAddr, dst: dstAddr, srcPort: r.SrcPort, dstPort: r.DstPort, proto: r.Proto}
	t := legTarget{
		aggregated: n > 1 || r.SrcPort == flow.EphemeralPort,
		src:        src, dst: dst, proto: proto, port: port, evidence: evidence, reason: reason,
		label: r.DstSubnetLabel,
	}
	// One part per target, almost always a single one (a long connection's first record
	// with its SYN and the rest without can make two).
	parts := b.legs[c]
	var l *legAgg
	for i := range parts {
		if parts[i].t == t {
			l = &parts[i].legAgg
			break
		}
	}
	if l == nil {
		parts = append(parts, legPart{t: t})
		b.legs[c] = parts
		l = &parts[len(parts)-1].legAgg
	}
	l.flows += n
	l.bytes += r.Bytes
	first, last := span(r)
	if !first.IsZero() && (l.first.IsZero() || first.Before(l.first)) {
		l.first = first
	}
	if last.After(l.last) {
		l.last = last
	}
	return true
}

// notePodXlat records what a pod egress record (not a response) became after SNAT: its
// translated 5-tuple when the translated client port is known, else (an aggregate) the
// count per translated source, destination, port and protocol.
func (b *Builder) notePodXlat(r *flow.Record, n int64, dstAddr netip.Addr) {
	xsrc, ok := parseAddr(r.XlatSrcAddr)
	if !ok {
		return
	}
	dst, dport := dstAddr, r.DstPort
	if a, ok := parseAddr(r.XlatDstAddr); ok {
		dst = a
	}
	if r.XlatDstPort > 0 {
		dport = r.XlatDstPort
	}
	k := connKey{src: xsrc, dst: dst, srcPort: r.XlatSrcPort, dstPort: dport, proto: r.Proto}
	if r.XlatSrcPort > 0 && r.SrcPort != flow.EphemeralPort {
		b.podConns[k] += n
	} else {
		b.podHosts[k.host()] += n
	}
}

// foldNodeLegs decides the held node-side records, without changing the builder: those a
// pod record explains count as Translated; the rest join entries (a clone the caller owns)
// or pending groups as Add would have put them. It returns the pending view to decide (the
// builder's own map when nothing was added to it) and, per entry key, the flows folded away.
//
//  1. Exact: a leg whose 5-tuple is a pod record's translated 5-tuple is that pod's
//     connection, whatever the counts on either side.
//  2. Counts: aggregates lost the client port, so per (address, destination, port,
//     protocol) the pod records not matched exactly explain as many aggregated node flows
//     as they count; what is left over stays a node flow. A single node record with a
//     client port that no pod 5-tuple matches is never folded by counts: it is the node's.
func (b *Builder) foldNodeLegs(st *Stats, entries map[entryKey]*agg) (map[pendKey]*pending, map[entryKey]int64) {
	pend := b.pending
	if len(b.legs) == 0 {
		return pend, nil
	}
	// Flows still unexplained, for the parts that had some folded.
	left := make(map[*legPart]int64)
	used := make(map[connKey]bool)
	type heldPart struct {
		c connKey
		p *legPart
	}
	var aggregated []heldPart
	for c, parts := range b.legs {
		_, match := b.podConns[c]
		if match {
			used[c] = true
		}
		for i := range parts {
			p := &parts[i]
			if match {
				left[p] = 0
			} else if p.t.aggregated {
				aggregated = append(aggregated, heldPart{c, p})
			}
		}
	}
	if len(aggregated) > 0 && (len(b.podHosts) > 0 || len(used) < len(b.podConns)) {
		explained := maps.Clone(b.podHosts)
		if explained == nil {
			explained = map[hostKey]int64{}
		}
		for c, n := range b.podConns {
			if !used[c] {
				explained[c.host()] += n
			}
		}
		// Which parts a partial explanation covers must not depend on map order.
		sort.Slice(aggregated, func(i, j int) bool {
			return legLess(aggregated[i].c, aggregated[j].c, &aggregated[i].p.t, &aggregated[j].p.t)
		})
		for _, h := range aggregated {
			hk := h.c.host()
			if explained[hk] == 0 {
				continue
			}
			take := min(h.p.flows, explained[hk])
			explained[hk] -= take
			left[h.p] = h.p.flows - take
		}
	}

	sink := legSink{b: b, st: st, entries: entries, pend: pend, cloned: map[pendKey]bool{}, folded: map[entryKey]int64{}}
	for c, parts := range b.legs {
		for i := range parts {
			p := &parts[i]
			rest, changed := left[p]
			if !changed {
				rest = p.flows
			}
			sink.place(c, p, rest)
		}
	}
	return sink.pend, sink.folded
}

// legSink puts held node-side records into one Matrix call's entries and pending groups.
type legSink struct {
	b       *Builder
	st      *Stats
	entries map[entryKey]*agg    // the caller's clone
	pend    map[pendKey]*pending // the builder's own until the first change, then a copy
	copied  bool
	cloned  map[pendKey]bool // pending groups already private to this call
	folded  map[entryKey]int64
}

// place counts the folded flows of a part as Translated and puts the rest (rest flows)
// where Add would have put them: an entry, or a pending group.
func (s *legSink) place(c connKey, p *legPart, rest int64) {
	t := &p.t
	ek := entryKey{src: t.src, dst: t.dst, proto: t.proto, port: t.port}
	if t.evidence == "" {
		ek.port = c.dstPort // the entry a pending group joins, if any
	}
	if f := p.flows - rest; f > 0 {
		s.st.Translated += f
		s.folded[ek] += f
	}
	if rest == 0 {
		return
	}
	bytes := p.bytes
	if rest < p.flows {
		bytes = scale(p.bytes, rest, p.flows)
	}
	if t.evidence != "" {
		s.st.Egress += rest
		a := s.entries[ek]
		if a == nil {
			a = &agg{e: Entry{SrcNamespace: t.src.ns, SrcKind: t.src.kind, SrcWorkload: t.src.workload,
				DstName: t.dst.name, DstNamedBy: t.dst.namedBy, Protocol: t.proto, Port: t.port}}
			s.entries[ek] = a
		}
		a.evidence(t.evidence)
		a.addParts(rest, bytes, p.first, p.last, c.dst, t.label)
		return
	}
	if !s.copied {
		// The builder's pending groups stay as they are: Matrix may be called again.
		s.pend, s.copied = maps.Clone(s.b.pending), true
		if s.pend == nil {
			s.pend = map[pendKey]*pending{}
		}
	}
	pk := pendKey{src: t.src, dst: t.dst, proto: t.proto, srcPort: c.srcPort, dstPort: c.dstPort}
	q := s.pend[pk]
	switch {
	case q == nil:
		q = &pending{reason: t.reason}
		q.e = Entry{SrcNamespace: t.src.ns, SrcKind: t.src.kind, SrcWorkload: t.src.workload,
			DstName: t.dst.name, DstNamedBy: t.dst.namedBy, Protocol: t.proto}
		s.pend[pk] = q
		s.cloned[pk] = true
	case !s.cloned[pk]:
		q = &pending{agg: *q.clone(), reason: q.reason}
		s.pend[pk] = q
		s.cloned[pk] = true
	}
	q.addParts(rest, bytes, p.first, p.last, c.dst, t.label)
}

// scale returns bytes·part/whole without overflow (part <= whole).
func scale(bytes, part, whole int64) int64 {
	if bytes <= 0 || whole <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(bytes), uint64(part))
	q, _ := bits.Div64(hi, lo, uint64(whole))
	return int64(q)
}

// legLess orders held parts: by 5-tuple, then the weakest port evidence first.
func legLess(ca, cb connKey, a, b *legTarget) bool {
	if c := ca.src.Compare(cb.src); c != 0 {
		return c < 0
	}
	if c := ca.dst.Compare(cb.dst); c != 0 {
		return c < 0
	}
	switch {
	case ca.dstPort != cb.dstPort:
		return ca.dstPort < cb.dstPort
	case ca.proto != cb.proto:
		return ca.proto < cb.proto
	case ca.srcPort != cb.srcPort:
		return ca.srcPort < cb.srcPort
	case a.aggregated != b.aggregated:
		return !a.aggregated
	case a.evidence != b.evidence:
		// Weakest first: a partial explanation leaves the best-evidenced flows as the residue.
		if ra, rb := evidenceRank[a.evidence], evidenceRank[b.evidence]; ra != rb {
			return ra < rb
		}
		return a.evidence < b.evidence
	case a.src != b.src:
		return srcLess(a.src, b.src)
	case a.dst != b.dst:
		if a.dst.name != b.dst.name {
			return a.dst.name < b.dst.name
		}
		return a.dst.namedBy < b.dst.namedBy
	case a.proto != b.proto:
		return a.proto < b.proto
	case a.port != b.port:
		return a.port < b.port
	case a.reason != b.reason:
		return a.reason < b.reason
	}
	return a.label < b.label
}
