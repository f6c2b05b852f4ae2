package baseline

import (
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

const withPlaceholders = `entries:
  - {component: Authentication, source: {namespace: openshift-authentication-operator, workload: authentication-operator}, destination: {host: "*.{appsDomain}"}, protocol: TCP, port: "443", reason: r}
  - {component: Networking / ingress, source: {namespace: openshift-ingress-operator, workload: ingress-operator}, destination: {host: "*.{appsDomain}"}, protocol: TCP, port: "443", reason: r}
  - {component: Networking / cluster-network-operator, source: {namespace: openshift-network-diagnostics, workload: network-check-source}, destination: {host: "{apiHost}"}, protocol: TCP, port: "6443", reason: r}
  - {component: Installer, source: {nodeRole: "*"}, destination: {host: "ec2.{region}.amazonaws.com"}, protocol: TCP, port: "443", reason: r}
  - {component: Bare Metal, source: {nodeRole: control-plane}, destination: {cidr: "{bmcNetwork}"}, protocol: UDP, port: "623", reason: r}
`

func TestPlaceholdersResolved(t *testing.T) {
	b, err := Load(writeFile(t, t.TempDir(), "p.yaml", withPlaceholders))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := ClusterDomainValues("c1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	vals.Region, vals.BMCNetwork = "eu-west-3", "192.168.111.0/24"
	r, err := Resolve(b, vals)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range r.Entries {
		got = append(got, e.Destination.String())
	}
	want := "*.apps.c1.example.com,*.apps.c1.example.com,api.c1.example.com,ec2.eu-west-3.amazonaws.com,192.168.111.0/24"
	if strings.Join(got, ",") != want {
		t.Fatalf("resolved %v, want %s", got, want)
	}
	if b.Entries[0].Destination.Host != "*.{appsDomain}" {
		t.Fatal("Resolve changed its input")
	}
	if err := Unresolved(r); err != nil {
		t.Fatal(err)
	}

	// Diff on the resolved baseline: the routes and the API match, the BMC CIDR too.
	canary := matrix.Entry{SrcNamespace: "openshift-ingress-operator", SrcWorkload: "ingress-operator", SrcKind: "Deployment",
		DstName: "canary-openshift-ingress-canary.apps.c1.example.com", DstNamedBy: matrix.NamedByHostname, Protocol: matrix.TCP, Port: 443}
	api := matrix.Entry{SrcNamespace: "openshift-network-diagnostics", SrcWorkload: "network-check-source", SrcKind: "Deployment",
		DstName: "api.c1.example.com", DstNamedBy: matrix.NamedByHostname, Protocol: matrix.TCP, Port: 6443}
	bmc := matrix.Entry{SrcKind: matrix.KindNode, SrcWorkload: "control-plane", DstName: "192.168.111.20", DstNamedBy: matrix.NamedByIP,
		DstAddress: "192.168.111.20", Protocol: matrix.UDP, Port: 623}
	res := Diff(&matrix.Matrix{Entries: []matrix.Entry{canary, api, bmc}}, r)
	if len(res.Undocumented) != 0 || len(res.Matched) != 3 {
		t.Fatalf("undocumented %+v, matched %d", res.Undocumented, len(res.Matched))
	}
	// Unresolved, the same entries match nothing (and show as unobserved): never a silent pass.
	res = Diff(&matrix.Matrix{Entries: []matrix.Entry{canary}}, b)
	if len(res.Undocumented) != 1 {
		t.Fatalf("an unresolved baseline documented %+v", res.Matched)
	}
}

func TestPlaceholdersRefusedWhenUnresolved(t *testing.T) {
	path := writeFile(t, t.TempDir(), "p.yaml", withPlaceholders)
	b, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Resolve(b, Values{Region: "us-east-1"})
	if err == nil {
		t.Fatal("no error with {appsDomain}, {apiHost} and {bmcNetwork} unknown")
	}
	for _, want := range []string{
		path + ":2: entries[0]: destination.host \"*.{appsDomain}\" has unresolved placeholders; fix: {appsDomain}: --cluster-domain DOMAIN",
		path + ":4: entries[2]: destination.host \"{apiHost}\" has unresolved placeholders; fix: {apiHost}: --cluster-domain",
		"entries[4]: destination.cidr \"{bmcNetwork}\" has unresolved placeholders; fix: {bmcNetwork}: --bmc-network CIDR",
		"Ingress config \"cluster\" spec.domain", "status.apiServerURL",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "entries[3]") {
		t.Errorf("{region} was given, yet: %v", err)
	}
	if err := Unresolved(b); err == nil || !strings.Contains(err.Error(), "entries[0]") {
		t.Errorf("Unresolved: %v", err)
	}
	// Bad values are refused as such.
	for _, v := range []Values{{Region: "US East"}, {AppsDomain: "*.apps"}, {BMCNetwork: "10.0.0.1/8"}} {
		if _, err := Resolve(b, v); err == nil {
			t.Errorf("values %+v accepted", v)
		}
	}
	for _, d := range []string{"api.c1.example.com", "c1", "https://c1.example.com", ""} {
		if _, err := ClusterDomainValues(d); err == nil {
			t.Errorf("cluster domain %q accepted", d)
		}
	}
	// The published table shows the documentation's spelling.
	disp := Display(b, Values{Region: "us-east-1"})
	if h := disp.Entries[0].Destination.Host; h != "*.apps.<cluster_name>.<base_domain>" {
		t.Errorf("display %q", h)
	}
	if h := disp.Entries[3].Destination.Host; h != "ec2.us-east-1.amazonaws.com" {
		t.Errorf("display %q", h)
	}
}

func TestPlaceholderValidation(t *testing.T) {
	cases := []struct{ dest, want string }{
		{`{host: "*.{appDomain}"}`, `unknown placeholder "{appDomain}"`},
		{`{host: "*.{appDomain}"}`, "{apiHost}, {appsDomain}, {bmcNetwork}, {platformAPI}, {region}"},
		{`{host: "{bmcNetwork}"}`, "placeholder {bmcNetwork} is not allowed in destination.host"},
		{`{cidr: "{appsDomain}"}`, "placeholder {appsDomain} is not allowed in destination.cidr"},
		{`{cidr: "{bmcNetwork}/24"}`, "a placeholder in a CIDR stands alone"},
		{`{host: "ec2.{region.amazonaws.com"}`, "unknown placeholder"},
		{`{host: "ec2.region}.amazonaws.com"}`, "unbalanced braces"},
		{`{host: "-{region}.amazonaws.com"}`, "invalid label"},
	}
	for _, c := range cases {
		doc := "entries:\n  - {component: c, source: {nodeRole: \"*\"}, destination: " + c.dest + ", protocol: TCP, port: \"443\", reason: r}\n"
		_, err := Load(writeFile(t, t.TempDir(), "v.yaml", doc))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "entries[0]") {
			t.Errorf("%s: got %v, want %q", c.dest, err, c.want)
		}
	}
}

// One address, several names: the authentication operator's oauth route check and the
// ingress operator's canary check go to the same load balancer address, and the matrix
// names it after one of them. Each entry matches through any of the names, and the report
// says which others shared the address.
func TestDiffSharedAddress(t *testing.T) {
	b, err := Load(writeFile(t, t.TempDir(), "b.yaml", `entries:
  - {component: Authentication, source: {namespace: openshift-authentication-operator, workload: authentication-operator}, destination: {host: oauth-openshift.apps.c1.example.com}, protocol: TCP, port: "443", reason: r}
  - {component: Networking / ingress, source: {namespace: openshift-ingress-operator, workload: ingress-operator}, destination: {host: canary-openshift-ingress-canary.apps.c1.example.com}, protocol: TCP, port: "443", reason: r}
`))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"canary-openshift-ingress-canary.apps.c1.example.com", "oauth-openshift.apps.c1.example.com"}
	auth := matrix.Entry{SrcNamespace: "openshift-authentication-operator", SrcWorkload: "authentication-operator", SrcKind: "Deployment",
		DstName: names[0], DstNames: names, DstNamedBy: matrix.NamedByHostname, DstAddress: "52.7.7.7", Protocol: matrix.TCP, Port: 443}
	canary := auth
	canary.SrcNamespace, canary.SrcWorkload = "openshift-ingress-operator", "ingress-operator"
	r := Diff(&matrix.Matrix{Entries: []matrix.Entry{auth, canary}}, b)
	if len(r.Undocumented) != 0 || len(r.Matched) != 2 || len(r.Unobserved) != 0 {
		t.Fatalf("undocumented %v, matched %v, unobserved %v", r.Undocumented, r.Matched, r.Unobserved)
	}
	for _, m := range r.Matched {
		switch m.Observed.SrcWorkload {
		case "authentication-operator":
			if m.By.Component != "Authentication" || !strings.Contains(m.How, "host oauth-openshift.apps.c1.example.com (named by hostname; the address also resolved for canary-openshift-ingress-canary.apps.c1.example.com)") {
				t.Errorf("auth matched by %s: %s", m.By.Component, m.How)
			}
		case "ingress-operator":
			if m.By.Component != "Networking / ingress" || !strings.Contains(m.How, "also resolved for oauth-openshift.apps.c1.example.com") {
				t.Errorf("canary matched by %s: %s", m.By.Component, m.How)
			}
		}
	}
	// Without DstNames (an older matrix), only the primary name counts.
	auth.DstNames = nil
	if r := Diff(&matrix.Matrix{Entries: []matrix.Entry{auth}}, b); len(r.Undocumented) != 1 {
		t.Fatalf("primary name only: %+v", r.Matched)
	}
}

const platformEntries = `entries:
  - {component: Bare Metal, source: {nodeRole: control-plane}, destination: {cidr: "{bmcNetwork}"}, protocol: TCP, port: "443", reason: r}
  - {component: Machine API, source: {namespace: openshift-machine-api, workload: machine-api-controllers}, destination: {host: "{platformAPI}"}, protocol: TCP, port: "443", reason: r}
  - {component: Storage, source: {namespace: openshift-cluster-csi-drivers, workload: csi}, destination: {host: "{platformAPI}"}, protocol: TCP, port: "9440", reason: r}
`

func TestBMCNetworksAndPlatformAPI(t *testing.T) {
	path := writeFile(t, t.TempDir(), "p.yaml", platformEntries)
	b, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	dests := func(r *Baseline) string {
		var got []string
		for _, e := range r.Entries {
			got = append(got, e.Destination.String())
		}
		return strings.Join(got, ",")
	}

	// Several BMCs: the entry is repeated per CIDR; a host name stays a host.
	r, err := Resolve(b, Values{BMCNetwork: "192.168.111.20/32, 192.168.111.21/32", PlatformAPI: "vcenter.lab.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dests(r), "192.168.111.20/32,192.168.111.21/32,vcenter.lab.example.com,vcenter.lab.example.com"; got != want {
		t.Fatalf("resolved %s, want %s", got, want)
	}
	if len(r.Omitted) != 0 {
		t.Fatalf("omitted %v", r.Omitted)
	}
	bmc := matrix.Entry{SrcKind: matrix.KindNode, SrcWorkload: "control-plane", DstName: "192.168.111.21", DstNamedBy: matrix.NamedByIP,
		DstAddress: "192.168.111.21", Protocol: matrix.TCP, Port: 443}
	other := bmc
	other.DstName, other.DstAddress = "192.168.111.30", "192.168.111.30"
	res := Diff(&matrix.Matrix{Entries: []matrix.Entry{bmc, other}}, r)
	if len(res.Matched) != 1 || len(res.Undocumented) != 1 || res.Undocumented[0].DstAddress != "192.168.111.30" {
		t.Fatalf("matched %d, undocumented %+v: only the listed BMC is documented", len(res.Matched), res.Undocumented)
	}

	// A platform API given as an address becomes that address's CIDR.
	r, err = Resolve(b, Values{BMCNetwork: NoBMC, PlatformAPI: "10.0.0.5"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := dests(r), "10.0.0.5/32,10.0.0.5/32"; got != want {
		t.Fatalf("resolved %s, want %s", got, want)
	}
	// none: the BMC entry documents nothing on this cluster, and is counted as left out.
	if len(r.Omitted) != 1 || r.Omitted[0].Index != 0 {
		t.Fatalf("omitted %+v, want entries[0]", r.Omitted)
	}

	// Unresolved: named, with what resolves them.
	_, err = Resolve(b, Values{})
	for _, want := range []string{
		path + ":2: entries[0]: destination.cidr \"{bmcNetwork}\" has unresolved placeholders; fix: {bmcNetwork}: --bmc-network",
		path + ":3: entries[1]: destination.host \"{platformAPI}\" has unresolved placeholders; fix: {platformAPI}: --platform-api HOST",
		"EGRESS_PLATFORM_API", "EGRESS_BMC_NETWORK",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// Bad values.
	for _, v := range []Values{{BMCNetwork: "10.0.0.1/8"}, {BMCNetwork: ","}, {BMCNetwork: "192.0.2.0/24,nope"}, {PlatformAPI: "https://vc.example.com"}, {PlatformAPI: "*.example.com"}} {
		if _, err := Resolve(b, v); err == nil {
			t.Errorf("values %+v accepted", v)
		}
	}
	// The placeholder cannot be part of a longer host when its value is an address.
	long := writeFile(t, t.TempDir(), "l.yaml", `entries:
  - {component: C, source: {nodeRole: "*"}, destination: {host: "api.{platformAPI}"}, protocol: TCP, port: "443", reason: r}
`)
	lb, err := Load(long)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Resolve(lb, Values{PlatformAPI: "10.0.0.5"}); err == nil || !strings.Contains(err.Error(), "resolves to \"api.10.0.0.5\"") {
		t.Errorf("api.{platformAPI} with an address: %v", err)
	}
}

// Two entries a placeholder makes the same connection are documented once; the second is
// counted as left out, not refused.
func TestResolvedDuplicatesMerged(t *testing.T) {
	b, err := Load(writeFile(t, t.TempDir(), "t.yaml", `entries:
  - {component: Ingress, source: {nodeRole: "*"}, destination: {host: "tagging.us-east-1.amazonaws.com"}, protocol: TCP, port: "443", reason: r}
  - {component: Installer, source: {nodeRole: "*"}, destination: {host: "tagging.{region}.amazonaws.com"}, protocol: TCP, port: "443", reason: r}
`))
	if err != nil {
		t.Fatal(err)
	}
	r, err := Resolve(b, Values{Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 1 || r.Entries[0].Component != "Ingress" || len(r.Omitted) != 1 || r.Omitted[0].Index != 1 {
		t.Fatalf("entries %+v omitted %+v", r.Entries, r.Omitted)
	}
	if r, err = Resolve(b, Values{Region: "eu-west-3"}); err != nil || len(r.Entries) != 2 || len(r.Omitted) != 0 {
		t.Fatalf("eu-west-3: %v %+v", err, r)
	}
}
