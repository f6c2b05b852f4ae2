package firewall

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/baseline"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

func unexpressedFor(un []Unexpressed, index int) []Unexpressed {
	var out []Unexpressed
	for _, u := range un {
		if u.Entry.Index == index {
			out = append(out, u)
		}
	}
	return out
}

func wantUnexpressed(t *testing.T, un []Unexpressed, index int, kind, reasonPart string) {
	t.Helper()
	for _, u := range unexpressedFor(un, index) {
		if u.Kind == kind && strings.Contains(u.Reason, reasonPart) {
			return
		}
	}
	t.Errorf("entry %d: want %s containing %q, got %v", index, kind, reasonPart, unexpressedFor(un, index))
}

func TestEgressFirewalls(t *testing.T) {
	efws, un, err := EgressFirewalls(testBaseline(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	v := loadCRD(t, testfix.SharedCRD(t, "k8s.ovn.org_egressfirewalls.yaml"))
	var namespaces []string
	for _, o := range efws {
		if err := v.Validate(toMap(t, o)); err != nil {
			t.Errorf("generated EgressFirewall invalid: %v", err)
		}
		namespaces = append(namespaces, o.Metadata.Namespace)
	}
	// openshift-image-registry has only an EXT label entry and openshift-* a glob: neither
	// gets an object (an empty allow list would deny the namespace everything).
	if want := []string{"openshift-insights", "openshift-monitoring"}; !reflect.DeepEqual(namespaces, want) {
		t.Fatalf("namespaces %v, want %v", namespaces, want)
	}
	mon := efws[1].Spec.Egress
	var got []string
	for _, r := range mon {
		s := fmt.Sprintf("%s %s%s", r.Type, r.To.CIDRSelector, r.To.DNSName)
		for _, p := range r.Ports {
			s += fmt.Sprintf(" %s/%d", p.Protocol, p.Port)
		}
		got = append(got, s)
	}
	want := []string{
		"Allow 10.0.0.0/16", "Allow 10.128.0.0/14", "Allow 172.30.0.0/16", "Allow fd01::/48", "Allow fd02::/112",
		"Allow 198.51.100.0/24 TCP/443 TCP/8443",
		"Allow telemeter.example.com TCP/443",
		"Deny 0.0.0.0/0", "Deny ::/0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("openshift-monitoring rules:\n got %q\nwant %q", got, want)
	}
	if efws[1].Metadata.Name != "default" || efws[1].Metadata.Annotations[AnnotationBaseline] != "testdata" {
		t.Errorf("metadata %+v", efws[1].Metadata)
	}
	wantUnexpressed(t, un, 3, Partial, "only one label")
	wantUnexpressed(t, un, 5, NotExpressed, "EXT:aws-s3")
	wantUnexpressed(t, un, 6, NotExpressed, "openshift-*")
	wantUnexpressed(t, un, 7, NotExpressed, "range 30000-30100")
	wantUnexpressed(t, un, 8, NotExpressed, "TCP, UDP or SCTP only")
	wantUnexpressed(t, un, 10, OutOfScope, "nftables")
	if u := unexpressedFor(un, 9); len(u) != 0 {
		t.Errorf("Machines subnet label is covered by the cluster networks, got %v", u)
	}
}

func TestEgressFirewallGlobExpansion(t *testing.T) {
	opts := testOptions(t)
	opts.Namespaces = []string{"default", "openshift-dns", "openshift-monitoring"}
	efws, un, err := EgressFirewalls(testBaseline(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var dns *EgressFirewall
	for i := range efws {
		if efws[i].Metadata.Namespace == "openshift-dns" {
			dns = &efws[i]
		}
	}
	if dns == nil {
		t.Fatalf("openshift-* not expanded to openshift-dns: %+v", efws)
	}
	found := false
	for _, r := range dns.Spec.Egress {
		if r.To.CIDRSelector == "192.0.2.53/32" && len(r.Ports) == 1 && r.Ports[0] == (EgressFirewallPort{"UDP", 53}) {
			found = true
		}
	}
	if !found {
		t.Errorf("openshift-dns lacks the UDP/53 rule: %+v", dns.Spec.Egress)
	}
	if len(unexpressedFor(un, 6)) != 0 {
		t.Errorf("expanded glob still reported: %v", unexpressedFor(un, 6))
	}
}

func TestEgressFirewallLimits(t *testing.T) {
	var es []baseline.Entry
	for i := 0; i < MaxEgressFirewallRules; i++ {
		es = append(es, entry(i, "X", pods("big", "w"), cidr(fmt.Sprintf("10.%d.%d.0/24", 64+i/256, i%256)), "TCP", "443"))
	}
	_, _, err := EgressFirewalls(&baseline.Baseline{Entries: es}, testOptions(t))
	if err == nil || !strings.Contains(err.Error(), "over OVN's limit of 8000") {
		t.Fatalf("want rule-limit error, got %v", err)
	}
	if _, _, err := EgressFirewalls(testBaseline(), Options{}); err == nil || !strings.Contains(err.Error(), "cluster networks missing") {
		t.Fatalf("want missing-networks error, got %v", err)
	}
}

func anpCRDs(t *testing.T) []string {
	paths := []string{testfix.SharedCRD(t, "policy.networking.k8s.io_adminnetworkpolicies.yaml")}
	dir := testfix.ModuleDir(t, "sigs.k8s.io/network-policy-api@v0.1.7")
	paths = append(paths, crdPaths(t, filepath.Join(dir, "config/crd/*/policy.networking.k8s.io_adminnetworkpolicies.yaml"))...)
	return paths
}

func TestAdminNetworkPolicies(t *testing.T) {
	anps, un, err := AdminNetworkPolicies(testBaseline(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range anpCRDs(t) {
		v := loadCRD(t, path)
		for _, o := range anps {
			if err := v.Validate(toMap(t, o)); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
	}
	if len(anps) != 2 || anps[1].Metadata.Name != "egress-openshift-monitoring" || anps[1].Spec.Priority != DefaultANPPriority {
		t.Fatalf("unexpected policies: %+v", anps)
	}
	var got []string
	for _, r := range anps[1].Spec.Egress {
		s := r.Action + " " + r.Name + ":"
		for _, p := range r.To {
			switch {
			case p.Namespaces != nil:
				s += " namespaces"
			default:
				s += " " + strings.Join(p.Networks, ",")
			}
		}
		got = append(got, s)
	}
	want := []string{
		"Pass pass-cluster-networks: namespaces 10.0.0.0/16,10.128.0.0/14,172.30.0.0/16,fd01::/48,fd02::/112",
		"Allow allow TCP/30000-30100: 203.0.113.0/24",
		"Allow allow TCP/443,TCP/8443: 198.51.100.0/24",
		"Deny deny-undocumented-egress: 0.0.0.0/0,::/0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules:\n got %q\nwant %q", got, want)
	}
	if pr := anps[1].Spec.Egress[1].Ports[0].PortRange; pr == nil || pr.Start != 30000 || pr.End != 30100 {
		t.Errorf("port range not expressed: %+v", anps[1].Spec.Egress[1].Ports)
	}
	wantUnexpressed(t, un, 0, NotExpressed, "no domainNames peer")
	wantUnexpressed(t, un, 8, NotExpressed, "TCP, UDP or SCTP only")
	wantUnexpressed(t, un, 6, NotExpressed, "openshift-*")
	wantUnexpressed(t, un, 12, OutOfScope, "nftables")
}

// TestAdminNetworkPolicyChunking checks the CRD limits are respected when a rule has more
// networks than one peer may hold (25).
func TestAdminNetworkPolicyChunking(t *testing.T) {
	var es []baseline.Entry
	for i := 0; i < 60; i++ {
		es = append(es, entry(i, "X", pods("big", "w"), cidr(fmt.Sprintf("198.18.%d.0/24", i)), "TCP", "443"))
	}
	anps, _, err := AdminNetworkPolicies(&baseline.Baseline{Entries: es}, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	v := loadCRD(t, testfix.SharedCRD(t, "policy.networking.k8s.io_adminnetworkpolicies.yaml"))
	if err := v.Validate(toMap(t, anps[0])); err != nil {
		t.Fatal(err)
	}
	allow := anps[0].Spec.Egress[1]
	if len(allow.To) != 3 || len(allow.To[0].Networks) != 25 || len(allow.To[2].Networks) != 10 {
		t.Fatalf("want 60 networks in peers of 25, 25, 10; got %+v", allow.To)
	}

	// Over 100 distinct port sets cannot fit the 100-rule limit: an error, not a cut.
	es = es[:0]
	for i := 0; i < 100; i++ {
		es = append(es, entry(i, "X", pods("big", "w"), cidr(fmt.Sprintf("198.18.%d.0/24", i)), "TCP", fmt.Sprint(1000+i)))
	}
	if _, _, err := AdminNetworkPolicies(&baseline.Baseline{Entries: es}, testOptions(t)); err == nil || !strings.Contains(err.Error(), "over the API limit of 100") {
		t.Fatalf("want rule-limit error, got %v", err)
	}
}
