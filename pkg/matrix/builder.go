package matrix

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// DefaultUDPManySources is Options.UDPManySources when left zero.
const DefaultUDPManySources = 3

// Options tune how records become entries.
type Options struct {
	// ClusterNetworks are the pod, service and machine CIDRs: an address inside is not egress.
	ClusterNetworks []netip.Prefix
	// NodeRoles maps a node name to its role (RoleControlPlane, RoleWorker, or another role
	// name such as "infra"; "master" is read as control-plane). A node missing here folds to
	// RoleUnknown.
	NodeRoles map[string]string
	// Ports says which ports are server ports.
	Ports PortPolicy
	// Names names destination IPs by hostname; nil names none.
	Names *Names
	// UDPManySources: a UDP destination port seen from at least this many distinct source
	// ports of one source is a server port. 0 means DefaultUDPManySources.
	UDPManySources int
	// MasqueradeNetworks are OVN-Kubernetes' masquerade subnets (Network.operator.openshift.io
	// "cluster" spec.defaultNetwork.ovnKubernetesConfig.gatewayConfig.ipv4/ipv6
	// .internalMasqueradeSubnet, else the operator's default; cluster.Facts reads them): the
	// only link-local destinations that are cluster-internal. Every other IPv4 link-local
	// destination (169.254.169.254 metadata, 169.254.169.123 AWS time, 169.254.169.253 AWS
	// DNS, ...) is a platform service, hence egress. Nil means DefaultMasqueradeNetworks.
	MasqueradeNetworks []netip.Prefix
}

// DefaultMasqueradeNetworks are the masquerade subnets assumed when Options.MasqueradeNetworks
// is nil: both defaults OpenShift has used, since a matrix built without the cluster's facts
// cannot know its install age. cluster-network-operator gives clusters installed on 4.17 or
// later 169.254.0.0/17 and fd69::/112 (pkg/network/ovn_kubernetes.go defaultV4/6MasqueradeSubnet)
// and keeps what older clusters had, ovn-kubernetes' built-in 169.254.169.0/29 and fd69::/125
// (go-controller/pkg/config/config.go Gateway), which fd69::/112 covers. Neither range holds
// a known platform service address (those are 169.254.169.123 and up).
func DefaultMasqueradeNetworks() []netip.Prefix {
	return []netip.Prefix{
		netip.MustParsePrefix("169.254.0.0/17"),
		netip.MustParsePrefix("169.254.169.0/29"),
		netip.MustParsePrefix("fd69::/112"),
	}
}

// srcID identifies a source in the matrix.
type srcID struct{ ns, kind, workload string }

// dstID identifies a destination in the matrix.
type dstID struct{ name, namedBy string }

type entryKey struct {
	src   srcID
	dst   dstID
	proto string
	port  int
}

// agg is an entry being accumulated.
type agg struct {
	e      Entry
	addrs  map[netip.Addr]struct{}
	labels map[string]struct{}
	rank   int // strength of PortEvidence, see evidenceRank
}

// evidenceRank orders port evidence from strongest; an entry keeps the strongest it saw.
var evidenceRank = map[string]int{PortBySYN: 5, PortByWellKnown: 4, PortByLowerPort: 3, PortByManySources: 2, PortNone: 1}

// pendKey groups egress records whose server port is not decided when they are added.
type pendKey struct {
	src              srcID
	dst              dstID
	proto            string
	srcPort, dstPort int
}

type pending struct {
	agg
	reason string
}

// Builder folds records into a Matrix. It is not safe for concurrent use.
//
// The rules, in order (each record lands in exactly one Stats bucket):
//
//   - Duplicate records (NetObserv 1.6-1.7) → Duplicates.
//   - Egress means: FlowDirection is not "0" (the copy entering the observing node; the
//     sender's copy counts), the source is inside (SrcType Pod or Node, SrcSubnetLabel Pods or
//     Machines, or SrcAddr in ClusterNetworks), and the destination is outside (no DstType, no
//     subnet label of the cluster's (Pods, Services, Machines): a custom label, with EXT: or
//     without, is outside; not in ClusterNetworks, not in MasqueradeNetworks, and
//     routable: not multicast, broadcast, loopback or IPv6 link-local; IPv4 link-local
//     outside the masquerade range, e.g. 169.254.169.254/.123/.253, is a platform service).
//     Anything else → NotEgress (those to the masquerade range counted in Stats.Masquerade,
//     to fe80::/10 in Stats.LinkLocalV6), or DNSNamedOnly for an in-cluster DNS query
//     carrying DnsName.
//   - Server port. TCP/SCTP: a pure SYN → DstPort (syn); SYN_ACK → response; a server DstPort
//     with an ephemeral SrcPort → DstPort (well-known); the reverse → response; else held
//     back and, in Matrix, joined to the entry of the same source, destination and DstPort
//     when one exists, or left Undecided. UDP: a server DstPort (well-known) unless SrcPort is
//     one too; two server ports or a registered port against a dynamic one (>= 32768): the
//     lower side (lower-port), a response when the lower side is SrcPort; else held back and
//     decided by many-sources (the DstPort reached from >= UDPManySources source ports) or
//     left Undecided. ICMP/ICMPv6: port 0 (none). Responses → Responses, never an entry.
//   - Source: pods → namespace, owner kind and name; a Job named "<cronjob>-<8+ digits>" →
//     CronJob "<cronjob>"; a mirror pod (owner kind Node, or an openshift-* pod named
//     "<name>-<its node>" that owns itself) → StaticPod "<name>"; nodes (host network,
//     kubelet, CRI-O) → kind Node, no namespace, workload = the node's role.
//   - Destination: the hostname Names resolved the address to during the flow, else its
//     custom subnet label (Matrix.UnprefixedLabels lists those without EXT:), else the IP. DNS flows only list what each source asked for (DNSQueries):
//     NetObserv records no answers, so they never name an IP.
//   - SNAT (OVN-Kubernetes): a pod's egress is recorded again after OVN SNATs it on br-ex
//     (or on an EgressIP node), from the node or egress IP. Node-sourced egress records that
//     are not responses are held until Matrix, since the pod record may come later. One
//     whose (SrcAddr, SrcPort, DstAddr, DstPort, Proto) equals a pod egress record's
//     translated (XlatSrcAddr, XlatSrcPort, XlatDstAddr or DstAddr, XlatDstPort or DstPort,
//     Proto) is that pod's connection → Translated, never a node entry. Aggregates that lost
//     the client port (Count > 1 or SrcPort flow.EphemeralPort) fold by counts per (address,
//     destination, port, protocol): the pod records not matched exactly, translated to that
//     address, explain as many node flows; the rest stay a node entry, with Entry.Translated
//     saying how many were folded. Fail closed: a single node record no pod 5-tuple
//     matches, a node record without SrcAddr, and the SNAT'd leg of a pod record that is
//     not itself egress (e.g. to a Service DNAT'd outside) all stay node flows. Without
//     PacketTranslation fields nothing folds (Matrix.PacketTranslation is false, and node
//     entries may include pod traffic).
//
// Memory: besides one aggregate per entry and per undecided group, the builder holds one
// small total per distinct node-sourced egress 5-tuple and one counter per distinct
// translated pod 5-tuple: it grows with the number of node and SNAT'd pod connections in
// the window, not with their records (sizes: docs/performance.md).
//
// Matrix.Check says whether the result can prove anything (sampling, empty window,
// undecodable records): callers check it before diffing.
type Builder struct {
	opts      Options
	stats     Stats
	entries   map[entryKey]*agg
	pending   map[pendKey]*pending
	dns       map[srcID]map[string]int64
	decodeErr []string

	// SNAT folding (translate.go): node-side egress records held for Matrix, and what pod
	// egress records became after SNAT.
	legs     map[connKey][]legPart
	podConns map[connKey]int64
	podHosts map[hostKey]int64
	xlat     bool // a record carried PacketTranslation fields

	unprefixed map[string]struct{} // egress subnet labels without EXT:
}

// NewBuilder returns an empty builder.
func NewBuilder(opts Options) *Builder {
	if opts.UDPManySources <= 0 {
		opts.UDPManySources = DefaultUDPManySources
	}
	nets := make([]netip.Prefix, 0, len(opts.ClusterNetworks))
	for _, p := range opts.ClusterNetworks {
		if p.IsValid() {
			nets = append(nets, p.Masked())
		}
	}
	opts.ClusterNetworks = nets
	if opts.MasqueradeNetworks == nil {
		opts.MasqueradeNetworks = DefaultMasqueradeNetworks()
	}
	masq := make([]netip.Prefix, 0, len(opts.MasqueradeNetworks))
	for _, p := range opts.MasqueradeNetworks {
		if p.IsValid() {
			masq = append(masq, p.Masked())
		}
	}
	opts.MasqueradeNetworks = masq
	return &Builder{
		opts:     opts,
		entries:  map[entryKey]*agg{},
		pending:  map[pendKey]*pending{},
		dns:      map[srcID]map[string]int64{},
		legs:     map[connKey][]legPart{},
		podConns: map[connKey]int64{},
		podHosts: map[hostKey]int64{},
	}
}

// Build folds records into a matrix in one call.
func Build(records []flow.Record, opts Options) *Matrix {
	b := NewBuilder(opts)
	for i := range records {
		b.Add(records[i])
	}
	return b.Matrix()
}

// AddDecodeStats accounts for the records the decoder could not read, so that the matrix
// says how many are missing from it.
func (b *Builder) AddDecodeStats(s flow.Stats) {
	b.stats.Undecodable += s.Undecodable
	for _, e := range s.Errors {
		if len(b.decodeErr) < flow.MaxKeptErrors {
			b.decodeErr = append(b.decodeErr, e.Error())
		}
	}
}

func (b *Builder) inCluster(a netip.Addr) bool {
	for _, p := range b.opts.ClusterNetworks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (b *Builder) masquerade(a netip.Addr) bool {
	for _, p := range b.opts.MasqueradeNetworks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func (b *Builder) addDNSName(src srcID, dnsName string, counted bool, n int64) {
	names := b.dns[src]
	if names == nil {
		names = map[string]int64{}
		b.dns[src] = names
	}
	name := strings.ToLower(strings.TrimSuffix(dnsName, "."))
	if counted {
		names[name] += n
	} else if _, seen := names[name]; !seen {
		// The other node's copy: name it, count it once.
		names[name] = 0
	}
}

// swapSides is r seen from its destination: an answer's querier as the source.
func swapSides(r flow.Record) flow.Record {
	q := r
	q.SrcNamespace, q.DstNamespace = r.DstNamespace, r.SrcNamespace
	q.SrcOwnerName, q.DstOwnerName = r.DstOwnerName, r.SrcOwnerName
	q.SrcOwnerType, q.DstOwnerType = r.DstOwnerType, r.SrcOwnerType
	q.SrcName, q.DstName = r.DstName, r.SrcName
	q.SrcType, q.DstType = r.DstType, r.SrcType
	q.SrcHostName, q.DstHostName = r.DstHostName, r.SrcHostName
	q.SrcAddr, q.DstAddr = r.DstAddr, r.SrcAddr
	q.SrcPort, q.DstPort = r.DstPort, r.SrcPort
	q.SrcSubnetLabel, q.DstSubnetLabel = r.DstSubnetLabel, r.SrcSubnetLabel
	return q
}

// Add folds one record (or server-side aggregate, Count > 1) into the matrix. Every record
// ends in exactly one Stats bucket: Records = Egress + NotEgress + Responses + Undecided +
// DNSNamedOnly + Duplicates + Translated. Node-sourced egress records get their bucket in
// Matrix, where the pod records that may explain them are all known.
func (b *Builder) Add(r flow.Record) {
	n := r.Count
	if n <= 0 {
		n = 1
	}
	b.stats.Records += n
	if r.Sampling > 1 {
		b.stats.Sampled += n
		b.stats.SamplingMax = max(b.stats.SamplingMax, r.Sampling)
	}
	if r.XlatSrcAddr != "" || r.XlatDstAddr != "" {
		b.xlat = true
	}
	if r.Duplicate {
		// NetObserv counted the same packets on another interface already.
		b.stats.Duplicates += n
		return
	}
	src, srcInside := b.source(&r)
	// A DNS query from inside names what the source looked up. The NetObserv agent puts the
	// name on the answer only (source port 53): the querier is then the answer's destination.
	dnsEvidence := false
	if r.DNSName != "" {
		querier, inside := src, srcInside && r.SrcPort != 53 && r.SrcPort != 5353
		// A query counts on the sender's node; an answer on the querier's, which always
		// sees it (the server may run where no agent does).
		counted := r.FlowDirection != "0"
		if r.SrcPort == 53 || r.SrcPort == 5353 {
			q := swapSides(r)
			querier, inside = b.source(&q)
			counted = r.FlowDirection != "1"
		}
		if inside {
			dnsEvidence = true
			b.addDNSName(querier, r.DNSName, counted, n)
		}
	}
	dstAddr, dstOK := parseAddr(r.DstAddr)
	outward := r.FlowDirection != "0" && srcInside && r.IsIP() && dstOK &&
		r.DstType == "" && !clusterLabels[r.DstSubnetLabel] && !b.inCluster(dstAddr)
	egress := outward && routable(dstAddr) && !b.masquerade(dstAddr)
	if !egress {
		switch {
		case !outward || dnsEvidence:
		case b.masquerade(dstAddr):
			b.stats.Masquerade += n
		case dstAddr.IsLinkLocalUnicast():
			b.stats.LinkLocalV6 += n
		}
		if dnsEvidence {
			b.stats.DNSNamedOnly += n
		} else {
			b.stats.NotEgress += n
		}
		return
	}
	if l := r.DstSubnetLabel; l != "" && !strings.HasPrefix(l, "EXT:") {
		// NetObserv's CRD asks for EXT: on external labels; without it the flows are still
		// egress (the cluster's networks say what is inside), and the label is reported.
		if b.unprefixed == nil {
			b.unprefixed = map[string]struct{}{}
		}
		b.unprefixed[l] = struct{}{}
	}
	dst := b.destination(&r, dstAddr)
	proto, port, evidence, reason := b.serverPort(&r)
	if evidence != "response" {
		switch {
		case src.kind == KindNode:
			// Maybe a pod's connection after SNAT: decided in Matrix.
			if b.holdNodeLeg(&r, n, src, dst, dstAddr, proto, port, evidence, reason) {
				return
			}
		case r.XlatSrcAddr != "":
			b.notePodXlat(&r, n, dstAddr)
		}
	}
	switch {
	case evidence == "response":
		b.stats.Responses += n
	case evidence == "":
		k := pendKey{src: src, dst: dst, proto: proto, srcPort: r.SrcPort, dstPort: r.DstPort}
		p := b.pending[k]
		if p == nil {
			p = &pending{reason: reason}
			p.e = Entry{SrcNamespace: src.ns, SrcKind: src.kind, SrcWorkload: src.workload,
				DstName: dst.name, DstNamedBy: dst.namedBy, Protocol: proto}
			b.pending[k] = p
		}
		p.add(&r, n, dstAddr)
	default:
		b.stats.Egress += n
		k := entryKey{src: src, dst: dst, proto: proto, port: port}
		a := b.entries[k]
		if a == nil {
			a = &agg{e: Entry{SrcNamespace: src.ns, SrcKind: src.kind, SrcWorkload: src.workload,
				DstName: dst.name, DstNamedBy: dst.namedBy, Protocol: proto, Port: port}}
			b.entries[k] = a
		}
		a.evidence(evidence)
		a.add(&r, n, dstAddr)
	}
}

// clusterLabels are the subnet labels NetObserv gives the cluster's own networks (pods,
// services, machines, detected on OpenShift). Every other label names something outside.
var clusterLabels = map[string]bool{"Pods": true, "Services": true, "Machines": true}

// routable reports whether a destination can be a service outside the cluster at all:
// multicast, broadcast, loopback and IPv6 link-local (fe80::/10: neighbour discovery, the
// router) never are. IPv4 link-local is: clouds serve metadata, time and DNS on
// 169.254.169.0/24; OVN-Kubernetes' masquerade range is left out by Builder.masquerade.
func routable(a netip.Addr) bool {
	switch {
	case a.Is4() && a.IsLinkLocalUnicast():
		return true
	case a.IsMulticast(), a.IsLoopback(), a.IsUnspecified(), a.IsLinkLocalUnicast(), a.IsInterfaceLocalMulticast():
		return false
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return false
	}
	return true
}

func (a *agg) evidence(ev string) {
	if r := evidenceRank[ev]; r > a.rank {
		a.rank, a.e.PortEvidence = r, ev
	}
}

func (a *agg) add(r *flow.Record, n int64, dst netip.Addr) {
	first, last := span(r)
	a.addParts(n, r.Bytes, first, last, dst, r.DstSubnetLabel)
}

// addParts adds n flows of bytes seen from first to last (zero: unknown) to dst.
func (a *agg) addParts(n, bytes int64, first, last time.Time, dst netip.Addr, label string) {
	a.e.Flows += n
	a.e.Bytes += bytes
	if !first.IsZero() && (a.e.FirstSeen.IsZero() || first.Before(a.e.FirstSeen)) {
		a.e.FirstSeen = first
	}
	if last.After(a.e.LastSeen) {
		a.e.LastSeen = last
	}
	if a.addrs == nil {
		a.addrs = map[netip.Addr]struct{}{}
	}
	a.addrs[dst] = struct{}{}
	if label != "" {
		if a.labels == nil {
			a.labels = map[string]struct{}{}
		}
		a.labels[label] = struct{}{}
	}
}

func (a *agg) merge(o *agg) {
	a.e.Flows += o.e.Flows
	a.e.Bytes += o.e.Bytes
	if !o.e.FirstSeen.IsZero() && (a.e.FirstSeen.IsZero() || o.e.FirstSeen.Before(a.e.FirstSeen)) {
		a.e.FirstSeen = o.e.FirstSeen
	}
	if o.e.LastSeen.After(a.e.LastSeen) {
		a.e.LastSeen = o.e.LastSeen
	}
	if a.addrs == nil {
		a.addrs = map[netip.Addr]struct{}{}
	}
	for k := range o.addrs {
		a.addrs[k] = struct{}{}
	}
	for k := range o.labels {
		if a.labels == nil {
			a.labels = map[string]struct{}{}
		}
		a.labels[k] = struct{}{}
	}
}

func (a *agg) clone() *agg {
	c := &agg{e: a.e, rank: a.rank, addrs: make(map[netip.Addr]struct{}, len(a.addrs))}
	for k := range a.addrs {
		c.addrs[k] = struct{}{}
	}
	if a.labels != nil {
		c.labels = make(map[string]struct{}, len(a.labels))
		for k := range a.labels {
			c.labels[k] = struct{}{}
		}
	}
	return c
}

// entry finishes an aggregate: addresses sorted, the lowest shown, labels joined.
func (a *agg) entry() Entry {
	e := a.e
	addrs := make([]netip.Addr, 0, len(a.addrs))
	for k := range a.addrs {
		addrs = append(addrs, k)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	e.DstAddresses = make([]string, len(addrs))
	for i, ad := range addrs {
		e.DstAddresses[i] = ad.String()
	}
	if len(addrs) > 0 {
		e.DstAddress = e.DstAddresses[0]
	}
	labels := make([]string, 0, len(a.labels))
	for l := range a.labels {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	e.DstSubnetLabel = strings.Join(labels, ",")
	return e
}

// allNames lists every host the entry's addresses were resolved for from..to, with
// e.DstName first; nil when that is the only one.
func (b *Builder) allNames(a *agg, from, to time.Time) []string {
	seen := map[string]bool{a.e.DstName: true}
	var others []string
	for addr := range a.addrs {
		for _, h := range b.opts.Names.LookupRangeAll(addr, from, to) {
			if !seen[h] {
				seen[h] = true
				others = append(others, h)
			}
		}
	}
	if len(others) == 0 {
		return nil
	}
	sort.Strings(others)
	return append([]string{a.e.DstName}, others...)
}

// cronJobSuffix is the "-<schedule time>" a CronJob appends to the Jobs it creates (minutes
// since the epoch: 8 digits today).
var cronJobSuffix = regexp.MustCompile(`^(.+)-[0-9]{8,}$`)

// source names the record's source and says whether it is inside the cluster.
func (b *Builder) source(r *flow.Record) (srcID, bool) {
	addr, addrOK := parseAddr(r.SrcAddr)
	inside := r.SrcType == "Pod" || r.SrcType == "Node" ||
		r.SrcSubnetLabel == "Pods" || r.SrcSubnetLabel == "Machines" ||
		(addrOK && b.inCluster(addr))
	if !inside {
		return srcID{}, false
	}
	switch {
	case r.SrcType == "Node" || (r.SrcType == "" && r.SrcNamespace == "" && r.SrcOwnerType == "Node"):
		// Host-network pods, kubelet, CRI-O, chronyd: all carry the node's IP.
		return srcID{kind: KindNode, workload: b.role(r.SrcName, r.SrcOwnerName, r.SrcHostName)}, true
	case r.SrcNamespace != "" || r.SrcType == "Pod":
		return podSource(r), true
	case r.SrcSubnetLabel == "Machines":
		// A machine-network address NetObserv did not enrich: a node we were not told about.
		return srcID{kind: KindNode, workload: b.role(r.SrcHostName)}, true
	}
	return srcID{kind: KindUnknown, workload: r.SrcAddr}, true
}

func podSource(r *flow.Record) srcID {
	id := srcID{ns: r.SrcNamespace, kind: r.SrcOwnerType, workload: r.SrcOwnerName}
	switch {
	case id.kind == "Job":
		if m := cronJobSuffix.FindStringSubmatch(id.workload); m != nil {
			id.kind, id.workload = KindCronJob, m[1]
		}
	case id.kind == "Node":
		// A mirror pod is owned by its node: the pod is named "<name>-<node>".
		id.kind, id.workload = KindStaticPod, trimNodeSuffix(r.SrcName, r.SrcOwnerName, r.SrcHostName)
	case (id.kind == "Pod" || id.kind == "") && strings.HasPrefix(r.SrcNamespace, "openshift-") &&
		r.SrcHostName != "" && strings.HasSuffix(podName(r), "-"+r.SrcHostName):
		// Older NetObserv reports a mirror pod as its own owner.
		id.kind, id.workload = KindStaticPod, trimNodeSuffix(podName(r), r.SrcHostName)
	}
	if id.workload == "" {
		id.workload = r.SrcName
	}
	if id.workload == "" {
		id.workload = r.SrcAddr // never an empty, unmatchable workload
	}
	if id.kind == "" {
		id.kind = "Pod"
	}
	return id
}

func podName(r *flow.Record) string {
	if r.SrcName != "" {
		return r.SrcName
	}
	return r.SrcOwnerName
}

func trimNodeSuffix(name string, nodes ...string) string {
	for _, n := range nodes {
		if n != "" && strings.HasSuffix(name, "-"+n) && len(name) > len(n)+1 {
			return strings.TrimSuffix(name, "-"+n)
		}
	}
	return name
}

// role returns the role of the first node name known to NodeRoles.
func (b *Builder) role(names ...string) string {
	for _, n := range names {
		if n == "" {
			continue
		}
		if r, ok := b.opts.NodeRoles[n]; ok {
			switch strings.ToLower(r) {
			case "master", RoleControlPlane:
				return RoleControlPlane
			case "":
				return RoleUnknown
			}
			return r
		}
	}
	return RoleUnknown
}

// destination names the destination: a hostname resolved in the cluster at the time of
// the flow, else a NetObserv custom subnet label (any but the cluster's), else the IP.
func (b *Builder) destination(r *flow.Record, addr netip.Addr) dstID {
	if host, ok := b.opts.Names.LookupRange(addr, r.Start, r.End); ok {
		return dstID{name: host, namedBy: NamedByHostname}
	}
	if r.DstSubnetLabel != "" {
		return dstID{name: r.DstSubnetLabel, namedBy: NamedBySubnetLabel}
	}
	return dstID{name: addr.String(), namedBy: NamedByIP}
}

// protocolName maps an IANA protocol number to the matrix's protocol name.
func protocolName(p int) (string, bool) {
	switch p {
	case flow.ProtoTCP:
		return TCP, true
	case flow.ProtoUDP:
		return UDP, true
	case flow.ProtoSCTP:
		return SCTP, true
	case flow.ProtoICMP, flow.ProtoICMPv6:
		return ICMP, true
	}
	return "IP-" + strconv.Itoa(p), false
}

// serverPort decides the server port of an egress record. evidence is a PortBy* value,
// "response" for a response leg, or "" when undecided for now (reason says why).
func (b *Builder) serverPort(r *flow.Record) (proto string, port int, evidence, reason string) {
	proto, ok := protocolName(r.Proto)
	if !ok {
		return proto, 0, "", fmt.Sprintf("IP protocol %d has no port model", r.Proto)
	}
	pol := b.opts.Ports
	sp, dp := r.SrcPort, r.DstPort
	switch proto {
	case ICMP:
		return proto, 0, PortNone, ""
	case TCP, SCTP:
		switch {
		case r.Flags&flow.FlagSYN != 0:
			// Only the client sends a pure SYN (the agent records SYN+ACK as SYN_ACK).
			return proto, dp, PortBySYN, ""
		case r.Flags&flow.FlagSYNACK != 0:
			return proto, 0, "response", ""
		case pol.IsServerPort(dp) && pol.IsEphemeral(sp):
			return proto, dp, PortByWellKnown, ""
		case pol.IsServerPort(sp) && pol.IsEphemeral(dp):
			return proto, 0, "response", ""
		}
		return proto, 0, "", "no SYN in the record and the ports do not tell client from server"
	}
	// UDP.
	dS, sS := pol.IsServerPort(dp), pol.IsServerPort(sp)
	switch {
	case dS && !sS, dS && sp == dp:
		return proto, dp, PortByWellKnown, ""
	case sS && !dS:
		return proto, 0, "response", ""
	case dS && sS:
		if dp < sp {
			return proto, dp, PortByLowerPort, ""
		}
		return proto, 0, "response", ""
	case dp > 0 && dp == sp && dp < DynamicPortMin:
		// A symmetric protocol (VXLAN 4789, Geneve 6081, IKE NAT-T 4500) uses its port on both ends.
		return proto, dp, PortByLowerPort, ""
	case dp > 0 && dp < DynamicPortMin && pol.IsDynamic(sp):
		return proto, dp, PortByLowerPort, ""
	case sp > 0 && sp < DynamicPortMin && pol.IsDynamic(dp):
		return proto, 0, "response", ""
	}
	return proto, 0, "", "UDP between two non-well-known ports, and the destination port was seen from too few source ports"
}

// Matrix returns the matrix of everything added so far. It decides the records held back
// (node-side legs, and those undecided when added) and leaves the builder unchanged, so it
// may be called again.
func (b *Builder) Matrix() *Matrix {
	st := b.stats
	entries := make(map[entryKey]*agg, len(b.entries))
	for k, a := range b.entries {
		entries[k] = a.clone()
	}
	pend, folded := b.foldNodeLegs(&st, entries)

	// UDP: a destination port reached from many source ports of one source is a server.
	type portKey struct {
		src   srcID
		dst   dstID
		proto string
		port  int
	}
	sources := map[portKey]int{}
	for k := range pend {
		if k.proto == UDP {
			sources[portKey{k.src, k.dst, k.proto, k.dstPort}]++
		}
	}
	keys := make([]pendKey, 0, len(pend))
	for k := range pend {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return pendLess(keys[i], keys[j]) })
	var undecided []Undecided
	for _, k := range keys {
		p := pend[k]
		ek := entryKey{src: k.src, dst: k.dst, proto: k.proto, port: k.dstPort}
		a, known := entries[ek]
		switch {
		case known && (k.proto == TCP || k.proto == SCTP || k.proto == UDP):
			// Records of a connection whose SYN (or well-known port) another record showed.
		case k.proto == UDP && k.dstPort > 0 && sources[portKey(ek)] >= b.opts.UDPManySources:
			a = &agg{e: p.e}
			a.e.Port, a.e.Flows, a.e.Bytes = k.dstPort, 0, 0
			a.e.FirstSeen, a.e.LastSeen = time.Time{}, time.Time{}
			a.evidence(PortByManySources)
			entries[ek] = a
		default:
			st.Undecided += p.e.Flows
			undecided = append(undecided, Undecided{
				SrcNamespace: k.src.ns, SrcWorkload: k.src.workload, SrcKind: k.src.kind,
				DstName: k.dst.name, DstAddress: p.entry().DstAddress, Protocol: k.proto,
				SrcPort: k.srcPort, DstPort: k.dstPort, Flows: p.e.Flows, Reason: p.reason,
			})
			continue
		}
		st.Egress += p.e.Flows
		a.merge(&p.agg)
	}

	for ek, f := range folded {
		if a := entries[ek]; a != nil {
			a.e.Translated = f
		}
	}
	m := &Matrix{Entries: make([]Entry, 0, len(entries)), Stats: st, PacketTranslation: b.xlat}
	for _, a := range entries {
		e := a.entry()
		if e.DstNamedBy == NamedByHostname {
			e.DstNames = b.allNames(a, e.FirstSeen, e.LastSeen)
		}
		m.Entries = append(m.Entries, e)
	}
	SortEntries(m.Entries)

	sort.SliceStable(undecided, func(i, j int) bool { return undecided[i].Flows > undecided[j].Flows })
	m.UndecidedDistinct = len(undecided)
	if len(undecided) > MaxUndecided {
		undecided = undecided[:MaxUndecided]
	}
	m.Undecided = undecided

	for src, names := range b.dns {
		q := DNSQueries{SrcNamespace: src.ns, SrcKind: src.kind, SrcWorkload: src.workload}
		for name, c := range names {
			q.Names = append(q.Names, DNSCount{Name: name, Flows: c})
		}
		sort.Slice(q.Names, func(i, j int) bool { return q.Names[i].Name < q.Names[j].Name })
		m.DNSQueries = append(m.DNSQueries, q)
	}
	sort.Slice(m.DNSQueries, func(i, j int) bool {
		a, c := m.DNSQueries[i], m.DNSQueries[j]
		return srcLess(srcID{a.SrcNamespace, a.SrcKind, a.SrcWorkload}, srcID{c.SrcNamespace, c.SrcKind, c.SrcWorkload})
	})
	m.DecodeErrors = append([]string(nil), b.decodeErr...)
	for l := range b.unprefixed {
		m.UnprefixedLabels = append(m.UnprefixedLabels, l)
	}
	sort.Strings(m.UnprefixedLabels)
	return m
}

func srcLess(a, b srcID) bool {
	if a.ns != b.ns {
		return a.ns < b.ns
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.workload < b.workload
}

func pendLess(a, b pendKey) bool {
	if a.src != b.src {
		return srcLess(a.src, b.src)
	}
	if a.dst != b.dst {
		if a.dst.name != b.dst.name {
			return a.dst.name < b.dst.name
		}
		return a.dst.namedBy < b.dst.namedBy
	}
	if a.proto != b.proto {
		return a.proto < b.proto
	}
	if a.dstPort != b.dstPort {
		return a.dstPort < b.dstPort
	}
	return a.srcPort < b.srcPort
}

// SortEntries sorts entries by source namespace, kind, workload, then destination name,
// protocol and port (then naming, for two names that only differ in how they were found).
func SortEntries(es []Entry) {
	sort.Slice(es, func(i, j int) bool { return EntryLess(&es[i], &es[j]) })
}

// EntryLess is the order of the matrix: source (namespace, kind, workload), destination,
// protocol, port.
func EntryLess(a, b *Entry) bool {
	switch {
	case a.SrcNamespace != b.SrcNamespace:
		return a.SrcNamespace < b.SrcNamespace
	case a.SrcKind != b.SrcKind:
		return a.SrcKind < b.SrcKind
	case a.SrcWorkload != b.SrcWorkload:
		return a.SrcWorkload < b.SrcWorkload
	case a.DstName != b.DstName:
		return a.DstName < b.DstName
	case a.Protocol != b.Protocol:
		return a.Protocol < b.Protocol
	case a.Port != b.Port:
		return a.Port < b.Port
	}
	return a.DstNamedBy < b.DstNamedBy
}

// Key is the stable identity of an entry: source, destination name, protocol and port.
// Counters, addresses and evidence are not part of it.
func (e Entry) Key() string {
	return e.SrcNamespace + "/" + e.SrcKind + "/" + e.SrcWorkload + " -> " + e.DstName + " " + e.Protocol + "/" + strconv.Itoa(e.Port)
}
