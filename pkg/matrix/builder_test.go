package matrix

import (
	"bytes"
	"fmt"
	"math/rand"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

var t0 = time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)

func testOptions() Options {
	return Options{
		ClusterNetworks: []netip.Prefix{
			netip.MustParsePrefix("10.128.0.0/14"), // pods
			netip.MustParsePrefix("172.30.0.0/16"), // services
			netip.MustParsePrefix("10.0.0.0/16"),   // machines
		},
		NodeRoles: map[string]string{"m0": RoleControlPlane, "m1": "master", "w0": RoleWorker, "i0": "infra"},
		Ports:     PortPolicy{Extra: map[int]bool{6443: true}},
	}
}

// rec is a pod → external TCP 443 client record with a SYN; mods change it.
func rec(mods ...func(*flow.Record)) flow.Record {
	r := flow.Record{
		SrcNamespace: "app", SrcOwnerName: "web", SrcOwnerType: "Deployment", SrcName: "web-6d5f-abcde", SrcType: "Pod",
		SrcHostName: "w0", SrcAddr: "10.128.0.5", SrcPort: 40000, SrcSubnetLabel: "Pods",
		DstAddr: "52.1.2.3", DstPort: 443, Proto: flow.ProtoTCP, Flags: flow.FlagSYN | flow.FlagACK,
		FlowDirection: "1", Bytes: 100, Packets: 2, Start: t0, End: t0.Add(time.Second), Count: 1,
	}
	for _, m := range mods {
		m(&r)
	}
	return r
}

// checkStats asserts that every record ended in exactly one bucket.
func checkStats(t *testing.T, m *Matrix) {
	t.Helper()
	s := m.Stats
	if sum := s.Egress + s.NotEgress + s.Responses + s.Undecided + s.DNSNamedOnly + s.Duplicates + s.Translated; sum != s.Records {
		t.Fatalf("stats do not add up: %+v (sum %d)", s, sum)
	}
	var flows int64
	for _, e := range m.Entries {
		flows += e.Flows
	}
	if flows != s.Egress {
		t.Fatalf("entries hold %d flows, Stats.Egress %d", flows, s.Egress)
	}
	var und int64
	for _, u := range m.Undecided {
		und += u.Flows
	}
	if len(m.Undecided) == m.UndecidedDistinct && und != s.Undecided {
		t.Fatalf("undecided examples hold %d flows, Stats.Undecided %d", und, s.Undecided)
	}
}

func build(t *testing.T, opts Options, recs ...flow.Record) *Matrix {
	t.Helper()
	m := Build(recs, opts)
	checkStats(t, m)
	return m
}

func keys(m *Matrix) string {
	var ks []string
	for _, e := range m.Entries {
		ks = append(ks, e.Key()+" "+e.PortEvidence)
	}
	return strings.Join(ks, "; ")
}

func TestEgressSelection(t *testing.T) {
	const webTCP443 = "app/Deployment/web -> 52.1.2.3 TCP/443 syn"
	cases := []struct {
		name  string
		r     flow.Record
		entry string // "" = no entry
		stat  func(Stats) int64
	}{
		{"pod to external", rec(), webTCP443, nil},
		{"flow direction 2 kept", rec(func(r *flow.Record) { r.FlowDirection = "2" }), webTCP443, nil},
		{"flow direction absent kept", rec(func(r *flow.Record) { r.FlowDirection = "" }), webTCP443, nil},
		{"flow direction 0 is not egress of that node", rec(func(r *flow.Record) { r.FlowDirection = "0" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"destination is a pod", rec(func(r *flow.Record) { r.DstSubnetLabel = "Pods"; r.DstAddr = "8.8.8.8" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"destination is a service", rec(func(r *flow.Record) { r.DstSubnetLabel = "Services" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"destination is a machine", rec(func(r *flow.Record) { r.DstSubnetLabel = "Machines" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"destination has a type", rec(func(r *flow.Record) { r.DstType = "Node" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"destination in the cluster networks", rec(func(r *flow.Record) { r.DstAddr = "172.30.0.1" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"destination with a custom EXT label", rec(func(r *flow.Record) { r.DstSubnetLabel = "EXT:aws-s3" }), "app/Deployment/web -> EXT:aws-s3 TCP/443 syn", nil},
		{"source outside", rec(func(r *flow.Record) {
			r.SrcType, r.SrcSubnetLabel, r.SrcNamespace, r.SrcOwnerName, r.SrcAddr = "", "", "", "", "9.9.9.9"
		}), "", func(s Stats) int64 { return s.NotEgress }},
		{"host-network source (node)", rec(func(r *flow.Record) {
			r.SrcType, r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcSubnetLabel, r.SrcAddr = "Node", "", "Node", "m0", "m0", "Machines", "10.0.0.4"
		}), "/Node/control-plane -> 52.1.2.3 TCP/443 syn", nil},
		{"source only known by its address", rec(func(r *flow.Record) {
			r.SrcType, r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcSubnetLabel = "", "", "", "", "", ""
		}), "/Unknown/10.128.0.5 -> 52.1.2.3 TCP/443 syn", nil},
		{"unenriched machine address", rec(func(r *flow.Record) {
			r.SrcType, r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcSubnetLabel, r.SrcAddr, r.SrcHostName = "", "", "", "", "", "Machines", "100.64.0.2", ""
		}), "/Node/node -> 52.1.2.3 TCP/443 syn", nil},
		{"duplicate", rec(func(r *flow.Record) { r.Duplicate = true }), "", func(s Stats) int64 { return s.Duplicates }},
		{"multicast", rec(func(r *flow.Record) { r.DstAddr = "224.0.0.251" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"IPv6 multicast", rec(func(r *flow.Record) { r.DstAddr = "ff02::fb" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"broadcast", rec(func(r *flow.Record) { r.DstAddr = "255.255.255.255" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"OVN masquerade link-local", rec(func(r *flow.Record) { r.DstAddr = "169.254.169.2" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"IPv6 link-local", rec(func(r *flow.Record) { r.DstAddr = "fe80::1" }), "", func(s Stats) int64 { return s.NotEgress }},
		{"cloud metadata is egress", rec(func(r *flow.Record) { r.DstAddr, r.DstPort = "169.254.169.254", 80 }), "app/Deployment/web -> 169.254.169.254 TCP/80 syn", nil},
		{"IPv4-mapped destination", rec(func(r *flow.Record) { r.DstAddr = "::ffff:52.1.2.3" }), webTCP443, nil},
		{"non-IP record", flow.Record{Etype: 0x0806, Count: 1}, "", func(s Stats) int64 { return s.NotEgress }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := build(t, testOptions(), c.r)
			if got := keys(m); got != c.entry {
				t.Fatalf("entries %q, want %q", got, c.entry)
			}
			if c.stat != nil && c.stat(m.Stats) != 1 {
				t.Fatalf("stats %+v: the record is not in the expected bucket", m.Stats)
			}
			if c.entry != "" && m.Stats.Egress != 1 {
				t.Fatalf("stats %+v, want Egress 1", m.Stats)
			}
		})
	}
}

func TestServerPort(t *testing.T) {
	ports := func(proto, sp, dp int, flags uint32) func(*flow.Record) {
		return func(r *flow.Record) { r.Proto, r.SrcPort, r.DstPort, r.Flags = proto, sp, dp, flags }
	}
	const tcp, udp, sctp = flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP
	ack := flow.FlagACK
	cases := []struct {
		name  string
		recs  []flow.Record
		entry string
		stat  func(Stats) int64
		want  int64
	}{
		{"SYN names the listener", []flow.Record{rec(ports(tcp, 40000, 8080, flow.FlagSYN))}, "app/Deployment/web -> 52.1.2.3 TCP/8080 syn", nil, 0},
		{"SYN beats port numbers", []flow.Record{rec(ports(tcp, 443, 50000, flow.FlagSYN|ack))}, "app/Deployment/web -> 52.1.2.3 TCP/50000 syn", nil, 0},
		{"no SYN, well-known destination", []flow.Record{rec(ports(tcp, 40000, 443, ack))}, "app/Deployment/web -> 52.1.2.3 TCP/443 well-known", nil, 0},
		{"no SYN, configured port", []flow.Record{rec(ports(tcp, 40000, 6443, ack))}, "app/Deployment/web -> 52.1.2.3 TCP/6443 well-known", nil, 0},
		{"aggregated ephemeral source port", []flow.Record{rec(ports(tcp, flow.EphemeralPort, 443, ack))}, "app/Deployment/web -> 52.1.2.3 TCP/443 well-known", nil, 0},
		{"response leg", []flow.Record{rec(ports(tcp, 443, 50000, ack))}, "", func(s Stats) int64 { return s.Responses }, 1},
		{"SYN_ACK is a response", []flow.Record{rec(ports(tcp, 9000, 9001, flow.FlagSYNACK|ack))}, "", func(s Stats) int64 { return s.Responses }, 1},
		{"undecided TCP", []flow.Record{rec(ports(tcp, 40000, 9000, ack))}, "", func(s Stats) int64 { return s.Undecided }, 1},
		{"no-SYN records join the SYN record's entry", []flow.Record{
			rec(ports(tcp, 40000, 9000, ack)), rec(ports(tcp, 40000, 9000, flow.FlagSYN)), rec(ports(tcp, 40001, 9000, ack))},
			"app/Deployment/web -> 52.1.2.3 TCP/9000 syn", func(s Stats) int64 { return s.Egress }, 3},
		{"SCTP well-known", []flow.Record{rec(ports(sctp, 40000, 132, 0))}, "app/Deployment/web -> 52.1.2.3 SCTP/132 well-known", nil, 0},
		{"UDP well-known", []flow.Record{rec(ports(udp, 40000, 123, 0))}, "app/Deployment/web -> 52.1.2.3 UDP/123 well-known", nil, 0},
		{"UDP same well-known port both sides", []flow.Record{rec(ports(udp, 123, 123, 0))}, "app/Deployment/web -> 52.1.2.3 UDP/123 well-known", nil, 0},
		{"UDP both well-known: lower is the server", []flow.Record{rec(ports(udp, 68, 67, 0))}, "app/Deployment/web -> 52.1.2.3 UDP/67 lower-port", nil, 0},
		{"UDP both well-known, lower is the source: response", []flow.Record{rec(ports(udp, 67, 68, 0))}, "", func(s Stats) int64 { return s.Responses }, 1},
		{"UDP response from well-known port", []flow.Record{rec(ports(udp, 53, 40000, 0))}, "", func(s Stats) int64 { return s.Responses }, 1},
		{"UDP symmetric port", []flow.Record{rec(ports(udp, 4789, 4789, 0))}, "app/Deployment/web -> 52.1.2.3 UDP/4789 lower-port", nil, 0},
		{"UDP lower port", []flow.Record{rec(ports(udp, 50000, 4789, 0))}, "app/Deployment/web -> 52.1.2.3 UDP/4789 lower-port", nil, 0},
		{"UDP lower port on the source side: response", []flow.Record{rec(ports(udp, 4789, 50000, 0))}, "", func(s Stats) int64 { return s.Responses }, 1},
		{"UDP many sources", []flow.Record{rec(ports(udp, 40000, 50001, 0)), rec(ports(udp, 40001, 50001, 0)), rec(ports(udp, 40002, 50001, 0))},
			"app/Deployment/web -> 52.1.2.3 UDP/50001 many-sources", func(s Stats) int64 { return s.Egress }, 3},
		{"UDP too few sources", []flow.Record{rec(ports(udp, 40000, 50001, 0)), rec(ports(udp, 40001, 50001, 0)), rec(ports(udp, 40001, 50001, 0))},
			"", func(s Stats) int64 { return s.Undecided }, 3},
		{"ICMP", []flow.Record{rec(ports(flow.ProtoICMP, 0, 0, 0))}, "app/Deployment/web -> 52.1.2.3 ICMP/0 none", nil, 0},
		{"ICMPv6", []flow.Record{rec(ports(flow.ProtoICMPv6, 0, 0, 0), func(r *flow.Record) { r.DstAddr = "2600::1" })}, "app/Deployment/web -> 2600::1 ICMP/0 none", nil, 0},
		{"other protocol", []flow.Record{rec(ports(47, 0, 0, 0))}, "", func(s Stats) int64 { return s.Undecided }, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := build(t, testOptions(), c.recs...)
			if got := keys(m); got != c.entry {
				t.Fatalf("entries %q, want %q (stats %+v, undecided %+v)", got, c.entry, m.Stats, m.Undecided)
			}
			if c.stat != nil && c.stat(m.Stats) != c.want {
				t.Fatalf("stats %+v", m.Stats)
			}
		})
	}
}

func TestUndecidedExamples(t *testing.T) {
	opts := testOptions()
	var recs []flow.Record
	for i := 0; i < MaxUndecided+5; i++ {
		n := int64(1)
		if i == 7 {
			n = 50
		}
		recs = append(recs, rec(func(r *flow.Record) {
			r.Flags, r.SrcPort, r.DstPort, r.Count = flow.FlagACK, 40000+i, 9000, n
		}))
	}
	recs = append(recs, rec(func(r *flow.Record) { r.Proto = 47 }))
	m := build(t, opts, recs...)
	if m.UndecidedDistinct != MaxUndecided+6 || len(m.Undecided) != MaxUndecided || m.Stats.Undecided != MaxUndecided+5+50 {
		t.Fatalf("distinct %d, listed %d, stats %+v", m.UndecidedDistinct, len(m.Undecided), m.Stats)
	}
	u := m.Undecided[0]
	if u.SrcPort != 40007 || u.Flows != 50 || u.DstAddress != "52.1.2.3" || u.Reason == "" || u.SrcWorkload != "web" {
		t.Fatalf("first example %+v, want the one with most flows", u)
	}
	found := false
	for _, u := range m.Undecided {
		if u.Protocol == "IP-47" && strings.Contains(u.Reason, "protocol 47") {
			found = true
		}
	}
	if !found {
		t.Fatalf("protocol 47 not listed with its reason: %+v", m.Undecided)
	}
}

func TestSourceIdentity(t *testing.T) {
	pod := func(ns, ownerType, owner, name, host string) flow.Record {
		return rec(func(r *flow.Record) {
			r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcHostName = ns, ownerType, owner, name, host
		})
	}
	node := func(name string) flow.Record {
		return rec(func(r *flow.Record) {
			r.SrcType, r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcHostName, r.SrcAddr = "Node", "", "Node", name, name, name, "10.0.0.9"
		})
	}
	cases := []struct {
		name string
		r    flow.Record
		want string // ns/kind/workload
	}{
		{"deployment", pod("app", "Deployment", "web", "web-1", "w0"), "app/Deployment/web"},
		{"daemonset", pod("openshift-dns", "DaemonSet", "dns-default", "dns-default-x", "w0"), "openshift-dns/DaemonSet/dns-default"},
		{"cronjob job", pod("openshift-operator-lifecycle-manager", "Job", "collect-profiles-29012345", "collect-profiles-29012345-abcde", "w0"), "openshift-operator-lifecycle-manager/CronJob/collect-profiles"},
		{"plain job keeps its name", pod("app", "Job", "migrate-1234", "migrate-1234-x", "w0"), "app/Job/migrate-1234"},
		{"static pod owned by its node", pod("openshift-etcd", "Node", "m0", "etcd-m0", "m0"), "openshift-etcd/StaticPod/etcd"},
		{"static pod reported as its own owner", pod("openshift-kube-apiserver", "Pod", "kube-apiserver-m0", "kube-apiserver-m0", "m0"), "openshift-kube-apiserver/StaticPod/kube-apiserver"},
		{"bare pod outside openshift-*", pod("app", "Pod", "debug-w0", "debug-w0", "w0"), "app/Pod/debug-w0"},
		{"pod without owner", pod("app", "", "", "lonely", "w0"), "app/Pod/lonely"},
		{"control-plane node", node("m0"), "/Node/control-plane"},
		{"master role", node("m1"), "/Node/control-plane"},
		{"worker node", node("w0"), "/Node/worker"},
		{"custom role", node("i0"), "/Node/infra"},
		{"unknown node", node("x9"), "/Node/node"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := build(t, testOptions(), c.r)
			if len(m.Entries) != 1 {
				t.Fatalf("entries %q", keys(m))
			}
			e := m.Entries[0]
			if got := e.SrcNamespace + "/" + e.SrcKind + "/" + e.SrcWorkload; got != c.want {
				t.Fatalf("source %q, want %q", got, c.want)
			}
		})
	}
}

func TestDestinationNaming(t *testing.T) {
	names := NewNames()
	names.Add(netip.MustParseAddr("52.1.2.3"), "quay.io", t0.Add(-time.Minute), t0.Add(time.Hour))
	names.Add(netip.MustParseAddr("52.1.2.10"), "Quay.IO.", t0.Add(-time.Minute), t0.Add(time.Hour))
	names.Add(netip.MustParseAddr("52.1.2.9"), "quay.io", t0.Add(-time.Minute), t0.Add(time.Hour))
	names.Add(netip.MustParseAddr("52.9.9.9"), "zeta.example.com", time.Time{}, time.Time{})
	names.Add(netip.MustParseAddr("52.9.9.9"), "alpha.example.com", time.Time{}, time.Time{})
	opts := testOptions()
	opts.Names = names
	at := func(addr string, when time.Time) flow.Record {
		return rec(func(r *flow.Record) { r.DstAddr, r.Start, r.End = addr, when, when.Add(time.Second) })
	}
	m := build(t, opts,
		at("52.1.2.3", t0), at("52.1.2.10", t0.Add(time.Minute)), at("52.1.2.9", t0),
		at("52.1.2.3", t0.Add(2*time.Hour)), // after the resolution expired: only an IP
		at("52.9.9.9", t0),
		rec(func(r *flow.Record) { r.DstAddr, r.DstSubnetLabel = "3.5.0.1", "EXT:aws-s3" }),
		rec(func(r *flow.Record) { r.DstAddr, r.DstSubnetLabel = "3.5.0.2", "EXT:aws-s3" }),
	)
	want := "app/Deployment/web -> 52.1.2.3 TCP/443 syn; app/Deployment/web -> EXT:aws-s3 TCP/443 syn; " +
		"app/Deployment/web -> alpha.example.com TCP/443 syn; app/Deployment/web -> quay.io TCP/443 syn"
	if got := keys(m); got != want {
		t.Fatalf("entries\n got %s\nwant %s", got, want)
	}
	by := map[string]Entry{}
	for _, e := range m.Entries {
		by[e.DstName] = e
	}
	q := by["quay.io"]
	if q.DstNamedBy != NamedByHostname || q.Flows != 3 || q.DstAddress != "52.1.2.3" ||
		strings.Join(q.DstAddresses, ",") != "52.1.2.3,52.1.2.9,52.1.2.10" {
		t.Fatalf("quay.io entry %+v: want 3 flows over 3 addresses sorted numerically", q)
	}
	if e := by["52.1.2.3"]; e.DstNamedBy != NamedByIP || e.Flows != 1 {
		t.Fatalf("IP entry %+v", e)
	}
	if e := by["EXT:aws-s3"]; e.DstNamedBy != NamedBySubnetLabel || e.DstSubnetLabel != "EXT:aws-s3" || len(e.DstAddresses) != 2 {
		t.Fatalf("label entry %+v", e)
	}
}

func TestCounters(t *testing.T) {
	m := build(t, testOptions(),
		rec(func(r *flow.Record) {
			r.Count, r.Bytes, r.Start, r.End = 5, 1000, t0.Add(time.Minute), t0.Add(2*time.Minute)
		}),
		rec(func(r *flow.Record) { r.Bytes, r.Start, r.End = 10, t0, t0.Add(time.Second) }),
		rec(func(r *flow.Record) { r.Bytes, r.Start, r.End = 1, time.Time{}, t0.Add(time.Hour) }),
		rec(func(r *flow.Record) { r.Count = 0 }), // a Count of 0 stands for one record
	)
	e := m.Entries[0]
	if e.Flows != 8 || e.Bytes != 1111 || !e.FirstSeen.Equal(t0) || !e.LastSeen.Equal(t0.Add(time.Hour)) || m.Stats.Records != 8 || m.Stats.Sampled != 0 {
		t.Fatalf("entry %+v stats %+v", e, m.Stats)
	}
}

func TestSampled(t *testing.T) {
	m := build(t, testOptions(),
		rec(func(r *flow.Record) { r.Sampling = 50; r.Count = 3 }),
		rec(func(r *flow.Record) { r.Sampling = 1 }),
		rec(func(r *flow.Record) { r.Sampling = 50; r.FlowDirection = "0" }),
	)
	if m.Stats.Sampled != 4 || m.Stats.Records != 5 {
		t.Fatalf("stats %+v: want 4 sampled records of 5", m.Stats)
	}
}

func TestDNSEvidence(t *testing.T) {
	dnsQuery := func(dst string, dstPort int, name string, inCluster bool) flow.Record {
		return rec(func(r *flow.Record) {
			r.Proto, r.Flags, r.DstAddr, r.DstPort, r.DNSName = flow.ProtoUDP, 0, dst, dstPort, name
			if inCluster {
				r.DstType, r.DstNamespace, r.DstSubnetLabel = "Pod", "openshift-dns", "Pods"
			}
		})
	}
	// The answer, where the NetObserv agent puts DnsName: evidence about its destination,
	// the querier, not about the DNS server; counted on the querier's node (FlowDirection
	// 0), named from the server's node.
	answer := func(direction string) flow.Record {
		return rec(func(r *flow.Record) {
			r.SrcNamespace, r.SrcOwnerName, r.SrcOwnerType, r.SrcName = "openshift-dns", "dns-default", "DaemonSet", "dns-default-x1"
			r.Proto, r.SrcPort, r.DNSName, r.SrcAddr, r.FlowDirection = flow.ProtoUDP, 5353, "quay.io", "10.128.2.3", direction
			r.DstNamespace, r.DstOwnerName, r.DstOwnerType, r.DstType, r.DstName = "app", "web", "Deployment", "Pod", "web-1"
			r.DstAddr, r.DstPort, r.DstSubnetLabel = "10.128.0.6", 40000, "Pods"
		})
	}
	m := build(t, testOptions(),
		dnsQuery("10.128.2.3", 5353, "quay.io", true),
		dnsQuery("10.128.2.3", 5353, "quay.io.", true),
		dnsQuery("10.128.2.3", 5353, "cdn01.quay.io", true),
		// The receiving node's copy of the same query: named, not counted twice.
		rec(func(r *flow.Record) {
			r.Proto, r.Flags, r.DstAddr, r.DstPort, r.DNSName, r.FlowDirection = flow.ProtoUDP, 0, "10.128.2.3", 5353, "cdn01.quay.io", "0"
			r.DstType, r.DstNamespace, r.DstSubnetLabel = "Pod", "openshift-dns", "Pods"
		}),
		rec(func(r *flow.Record) {
			r.Proto, r.Flags, r.DstAddr, r.DstPort, r.DNSName, r.FlowDirection = flow.ProtoUDP, 0, "10.128.2.3", 5353, "only-inbound.example", "0"
			r.DstType, r.DstNamespace, r.DstSubnetLabel = "Pod", "openshift-dns", "Pods"
		}),
		dnsQuery("8.8.8.8", 53, "example.com", false),
		answer("1"), answer("0"),
	)
	if got := keys(m); got != "app/Deployment/web -> 8.8.8.8 UDP/53 well-known" {
		t.Fatalf("entries %q", got)
	}
	if m.Stats.DNSNamedOnly != 7 || m.Stats.NotEgress != 0 {
		t.Fatalf("stats %+v", m.Stats)
	}
	if len(m.DNSQueries) != 1 || fmt.Sprint(m.DNSQueries[0].Names) != "[{cdn01.quay.io 1} {example.com 1} {only-inbound.example 0} {quay.io 3}]" {
		t.Fatalf("DNS evidence %+v", m.DNSQueries)
	}
	for _, e := range m.Entries {
		if e.DstNamedBy == NamedByDNSFlow {
			t.Fatal("a DNS flow named an IP: NetObserv records no answers")
		}
	}
}

func TestDeterministicAndRepeatable(t *testing.T) {
	recs := syntheticRecords(3000)
	opts := testOptions()
	opts.Names = NewNames()
	opts.Names.Add(netip.MustParseAddr("52.0.0.1"), "a.example.com", time.Time{}, time.Time{})
	var want []byte
	for i := 0; i < 3; i++ {
		rand.New(rand.NewSource(int64(i))).Shuffle(len(recs), func(a, b int) { recs[a], recs[b] = recs[b], recs[a] })
		b := NewBuilder(opts)
		for _, r := range recs {
			b.Add(r)
		}
		first := b.Matrix()
		checkStats(t, first)
		var buf1, buf2 bytes.Buffer
		if err := WriteJSON(&buf1, first); err != nil {
			t.Fatal(err)
		}
		if err := WriteJSON(&buf2, b.Matrix()); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf1.Bytes(), buf2.Bytes()) {
			t.Fatal("a second Matrix() call differs from the first")
		}
		if want == nil {
			want = buf1.Bytes()
		} else if !bytes.Equal(want, buf1.Bytes()) {
			t.Fatal("the matrix depends on record order")
		}
	}
	m := Build(recs, opts)
	if len(m.Entries) < 10 || m.Stats.Responses == 0 || m.Stats.Undecided == 0 {
		t.Fatalf("synthetic records cover too little: %+v", m.Stats)
	}
	for i := 1; i < len(m.Entries); i++ {
		if !EntryLess(&m.Entries[i-1], &m.Entries[i]) {
			t.Fatalf("entries %d and %d out of order or duplicate: %s / %s", i-1, i, m.Entries[i-1].Key(), m.Entries[i].Key())
		}
	}
}

func TestAddAfterMatrix(t *testing.T) {
	b := NewBuilder(testOptions())
	b.Add(rec(func(r *flow.Record) { r.Flags, r.DstPort = flow.FlagACK, 9000 }))
	if m := b.Matrix(); len(m.Entries) != 0 || m.Stats.Undecided != 1 {
		t.Fatalf("%+v", m)
	}
	b.Add(rec(func(r *flow.Record) { r.DstPort = 9000 }))
	m := b.Matrix()
	checkStats(t, m)
	if len(m.Entries) != 1 || m.Entries[0].Flows != 2 || m.Stats.Undecided != 0 {
		t.Fatalf("entries %q stats %+v", keys(m), m.Stats)
	}
}

func TestAddDecodeStats(t *testing.T) {
	b := NewBuilder(testOptions())
	b.AddDecodeStats(flow.Stats{Records: 3, Undecodable: 25, Errors: []flow.DecodeError{{Source: "f.json", Line: 4, Err: fmt.Errorf("bad")}}})
	m := b.Matrix()
	if m.Stats.Undecodable != 25 || len(m.DecodeErrors) != 1 || !strings.Contains(m.DecodeErrors[0], "f.json:4") {
		t.Fatalf("%+v %v", m.Stats, m.DecodeErrors)
	}
}

func TestEntryKey(t *testing.T) {
	e := Entry{SrcNamespace: "ns", SrcKind: "Deployment", SrcWorkload: "w", DstName: "quay.io", Protocol: TCP, Port: 443, Flows: 9, DstAddress: "1.2.3.4"}
	f := e
	f.Flows, f.DstAddress, f.PortEvidence = 1, "5.6.7.8", PortBySYN
	if e.Key() != f.Key() || e.Key() != "ns/Deployment/w -> quay.io TCP/443" {
		t.Fatalf("keys %q %q", e.Key(), f.Key())
	}
	g := e
	g.Port = 80
	if g.Key() == e.Key() {
		t.Fatal("port not in the key")
	}
}

// syntheticRecords returns n varied records: clients, responses, nodes, UDP, undecided.
func syntheticRecords(n int) []flow.Record {
	out := make([]flow.Record, 0, n)
	for i := 0; i < n; i++ {
		r := rec(func(r *flow.Record) {
			r.SrcNamespace = fmt.Sprintf("ns-%d", i%40)
			r.SrcOwnerName = fmt.Sprintf("app-%d", i%7)
			r.SrcPort = 32768 + (i*7919)%28000
			r.DstAddr = fmt.Sprintf("52.0.%d.%d", i%3, 1+i%5)
			r.Start, r.End = t0.Add(time.Duration(i)*time.Millisecond), t0.Add(time.Duration(i+50)*time.Millisecond)
			r.Bytes = int64(100 + i)
		})
		switch i % 8 {
		case 1:
			r.Flags = flow.FlagACK
		case 2:
			r.SrcPort, r.DstPort, r.Flags = 443, 32768+i%20000, flow.FlagACK // response
		case 3:
			r.Proto, r.Flags, r.DstPort = flow.ProtoUDP, 0, 123
		case 4:
			r.SrcType, r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcAddr = "Node", "", "Node", "w0", "w0", "10.0.0.7"
		case 5:
			r.DstSubnetLabel, r.DstType, r.DstAddr = "Pods", "Pod", "10.128.3.3" // in-cluster
		case 6:
			r.Flags, r.DstPort = flow.FlagACK, 9000+i%3 // undecided
		case 7:
			r.Proto, r.Flags, r.DstPort = flow.ProtoUDP, 0, 50000+i%2 // many sources
		}
		out = append(out, r)
	}
	return out
}

func BenchmarkBuild(b *testing.B) {
	recs := syntheticRecords(100000)
	opts := testOptions()
	opts.Names = NewNames()
	for i := 0; i < 5; i++ {
		opts.Names.Add(netip.MustParseAddr(fmt.Sprintf("52.0.1.%d", i+1)), "quay.io", t0, t0.Add(time.Hour))
	}
	b.ReportAllocs()
	var total int64
	for b.Loop() {
		m := Build(recs, opts)
		total += m.Stats.Records
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}

// A destination under a custom subnet label without the EXT: prefix (the flow-matrix
// recipe's AWS_S3_eu-west-3, the lab's EXTERNAL) is egress named by its label: in-cluster is
// what the cluster's networks say. The records are shaped as the real flowlogs-pipeline
// writes them (docs: /work/shared/design/lab.md): the label in the JSON line, the
// Kubernetes fields as stream labels.
func TestCustomSubnetLabelWithoutEXTIsEgress(t *testing.T) {
	labels := map[string]string{"app": "netobserv-flowcollector", "SrcK8S_Namespace": "app", "SrcK8S_OwnerName": "web",
		"SrcK8S_Type": "Pod", "K8S_FlowLayer": "app", "FlowDirection": "1"}
	line := func(dst, label string) []byte {
		return fmt.Appendf(nil, `{"SrcAddr":"10.128.0.5","SrcPort":49308,"DstAddr":%q,"DstPort":443,"Proto":6,`+
			`"Bytes":559,"Packets":7,"Flags":["SYN","ACK","FIN_ACK"],"Interfaces":["genev_sys_6081"],"IfDirections":[1],`+
			`"Sampling":1,"AgentIP":"10.0.0.4","TimeFlowStartMs":1796190781291,"TimeFlowEndMs":1796190781294,`+
			`"TimeReceived":1796190781,"Udns":[""],"Etype":2048,"Dscp":0,"SrcK8S_OwnerType":"Deployment","SrcSubnetLabel":"Pods",`+
			`"DstSubnetLabel":%q}`, dst, label)
	}
	var recs []flow.Record
	for _, l := range []struct{ addr, label string }{
		{"3.5.246.1", "AWS_S3_eu-west-3"}, {"3.5.246.2", "AWS_S3_eu-west-3"},
		{"198.18.0.1", "EXTERNAL"},
		{"52.95.1.1", "EXT:aws-ec2"},
		// A custom label on an address of the cluster's networks stays in-cluster.
		{"10.0.3.7", "my-machines"},
	} {
		r, err := flow.DecodeLine(labels, line(l.addr, l.label))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	m := build(t, testOptions(), recs...)
	want := "app/Deployment/web -> AWS_S3_eu-west-3 TCP/443 syn; app/Deployment/web -> EXT:aws-ec2 TCP/443 syn; app/Deployment/web -> EXTERNAL TCP/443 syn"
	if got := keys(m); got != want {
		t.Fatalf("entries %q\nwant %q", got, want)
	}
	for _, e := range m.Entries {
		if e.DstNamedBy != NamedBySubnetLabel || e.DstSubnetLabel != e.DstName {
			t.Errorf("%s: named by %s, label %q: want named by its subnet label", e.Key(), e.DstNamedBy, e.DstSubnetLabel)
		}
	}
	if m.Stats.Egress != 4 || m.Stats.NotEgress != 1 {
		t.Fatalf("stats %+v: want 4 egress, 1 in-cluster", m.Stats)
	}
	// A configuration warning, never a drop: the labels without EXT: are listed.
	if got := strings.Join(m.UnprefixedLabels, ","); got != "AWS_S3_eu-west-3,EXTERNAL" {
		t.Fatalf("UnprefixedLabels %q, want AWS_S3_eu-west-3,EXTERNAL", got)
	}
}
