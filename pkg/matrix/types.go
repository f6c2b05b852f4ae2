// Package matrix folds NetObserv flow records into an egress matrix: one entry per
// (source, destination, protocol, server port), with counters and the evidence behind it.
package matrix

import "time"

// Protocol names used in the matrix and the baseline.
const (
	TCP  = "TCP"
	UDP  = "UDP"
	SCTP = "SCTP"
	ICMP = "ICMP"
)

// Source kinds that are not Kubernetes owner kinds.
const (
	KindNode = "Node"
	// KindStaticPod is a static (mirror) pod: its workload is the pod name without the
	// "-<node name>" suffix, so the same static pod on every node is one source.
	KindStaticPod = "StaticPod"
	// KindCronJob is a Job created by a CronJob, folded to the CronJob's name.
	KindCronJob = "CronJob"
	// KindUnknown is an in-cluster source NetObserv could not attribute (a pod gone before
	// enrichment); its workload is the source address so that it stays visible.
	KindUnknown = "Unknown"
)

// Node roles a node or static-pod source folds to.
const (
	RoleControlPlane = "control-plane"
	RoleWorker       = "worker"
	RoleUnknown      = "node"
)

// How a destination got its name (Entry.DstNamedBy).
const (
	NamedByHostname    = "hostname"     // IP → name map resolved in the cluster during the window
	NamedByDNSFlow     = "dns-flow"     // a DnsName flow from the same source just before
	NamedBySubnetLabel = "subnet-label" // NetObserv custom subnet label (EXT:...)
	NamedByIP          = "ip"           // nothing better known
)

// How the server port was decided (Entry.PortEvidence).
const (
	PortBySYN         = "syn"          // a record with a pure SYN: DstPort is the listener
	PortByWellKnown   = "well-known"   // no SYN in window; well-known/configured DstPort, ephemeral SrcPort
	PortByLowerPort   = "lower-port"   // UDP: the lower-numbered side
	PortByManySources = "many-sources" // UDP: the same port seen from many source ports
	PortNone          = "none"         // ICMP: no port
)

// Entry is one row of the egress matrix. JSON names are a contract other tools rely on.
type Entry struct {
	SrcNamespace string `json:"srcNamespace"`
	SrcWorkload  string `json:"srcWorkload"` // owner name; static pod name without node suffix; node role for nodes
	SrcKind      string `json:"srcKind"`     // owner kind, or "Node"

	DstName    string `json:"dstName"`    // hostname, subnet label or IP
	DstNamedBy string `json:"dstNamedBy"` // NamedBy*
	// DstNames, for a destination named by hostname, are all the hosts its addresses were
	// resolved for while the entry was seen (FirstSeen..LastSeen): DstName first, then the
	// others sorted. Every *.apps route shares the ingress load balancer's addresses, and CDNs share
	// theirs: the baseline matches an entry by any of them. Absent when there is only one.
	DstNames       []string `json:"dstNames,omitempty"`
	DstAddress     string   `json:"dstAddress"` // one address seen (the lowest), for display
	DstAddresses   []string `json:"dstAddresses,omitempty"`
	DstSubnetLabel string   `json:"dstSubnetLabel"`

	Protocol     string `json:"protocol"` // TCP, UDP, SCTP, ICMP
	Port         int    `json:"port"`     // server port; 0 for ICMP
	PortEvidence string `json:"portEvidence"`

	Flows     int64     `json:"flows"`
	Bytes     int64     `json:"bytes"`
	FirstSeen time.Time `json:"firstSeen"`
	LastSeen  time.Time `json:"lastSeen"`

	// Translated, on a Node entry, counts the node-side records of this same key that were
	// pod connections after OVN's SNAT (PacketTranslation matched them to pod records) and
	// were folded into those pods' entries instead: they are not in Flows, and Flows is what
	// no pod record explains. 0 elsewhere.
	Translated int64 `json:"translated,omitempty"`
}

// Matrix is the observed egress matrix plus an account of every record that did not become
// part of an entry, so that nothing is dropped silently.
type Matrix struct {
	Entries []Entry `json:"entries"`
	Stats   Stats   `json:"stats"`

	// Undecided lists the egress flows whose server port could not be decided, most flows
	// first, at most MaxUndecided of them; UndecidedDistinct says how many there were.
	Undecided         []Undecided `json:"undecided,omitempty"`
	UndecidedDistinct int         `json:"undecidedDistinct,omitempty"`
	// DNSQueries lists, per source, the names its DNS flows asked for (NetObserv DnsName).
	// They are evidence for the reader, never a name for an IP: NetObserv does not record
	// DNS answers.
	DNSQueries []DNSQueries `json:"dnsQueries,omitempty"`
	// DecodeErrors are the first undecodable records reported by the decoder.
	DecodeErrors []string `json:"decodeErrors,omitempty"`
	// PacketTranslation says whether any record carried NetObserv's translated addresses
	// (feature PacketTranslation). Without them the node-side (SNAT'd) legs of pod egress
	// cannot be told from the node's own connections, so Node entries may include pod
	// traffic: a report should say so.
	PacketTranslation bool `json:"packetTranslation,omitempty"`
	// UnprefixedLabels are the custom subnet labels of egress destinations that lack the
	// EXT: prefix the FlowCollector CRD asks for: their flows are egress all the same, but
	// NetObserv's own filters take them for in-cluster; a configuration warning.
	UnprefixedLabels []string `json:"unprefixedSubnetLabels,omitempty"`
	// Lacks lists the entry columns the flow source could not give (e.g. "bytes",
	// "firstSeen", "lastSeen" from counters): their values are unknown, not zero.
	Lacks []string `json:"lacks,omitempty"`
}

// MaxUndecided bounds Matrix.Undecided.
const MaxUndecided = 100

// Undecided is one group of egress flows (same source, destination and both ports) whose
// server port could not be decided.
type Undecided struct {
	SrcNamespace string `json:"srcNamespace"`
	SrcWorkload  string `json:"srcWorkload"`
	SrcKind      string `json:"srcKind"`
	DstName      string `json:"dstName"`
	DstAddress   string `json:"dstAddress"`
	Protocol     string `json:"protocol"`
	SrcPort      int    `json:"srcPort"`
	DstPort      int    `json:"dstPort"`
	Flows        int64  `json:"flows"`
	Reason       string `json:"reason"`
}

// DNSQueries is the DNS evidence of one source.
type DNSQueries struct {
	SrcNamespace string     `json:"srcNamespace"`
	SrcWorkload  string     `json:"srcWorkload"`
	SrcKind      string     `json:"srcKind"`
	Names        []DNSCount `json:"names"`
}

// DNSCount is one queried name and how many DNS flows asked for it, counted on the sending
// node (0 when only the receiving node's copy was seen).
type DNSCount struct {
	Name  string `json:"name"`
	Flows int64  `json:"flows"`
}

// Stats accounts for every record given to the builder: Records = Egress + NotEgress +
// Responses + Undecided + DNSNamedOnly + Duplicates + Translated.
type Stats struct {
	Records      int64 `json:"records"`      // flow records seen (sum of Count)
	Egress       int64 `json:"egress"`       // kept as egress
	NotEgress    int64 `json:"notEgress"`    // destination inside the cluster, or source outside
	Responses    int64 `json:"responses"`    // response legs (server → client)
	Undecided    int64 `json:"undecided"`    // egress whose server port could not be decided
	Undecodable  int64 `json:"undecodable"`  // lines that could not be decoded
	DNSNamedOnly int64 `json:"dnsNamedOnly"` // DNS flows used only as naming evidence
	Duplicates   int64 `json:"duplicates"`   // records NetObserv marked Duplicate (counted once elsewhere)
	// Translated counts node-side egress records that are a pod's connection after OVN's
	// SNAT (matched through the pod record's translated address and port): the connection
	// is the pod's entry, counted there once.
	Translated int64 `json:"translated,omitempty"`

	// Masquerade and LinkLocalV6 are not buckets: they count the NotEgress records that left
	// a cluster source outward and were left out only because of their link-local
	// destination, so that a report says what the link-local rule kept out. Masquerade: to
	// OVN-Kubernetes' masquerade range (Options.MasqueradeNetworks: host to service traffic).
	// LinkLocalV6: to fe80::/10, which never leaves the link.
	Masquerade  int64 `json:"masquerade,omitempty"`
	LinkLocalV6 int64 `json:"linkLocalV6,omitempty"`

	// Sampled counts records (of any bucket) taken with Sampling > 1: the agent skipped
	// packets, so flows may be missing. Not a bucket; a run with Sampled > 0 cannot prove
	// that no undocumented flow happened.
	Sampled int64 `json:"sampled"`
	// SamplingMax is the highest sampling rate seen (1:SamplingMax); 0 when no record said.
	SamplingMax int `json:"samplingMax,omitempty"`
}

// Lacking reports whether the flow source could not give column c (one of Lacks).
func (m *Matrix) Lacking(c string) bool {
	for _, l := range m.Lacks {
		if l == c {
			return true
		}
	}
	return false
}

// ClearLacking zeroes the entry columns the source could not give (Lacks "bytes",
// "firstSeen", "lastSeen"), so that no stand-in value (the window's edges, a zero byte
// count) reads as observed.
func (m *Matrix) ClearLacking() {
	bytes, first, last := m.Lacking("bytes"), m.Lacking("firstSeen"), m.Lacking("lastSeen")
	for i := range m.Entries {
		e := &m.Entries[i]
		if bytes {
			e.Bytes = 0
		}
		if first {
			e.FirstSeen = time.Time{}
		}
		if last {
			e.LastSeen = time.Time{}
		}
	}
}
