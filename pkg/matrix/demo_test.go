package matrix

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// demoOptions describe the cluster of testdata/demo (hack/gencapture): AWS, default networks.
func demoOptions(t *testing.T) Options {
	t.Helper()
	names, err := LoadNamesFile("../../testdata/demo/names.json")
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, n := range []string{"ip-10-0-1-10", "ip-10-0-1-11", "ip-10-0-1-12"} {
		roles[n+".ec2.internal"] = RoleControlPlane
	}
	for _, n := range []string{"ip-10-0-2-20", "ip-10-0-2-21", "ip-10-0-2-22"} {
		roles[n+".ec2.internal"] = RoleWorker
	}
	return Options{
		ClusterNetworks: []netip.Prefix{
			netip.MustParsePrefix("10.128.0.0/14"), netip.MustParsePrefix("172.30.0.0/16"), netip.MustParsePrefix("10.0.0.0/16"),
		},
		NodeRoles: roles,
		Ports:     PortPolicy{Extra: map[int]bool{6443: true, 22623: true}},
		Names:     names,
	}
}

func demoRecords(t *testing.T) []flow.Record {
	t.Helper()
	var recs []flow.Record
	st, err := flow.DecodeFile("../../testdata/demo/capture.json", func(r flow.Record) error {
		recs = append(recs, r)
		return nil
	})
	if err != nil || st.Undecodable != 0 {
		t.Fatalf("decode the demo capture: %v (%+v)", err, st)
	}
	return recs
}

// TestDemoCaptureSNAT: in the demo capture every pod egress is also recorded after OVN's
// SNAT from its node's address; those legs fold into the pods, the nodes' own connections
// (CRI-O pulls, the host-network CVO) stay node entries.
func TestDemoCaptureSNAT(t *testing.T) {
	opts := demoOptions(t)
	recs := demoRecords(t)
	podOnly := map[string]string{ // telemetry, insights and cloud API hosts → a pod that reaches it
		"infogw.api.openshift.com":                     "openshift-monitoring/Deployment/telemeter-client",
		"console.redhat.com":                           "openshift-insights/Deployment/insights-operator",
		"ec2.us-east-1.amazonaws.com":                  "openshift-machine-api/Deployment/machine-api-controllers",
		"elasticloadbalancing.us-east-1.amazonaws.com": "openshift-ingress-operator/Deployment/ingress-operator",
		"s3.us-east-1.amazonaws.com":                   "openshift-image-registry/Deployment/image-registry",
	}
	podOnlyAddrs := map[netip.Addr]string{}
	for _, r := range opts.Names.Resolutions() {
		if _, ok := podOnly[r.Host]; ok {
			podOnlyAddrs[r.Address] = r.Host
		}
	}
	const github = "140.82.112.4"
	legs := 0 // node-side records towards those destinations: what there is to fold
	for _, r := range recs {
		if a, err := netip.ParseAddr(r.DstAddr); err == nil && r.SrcType == "Node" && (podOnlyAddrs[a] != "" || r.DstAddr == github) {
			legs++
		}
	}
	if legs == 0 {
		t.Fatal("the demo capture has no node-side SNAT legs: regenerate it with go run ./hack/gencapture")
	}

	m := Build(recs, opts)
	checkStats(t, m)
	if err := m.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if !m.PacketTranslation || m.Stats.Translated < int64(legs) {
		t.Fatalf("PacketTranslation %v, %d translated, want at least the %d legs towards pod-only destinations", m.PacketTranslation, m.Stats.Translated, legs)
	}
	srcs := map[string][]string{}
	var githubSrcs []string
	for _, e := range m.Entries {
		src := e.SrcNamespace + "/" + e.SrcKind + "/" + e.SrcWorkload
		if _, ok := podOnly[e.DstName]; ok {
			srcs[e.DstName] = append(srcs[e.DstName], src)
			if e.SrcKind == KindNode {
				t.Errorf("node entry %s: its flows are pod connections after SNAT", e.Key())
			}
		}
		for _, a := range e.DstAddresses {
			if host := podOnlyAddrs[netip.MustParseAddr(a)]; host != "" && e.DstName != host {
				t.Errorf("entry %s reaches %s (%s) but is not named by it", e.Key(), a, host)
			}
		}
		if e.DstName == github || slices.Contains(e.DstAddresses, github) {
			githubSrcs = append(githubSrcs, src)
		}
	}
	for host, want := range podOnly {
		if !slices.Contains(srcs[host], want) {
			t.Errorf("sources of %s: %v, want %s among them", host, srcs[host], want)
		}
	}
	if !slices.Equal(githubSrcs, []string{"openshift-marketplace/CatalogSource/community-operators"}) {
		t.Errorf("sources of %s: %v, want only the community-operators catalog", github, githubSrcs)
	}
	// Fail closed: the nodes' own connections are not folded away.
	for _, key := range []string{"/Node/worker -> quay.io TCP/443", "/Node/control-plane -> api.openshift.com TCP/443", "/Node/worker -> 1.rhel.pool.ntp.org UDP/123"} {
		if e, ok := entryByKey(m, key); !ok || e.Translated != 0 {
			t.Errorf("node entry %s: %+v (present %v), want it, with nothing translated", key, e, ok)
		}
	}

	// Without PacketTranslation the same capture attributes the pods' traffic to nodes too,
	// and says that it could not tell.
	for i := range recs {
		recs[i].XlatSrcAddr, recs[i].XlatDstAddr, recs[i].XlatSrcPort, recs[i].XlatDstPort = "", "", 0, 0
	}
	plain := Build(recs, opts)
	checkStats(t, plain)
	if plain.PacketTranslation || plain.Stats.Translated != 0 {
		t.Fatalf("without translation fields: PacketTranslation %v, %d translated", plain.PacketTranslation, plain.Stats.Translated)
	}
	if _, ok := entryByKey(plain, "/Node/worker -> infogw.api.openshift.com TCP/443"); !ok {
		t.Fatal("without translation fields the SNAT'd telemetry legs should show as a node entry")
	}
	if len(plain.Entries) <= len(m.Entries) {
		t.Fatalf("folding removed no entry: %d entries with translation, %d without", len(m.Entries), len(plain.Entries))
	}
}
