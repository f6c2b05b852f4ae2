package firewall

import (
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/internal/crdvalidate"
	"github.com/openshift/egress-tests-ext/pkg/baseline"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

// seededVersion is the baseline the repository ships; the test follows it when it moves.
const seededVersion = "4.21"

// fakeAddr maps a hostname to a stable address in the documentation ranges, so the real
// baseline's hostnames render to nftables without any DNS.
func fakeAddr(host string) []netip.Addr {
	h := fnv.New32a()
	h.Write([]byte(host))
	n := h.Sum32()
	return []netip.Addr{
		netip.AddrFrom4([4]byte{203, 0, 113, byte(n)}),
		netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(n >> 8), 15: byte(n)}),
	}
}

// TestSeededBaseline renders the repository's baseline for every platform in every format,
// validates each Kubernetes object against its real CRD and each ruleset with nft --check.
func TestSeededBaseline(t *testing.T) {
	dir := filepath.Join("..", "..", "baseline")
	if _, err := os.Stat(filepath.Join(dir, seededVersion, baseline.CommonFile)); err != nil {
		t.Fatalf("seeded baseline %s missing: %v", seededVersion, err)
	}
	efw := loadCRD(t, testfix.SharedCRD(t, "k8s.ovn.org_egressfirewalls.yaml"))
	var anp []*crdvalidate.Validator
	for _, p := range anpCRDs(t) {
		anp = append(anp, loadCRD(t, p))
	}
	mc := loadCRD(t, filepath.Join(requiredModuleDir(t, "github.com/openshift/api"),
		"machineconfiguration/v1/zz_generated.crd-manifests/0000_80_machine-config_01_machineconfigs.crd.yaml"))

	platforms := []string{""}
	for _, p := range baseline.Platforms {
		platforms = append(platforms, string(p))
	}
	for _, platform := range platforms {
		files, err := baseline.Select(dir, seededVersion, platform, "")
		if err != nil {
			t.Fatalf("select %s/%q: %v", seededVersion, platform, err)
		}
		b, err := baseline.Load(files...)
		if err != nil {
			t.Fatalf("load %v: %v", files, err)
		}
		opts := Options{Networks: testNetworks(), Meta: Meta{Baseline: "baseline/" + seededVersion, Version: "test"},
			Resolve: func(h string) ([]netip.Addr, error) { return fakeAddr(h), nil }}

		efws, _, err := EgressFirewalls(b, opts)
		if err != nil {
			t.Fatalf("%s: EgressFirewalls: %v", platform, err)
		}
		for _, o := range efws {
			if err := efw.Validate(toMap(t, o)); err != nil {
				t.Errorf("%s: %v", platform, err)
			}
		}
		anps, _, err := AdminNetworkPolicies(b, opts)
		if err != nil {
			t.Fatalf("%s: AdminNetworkPolicies: %v", platform, err)
		}
		for _, o := range anps {
			for _, v := range anp {
				if err := v.Validate(toMap(t, o)); err != nil {
					t.Errorf("%s: %v", platform, err)
				}
			}
		}
		sets, un, err := NFTables(b, opts)
		if err != nil {
			t.Fatalf("%s: NFTables: %v", platform, err)
		}
		if len(sets) == 0 {
			t.Errorf("%s: the seeded baseline documents node egress, but no ruleset was built (%v)", platform, un)
		}
		var all strings.Builder
		for _, s := range sets {
			text := s.Ruleset.String()
			all.WriteString(text)
			nftCheck(t, []byte(text))
		}
		mcs, err := MachineConfigs(sets, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range mcs {
			if err := mc.Validate(toMap(t, o)); err != nil {
				t.Errorf("%s: %v", platform, err)
			}
		}
		t.Logf("platform %q: %d entries -> %d EgressFirewalls, %d AdminNetworkPolicies, %d node rulesets (%d bytes)",
			platform, len(b.Entries), len(efws), len(anps), len(sets), all.Len())
	}
}
