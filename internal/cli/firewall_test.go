package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The firewall formats go through `matrix render` with the cluster's networks, to stdout or
// to a directory, and say which entries they cannot express.
func TestRenderFirewallFormats(t *testing.T) {
	base := []string{"matrix", "render", "--baseline", "../../baseline", "--version", "4.21", "--platform", "AWS",
		"--pod-cidr", "10.128.0.0/14", "--service-cidr", "172.30.0.0/16", "--machine-cidr", "10.0.0.0/16", "--cluster-domain", "c1.example.com", "--region", "us-east-1"}

	out, errOut, code := run(t, append(base, "-o", "egressfirewall")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"kind: EgressFirewall", "namespace: openshift-monitoring", "cidrSelector: 10.128.0.0/14", "dnsName: infogw.api.openshift.com", "cidrSelector: 0.0.0.0/0"} {
		if !strings.Contains(out, want) {
			t.Errorf("egressfirewall output lacks %q", want)
		}
	}
	if !strings.Contains(errOut, "not (fully) expressed by egressfirewall") {
		t.Errorf("stderr does not say which entries are left out: %s", errOut)
	}

	dir := t.TempDir()
	if _, errOut, code := run(t, append(base, "-o", "nftables", "--out", dir)...); code != 0 {
		t.Fatalf("nftables --out: exit %d: %s", code, errOut)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.nft"))
	if len(files) == 0 {
		t.Fatalf("no .nft files written to %s", dir)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "10.0.0.0/16") || !strings.Contains(string(data), "drop") {
		t.Errorf("%s does not allow the machine network and drop the rest:\n%s", files[0], data)
	}

	if _, errOut, code := run(t, append(base, "-o", "egressfirewall", "--pod-cidr", "10.128.0.0/33")...); code != 2 || !strings.Contains(errOut, "--pod-cidr") {
		t.Errorf("a bad CIDR: exit %d, stderr %q; want 2 naming --pod-cidr", code, errOut)
	}
	if _, errOut, code := run(t, append(base, "-o", "iptables")...); code != 2 || !strings.Contains(errOut, "nftables") {
		t.Errorf("an unknown format: exit %d, stderr %q; want 2 listing the formats", code, errOut)
	}
}
