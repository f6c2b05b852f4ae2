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
	SrcWorkload  string `json:"srcWorkload"` // owner name; node role for nodes and static pods
	SrcKind      string `json:"srcKind"`     // owner kind, or "Node"

	DstName        string   `json:"dstName"`    // hostname, subnet label or IP
	DstNamedBy     string   `json:"dstNamedBy"` // NamedBy*
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
}

// Matrix is the observed egress matrix plus an account of every record that did not become
// part of an entry, so that nothing is dropped silently.
type Matrix struct {
	Entries []Entry `json:"entries"`
	Stats   Stats   `json:"stats"`
}

// Stats accounts for every record given to the builder.
type Stats struct {
	Records      int64 `json:"records"`      // flow records seen (sum of Count)
	Egress       int64 `json:"egress"`       // kept as egress
	NotEgress    int64 `json:"notEgress"`    // destination inside the cluster, or source outside
	Responses    int64 `json:"responses"`    // response legs (server → client)
	Undecided    int64 `json:"undecided"`    // egress whose server port could not be decided
	Undecodable  int64 `json:"undecodable"`  // lines that could not be decoded
	DNSNamedOnly int64 `json:"dnsNamedOnly"` // DNS flows used only as naming evidence
}
