package baseline

import (
	"strconv"
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

const specificity = `entries:
  - {component: wild, source: {nodeRole: "*"}, destination: {host: "*.quay.io"}, protocol: TCP, port: "443", reason: r}
  - {component: deeper-wild, source: {nodeRole: "*"}, destination: {host: "*.cdn.quay.io"}, protocol: TCP, port: "443", reason: r}
  - {component: exact, source: {nodeRole: "*"}, destination: {host: cdn01.quay.io}, protocol: TCP, port: "443", reason: r}
  - {component: exact-role, source: {nodeRole: worker}, destination: {host: cdn01.quay.io}, protocol: TCP, port: "443", reason: r}
  - {component: big-cidr, source: {namespace: "openshift-*"}, destination: {cidr: 10.0.0.0/8}, protocol: TCP, port: "1-65535", reason: r}
  - {component: small-cidr, source: {namespace: "openshift-e*"}, destination: {cidr: 10.1.0.0/16}, protocol: TCP, port: "1-65535", reason: r}
  - {component: glob-ns, source: {namespace: "openshift-m*"}, destination: {cidr: 10.1.0.0/16}, protocol: TCP, port: "1-65535", reason: r}
  - {component: exact-ns, source: {namespace: openshift-monitoring}, destination: {cidr: 10.1.0.0/16}, protocol: TCP, port: "1-65535", reason: r}
  - {component: exact-ns-port, source: {namespace: openshift-monitoring}, destination: {cidr: 10.1.0.0/16}, protocol: UDP, port: "53", reason: r}
  - {component: range, source: {namespace: openshift-monitoring}, destination: {cidr: 10.1.0.0/16}, protocol: UDP, port: "1-52", reason: r}
  - {component: label, source: {namespace: "openshift-*"}, destination: {subnetLabel: "EXT:s3"}, protocol: TCP, port: "443", reason: r}
  - {component: icmp, source: {nodeRole: "*"}, destination: {cidr: 0.0.0.0/0}, protocol: ICMP, reason: r}
  - {component: unseen, source: {nodeRole: "*"}, destination: {host: never.example.com}, protocol: TCP, port: "443", reason: r}
  - {component: unseen-optional, source: {nodeRole: "*"}, destination: {host: never2.example.com}, protocol: TCP, port: "443", optional: true, reason: r}
  - {component: v6, source: {namespace: ns, workload: "web-*", kind: Deployment}, destination: {cidr: "2001:db8::/32"}, protocol: TCP, port: "443", reason: r}
`

func node(role, host, namedBy string, port int) matrix.Entry {
	return matrix.Entry{SrcKind: matrix.KindNode, SrcWorkload: role, DstName: host, DstNamedBy: namedBy, Protocol: matrix.TCP, Port: port}
}

func pod(ns, wl, addr, proto string, port int) matrix.Entry {
	return matrix.Entry{SrcNamespace: ns, SrcWorkload: wl, SrcKind: "Deployment", DstName: addr, DstNamedBy: matrix.NamedByIP,
		DstAddress: addr, Protocol: proto, Port: port}
}

func TestDiffMostSpecific(t *testing.T) {
	b, err := Load(writeFile(t, t.TempDir(), "b.yaml", specificity))
	if err != nil {
		t.Fatal(err)
	}
	label := pod("openshift-image-registry", "image-registry", "52.1.2.3", matrix.TCP, 443)
	label.DstSubnetLabel = "EXT:s3"
	multi := pod("openshift-dns", "dns", "10.1.2.3", matrix.TCP, 443)
	multi.DstAddresses = []string{"10.1.2.3", "10.1.9.9"}
	straddle := pod("openshift-dns", "dns", "10.1.2.3", matrix.TCP, 443)
	straddle.DstAddresses = []string{"10.1.2.3", "11.0.0.1"}
	straddle.DstName = "straddle"
	icmp := pod("x", "y", "1.1.1.1", matrix.ICMP, 0)
	icmp.SrcKind, icmp.SrcWorkload, icmp.SrcNamespace = matrix.KindNode, "master", ""
	cases := []struct {
		o       matrix.Entry
		want    string // component of the matching entry, "" for undocumented
		howPart string
	}{
		{node("worker", "cdn01.quay.io", matrix.NamedByHostname, 443), "exact-role", "host cdn01.quay.io (named by hostname); node role worker; TCP 443"},
		{node("control-plane", "cdn01.quay.io", matrix.NamedByHostname, 443), "exact", "node role * covers control-plane"},
		{node("worker", "x.cdn.quay.io", matrix.NamedByDNSFlow, 443), "deeper-wild", "host *.cdn.quay.io covers x.cdn.quay.io (named by dns-flow)"},
		{node("worker", "cdn02.quay.io", matrix.NamedByHostname, 443), "wild", "host *.quay.io covers cdn02.quay.io"},
		{node("worker", "quay.io", matrix.NamedByHostname, 443), "", ""},      // the wildcard does not cover the domain itself
		{node("worker", "cdn02.quay.io", matrix.NamedByIP, 443), "", ""},      // an IP-named entry never matches a host
		{node("worker", "cdn02.quay.io", matrix.NamedByHostname, 80), "", ""}, // wrong port
		{pod("openshift-etcd", "etcd", "10.2.0.1", matrix.TCP, 2379), "big-cidr", "cidr 10.0.0.0/8 contains 10.2.0.1; source openshift-* covers openshift-etcd/etcd (Deployment); TCP 2379 in 1-65535"},
		{pod("openshift-etcd", "etcd", "10.1.0.1", matrix.TCP, 2379), "small-cidr", "cidr 10.1.0.0/16"},
		{pod("openshift-monitoring", "prom", "10.1.0.1", matrix.TCP, 9090), "exact-ns", "source openshift-monitoring covers"},
		{pod("openshift-monitoring", "prom", "10.1.0.1", matrix.UDP, 53), "exact-ns-port", "UDP 53"},
		{pod("openshift-monitoring", "prom", "10.1.0.1", matrix.UDP, 50), "range", "UDP 50 in 1-52"},
		{pod("default", "app", "10.1.0.1", matrix.TCP, 443), "", ""},
		{pod("openshift-machine-api", "m", "10.1.0.1", matrix.TCP, 443), "glob-ns", "source openshift-m* covers"}, // namespace glob does not match
		{multi, "big-cidr", "all 2 addresses of 10.1.2.3"},
		{straddle, "", ""}, // one address outside every CIDR
		{label, "label", "subnet label EXT:s3"},
		{icmp, "icmp", "cidr 0.0.0.0/0 contains 1.1.1.1; node role * covers master; ICMP"},
		{pod("ns", "web-1", "2001:db8::1", matrix.TCP, 443), "v6", "cidr 2001:db8::/32 contains 2001:db8::1"},
		{pod("ns", "api", "2001:db8::1", matrix.TCP, 443), "", ""},
	}
	var m matrix.Matrix
	for _, c := range cases {
		m.Entries = append(m.Entries, c.o)
	}
	m.Stats.Records = 42
	r := Diff(&m, b)
	if r.Stats.Records != 42 {
		t.Errorf("stats not carried: %+v", r.Stats)
	}
	got := map[string]Match{}
	for _, mt := range r.Matched {
		got[key(mt.Observed)] = mt
	}
	undoc := map[string]bool{}
	for _, u := range r.Undocumented {
		undoc[key(u)] = true
	}
	for _, c := range cases {
		mt, ok := got[key(c.o)]
		switch {
		case c.want == "" && !undoc[key(c.o)]:
			t.Errorf("%s: want undocumented, matched by %q (%s)", key(c.o), mt.By.Component, mt.How)
		case c.want != "" && !ok:
			t.Errorf("%s: want %q, undocumented", key(c.o), c.want)
		case c.want != "" && mt.By.Component != c.want:
			t.Errorf("%s: matched by %q (%s), want %q", key(c.o), mt.By.Component, mt.How, c.want)
		case c.want != "" && !strings.Contains(mt.How, c.howPart):
			t.Errorf("%s: how %q lacks %q", key(c.o), mt.How, c.howPart)
		}
	}
	if len(r.Unobserved) != 1 || r.Unobserved[0].Component != "unseen" {
		t.Errorf("unobserved = %+v, want only the non-optional unseen entry", r.Unobserved)
	}
}

func key(e matrix.Entry) string {
	return e.SrcNamespace + "/" + e.SrcWorkload + "/" + e.SrcKind + "->" + e.DstName + "(" + e.DstNamedBy + ")/" + e.Protocol + "/" + strings.Join(e.DstAddresses, ",") + "/" + strconv.Itoa(e.Port)
}

func TestDiffTruncatedDNSName(t *testing.T) {
	b, err := Load(writeFile(t, t.TempDir(), "b.yaml", `entries:
  - {component: long, source: {nodeRole: "*"}, destination: {host: quayio-production-s3.s3.amazonaws.com}, protocol: TCP, port: "443", reason: r}
`))
	if err != nil {
		t.Fatal(err)
	}
	trunc := "quayio-production-s3.s3.amazonaws.com"[:DNSNameMax]
	m := &matrix.Matrix{Entries: []matrix.Entry{node("worker", trunc, matrix.NamedByDNSFlow, 443), node("worker", trunc[:20], matrix.NamedByDNSFlow, 443)}}
	r := Diff(m, b)
	if len(r.Matched) != 1 || !strings.Contains(r.Matched[0].How, "truncated to 32 bytes") {
		t.Fatalf("matched = %+v", r.Matched)
	}
	if len(r.Undocumented) != 1 {
		t.Fatalf("a shorter prefix must not match: %+v", r.Undocumented)
	}
}

func TestDiffEmpty(t *testing.T) {
	r := Diff(nil, nil)
	if r.Undocumented == nil || r.Unobserved == nil || r.Matched == nil {
		t.Fatal("slices must be empty, not nil, so that JSON has []")
	}
}
