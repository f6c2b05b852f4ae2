package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// docsHost is one host of the published "Configuring your firewall" page (its 4.22
// rendering, openshift-docs modules/configuring-firewall.adoc), with the section it is in.
type docsHost struct{ section, host string }

// The sections every cluster's table must cover, then each cloud's rows. Spellings are the
// page's: <aws_region> is the baseline's {region}, shown unresolved as <region>.
var (
	docsCommon = []docsHost{
		{"container registry URLs for cluster installation and upgrades", "registry.redhat.io"},
		{"container registry URLs for cluster installation and upgrades", "access.redhat.com"},
		{"container registry URLs for cluster installation and upgrades", "registry.access.redhat.com"},
		{"container registry URLs for cluster installation and upgrades", "quay.io"},
		{"container registry URLs for cluster installation and upgrades", "cdn.quay.io"},
		{"container registry URLs for cluster installation and upgrades", "cdn01.quay.io"},
		{"container registry URLs for cluster installation and upgrades", "cdn02.quay.io"},
		{"container registry URLs for cluster installation and upgrades", "cdn03.quay.io"},
		{"container registry URLs for cluster installation and upgrades", "cdn04.quay.io"},
		{"container registry URLs for cluster installation and upgrades", "cdn05.quay.io"},
		{"container registry URLs for cluster installation and upgrades", "cdn06.quay.io"},
		{"container registry URLs for cluster installation and upgrades", "icr.io"},
		{"container registry URLs for cluster installation and upgrades", "cp.icr.io"},
		{"cluster access, authentication, and updates", "*.apps.<cluster_name>.<base_domain>"},
		{"cluster access, authentication, and updates", "api.openshift.com"},
		{"cluster access, authentication, and updates", "console.redhat.com"},
		{"cluster access, authentication, and updates", "sso.redhat.com"},
		{"installation and upgrade artifacts", "mirror.openshift.com"},
		{"installation and upgrade artifacts", "quayio-production-s3.s3.amazonaws.com"},
		{"installation and upgrade artifacts", "rhcos.mirror.openshift.com"},
		{"installation and upgrade artifacts", "storage.googleapis.com"}, // /openshift-release
		{"Telemetry and Red Hat Lightspeed", "cert-api.access.redhat.com"},
		{"Telemetry and Red Hat Lightspeed", "api.access.redhat.com"},
		{"Telemetry and Red Hat Lightspeed", "infogw.api.openshift.com"},
		{"Telemetry and Red Hat Lightspeed", "console.redhat.com"},
		{"external URLs hosting OCI containers", "k8s.gcr.io"},
		{"external URLs hosting OCI containers", "ghcr.io"},
		{"external URLs hosting OCI containers", "storage.googleapis.com"},
		{"external URLs hosting OCI containers", "registry.k8s.io"},
		{"optional third-party content", "registry.connect.redhat.com"},
		{"default Red Hat NTP servers", "1.rhel.pool.ntp.org"},
		{"default Red Hat NTP servers", "2.rhel.pool.ntp.org"},
		{"default Red Hat NTP servers", "3.rhel.pool.ntp.org"},
	}
	docsClouds = map[string][]docsHost{
		"AWS": {
			{"cloud provider API and DNS, AWS", "aws.amazon.com"},
			{"cloud provider API and DNS, AWS", "*.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "ec2.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "events.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "iam.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "route53.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "*.s3.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "*.s3.<aws_region>.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "*.s3.dualstack.<aws_region>.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "sts.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "sts.<aws_region>.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "tagging.us-east-1.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "ec2.<aws_region>.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "elasticloadbalancing.<aws_region>.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "servicequotas.<aws_region>.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "tagging.<aws_region>.amazonaws.com"},
			{"cloud provider API and DNS, AWS", "*.cloudfront.net"},
		},
		"GCP": {
			{"cloud provider API and DNS, GCP", "*.googleapis.com"},
			{"cloud provider API and DNS, GCP", "accounts.google.com"},
		},
		"Azure": {
			{"cloud provider API and DNS, Microsoft Azure", "management.azure.com"},
			{"cloud provider API and DNS, Microsoft Azure", "*.blob.core.windows.net"},
			{"cloud provider API and DNS, Microsoft Azure", "login.microsoftonline.com"},
		},
	}
)

// asciidocDestinations returns the Destination cells of a rendered AsciiDoc table.
func asciidocDestinations(out string) map[string]bool {
	dests := map[string]bool{}
	blocks := strings.Split(out, "\n\n")
	for _, b := range blocks[1:] { // the first block is the header
		line, _, _ := strings.Cut(strings.TrimSpace(b), "\n")
		if strings.HasPrefix(line, "|") && line != "|===" {
			dests[strings.TrimPrefix(line, "|")] = true
		}
	}
	return dests
}

// listed reports whether host is in the table: written as such, or (for cdn0N.quay.io, as
// the page allows) covered by a wildcard row. The page's wildcards must be rows themselves.
func listed(dests map[string]bool, host string) bool {
	if dests[host] {
		return true
	}
	if strings.HasPrefix(host, "*.") {
		return false
	}
	for d := range dests {
		if strings.HasPrefix(d, "*.") && strings.HasSuffix(host, d[1:]) && !strings.Contains(d, "<") {
			return true
		}
	}
	return false
}

// The published table of AWS, GCP and Azure lists every host the docs page lists for them.
func TestRenderListsTheDocsHosts(t *testing.T) {
	tree := filepath.Join("..", "..", "baseline")
	for _, platform := range []string{"AWS", "GCP", "Azure"} {
		out, stderr, code := run(t, "matrix", "render", "--baseline", tree, "--version", "4.21", "--platform", platform, "-o", "asciidoc")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", platform, code, stderr)
		}
		dests := asciidocDestinations(out)
		if len(dests) < 20 {
			t.Fatalf("%s: %d destinations parsed from:\n%s", platform, len(dests), out)
		}
		for _, h := range append(append([]docsHost(nil), docsCommon...), docsClouds[platform]...) {
			host := strings.ReplaceAll(h.host, "<aws_region>", "<region>")
			if !listed(dests, host) {
				t.Errorf("%s: the docs list %s (section %q); the rendered table does not", platform, h.host, h.section)
			}
		}
	}
	// The check can fail: a table without a docs host is caught.
	if listed(map[string]bool{"*.quay.io": true}, "registry.redhat.io") || listed(map[string]bool{"*.s3.<region>.amazonaws.com": true}, "x.s3.<region>.amazonaws.com") {
		t.Fatal("listed() accepts hosts the table lacks")
	}
}

// Every platform and topology that has a file is selected for its cluster and renders, as the
// published table and as firewall rules, once its placeholders have values.
func TestEveryPlatformAndTopologyFileRenders(t *testing.T) {
	tree := filepath.Join("..", "..", "baseline")
	wantPlatforms := []string{"aws", "azure", "baremetal", "external", "gcp", "ibmcloud", "none", "nutanix", "openstack", "powervs", "vsphere"}
	wantTopologies := []string{"DualReplica", "HighlyAvailableArbiter", "SingleReplica"}
	const domain, region, bmcNetwork, platformAPI = "c1.example.com", "us-east-1", "192.168.111.0/24", "vcenter.c1.example.com"
	values := []string{"--cluster-domain", domain, "--region", region, "--bmc-network", bmcNetwork, "--platform-api", platformAPI}
	want, err := baseline.ClusterDomainValues(domain)
	if err != nil {
		t.Fatal(err)
	}
	want = want.Merge(baseline.Values{Region: region, BMCNetwork: bmcNetwork, PlatformAPI: platformAPI})
	nets := []string{"--pod-cidr", "10.128.0.0/14", "--service-cidr", "172.30.0.0/16", "--machine-cidr", "10.0.0.0/16"}

	check := func(kind, name string, args []string) {
		t.Helper()
		file := filepath.Join(tree, "4.21", kind, name+".yaml")
		if _, err := os.Stat(file); err != nil {
			t.Errorf("%s %s: no file %s", kind, name, file)
			return
		}
		b, err := baseline.Load(file)
		if err != nil {
			t.Errorf("%v", err)
			return
		}
		base := slices.Concat([]string{"matrix", "render", "--baseline", tree, "--version", "4.21"}, args, values)
		out, stderr, code := run(t, slices.Concat(base, []string{"-o", "markdown"})...)
		if code != 0 {
			t.Errorf("%s %s: render exit %d: %s", kind, name, code, stderr)
			return
		}
		if !strings.Contains(stderr, kind+"/"+name+".yaml") || strings.Contains(stderr, kind+"/"+name+".yaml: nothing documented") {
			t.Errorf("%s %s: not selected: %s", kind, name, stderr)
		}
		resolved, err := baseline.Resolve(b, want)
		if err != nil {
			t.Errorf("%s %s: %v", kind, name, err)
			return
		}
		for _, e := range resolved.Entries {
			if !strings.Contains(out, "| "+e.Destination.String()+" | "+e.Protocol+" |") {
				t.Errorf("%s %s: entries[%d] %s not in the rendered table", kind, name, e.Index, e.Destination)
			}
		}
		for _, f := range []string{"nftables", "egressfirewall"} {
			if _, stderr, code := run(t, slices.Concat(base, nets, []string{"-o", f})...); code != 0 {
				t.Errorf("%s %s: -o %s exit %d: %s", kind, name, f, code, stderr)
			}
		}
	}
	for _, p := range wantPlatforms {
		name, err := baseline.PlatformFileName(p)
		if err != nil {
			t.Fatal(err)
		}
		check("platform", name, []string{"--platform", p})
	}
	for _, top := range wantTopologies {
		check("topology", top, []string{"--platform", "None", "--topology", top})
	}
	// And no file sits there that no cluster would select.
	if _, err := baseline.TreeFiles(tree); err != nil {
		t.Error(err)
	}
}
