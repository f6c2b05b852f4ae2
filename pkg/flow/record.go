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

// EphemeralPort stands in Record.SrcPort for "some port matrix.PortPolicy calls dynamic" when a
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

	// Fields below were added after the first contract; all keep Record comparable (no
	// slices or maps) because aggregating callers use Record as a map key.

	// Duplicate is NetObserv's (1.6-1.7) mark on the second copy of a flow seen on another
	// interface of the same node; such records must not be counted twice.
	Duplicate bool
	// Interfaces and IfDirections list, comma-separated in record order, the interfaces the
	// flow was seen on and the direction on each ("0" ingress, "1" egress); from the plural
	// fields (1.7+) or the singular Interface/IfDirection of older records.
	Interfaces   string
	IfDirections string
	// Sampling is the agent's sampling rate (1 = every packet; 0 = not recorded).
	Sampling int
	// AgentIP is the IP of the node whose agent saw the flow.
	AgentIP string
	// DstHostName is the node hosting the destination (when it is a pod or node).
	DstHostName string
	// XlatSrcPort/XlatDstPort come with XlatSrcAddr/XlatDstAddr (0 when absent).
	XlatSrcPort int
	XlatDstPort int
	// Etype is the Ethernet type (0x0800 IPv4, 0x86DD IPv6, 0x0806 ARP, ...); 0 when absent.
	// Non-IP records (ARP) have no addresses and never leave the cluster.
	Etype int
}

// Ethernet types of IP records.
const (
	EtypeIPv4 = 0x0800
	EtypeIPv6 = 0x86DD
)

// IsIP reports whether the record is an IP flow (or does not say, as older records may not).
func (r *Record) IsIP() bool { return r.Etype == 0 || r.Etype == EtypeIPv4 || r.Etype == EtypeIPv6 }

// HasSYN reports whether the record saw a pure SYN, i.e. it goes client → server.
func (r *Record) HasSYN() bool { return r.Flags&FlagSYN != 0 }
