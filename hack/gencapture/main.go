// Command gencapture writes the demo capture in testdata/demo: thirty minutes of NetObserv
// 1.10 flow records (list-format Flags, subnet labels, DNS tracking, packet translation) of an
// AWS HighlyAvailable OpenShift 4.21 cluster, as a Loki query_range answer, plus the IP → name
// resolutions the suite would have recorded in the cluster during that window.
//
// The capture is synthetic: it is composed in NetObserv's real record format (see
// ../shared/netobserv-samples) from what is known of a cluster's egress, so that the demo can
// show the whole pipeline without a cluster. It is deterministic: same seed, same bytes.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

var (
	windowStart = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	windowEnd   = windowStart.Add(30 * time.Minute)
)

type node struct {
	name, ip, role string
}

var nodes = []node{
	{"ip-10-0-1-10.ec2.internal", "10.0.1.10", "control-plane"},
	{"ip-10-0-1-11.ec2.internal", "10.0.1.11", "control-plane"},
	{"ip-10-0-1-12.ec2.internal", "10.0.1.12", "control-plane"},
	{"ip-10-0-2-20.ec2.internal", "10.0.2.20", "worker"},
	{"ip-10-0-2-21.ec2.internal", "10.0.2.21", "worker"},
	{"ip-10-0-2-22.ec2.internal", "10.0.2.22", "worker"},
}

// resolution is one host → address binding valid for a time range, as the in-cluster
// resolver records it; CDNs rotate, so one name has several over the window.
type resolution struct {
	Address string    `json:"address"`
	Host    string    `json:"host"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
}

// dest is an external destination; addrs rotate: the first half of the window uses
// addrs[0], the second half the last element.
type dest struct {
	host  string // "" when the destination is not in the baseline, so nobody resolves it
	addrs [][]string
}

func (d dest) addrAt(r *rand.Rand, t time.Time) string {
	set := d.addrs[0]
	if t.Sub(windowStart) >= 15*time.Minute {
		set = d.addrs[len(d.addrs)-1]
	}
	return set[r.IntN(len(set))]
}

var (
	quay        = dest{"quay.io", [][]string{{"44.193.101.5", "52.0.232.252"}, {"34.225.41.113", "3.227.212.27"}}}
	cdnQuay     = dest{"cdn01.quay.io", [][]string{{"18.160.10.23", "18.160.10.90"}}}
	rhRegistry  = dest{"registry.redhat.io", [][]string{{"23.50.226.110"}, {"104.96.141.56"}}}
	infogw      = dest{"infogw.api.openshift.com", [][]string{{"3.93.157.34"}}}
	consoleRH   = dest{"console.redhat.com", [][]string{{"23.1.78.121"}}}
	apiOpenShft = dest{"api.openshift.com", [][]string{{"54.225.63.5"}}}
	ec2         = dest{"ec2.us-east-1.amazonaws.com", [][]string{{"52.46.135.101"}, {"52.46.142.207"}}}
	elb         = dest{"elasticloadbalancing.us-east-1.amazonaws.com", [][]string{{"52.94.224.7"}}}
	s3          = dest{"s3.us-east-1.amazonaws.com", [][]string{{"52.216.24.60", "54.231.160.88"}}}
	ntp1        = dest{"1.rhel.pool.ntp.org", [][]string{{"162.159.200.1"}}}
	ntp2        = dest{"2.rhel.pool.ntp.org", [][]string{{"204.17.205.8"}}}
	// The undocumented one: a catalog pod fetching from GitHub. Nobody resolves github.com
	// (it is in no baseline), so the matrix can only name it by IP; its DNS flow says why.
	github = dest{"", [][]string{{"140.82.112.4"}}}
)

var allDests = []dest{quay, cdnQuay, rhRegistry, infogw, consoleRH, apiOpenShft, ec2, elb, s3, ntp1, ntp2}

type pod struct {
	ns, owner, ownerType, name, ip string
	node                           node
	hostNetwork                    bool
}

type record map[string]any

type gen struct {
	r       *rand.Rand
	records []record
}

func main() {
	out := flag.String("out", "testdata/demo", "output directory")
	flag.Parse()
	g := &gen{r: rand.New(rand.NewPCG(4, 21))}
	g.scenario()
	if err := g.write(*out); err != nil {
		fmt.Fprintf(os.Stderr, "gencapture: %v\n", err)
		os.Exit(1)
	}
}

func (g *gen) scenario() {
	w0, w1 := nodes[3], nodes[4]
	m0 := nodes[0]
	telemeter := pod{"openshift-monitoring", "telemeter-client", "Deployment", "telemeter-client-6c9f7d5b8-x2lqp", "10.131.0.15", w1, false}
	insights := pod{"openshift-insights", "insights-operator", "Deployment", "insights-operator-7d8b9c6f4-k5mnw", "10.130.0.22", m0, false}
	cvo := pod{"openshift-cluster-version", "cluster-version-operator", "Deployment", "cluster-version-operator-5d9c8b7f6-2hqxj", m0.ip, m0, true}
	mapi := pod{"openshift-machine-api", "machine-api-controllers", "Deployment", "machine-api-controllers-84f6d9c7b-vwz6p", "10.130.0.31", m0, false}
	ingressOp := pod{"openshift-ingress-operator", "ingress-operator", "Deployment", "ingress-operator-6b7c5d9f8-rj4t2", "10.129.0.17", nodes[1], false}
	registry := pod{"openshift-image-registry", "image-registry", "Deployment", "image-registry-5f7b8c9d6-m2kxp", "10.131.0.44", w1, false}
	catalog := pod{"openshift-marketplace", "community-operators", "CatalogSource", "community-operators-8xk2p", "10.128.2.19", w0, false}
	router := pod{"openshift-ingress", "router-default", "Deployment", "router-default-7f9c6d8b5-hm2vz", "10.131.0.9", w1, false}
	console := pod{"openshift-console", "console", "Deployment", "console-6d8f9b7c5-t4wqz", "10.129.0.40", nodes[1], false}
	prom := pod{"openshift-monitoring", "prometheus-k8s", "StatefulSet", "prometheus-k8s-0", "10.131.0.20", w1, false}
	dnsPods := map[string]pod{}
	for i, n := range nodes {
		dnsPods[n.name] = pod{"openshift-dns", "dns-default", "DaemonSet", fmt.Sprintf("dns-default-%c9x4k", 'a'+i), fmt.Sprintf("10.%d.0.5", 128+i%4), n, false}
	}

	// CRI-O image pulls from every node: bursts of parallel TCP 443 connections to the
	// registries and their CDN, at start-up of pods scheduled during the window.
	for _, n := range nodes {
		src := nodeSource(n)
		for b := 0; b < 3; b++ {
			at := windowStart.Add(time.Duration(g.r.IntN(28*60)) * time.Second)
			for _, d := range []dest{quay, cdnQuay, cdnQuay, rhRegistry} {
				for c := 0; c < 1+g.r.IntN(3); c++ {
					g.tcp(src, d, 443, at.Add(time.Duration(g.r.IntN(4000))*time.Millisecond), time.Duration(2+g.r.IntN(20))*time.Second, 200_000+g.r.IntN(40_000_000))
				}
			}
		}
		// chronyd polls its pool servers every 64 s from an ephemeral port.
		for _, d := range []dest{ntp1, ntp2} {
			port := 32768 + g.r.IntN(28000)
			for t := windowStart.Add(time.Duration(g.r.IntN(64)) * time.Second); t.Before(windowEnd); t = t.Add(64 * time.Second) {
				g.udp(src, d, port, 123, t, 90)
			}
		}
	}
	// The cluster-version-operator runs on the host network: its update-graph polls come
	// from the node address, so they belong to the control-plane node role.
	for t := windowStart.Add(40 * time.Second); t.Before(windowEnd); t = t.Add(4 * time.Minute) {
		g.tcp(nodeSource(cvo.node), apiOpenShft, 443, t, 2*time.Second, 18_000)
	}
	// Telemetry every 4.5 minutes; insights uploads; cloud API controllers; registry storage.
	for t := windowStart.Add(25 * time.Second); t.Before(windowEnd); t = t.Add(270 * time.Second) {
		g.tcp(podSource(telemeter), infogw, 443, t, 1500*time.Millisecond, 60_000)
	}
	for t := windowStart.Add(3 * time.Minute); t.Before(windowEnd); t = t.Add(10 * time.Minute) {
		g.tcp(podSource(insights), consoleRH, 443, t, 3*time.Second, 400_000)
	}
	// machine-api keeps one long-lived connection to EC2: its SYN was before the window, so
	// only the well-known-port rule can place it. The 2nd half opens a new one.
	g.tcpLong(podSource(mapi), ec2, 443, windowStart.Add(-20*time.Minute), 35*time.Minute, false)
	for t := windowStart.Add(2 * time.Minute); t.Before(windowEnd); t = t.Add(5 * time.Minute) {
		g.tcp(podSource(mapi), ec2, 443, t, time.Second, 9_000)
		g.tcp(podSource(ingressOp), elb, 443, t.Add(20*time.Second), time.Second, 7_000)
	}
	for i := 0; i < 40; i++ {
		g.tcp(podSource(registry), s3, 443, windowStart.Add(time.Duration(g.r.IntN(29*60))*time.Second), time.Duration(1+g.r.IntN(8))*time.Second, 50_000+g.r.IntN(8_000_000))
	}
	// The undocumented flow: a DNS query for github.com through the cluster DNS, then HTTPS.
	for t := windowStart.Add(9 * time.Minute); t.Before(windowEnd); t = t.Add(10 * time.Minute) {
		g.dns(podSource(catalog), dnsPods[catalog.node.name], "github.com", t)
		g.tcp(podSource(catalog), github, 443, t.Add(30*time.Millisecond), 4*time.Second, 1_200_000)
	}
	// Cluster DNS forwards to the VPC resolver, inside the machine network: not egress, but
	// the DNS names it carries are recorded.
	for _, d := range allDests {
		for i := 0; i < 4; i++ {
			n := nodes[g.r.IntN(len(nodes))]
			g.dnsUpstream(dnsPods[n.name], d.host, windowStart.Add(time.Duration(g.r.IntN(29*60))*time.Second))
		}
	}
	// Ingress through the router: the client connects in; the router's answers go out from
	// port 443 to the client's ephemeral port. Response legs, never matrix entries.
	for i := 0; i < 30; i++ {
		client := fmt.Sprintf("198.51.100.%d", 2+g.r.IntN(200))
		g.inbound(router, client, 443, windowStart.Add(time.Duration(g.r.IntN(29*60))*time.Second))
	}
	// In-cluster traffic dominates any capture; the egress selection must drop it.
	for i := 0; i < 600; i++ {
		at := windowStart.Add(time.Duration(g.r.IntN(29*60)) * time.Second)
		g.internal(router, console, 8443, at)
		if i%3 == 0 {
			n := nodes[g.r.IntN(len(nodes))]
			g.internalToNode(prom, n, 9100, at)
		}
	}
}

type source struct {
	labels record
	fields record
	addr   string
	node   node
}

func nodeSource(n node) source {
	return source{
		labels: record{"SrcK8S_Namespace": "", "SrcK8S_OwnerName": n.name, "SrcK8S_Type": "Node"},
		fields: record{"SrcK8S_Name": n.name, "SrcK8S_OwnerType": "Node", "SrcK8S_HostIP": n.ip, "SrcK8S_HostName": n.name, "SrcSubnetLabel": "Machines"},
		addr:   n.ip, node: n,
	}
}

func podSource(p pod) source {
	if p.hostNetwork {
		return nodeSource(p.node)
	}
	return source{
		labels: record{"SrcK8S_Namespace": p.ns, "SrcK8S_OwnerName": p.owner, "SrcK8S_Type": "Pod"},
		fields: record{"SrcK8S_Name": p.name, "SrcK8S_OwnerType": p.ownerType, "SrcK8S_HostIP": p.node.ip, "SrcK8S_HostName": p.node.name, "SrcSubnetLabel": "Pods"},
		addr:   p.ip, node: p.node,
	}
}

func layer(ns string) string {
	if ns == "" || len(ns) >= 9 && ns[:9] == "openshift" {
		return "infra"
	}
	return "app"
}

func (g *gen) emit(src source, dstAddr string, dstLabels, dstFields record, sport, dport, proto int, flags []string, start, end time.Time, bytes, packets int, direction string, extra record) {
	rec := record{
		"app":             "netobserv-flowcollector",
		"AgentIP":         src.node.ip,
		"Bytes":           bytes,
		"Packets":         packets,
		"Dscp":            0,
		"Etype":           2048,
		"Proto":           proto,
		"Sampling":        1,
		"SrcAddr":         src.addr,
		"DstAddr":         dstAddr,
		"SrcPort":         sport,
		"DstPort":         dport,
		"SrcMac":          "0a:58:0a:83:00:01",
		"DstMac":          "02:42:ac:11:00:02",
		"TimeFlowStartMs": start.UnixMilli(),
		"TimeFlowEndMs":   end.UnixMilli(),
		"TimeReceived":    end.Add(1200 * time.Millisecond).Unix(),
		"Interfaces":      []string{"br-ex", "ens5"},
		"IfDirections":    []int{1, 1},
		"Udns":            []string{""},
		"FlowDirection":   direction,
		"K8S_FlowLayer":   layer(fmt.Sprint(src.labels["SrcK8S_Namespace"])),
	}
	if proto == 6 {
		rec["Flags"] = flags
		rec["TimeFlowRttNs"] = 600_000 + g.r.IntN(20_000_000)
	}
	for _, m := range []record{src.labels, src.fields, dstLabels, dstFields, extra} {
		for k, v := range m {
			if v != "" {
				rec[k] = v
			}
		}
	}
	if rec["SrcK8S_Type"] == "Pod" && dstLabels == nil {
		// PacketTranslation: OVN SNATs pod egress to the node address on the way out.
		rec["XlatSrcAddr"] = src.node.ip
		rec["XlatSrcPort"] = sport
		rec["XlatDstAddr"] = dstAddr
		rec["XlatDstPort"] = dport
		rec["Interfaces"] = []string{"ovn-k8s-mp0", "br-ex"}
		if dstFields == nil {
			// The same connection after the SNAT, leaving br-ex from the node's address: the
			// agent records it again as a node flow (the matrix must fold it into the pod).
			g.records = append(g.records, snatLeg(rec, src.node))
		}
	}
	g.records = append(g.records, rec)
}

// snatLeg is the node-side record of a pod egress record after OVN's SNAT to node n.
func snatLeg(podRec record, n node) record {
	leg := record{}
	for k, v := range podRec {
		leg[k] = v
	}
	for _, k := range []string{"SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_Type", "SrcK8S_Name", "SrcK8S_OwnerType",
		"SrcK8S_HostIP", "SrcK8S_HostName", "SrcSubnetLabel", "XlatSrcAddr", "XlatSrcPort", "XlatDstAddr", "XlatDstPort"} {
		delete(leg, k)
	}
	ns := nodeSource(n)
	for _, m := range []record{ns.labels, ns.fields} {
		for k, v := range m {
			if v != "" {
				leg[k] = v
			}
		}
	}
	leg["SrcAddr"] = n.ip
	leg["SrcPort"] = podRec["XlatSrcPort"]
	leg["SrcMac"] = "02:5e:0a:00:00:01"
	leg["Interfaces"] = []string{"br-ex", "ens5"}
	leg["IfDirections"] = []int{1, 1}
	leg["FlowDirection"] = "1"
	leg["K8S_FlowLayer"] = layer("")
	return leg
}

// tcp emits one short connection: client → server records (the first carries the SYN) and
// the server's answers (src outside: never egress).
func (g *gen) tcp(src source, d dest, port int, at time.Time, dur time.Duration, bytes int) {
	g.tcpConn(src, d, port, at, dur, bytes, true)
}

func (g *gen) tcpLong(src source, d dest, port int, at time.Time, dur time.Duration, syn bool) {
	g.tcpConn(src, d, port, at, dur, 0, syn)
}

func (g *gen) tcpConn(src source, d dest, port int, at time.Time, dur time.Duration, bytes int, synInWindow bool) {
	sport := 32768 + g.r.IntN(28000)
	addr := d.addrAt(g.r, at)
	// The agent evicts an active flow every 5 s (cacheActiveTimeout in CI), so a long
	// connection is a series of records; only the first holds the SYN.
	first := true
	for t := at; t.Before(at.Add(dur)) || first; t = t.Add(5 * time.Second) {
		end := t.Add(min(5*time.Second, at.Add(dur).Sub(t)))
		if end.After(windowEnd) {
			break
		}
		if end.Before(windowStart) {
			first = false
			continue
		}
		flags := []string{"ACK", "PSH"}
		rflags := []string{"ACK", "PSH"}
		if first && synInWindow {
			flags = []string{"SYN", "ACK", "PSH"}
			rflags = []string{"SYN_ACK", "ACK", "PSH"}
		}
		if !end.Before(at.Add(dur)) {
			flags = append(flags, "FIN")
			rflags = append(rflags, "FIN_ACK")
		}
		pk := 3 + g.r.IntN(40)
		up := max(bytes/20, 600+g.r.IntN(4000))
		g.emit(src, addr, nil, nil, sport, port, 6, flags, t, end, up, pk, "1", nil)
		// The answer, seen as it enters the node: source outside the cluster.
		g.emitInbound(addr, src, port, sport, rflags, t, end, max(bytes, 2000), pk+g.r.IntN(20))
		first = false
	}
}

func (g *gen) emitInbound(from string, to source, sport, dport int, flags []string, start, end time.Time, bytes, packets int) {
	rec := record{
		"app": "netobserv-flowcollector", "AgentIP": to.node.ip, "Bytes": bytes, "Packets": packets,
		"Dscp": 0, "Etype": 2048, "Proto": 6, "Sampling": 1, "SrcAddr": from, "DstAddr": to.addr,
		"SrcPort": sport, "DstPort": dport, "Flags": flags, "SrcMac": "02:42:ac:11:00:02", "DstMac": "0a:58:0a:83:00:01",
		"TimeFlowStartMs": start.UnixMilli(), "TimeFlowEndMs": end.UnixMilli(), "TimeReceived": end.Add(time.Second).Unix(),
		"Interfaces": []string{"ens5", "br-ex"}, "IfDirections": []int{0, 0}, "FlowDirection": "0",
		"DstK8S_Namespace": to.labels["SrcK8S_Namespace"], "DstK8S_OwnerName": to.labels["SrcK8S_OwnerName"],
		"DstK8S_Type": to.labels["SrcK8S_Type"], "DstK8S_OwnerType": to.fields["SrcK8S_OwnerType"],
		"DstK8S_Name": to.fields["SrcK8S_Name"], "DstK8S_HostIP": to.node.ip, "DstK8S_HostName": to.node.name,
		"DstSubnetLabel": to.fields["SrcSubnetLabel"], "K8S_FlowLayer": layer(fmt.Sprint(to.labels["SrcK8S_Namespace"])),
	}
	for k, v := range rec {
		if v == "" {
			delete(rec, k)
		}
	}
	g.records = append(g.records, rec)
}

func (g *gen) udp(src source, d dest, sport, dport int, at time.Time, bytes int) {
	addr := d.addrAt(g.r, at)
	g.emit(src, addr, nil, nil, sport, dport, 17, nil, at, at.Add(30*time.Millisecond), bytes, 1, "1", nil)
	rec := record{
		"app": "netobserv-flowcollector", "AgentIP": src.node.ip, "Bytes": bytes, "Packets": 1, "Proto": 17,
		"Etype": 2048, "Sampling": 1, "SrcAddr": addr, "DstAddr": src.addr, "SrcPort": dport, "DstPort": sport,
		"TimeFlowStartMs": at.Add(20 * time.Millisecond).UnixMilli(), "TimeFlowEndMs": at.Add(30 * time.Millisecond).UnixMilli(),
		"TimeReceived": at.Add(time.Second).Unix(), "Interfaces": []string{"ens5", "br-ex"}, "IfDirections": []int{0, 0},
		"FlowDirection": "0", "DstK8S_Namespace": src.labels["SrcK8S_Namespace"], "DstK8S_OwnerName": src.labels["SrcK8S_OwnerName"],
		"DstK8S_Type": src.labels["SrcK8S_Type"], "DstK8S_OwnerType": src.fields["SrcK8S_OwnerType"], "DstSubnetLabel": src.fields["SrcSubnetLabel"],
		"K8S_FlowLayer": layer(fmt.Sprint(src.labels["SrcK8S_Namespace"])),
	}
	for k, v := range rec {
		if v == "" {
			delete(rec, k)
		}
	}
	g.records = append(g.records, rec)
}

// dns emits a pod's query to the cluster DNS service pod (in-cluster, so not egress).
func (g *gen) dns(src source, dnsPod pod, name string, at time.Time) {
	dst := podSource(dnsPod)
	g.emit(src, dnsPod.ip, record{"DstK8S_Namespace": dnsPod.ns, "DstK8S_OwnerName": dnsPod.owner, "DstK8S_Type": "Pod"},
		record{"DstK8S_OwnerType": dnsPod.ownerType, "DstK8S_Name": dnsPod.name, "DstSubnetLabel": "Pods", "DstK8S_HostIP": dst.node.ip},
		32768+g.r.IntN(28000), 5353, 17, nil, at, at.Add(2*time.Millisecond), 80, 1, "2",
		record{"DnsId": g.r.IntN(65535), "DnsFlags": 256, "DnsFlagsResponseCode": "NoError", "DnsLatencyMs": 1, "DnsName": name})
}

// dnsUpstream emits CoreDNS forwarding to the VPC resolver (machine network: not egress).
func (g *gen) dnsUpstream(dnsPod pod, name string, at time.Time) {
	g.emit(podSource(dnsPod), "10.0.0.2", nil, record{"DstSubnetLabel": "Machines"},
		32768+g.r.IntN(28000), 53, 17, nil, at, at.Add(3*time.Millisecond), 90, 1, "1",
		record{"DnsId": g.r.IntN(65535), "DnsFlags": 256, "DnsFlagsResponseCode": "NoError", "DnsLatencyMs": 2, "DnsName": name})
}

func (g *gen) inbound(p pod, client string, port int, at time.Time) {
	src := podSource(p)
	cport := 32768 + g.r.IntN(28000)
	end := at.Add(time.Duration(200+g.r.IntN(3000)) * time.Millisecond)
	g.emitInbound(client, src, cport, port, []string{"SYN", "ACK", "PSH"}, at, end, 900, 8)
	// The router's answer: inside → outside, from its listening port to the client's port.
	g.emit(src, client, nil, nil, port, cport, 6, []string{"SYN_ACK", "ACK", "PSH", "FIN_ACK"}, at, end, 24_000, 20, "1", nil)
}

func (g *gen) internal(from, to pod, port int, at time.Time) {
	dst := podSource(to)
	g.emit(podSource(from), to.ip, record{"DstK8S_Namespace": to.ns, "DstK8S_OwnerName": to.owner, "DstK8S_Type": "Pod"},
		record{"DstK8S_OwnerType": to.ownerType, "DstK8S_Name": to.name, "DstSubnetLabel": "Pods", "DstK8S_HostIP": dst.node.ip},
		32768+g.r.IntN(28000), port, 6, []string{"SYN", "ACK", "PSH", "FIN"}, at, at.Add(80*time.Millisecond), 3000, 12, "1", nil)
}

func (g *gen) internalToNode(from pod, n node, port int, at time.Time) {
	g.emit(podSource(from), n.ip, record{"DstK8S_OwnerName": n.name, "DstK8S_Type": "Node"},
		record{"DstK8S_OwnerType": "Node", "DstK8S_Name": n.name, "DstSubnetLabel": "Machines", "DstK8S_HostIP": n.ip},
		32768+g.r.IntN(28000), port, 6, []string{"SYN", "ACK", "PSH", "FIN"}, at, at.Add(40*time.Millisecond), 900, 6, "1", nil)
}

// labelKeys are the stream labels NetObserv's Loki writer indexes; they leave the JSON line.
var labelKeys = []string{"app", "SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_Type", "DstK8S_Namespace", "DstK8S_OwnerName", "DstK8S_Type", "K8S_FlowLayer", "FlowDirection"}

type stream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

func (g *gen) write(dir string) error {
	streams := map[string]*stream{}
	var order []string
	sort.SliceStable(g.records, func(i, j int) bool {
		return g.records[i]["TimeFlowEndMs"].(int64) < g.records[j]["TimeFlowEndMs"].(int64)
	})
	for _, rec := range g.records {
		labels := map[string]string{}
		for _, k := range labelKeys {
			if v, ok := rec[k]; ok && v != "" {
				labels[k] = fmt.Sprint(v)
				delete(rec, k)
			}
		}
		key, _ := json.Marshal(labels)
		s, ok := streams[string(key)]
		if !ok {
			s = &stream{Stream: labels}
			streams[string(key)] = s
			order = append(order, string(key))
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		ts := strconv.FormatInt(rec["TimeFlowEndMs"].(int64)*int64(time.Millisecond), 10)
		s.Values = append(s.Values, [2]string{ts, string(line)})
	}
	sort.Strings(order)
	result := make([]*stream, 0, len(order))
	for _, k := range order {
		result = append(result, streams[k])
	}
	answer := map[string]any{"status": "success", "data": map[string]any{"resultType": "streams", "result": result}}
	if err := writeJSON(filepath.Join(dir, "capture.json"), answer); err != nil {
		return err
	}
	var res []resolution
	for _, d := range allDests {
		for i, set := range d.addrs {
			from, to := windowStart.Add(-time.Minute), windowEnd
			if len(d.addrs) > 1 {
				if i == 0 {
					to = windowStart.Add(15 * time.Minute)
				} else {
					from = windowStart.Add(15 * time.Minute)
				}
			}
			for _, a := range set {
				res = append(res, resolution{Address: a, Host: d.host, From: from, To: to})
			}
		}
	}
	if err := writeJSON(filepath.Join(dir, "names.json"), map[string]any{"resolutions": res}); err != nil {
		return err
	}
	fmt.Printf("gencapture: %d records in %d streams, %d resolutions, window %s – %s\n",
		len(g.records), len(result), len(res), windowStart.Format(time.RFC3339), windowEnd.Format(time.RFC3339))
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
