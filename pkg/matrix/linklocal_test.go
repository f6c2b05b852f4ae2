package matrix

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// Only OVN-Kubernetes' masquerade range is cluster-internal; every other IPv4 link-local
// destination is a platform service (metadata, time, DNS) and egress; IPv6 link-local is
// not egress. What the rule keeps out is counted, never dropped silently.
func TestLinkLocal(t *testing.T) {
	to := func(addr string, port int, proto int) flow.Record {
		return rec(func(r *flow.Record) { r.DstAddr, r.DstPort, r.Proto = addr, port, proto })
	}
	node := func(r flow.Record) flow.Record {
		r.SrcType, r.SrcNamespace, r.SrcOwnerType, r.SrcOwnerName, r.SrcName, r.SrcSubnetLabel, r.SrcAddr = "Node", "", "Node", "w0", "w0", "Machines", "10.0.2.4"
		r.SrcHostName = "w0"
		return r
	}
	recs := []flow.Record{
		to("169.254.169.254", 80, flow.ProtoTCP),                                       // cloud metadata
		node(to("169.254.169.123", 123, flow.ProtoUDP)),                                // AWS time service
		node(to("169.254.169.253", 53, flow.ProtoUDP)),                                 // AWS resolver
		to("169.254.1.5", 8080, flow.ProtoTCP),                                         // masquerade, /17 (4.17+ installs)
		to("169.254.169.3", 8080, flow.ProtoTCP),                                       // masquerade, /29 (older installs)
		to("fd69::4", 8080, flow.ProtoTCP),                                             // IPv6 masquerade
		to("fe80::1", 443, flow.ProtoTCP),                                              // IPv6 link-local
		rec(func(r *flow.Record) { r.DstAddr = "169.254.1.5"; r.FlowDirection = "0" }), // not outward at all
	}
	m := build(t, testOptions(), recs...)
	want := "/Node/worker -> 169.254.169.123 UDP/123 well-known; /Node/worker -> 169.254.169.253 UDP/53 well-known; app/Deployment/web -> 169.254.169.254 TCP/80 syn"
	if got := keys(m); got != want {
		t.Fatalf("entries\n got %s\nwant %s", got, want)
	}
	if s := m.Stats; s.Masquerade != 3 || s.LinkLocalV6 != 1 || s.NotEgress != 5 || s.Egress != 3 {
		t.Fatalf("stats %+v: want masquerade 3, linkLocalV6 1, notEgress 5, egress 3", s)
	}

	// The cluster's own masquerade subnet, read from its network operator config: the other
	// default is then a platform address like any other, and egress.
	opts := testOptions()
	opts.MasqueradeNetworks = []netip.Prefix{netip.MustParsePrefix("169.254.169.0/29")}
	m = build(t, opts, to("169.254.1.5", 8080, flow.ProtoTCP), to("169.254.169.3", 8080, flow.ProtoTCP))
	if got := keys(m); got != "app/Deployment/web -> 169.254.1.5 TCP/8080 syn" || m.Stats.Masquerade != 1 {
		t.Fatalf("with a /29 masquerade subnet: entries %q stats %+v", got, m.Stats)
	}
	// An empty, non-nil list: no masquerade range at all (e.g. not OVN-Kubernetes).
	opts.MasqueradeNetworks = []netip.Prefix{}
	m = build(t, opts, to("169.254.169.3", 8080, flow.ProtoTCP))
	if m.Stats.Egress != 1 || m.Stats.Masquerade != 0 {
		t.Fatalf("without a masquerade range: stats %+v", m.Stats)
	}
}

// One address, several names: every *.apps route shares the ingress load balancer's address.
// The entry keeps one key (DstName, the lowest) and lists every name in DstNames.
func TestSharedAddressNames(t *testing.T) {
	lb := netip.MustParseAddr("52.7.7.7")
	names := NewNames()
	names.Add(lb, "oauth-openshift.apps.c1.example.com", t0.Add(-time.Minute), t0.Add(time.Hour))
	names.Add(lb, "canary-openshift-ingress-canary.apps.c1.example.com", t0.Add(-time.Minute), t0.Add(time.Hour))
	names.Add(lb, "later.apps.c1.example.com", t0.Add(2*time.Hour), t0.Add(3*time.Hour)) // not during the flow
	opts := testOptions()
	opts.Names = names
	m := build(t, opts, rec(func(r *flow.Record) { r.DstAddr = "52.7.7.7" }))
	if len(m.Entries) != 1 {
		t.Fatalf("entries %q", keys(m))
	}
	e := m.Entries[0]
	if e.DstName != "canary-openshift-ingress-canary.apps.c1.example.com" ||
		strings.Join(e.DstNames, ",") != "canary-openshift-ingress-canary.apps.c1.example.com,oauth-openshift.apps.c1.example.com" {
		t.Fatalf("entry names %q %q", e.DstName, e.DstNames)
	}
	// One name only: DstNames stays empty (the JSON of such entries does not change).
	m = build(t, testOptions(), rec())
	if m.Entries[0].DstNames != nil {
		t.Fatalf("DstNames %q for an IP-named entry", m.Entries[0].DstNames)
	}
}
