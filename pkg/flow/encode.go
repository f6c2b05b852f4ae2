package flow

import (
	"encoding/json"
	"strings"
)

// encoded is a Record as one JSON line, in NetObserv's field names so that Decode reads it
// back like a record copied out of Loki. Count appears for aggregates
// (Count > 1, or an aggregate of one whose SrcPort or DstPort is EphemeralPort, -1): Decode
// accepts -1 ports, and a DnsName without addresses, only in a record that has Count.
type encoded struct {
	SrcNamespace   string   `json:"SrcK8S_Namespace,omitempty"`
	SrcOwnerName   string   `json:"SrcK8S_OwnerName,omitempty"`
	SrcOwnerType   string   `json:"SrcK8S_OwnerType,omitempty"`
	SrcName        string   `json:"SrcK8S_Name,omitempty"`
	SrcType        string   `json:"SrcK8S_Type,omitempty"`
	SrcHostName    string   `json:"SrcK8S_HostName,omitempty"`
	SrcAddr        string   `json:"SrcAddr,omitempty"`
	SrcPort        int      `json:"SrcPort,omitempty"`
	SrcSubnetLabel string   `json:"SrcSubnetLabel,omitempty"`
	DstNamespace   string   `json:"DstK8S_Namespace,omitempty"`
	DstOwnerName   string   `json:"DstK8S_OwnerName,omitempty"`
	DstOwnerType   string   `json:"DstK8S_OwnerType,omitempty"`
	DstName        string   `json:"DstK8S_Name,omitempty"`
	DstType        string   `json:"DstK8S_Type,omitempty"`
	DstHostName    string   `json:"DstK8S_HostName,omitempty"`
	DstAddr        string   `json:"DstAddr,omitempty"`
	DstPort        int      `json:"DstPort,omitempty"`
	DstSubnetLabel string   `json:"DstSubnetLabel,omitempty"`
	Proto          int      `json:"Proto,omitempty"`
	Flags          uint32   `json:"Flags,omitempty"`
	FlowDirection  string   `json:"FlowDirection,omitempty"`
	FlowLayer      string   `json:"K8S_FlowLayer,omitempty"`
	ClusterName    string   `json:"K8S_ClusterName,omitempty"`
	DNSName        string   `json:"DnsName,omitempty"`
	DNSID          int      `json:"DnsId,omitempty"`
	XlatSrcAddr    string   `json:"XlatSrcAddr,omitempty"`
	XlatDstAddr    string   `json:"XlatDstAddr,omitempty"`
	XlatSrcPort    int      `json:"XlatSrcPort,omitempty"`
	XlatDstPort    int      `json:"XlatDstPort,omitempty"`
	Bytes          int64    `json:"Bytes,omitempty"`
	Packets        int64    `json:"Packets,omitempty"`
	StartMs        int64    `json:"TimeFlowStartMs,omitempty"`
	EndMs          int64    `json:"TimeFlowEndMs,omitempty"`
	Duplicate      bool     `json:"Duplicate,omitempty"`
	Interfaces     []string `json:"Interfaces,omitempty"`
	IfDirections   []string `json:"IfDirections,omitempty"`
	Sampling       int      `json:"Sampling,omitempty"`
	AgentIP        string   `json:"AgentIP,omitempty"`
	Etype          int      `json:"Etype,omitempty"`
	Count          int64    `json:"Count,omitempty"`
}

// EncodeJSONLine writes r as one JSON object (no trailing newline), the JSON-lines format
// `matrix build --flows` replays. Flags are written as the integer bitfield.
func EncodeJSONLine(r Record) ([]byte, error) {
	e := encoded{
		SrcNamespace: r.SrcNamespace, SrcOwnerName: r.SrcOwnerName, SrcOwnerType: r.SrcOwnerType,
		SrcName: r.SrcName, SrcType: r.SrcType, SrcHostName: r.SrcHostName, SrcAddr: r.SrcAddr,
		SrcPort: r.SrcPort, SrcSubnetLabel: r.SrcSubnetLabel,
		DstNamespace: r.DstNamespace, DstOwnerName: r.DstOwnerName, DstOwnerType: r.DstOwnerType,
		DstName: r.DstName, DstType: r.DstType, DstHostName: r.DstHostName, DstAddr: r.DstAddr,
		DstPort: r.DstPort, DstSubnetLabel: r.DstSubnetLabel,
		Proto: r.Proto, Flags: r.Flags, FlowDirection: r.FlowDirection, FlowLayer: r.FlowLayer,
		ClusterName: r.ClusterName, DNSName: r.DNSName, DNSID: r.DNSID,
		XlatSrcAddr: r.XlatSrcAddr, XlatDstAddr: r.XlatDstAddr, XlatSrcPort: r.XlatSrcPort, XlatDstPort: r.XlatDstPort,
		Bytes: r.Bytes, Packets: r.Packets, Duplicate: r.Duplicate, Sampling: r.Sampling,
		AgentIP: r.AgentIP, Etype: r.Etype,
	}
	if !r.Start.IsZero() {
		e.StartMs = r.Start.UnixMilli()
	}
	if !r.End.IsZero() {
		e.EndMs = r.End.UnixMilli()
	}
	if r.Interfaces != "" {
		e.Interfaces = strings.Split(r.Interfaces, ",")
	}
	if r.IfDirections != "" {
		e.IfDirections = strings.Split(r.IfDirections, ",")
	}
	if r.Count > 1 || r.SrcPort == EphemeralPort || r.DstPort == EphemeralPort {
		e.Count = max(r.Count, 1)
	}
	return json.Marshal(e)
}
