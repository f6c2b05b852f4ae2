package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// nftCheck runs `nft --check -f` on a ruleset: the kernel parses and validates it in a
// transaction that is never committed. It needs nft (Debian package nftables) and
// CAP_NET_ADMIN; it runs in a network namespace of its own so it never sees the host's rules.
func nftCheck(t *testing.T, ruleset []byte) {
	t.Helper()
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Fatalf("nft not found: install the nftables package (apt-get install -y nftables): %v", err)
	}
	path := filepath.Join(t.TempDir(), "ruleset.nft")
	if err := os.WriteFile(path, ruleset, 0o600); err != nil {
		t.Fatal(err)
	}
	ns := newNetns(t, "chk")
	out, err := exec.Command("ip", "netns", "exec", ns, nft, "--check", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("nft --check rejected the ruleset: %v\n%s\n--- ruleset ---\n%s", err, out, numbered(ruleset))
	}
}

func numbered(b []byte) string {
	var out strings.Builder
	for i, l := range strings.Split(string(b), "\n") {
		fmt.Fprintf(&out, "%4d: %s\n", i+1, l)
	}
	return out.String()
}

func TestNFTablesRulesets(t *testing.T) {
	sets, un, err := NFTables(testBaseline(), testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, s := range sets {
		roles = append(roles, s.Role)
		var buf bytes.Buffer
		if _, err := s.Ruleset.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		nftCheck(t, buf.Bytes())
		text := buf.String()
		for _, want := range []string{
			"ct state established,related accept",
			`oifname "lo" accept`,
			"ip daddr @cluster_v4 accept",
			"ip6 daddr @cluster_v6 accept",
			"resolved from registry.example.com at generation time",
			`log prefix "egress-tests-ext drop: "`,
			"counter drop",
		} {
			if !strings.Contains(text, want) {
				t.Errorf("role %s ruleset lacks %q", s.Role, want)
			}
		}
		// The drop is the last rule: nothing documented may come after it.
		if i := strings.Index(text, "counter drop"); strings.Contains(text[i:], "accept") {
			t.Errorf("role %s: accept after the final drop", s.Role)
		}
		worker := s.Role == RoleWorker
		// Only the worker ruleset misses an entry (the *.mirror.example.com wildcard).
		if got := strings.Contains(text, "1 baseline entries could not be expressed"); got != worker {
			t.Errorf("role %s: header counts the wildcard entry=%v", s.Role, got)
		}
		if got := strings.Contains(text, "30000-32767"); got != worker {
			t.Errorf("role %s: worker-only range present=%v", s.Role, got)
		}
		if got := strings.Contains(text, "2001:db8:1::/48"); got == worker {
			t.Errorf("role %s: control-plane-only CIDR present=%v", s.Role, got)
		}
		if strings.Contains(text, "203.0.113.0/25") {
			t.Errorf("role %s: covered prefix 203.0.113.0/25 kept (nft rejects overlapping intervals)", s.Role)
		}
	}
	if !reflect.DeepEqual(roles, []string{RoleMaster, RoleWorker}) {
		t.Fatalf("roles %v", roles)
	}
	wantUnexpressed(t, un, 17, NotExpressed, "wildcard hostname")
	wantUnexpressed(t, un, 0, OutOfScope, "EgressFirewall")
	if u := unexpressedFor(un, 10); len(u) != 0 {
		t.Errorf("resolved hostname reported: %v", u)
	}

	// Without a resolver, hostnames are reported, never looked up.
	opts := testOptions(t)
	opts.Resolve = nil
	_, un, err = NFTables(testBaseline(), opts)
	if err != nil {
		t.Fatal(err)
	}
	wantUnexpressed(t, un, 10, NotExpressed, "resolved at generation time can change")

	// A resolver failure fails the render: a firewall silently missing a registry is worse.
	opts.Resolve = func(string) ([]netip.Addr, error) { return nil, errors.New("SERVFAIL") }
	if _, _, err := NFTables(testBaseline(), opts); err == nil || !strings.Contains(err.Error(), "SERVFAIL") {
		t.Fatalf("want resolver error, got %v", err)
	}
}

// TestNFTWriterRejectsUnsafeValues proves values cannot change the ruleset's structure.
func TestNFTWriterRejectsUnsafeValues(t *testing.T) {
	base := func() *Ruleset {
		return &Ruleset{Tables: []*Table{{Family: "inet", Name: "t",
			Sets:   []*Set{{Name: "s", Type: "ipv4_addr", Interval: true, Elements: []SetElement{{Prefix: netip.MustParsePrefix("192.0.2.0/24")}}}},
			Chains: []*Chain{{Name: "c", Type: "filter", Hook: "output", Policy: "accept", Rules: []Rule{{Stmts: []Stmt{DAddrSet{Set: "s"}, Verdict("accept")}}}}},
		}}}
	}
	if _, err := base().WriteTo(&bytes.Buffer{}); err != nil {
		t.Fatalf("valid ruleset rejected: %v", err)
	}
	cases := map[string]func(r *Ruleset){
		"table name":        func(r *Ruleset) { r.Tables[0].Name = "t; flush ruleset" },
		"family":            func(r *Ruleset) { r.Tables[0].Family = "bridge }" },
		"set name":          func(r *Ruleset) { r.Tables[0].Sets[0].Name = "s {" },
		"comment quote":     func(r *Ruleset) { r.Tables[0].Sets[0].Comment = `a" ; drop` },
		"comment newline":   func(r *Ruleset) { r.Tables[0].Sets[0].Elements[0].Comment = "a\nflush ruleset" },
		"comment length":    func(r *Ruleset) { r.Tables[0].Sets[0].Comment = strings.Repeat("a", 129) },
		"host bits":         func(r *Ruleset) { r.Tables[0].Sets[0].Elements[0].Prefix = netip.MustParsePrefix("192.0.2.1/24") },
		"family mismatch":   func(r *Ruleset) { r.Tables[0].Sets[0].Elements[0].Prefix = netip.MustParsePrefix("2001:db8::/32") },
		"rule set ref":      func(r *Ruleset) { r.Tables[0].Chains[0].Rules[0].Stmts[0] = DAddrSet{Set: "s accept; drop"} },
		"verdict":           func(r *Ruleset) { r.Tables[0].Chains[0].Rules[0].Stmts[1] = Verdict("jump x") },
		"port range":        func(r *Ruleset) { r.Tables[0].Chains[0].Rules[0].Stmts[0] = DPort{Proto: "tcp", Min: 10, Max: 5} },
		"log prefix quote":  func(r *Ruleset) { r.Tables[0].Chains[0].Rules[0].Stmts[0] = Log{Prefix: `x"`} },
		"header control":    func(r *Ruleset) { r.Comments = []string{"a\rb"} },
		"empty rule":        func(r *Ruleset) { r.Tables[0].Chains[0].Rules = []Rule{{}} },
		"non-ascii comment": func(r *Ruleset) { r.Tables[0].Chains[0].Rules[0].Comment = "ünï" },
	}
	for name, mutate := range cases {
		r := base()
		mutate(r)
		if _, err := r.WriteTo(&bytes.Buffer{}); err == nil {
			t.Errorf("%s: unsafe value accepted", name)
		}
	}
	if got := SafeComment("Node \"x\"\n" + strings.Repeat("y", 200)); len(got) != maxComment || strings.ContainsAny(got, "\"\n") {
		t.Errorf("SafeComment = %q", got)
	}
}

func TestNFTablesHostileBaseline(t *testing.T) {
	// Values from a baseline end up only in comments; hostile ones are neutralised and the
	// ruleset still parses.
	b := &baseline.Baseline{Entries: []baseline.Entry{
		entry(0, "evil\" } flush ruleset { \"", node("worker"), cidr("192.0.2.0/24"), "TCP", "443"),
		entry(1, strings.Repeat("long ", 60), node("worker"), cidr("192.0.2.0/24"), "TCP", "443"),
	}}
	sets, _, err := NFTables(b, testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := sets[0].Ruleset.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	nftCheck(t, buf.Bytes())
}
