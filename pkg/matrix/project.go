package matrix

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// Project is the aggregate a decoded record falls into when a source aggregates (the Loki
// source's aggregate and counts-only paths): the fields
// Loki groups by, with Count 1 and the record's Bytes, Start and End. It is the contract of
// aggregation, in Go: Fold of the projected records equals what Egress returns in Aggregate
// mode for the same lines, and the builder builds the same matrix from either (it reads no
// dropped field). Kept: the source's namespace, owner, owner type, type and subnet label;
// the destination's type, address and subnet label; protocol; the SYN and SYN_ACK flags;
// whether the direction is "0" (the receiving node's copy; any other becomes ""); DNS
// name, sampling, duplicate mark, ether type; the source pod and host names for nodes,
// for pods owned by a node or by nobody, and for unknown sources; the source address for
// nodes and unknown sources; the translated (PacketTranslation) addresses. Ports: SrcPort
// is flow.EphemeralPort when it is a dynamic client port (>= DynamicPortMin, not an extra
// server port) unless the record is UDP to a non-server port (pkg/matrix counts distinct
// source ports there) or its translated source port is kept; DstPort is
// flow.EphemeralPort on a response leg (TCP, UDP or SCTP without SYN, from a server port to
// a dynamic port), which pkg/matrix only counts. XlatSrcPort is kept by the rule SrcPort
// follows without translation (a dynamic one becomes 0), and the record's SrcPort with it;
// XlatDstPort is 0 when DstPort is flow.EphemeralPort. Dropped: other pod names, agent,
// interfaces, packets, DNS id, the destination's namespace, owner, owner type, pod and
// host names (an egress destination has none), the flow layer and the cluster name
// (pkg/matrix reads neither; Options.Matchers selects a cluster).
//
// Why the translated fields: OVN-Kubernetes SNATs pod egress to the node's address, and
// pkg/matrix folds the node-side copy into the pod by counts per (node address,
// destination, port, protocol) when client ports are gone, or by the exact translated
// 5-tuple when the translated client port is kept: both sides of that match must survive
// aggregation, the pod's XlatSrcAddr (and ports) and the node's SrcAddr.
func Project(r flow.Record, p PortPolicy) flow.Record {
	out := flow.Record{
		SrcNamespace: r.SrcNamespace, SrcOwnerName: r.SrcOwnerName, SrcOwnerType: r.SrcOwnerType,
		SrcType: r.SrcType, SrcSubnetLabel: r.SrcSubnetLabel,
		DstType: r.DstType, DstAddr: r.DstAddr, DstPort: r.DstPort, DstSubnetLabel: r.DstSubnetLabel,
		Proto: r.Proto, Flags: r.Flags & (flow.FlagSYN | flow.FlagSYNACK),
		DNSName: r.DNSName, Sampling: r.Sampling, Duplicate: r.Duplicate,
		Etype: r.Etype, Bytes: r.Bytes, Start: r.Start, End: r.End, Count: 1,
		XlatSrcAddr: r.XlatSrcAddr, XlatDstAddr: r.XlatDstAddr, XlatDstPort: r.XlatDstPort,
	}
	if r.FlowDirection == "0" {
		// pkg/matrix only asks whether a record is the receiving node's copy.
		out.FlowDirection = "0"
	}
	switch {
	case r.SrcType == "":
		out.SrcName, out.SrcHostName, out.SrcAddr = r.SrcName, r.SrcHostName, r.SrcAddr
	case r.SrcType == "Node":
		out.SrcName, out.SrcHostName, out.SrcAddr = r.SrcName, r.SrcHostName, r.SrcAddr
	case r.SrcOwnerType == "Node", r.SrcOwnerType == "Pod", r.SrcOwnerType == "":
		out.SrcName, out.SrcHostName = r.SrcName, r.SrcHostName
	}
	dynamic := func(port int) bool { return port >= DynamicPortMin && !p.Extra[port] } // not the folded -1
	// exactUDP: UDP to a non-server port, where pkg/matrix counts distinct client ports.
	exactUDP := r.Proto == flow.ProtoUDP && !p.IsServerPort(r.DstPort)
	xlatKept := r.XlatSrcPort != 0 && (!dynamic(r.XlatSrcPort) || exactUDP)
	if xlatKept {
		out.XlatSrcPort = r.XlatSrcPort
	}
	out.SrcPort = r.SrcPort
	if dynamic(r.SrcPort) && !exactUDP && !xlatKept {
		out.SrcPort = flow.EphemeralPort
	}
	// A response leg (no SYN, from a server port to a client port): pkg/matrix only counts
	// it, so its client port would make one aggregate per connection for nothing.
	switch r.Proto {
	case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP:
		if r.Flags&flow.FlagSYN == 0 && p.IsServerPort(r.SrcPort) && dynamic(r.DstPort) {
			out.DstPort, out.XlatDstPort = flow.EphemeralPort, 0
		}
	}
	return out
}

// Fold merges records that differ only in Count, Bytes, Start and End: counts and bytes
// add up, Start is the earliest, End the latest. The result is sorted.
func Fold(rs []flow.Record) []flow.Record {
	type acc struct {
		r          flow.Record
		start, end int64
	}
	m := map[flow.Record]*acc{}
	var order []flow.Record
	for _, r := range rs {
		k := r
		k.Count, k.Bytes, k.Start, k.End = 0, 0, flow.Record{}.Start, flow.Record{}.End
		a := m[k]
		if a == nil {
			a = &acc{r: k, start: math.MaxInt64, end: math.MinInt64}
			m[k] = a
			order = append(order, k)
		}
		a.r.Count += max(r.Count, 1)
		a.r.Bytes += r.Bytes
		if !r.Start.IsZero() {
			a.start = min(a.start, r.Start.UnixMilli())
		}
		if !r.End.IsZero() {
			a.end = max(a.end, r.End.UnixMilli())
		}
	}
	out := make([]flow.Record, 0, len(order))
	for _, k := range order {
		a := m[k]
		if a.start != math.MaxInt64 {
			a.r.Start = msTime(a.start)
		}
		if a.end != math.MinInt64 {
			a.r.End = msTime(a.end)
		}
		out = append(out, a.r)
	}
	SortRecords(out)
	return out
}

// SortRecords gives a stable order, so outputs and --save-flows files are reproducible.
func SortRecords(rs []flow.Record) {
	slices.SortFunc(rs, func(a, b flow.Record) int { return CompareRecords(&a, &b) })
}

// CompareRecords orders records on every field, most telling first.
func CompareRecords(a, b *flow.Record) int {
	if c := cmp.Or(
		strings.Compare(a.SrcNamespace, b.SrcNamespace), strings.Compare(a.SrcOwnerName, b.SrcOwnerName),
		strings.Compare(a.SrcHostName, b.SrcHostName), strings.Compare(a.SrcAddr, b.SrcAddr),
		strings.Compare(a.DstAddr, b.DstAddr), cmp.Compare(a.DstPort, b.DstPort), cmp.Compare(a.SrcPort, b.SrcPort),
		cmp.Compare(a.Flags, b.Flags), a.End.Compare(b.End), a.Start.Compare(b.Start),
	); c != 0 {
		return c
	}
	return cmp.Or(
		strings.Compare(a.SrcOwnerType, b.SrcOwnerType), strings.Compare(a.SrcName, b.SrcName),
		strings.Compare(a.SrcType, b.SrcType), strings.Compare(a.SrcSubnetLabel, b.SrcSubnetLabel),
		strings.Compare(a.DstNamespace, b.DstNamespace), strings.Compare(a.DstOwnerName, b.DstOwnerName),
		strings.Compare(a.DstOwnerType, b.DstOwnerType), strings.Compare(a.DstName, b.DstName),
		strings.Compare(a.DstType, b.DstType), strings.Compare(a.DstSubnetLabel, b.DstSubnetLabel),
		strings.Compare(a.DstHostName, b.DstHostName), cmp.Compare(a.Proto, b.Proto),
		strings.Compare(a.FlowDirection, b.FlowDirection), strings.Compare(a.FlowLayer, b.FlowLayer),
		strings.Compare(a.ClusterName, b.ClusterName), strings.Compare(a.DNSName, b.DNSName), cmp.Compare(a.DNSID, b.DNSID),
		strings.Compare(a.XlatSrcAddr, b.XlatSrcAddr), strings.Compare(a.XlatDstAddr, b.XlatDstAddr),
		cmp.Compare(a.XlatSrcPort, b.XlatSrcPort), cmp.Compare(a.XlatDstPort, b.XlatDstPort),
		cmp.Compare(a.Bytes, b.Bytes), cmp.Compare(a.Packets, b.Packets), cmp.Compare(a.Count, b.Count),
		compareBool(a.Duplicate, b.Duplicate), strings.Compare(a.Interfaces, b.Interfaces),
		strings.Compare(a.IfDirections, b.IfDirections), cmp.Compare(a.Sampling, b.Sampling),
		strings.Compare(a.AgentIP, b.AgentIP), cmp.Compare(a.Etype, b.Etype),
	)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
