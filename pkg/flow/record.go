// Package flow decodes NetObserv flow records as Loki stores them (stream labels plus a JSON
// line) into one typed Record, whatever the NetObserv version that wrote them.
package flow

import "time"

// IANA protocol numbers NetObserv writes in Proto.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// TCP flag bits in NetObserv's integer encoding (before 1.8 Flags was this bitfield; since
// then it is a list of names). SYN_ACK is NetObserv's own bit, set for a SYN+ACK packet
// instead of SYN.
const (
	FlagFIN    uint32 = 0x01
	FlagSYN    uint32 = 0x02
	FlagRST    uint32 = 0x04
	FlagPSH    uint32 = 0x08
	FlagACK    uint32 = 0x10
	FlagURG    uint32 = 0x20
	FlagECE    uint32 = 0x40
	FlagCWR    uint32 = 0x80
	FlagSYNACK uint32 = 0x100
	FlagFINACK uint32 = 0x200
	FlagRSTACK uint32 = 0x400
)

// EphemeralPort stands in Record.SrcPort for "some port the PortPolicy calls ephemeral" when a
// record is a server-side aggregate that did not keep the exact client port.
const EphemeralPort = -1

// Record is one NetObserv flow record, or (Count > 1) a server-side aggregate of records that
// share every field kept here. Fields absent in the source are zero values.
type Record struct {
	// Source side. SrcType is "Pod", "Node", "Service" or "" (unknown, e.g. external).
	SrcNamespace   string
	SrcOwnerName   string
	SrcOwnerType   string // Deployment, DaemonSet, StatefulSet, Job, CronJob, Pod, Node, ...
	SrcName        string
	SrcType        string
	SrcHostName    string
	SrcAddr        string
	SrcPort        int // EphemeralPort when aggregated
	SrcSubnetLabel string

	// Destination side.
	DstNamespace   string
	DstOwnerName   string
	DstOwnerType   string
	DstName        string
	DstType        string
	DstAddr        string
	DstPort        int
	DstSubnetLabel string

	Proto int
	// Flags is the OR of the TCP flags of every packet in the record, in NetObserv's integer
	// encoding whatever the source format.
	Flags uint32

	// FlowDirection: "0" ingress, "1" egress, "2" inner, "" unknown (label absent).
	FlowDirection string
	FlowLayer     string // "app" or "infra"
	ClusterName   string

	// DNSName is the query name of a DNS flow (NetObserv 1.10+, truncated to 32 bytes).
	DNSName string
	DNSID   int

	// Translated addresses from the PacketTranslation feature, "" when absent.
	XlatSrcAddr string
	XlatDstAddr string

	Bytes   int64
	Packets int64
	Start   time.Time // TimeFlowStartMs
	End     time.Time // TimeFlowEndMs

	// Count is how many flow records this Record stands for: 1 for a decoded line.
	Count int64
}

// HasSYN reports whether the record saw a pure SYN, i.e. it goes client → server.
func (r *Record) HasSYN() bool { return r.Flags&FlagSYN != 0 }

// PortPolicy says which ports are server ports. A port below 1024 always is; Extra adds
// registered ports a cluster is known to serve on (6443, 8443, ...).
type PortPolicy struct {
	Extra map[int]bool
}

// IsServerPort reports whether p is well known or configured.
func (p PortPolicy) IsServerPort(port int) bool {
	return (port > 0 && port < 1024) || p.Extra[port]
}

// IsEphemeral reports whether p can only be a client's port.
func (p PortPolicy) IsEphemeral(port int) bool {
	return port == EphemeralPort || (port >= 1024 && !p.Extra[port])
}
