package lokitest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// Format is the NetObserv generation a generated record imitates.
type Format int

const (
	// FormatNew is NetObserv 1.8+: Flags a list of names, Src/DstK8S_Type and K8S_FlowLayer
	// as stream labels, Src/DstSubnetLabel, plural Interfaces, Sampling.
	FormatNew Format = iota
	// FormatOld is the 2022 format: Flags an integer bitfield, K8S types in the JSON line,
	// no subnet labels, no flow layer, singular Interface/IfDirection, Duplicate.
	FormatOld
)

// GenConfig describes a generated capture.
type GenConfig struct {
	Records    int       // flow records to generate (about; connections are whole)
	From, To   time.Time // TimeFlowEndMs of every record is in [From, To)
	Namespaces int       // application namespaces (default 40)
	Seed       uint64
	// OldFormat is the fraction of connections written in FormatOld (0: all new).
	OldFormat float64
	// Chunk varies the traffic but not the cluster (same nodes, pods, addresses): a big
	// capture is generated and pushed chunk by chunk.
	Chunk uint64
	// SNAT is the fraction of pod → external TCP connections recorded as OVN-Kubernetes
	// SNATs them with PacketTranslation on (0: none, the default): the pod's client
	// records carry XlatSrcAddr (its node's address), XlatSrcPort, XlatDstAddr and
	// XlatDstPort, and each has a node-side copy from that address and port (SNATLeg).
	// One SNAT'd connection in eight gets a translated port below the dynamic range.
	SNAT float64
}

// Generated is one generated flow record: what Loki stores and what it means.
type Generated struct {
	Entry
	// Truth is the record as pkg/flow must decode it (Count 1).
	Truth flow.Record
	// Egress says the generator meant it as a flow leaving the cluster (destination
	// outside the cluster networks, source inside), response legs included.
	Egress bool
	// SNATLeg marks the node-side copy of a SNAT'd pod record (GenConfig.SNAT).
	SNATLeg bool
}

type endpoint struct {
	ns, owner, ownerType, name, typ, host, addr, subnet string
	node                                                *node
}

type node struct{ name, ip, role string }

// External addresses: documentation ranges, so nothing generated is a real host.
var externalServers = []struct {
	addr  string
	port  int
	proto int
	dns   string
}{
	{"198.51.100.10", 443, flow.ProtoTCP, "quay.io"},
	{"198.51.100.11", 443, flow.ProtoTCP, "cdn01.quay.io"},
	{"198.51.100.12", 443, flow.ProtoTCP, "registry.redhat.io"},
	{"198.51.100.13", 443, flow.ProtoTCP, "api.openshift.com"},
	{"198.51.100.14", 80, flow.ProtoTCP, "mirror.openshift.com"},
	{"198.51.100.15", 8443, flow.ProtoTCP, "console.redhat.com"},
	{"198.51.100.16", 5000, flow.ProtoTCP, "registry.example.com"},
	{"203.0.113.20", 443, flow.ProtoTCP, "sts.amazonaws.com"},
	{"203.0.113.21", 443, flow.ProtoTCP, "ec2.amazonaws.com"},
	{"203.0.113.22", 443, flow.ProtoTCP, "s3.amazonaws.com"},
	{"203.0.113.30", 123, flow.ProtoUDP, "1.rhel.pool.ntp.org"},
	{"203.0.113.31", 123, flow.ProtoUDP, "2.rhel.pool.ntp.org"},
}

const upstreamDNS = "192.0.2.53"

// Generate returns a realistic NetObserv capture: pods and nodes talking inside the
// cluster, to services, to external servers (TCP with SYN and response legs, UDP NTP and DNS
// with DnsName), router responses to external clients, in both record formats.
func Generate(cfg GenConfig) []Generated {
	if cfg.Namespaces <= 0 {
		cfg.Namespaces = 40
	}
	g := &gen{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	g.topology()
	if cfg.Chunk != 0 {
		g.r = rand.New(rand.NewPCG(cfg.Seed+cfg.Chunk, cfg.Chunk))
	}
	out := make([]Generated, 0, cfg.Records+8)
	for len(out) < cfg.Records {
		out = g.connection(out)
	}
	return out
}

type gen struct {
	cfg     GenConfig
	r       *rand.Rand
	nodes   []*node
	pods    []endpoint // application and platform pods
	dns     []endpoint // dns-default pods
	router  []endpoint
	static  []endpoint // mirror pods
	svcs    []endpoint
	clients []string // external clients of the router
}

func (g *gen) topology() {
	for i := range 6 {
		role := "worker"
		if i < 3 {
			role = "master"
		}
		g.nodes = append(g.nodes, &node{
			name: fmt.Sprintf("ip-10-0-0-%d.ec2.internal", 10+i),
			ip:   fmt.Sprintf("10.0.0.%d", 10+i),
			role: role,
		})
	}
	podIP := 0
	newPod := func(ns, owner, ownerType string) endpoint {
		podIP++
		n := g.nodes[g.r.IntN(len(g.nodes))]
		return endpoint{
			ns: ns, owner: owner, ownerType: ownerType, typ: "Pod",
			name: fmt.Sprintf("%s-%05x", owner, g.r.Uint32()&0xfffff),
			host: n.name, node: n, subnet: "Pods",
			addr: fmt.Sprintf("10.%d.%d.%d", 128+podIP/65536%4, podIP/256%256, podIP%256),
		}
	}
	platform := []struct{ ns, owner, kind string }{
		{"openshift-image-registry", "image-registry", "Deployment"},
		{"openshift-insights", "insights-operator", "Deployment"},
		{"openshift-cloud-credential-operator", "cloud-credential-operator", "Deployment"},
		{"openshift-machine-api", "machine-api-controllers", "Deployment"},
		{"openshift-monitoring", "telemeter-client", "Deployment"},
		{"openshift-marketplace", "redhat-operators", "Pod"},
	}
	for _, p := range platform {
		for range 2 {
			g.pods = append(g.pods, newPod(p.ns, p.owner, p.kind))
		}
	}
	kinds := []string{"Deployment", "StatefulSet", "DaemonSet", "Job"}
	for i := range g.cfg.Namespaces {
		ns := fmt.Sprintf("e2e-app-%02d", i)
		for w := range 3 {
			owner := fmt.Sprintf("workload-%d", w)
			kind := kinds[(i+w)%len(kinds)]
			for range 2 {
				g.pods = append(g.pods, newPod(ns, owner, kind))
			}
		}
	}
	for range 6 {
		g.dns = append(g.dns, newPod("openshift-dns", "dns-default", "DaemonSet"))
	}
	// Mirror pods of the control plane: owned by their node, named "<name>-<node>".
	for _, n := range g.nodes[:3] {
		p := newPod("openshift-kube-apiserver", n.name, "Node")
		p.name, p.host, p.node = "kube-apiserver-"+n.name, n.name, n
		g.static = append(g.static, p)
	}
	for range 2 {
		g.router = append(g.router, newPod("openshift-ingress", "router-default", "Deployment"))
	}
	for i, ns := range []string{"openshift-apiserver", "openshift-console", "default"} {
		g.svcs = append(g.svcs, endpoint{ns: ns, owner: "svc", name: "svc", typ: "Service",
			addr: fmt.Sprintf("172.30.0.%d", 10+i), subnet: "Services"})
	}
	for i := range 50 {
		g.clients = append(g.clients, fmt.Sprintf("203.0.113.%d", 100+i))
	}
}

func (g *gen) nodeEndpoint(n *node) endpoint {
	return endpoint{owner: n.name, ownerType: "Node", name: n.name, typ: "Node", host: n.name,
		addr: n.ip, subnet: "Machines", node: n}
}

func external(addr string) endpoint { return endpoint{addr: addr} }

func (g *gen) ephemeral() int { return 32768 + g.r.IntN(28232) }

// connection appends the records of one connection (both legs, a few records each).
func (g *gen) connection(out []Generated) []Generated {
	format := FormatNew
	if g.r.Float64() < g.cfg.OldFormat {
		format = FormatOld
	}
	k := g.r.IntN(100)
	switch {
	case k < 30: // pod → pod, inside the cluster
		a, b := g.pods[g.r.IntN(len(g.pods))], g.pods[g.r.IntN(len(g.pods))]
		return g.tcp(out, format, a, b, []int{8443, 5432, 9090}[g.r.IntN(3)], false)
	case k < 42: // pod → service
		return g.tcp(out, format, g.pods[g.r.IntN(len(g.pods))], g.svcs[g.r.IntN(len(g.svcs))], 443, false)
	case k < 52: // node → node (etcd, kubelet)
		a, b := g.nodes[g.r.IntN(3)], g.nodes[g.r.IntN(len(g.nodes))]
		return g.tcp(out, format, g.nodeEndpoint(a), g.nodeEndpoint(b), []int{2379, 10250}[g.r.IntN(2)], false)
	case k < 70: // pod → external server
		s := externalServers[g.r.IntN(len(externalServers)-2)]
		pod := g.pods[g.r.IntN(len(g.pods))]
		first := len(out)
		out = g.tcp(out, format, pod, external(s.addr), s.port, true)
		// The test of SNAT comes after the connection's draws: without SNAT the capture is
		// the one the same seed always gave.
		if g.cfg.SNAT > 0 && g.r.Float64() < g.cfg.SNAT {
			out = g.snat(out, first, format, pod)
		}
		return out
	case k < 72: // mirror pods → cloud API; rarely, an app's UDP between two dynamic ports
		if g.r.IntN(8) != 0 {
			return g.tcp(out, format, g.static[g.r.IntN(len(g.static))], external("203.0.113.20"), 443, true)
		}
		return g.udp(out, format, g.pods[g.r.IntN(len(g.pods))], external("198.51.100.40"), 40000+g.r.IntN(3), "", true)
	case k < 80: // node (kubelet, CRI-O, host-network pods) → external
		s := externalServers[g.r.IntN(len(externalServers))]
		src := g.nodeEndpoint(g.nodes[g.r.IntN(len(g.nodes))])
		if s.proto == flow.ProtoUDP {
			return g.udp(out, format, src, external(s.addr), 123, "", true)
		}
		return g.tcp(out, format, src, external(s.addr), s.port, true)
	case k < 88: // pod → cluster DNS, and cluster DNS → upstream resolver with DnsName
		src := g.pods[g.r.IntN(len(g.pods))]
		d := g.dns[g.r.IntN(len(g.dns))]
		s := externalServers[g.r.IntN(len(externalServers))]
		out = g.udp(out, format, src, d, 53, s.dns, false)
		return g.udp(out, format, d, external(upstreamDNS), 53, s.dns, true)
	default: // an external client → the router, and the router's answers leaving the cluster
		c := external(g.clients[g.r.IntN(len(g.clients))])
		return g.tcp(out, format, c, g.router[g.r.IntN(len(g.router))], 443, true)
	}
}

// tcp writes a TCP connection: client records (the first with SYN) and server records
// (the first with SYN_ACK).
func (g *gen) tcp(out []Generated, f Format, client, server endpoint, port int, egress bool) []Generated {
	cport := g.ephemeral()
	n := 1 + g.r.IntN(3)
	end := g.time()
	for i := range n {
		var cf, sf uint32 = flow.FlagACK | flow.FlagPSH, flow.FlagACK | flow.FlagPSH
		if i == 0 {
			cf |= flow.FlagSYN
			sf |= flow.FlagSYNACK
		}
		if i == n-1 {
			cf |= flow.FlagFIN
			sf |= flow.FlagFIN
		}
		t := end.Add(time.Duration(i) * 5 * time.Second)
		if !t.Before(g.cfg.To) {
			t = end
		}
		out = append(out, g.record(f, client, server, cport, port, flow.ProtoTCP, cf, "", t, egress))
		out = append(out, g.record(f, server, client, port, cport, flow.ProtoTCP, sf, "", t, egress))
	}
	return out
}

// snat adds PacketTranslation fields to the pod's client records in out[first:] and, for
// each, the record of the same packets after OVN SNATs them to the node's address.
func (g *gen) snat(out []Generated, first int, f Format, pod endpoint) []Generated {
	xport := 0
	if g.r.IntN(8) == 0 {
		xport = 1024 + g.r.IntN(30000) // a translated port below the dynamic range
	}
	n := len(out)
	for i := first; i < n; i++ {
		r := &out[i]
		if r.Truth.SrcAddr != pod.addr {
			continue
		}
		port := xport
		if port == 0 {
			port = r.Truth.SrcPort
		}
		r.Truth.XlatSrcAddr, r.Truth.XlatSrcPort = pod.node.ip, port
		r.Truth.XlatDstAddr, r.Truth.XlatDstPort = r.Truth.DstAddr, r.Truth.DstPort
		var line map[string]any
		dec := json.NewDecoder(bytes.NewReader(r.Line))
		dec.UseNumber()
		if err := dec.Decode(&line); err != nil {
			panic(err) // written by record
		}
		line["XlatSrcAddr"], line["XlatSrcPort"] = r.Truth.XlatSrcAddr, port
		line["XlatDstAddr"], line["XlatDstPort"] = r.Truth.XlatDstAddr, r.Truth.XlatDstPort
		b, err := json.Marshal(line)
		if err != nil {
			panic(err)
		}
		r.Line = b
		leg := g.record(f, g.nodeEndpoint(pod.node), external(r.Truth.DstAddr), port, r.Truth.DstPort, r.Truth.Proto, r.Truth.Flags, "", r.Time, true)
		leg.SNATLeg = true
		out = append(out, leg)
	}
	return out
}

func (g *gen) udp(out []Generated, f Format, client, server endpoint, port int, dnsName string, egress bool) []Generated {
	cport := g.ephemeral()
	t := g.time()
	// The NetObserv agent names a DNS exchange on the answer only.
	out = append(out, g.record(f, client, server, cport, port, flow.ProtoUDP, 0, "", t, egress))
	return append(out, g.record(f, server, client, port, cport, flow.ProtoUDP, 0, dnsName, t, egress))
}

func (g *gen) time() time.Time {
	span := g.cfg.To.Sub(g.cfg.From).Milliseconds()
	return g.cfg.From.Truncate(time.Millisecond).Add(time.Duration(g.r.Int64N(max(span, 1))) * time.Millisecond)
}

// record writes one flow record seen by the agent of the node of src (or dst).
func (g *gen) record(f Format, src, dst endpoint, sport, dport, proto int, flags uint32, dnsName string, end time.Time, egress bool) Generated {
	if end.Before(g.cfg.From) {
		end = g.cfg.From
	}
	start := end.Add(-time.Duration(g.r.IntN(3000)) * time.Millisecond)
	if start.Before(g.cfg.From) {
		start = end
	}
	agent := src.node
	if agent == nil {
		agent = dst.node
	}
	direction := "1"
	switch {
	case src.node != nil && dst.node != nil && src.node == dst.node:
		direction = "2"
	case src.node == nil:
		direction = "0"
	}
	if g.r.IntN(20) == 0 {
		direction = "" // host IPs unknown to the processor: no FlowDirection label
	}
	layer := "infra"
	for _, ns := range []string{src.ns, dst.ns} {
		if ns != "" && !strings.HasPrefix(ns, "openshift") && ns != "netobserv" {
			layer = "app"
		}
	}
	bytes := int64(66 + g.r.IntN(20000))
	packets := int64(1 + g.r.IntN(40))

	labels := map[string]string{"app": "netobserv-flowcollector"}
	line := map[string]any{}
	set := func(label bool, k, v string) {
		if v == "" {
			return
		}
		if label {
			labels[k] = v
		} else {
			line[k] = v
		}
	}
	newF := f == FormatNew
	set(true, "SrcK8S_Namespace", src.ns)
	set(true, "SrcK8S_OwnerName", src.owner)
	set(newF, "SrcK8S_Type", src.typ)
	set(true, "DstK8S_Namespace", dst.ns)
	set(true, "DstK8S_OwnerName", dst.owner)
	set(newF, "DstK8S_Type", dst.typ)
	set(true, "FlowDirection", direction)
	if newF {
		set(true, "K8S_FlowLayer", layer)
		set(false, "SrcSubnetLabel", src.subnet)
		set(false, "DstSubnetLabel", dst.subnet)
	}
	set(false, "SrcK8S_OwnerType", src.ownerType)
	set(false, "SrcK8S_Name", src.name)
	set(false, "SrcK8S_HostName", src.host)
	set(false, "DstK8S_OwnerType", dst.ownerType)
	set(false, "DstK8S_Name", dst.name)
	set(false, "DstK8S_HostName", dst.host)
	line["SrcAddr"], line["DstAddr"] = src.addr, dst.addr
	line["SrcPort"], line["DstPort"] = sport, dport
	line["Proto"] = proto
	line["Bytes"], line["Packets"] = bytes, packets
	line["TimeFlowStartMs"], line["TimeFlowEndMs"] = start.UnixMilli(), end.UnixMilli()
	line["TimeReceived"] = end.Unix() + 1
	line["AgentIP"] = agent.ip
	line["Etype"] = 2048
	ifaces, ifdirs := []string{"genev_sys_6081", "eth0"}, []int{1, 1}
	if newF {
		if proto == flow.ProtoTCP {
			line["Flags"] = flow.FlagNames(flags)
		} else {
			line["Flags"] = []string{}
		}
		line["Interfaces"], line["IfDirections"] = ifaces, ifdirs
		line["Sampling"] = 1
	} else {
		line["Flags"] = flags
		line["Interface"], line["IfDirection"] = ifaces[1], ifdirs[1]
		line["Duplicate"] = false
	}
	if dnsName != "" {
		line["DnsId"] = 1 + g.r.IntN(65535)
		if newF {
			line["DnsName"] = dnsName
		}
	}
	b, err := json.Marshal(line)
	if err != nil {
		panic(err) // only plain values above
	}

	truth := flow.Record{
		SrcNamespace: src.ns, SrcOwnerName: src.owner, SrcOwnerType: src.ownerType, SrcName: src.name,
		SrcType: src.typ, SrcHostName: src.host, SrcAddr: src.addr, SrcPort: sport,
		DstNamespace: dst.ns, DstOwnerName: dst.owner, DstOwnerType: dst.ownerType, DstName: dst.name,
		DstType: dst.typ, DstHostName: dst.host, DstAddr: dst.addr, DstPort: dport,
		Proto: proto, Flags: flags, FlowDirection: direction,
		Bytes: bytes, Packets: packets, Start: start.UTC(), End: end.UTC(), Count: 1,
		AgentIP: agent.ip, Etype: 2048,
	}
	if newF {
		truth.SrcSubnetLabel, truth.DstSubnetLabel, truth.FlowLayer = src.subnet, dst.subnet, layer
		truth.Interfaces, truth.IfDirections, truth.Sampling = "genev_sys_6081,eth0", "1,1", 1
		truth.DNSName = dnsName
	} else {
		truth.Interfaces, truth.IfDirections = "eth0", "1"
	}
	if id, ok := line["DnsId"].(int); ok {
		truth.DNSID = id
	}
	return Generated{
		Entry:  Entry{Labels: labels, Time: end, Line: b},
		Truth:  truth,
		Egress: egress && dst.typ == "" && dst.subnet == "",
	}
}

// Entries returns the Loki entries of gs.
func Entries(gs []Generated) []Entry {
	out := make([]Entry, len(gs))
	for i := range gs {
		out[i] = gs[i].Entry
	}
	return out
}

// NodeRoles are the roles of the generated nodes (three masters, three workers).
func NodeRoles() map[string]string {
	out := map[string]string{}
	for i := range 6 {
		role := "worker"
		if i < 3 {
			role = "master"
		}
		out[fmt.Sprintf("ip-10-0-0-%d.ec2.internal", 10+i)] = role
	}
	return out
}

// ClusterNetworks are the generated cluster's pod, service and machine networks.
var ClusterNetworks = []string{"10.128.0.0/14", "172.30.0.0/16", "10.0.0.0/16"}
