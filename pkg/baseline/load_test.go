package baseline

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const validEntry = `entries:
  - component: Cluster Version Operator
    source:
      namespace: openshift-cluster-version
      workload: cluster-version-operator
    destination:
      host: api.openshift.com
    protocol: TCP
    port: "443"
    observed: false
    reason: update graph
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadValid(t *testing.T) {
	p := writeFile(t, t.TempDir(), "common.yaml", validEntry+`  - component: RHCOS
    source: {nodeRole: "*"}
    destination: {cidr: 169.254.169.254/32}
    protocol: TCP
    port: 80
    reason: metadata
  - component: Net
    source: {namespace: "openshift-*"}
    destination: {subnetLabel: "EXT:aws-s3"}
    protocol: ICMP
    optional: true
    observed: true
    reason: ping
`)
	b, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Entries) != 3 || len(b.Files) != 1 {
		t.Fatalf("got %d entries, %d files", len(b.Entries), len(b.Files))
	}
	e := b.Entries[1]
	if e.Port != "80" || e.Line != 12 || e.Index != 1 || e.File != p {
		t.Errorf("entry 1: port %q (int must load as text) line %d index %d file %s", e.Port, e.Line, e.Index, e.File)
	}
	if !b.Entries[2].Optional || !b.Entries[2].Observed || b.Entries[2].Port != "" {
		t.Errorf("entry 2 = %+v", b.Entries[2])
	}
	for _, empty := range []string{"entries: []\n", "# none on this platform\nentries: []\n", "entries: [] # none\n"} {
		p := writeFile(t, t.TempDir(), "e.yaml", empty)
		b, err := Load(p)
		if err != nil || len(b.Entries) != 0 {
			t.Errorf("%q: %v, %v", empty, b, err)
		}
	}
}

// A file with no entries must say so (`entries: []`): an empty or comment-only file is what
// a truncated write or a bad merge leaves, and it would validate as "0 entries".
func TestLoadEmptyFileIsAnError(t *testing.T) {
	for _, empty := range []string{"", "\n\n", "# only a comment\n", "entries:\n", "# a comment\nentries:\n# another\n", "---\n"} {
		p := writeFile(t, t.TempDir(), "e.yaml", empty)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "entries: []") {
			t.Errorf("%q: %v, want an error naming the file and `entries: []`", empty, err)
		}
	}
}

// entryWith replaces lines of validEntry to make one invalid entry.
func entryWith(old, new string) string {
	if !strings.Contains(validEntry, old) {
		panic(old)
	}
	return strings.Replace(validEntry, old, new, 1)
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name, content string
		line          int
		index         int // -1: not about an entry
		want          []string
	}{
		{"unknown key", entryWith("    protocol: TCP\n", "    protocol: TCP\n    colour: red\n"), 9, 0,
			[]string{`unknown key "colour" in an entry`, "valid keys: component"}},
		{"unknown source key", entryWith("      workload:", "      pod:"), 5, 0,
			[]string{`unknown key "pod" in source`, "fix: remove it"}},
		{"unknown destination key", entryWith("      host:", "      hostname:"), 7, 0,
			[]string{`unknown key "hostname" in destination`, "host, cidr or subnetLabel"}},
		{"unknown top key", "openshiftVersion: \"4.21\"\n" + validEntry, 1, -1,
			[]string{`unknown top-level key "openshiftVersion"`, "fix: a baseline file has only `entries:`"}},
		{"bad yaml", "entries:\n  - component: [x\n", 0, -1, []string{"fix: correct the YAML"}},
		{"two documents", validEntry + "---\n" + validEntry, 0, -1, []string{"second YAML document", "fix: keep one document"}},
		{"entries not a list", "entries: {a: b}\n", 1, -1, []string{"`entries` is not a list", "fix:"}},
		{"bad type", entryWith("    observed: false", "    observed: [x]"), 10, 0, []string{"cannot unmarshal", "fix: write a value of the expected type"}},
		{"bad cidr", entryWith("      host: api.openshift.com", "      cidr: 10.0.0.300/8"), 7, 0,
			[]string{`cidr "10.0.0.300/8" is not a CIDR`, "fix: write an address block"}},
		{"non-canonical cidr", entryWith("      host: api.openshift.com", "      cidr: 10.0.0.1/8"), 7, 0,
			[]string{`cidr "10.0.0.1/8" has host bits set`, "fix: write 10.0.0.0/8 (the block), or 10.0.0.1/32"}},
		{"cidr without length", entryWith("      host: api.openshift.com", "      cidr: 10.0.0.1"), 7, 0,
			[]string{"has no prefix length", "fix: write 10.0.0.1/32"}},
		{"ip as host", entryWith("      host: api.openshift.com", "      host: 192.0.2.1"), 7, 0,
			[]string{"is an IP address", "fix: write it as destination.cidr: 192.0.2.1/32"}},
		{"upper-case host", entryWith("      host: api.openshift.com", "      host: API.openshift.com"), 7, 0,
			[]string{"upper-case", "fix: write api.openshift.com"}},
		{"url as host", entryWith("      host: api.openshift.com", "      host: storage.googleapis.com/openshift-release"), 7, 0,
			[]string{"not a hostname", "fix: write the bare hostname"}},
		{"inner wildcard", entryWith("      host: api.openshift.com", "      host: cdn*.quay.io"), 7, 0,
			[]string{"not a leading", "fix: only a leading *. label"}},
		{"tld wildcard", entryWith("      host: api.openshift.com", `      host: "*.com"`), 7, 0,
			[]string{"whole top-level domain", "fix:"}},
		{"bad port", entryWith(`    port: "443"`, `    port: https`), 9, 0,
			[]string{`TCP port "https"`, `fix: write one port ("443")`}},
		{"port out of range", entryWith(`    port: "443"`, `    port: 70000`), 9, 0,
			[]string{"outside 1-65535", "fix:"}},
		{"reversed range", entryWith(`    port: "443"`, `    port: 32767-30000`), 9, 0,
			[]string{"reversed (write 30000-32767)", "fix:"}},
		{"non-canonical port", entryWith(`    port: "443"`, `    port: "0443"`), 9, 0,
			[]string{`"0443" is not a port number`, "fix:"}},
		// "-1" said `"" is not a port number`.
		{"negative port", entryWith(`    port: "443"`, `    port: "-1"`), 9, 0,
			[]string{`"-1" is negative`, "fix:"}},
		{"range without end", entryWith(`    port: "443"`, `    port: "30000-"`), 9, 0,
			[]string{"port number is missing", "fix:"}},
		{"missing port", entryWith("    port: \"443\"\n", ""), 2, 0, []string{"port is missing", "fix:"}},
		{"port on icmp", entryWith("    protocol: TCP", "    protocol: ICMP"), 9, 0,
			[]string{"ICMP has no port", "fix: remove port"}},
		{"unknown protocol", entryWith("    protocol: TCP", "    protocol: QUIC"), 8, 0,
			[]string{`unknown protocol "QUIC"`, "fix: use one of TCP, UDP, SCTP, ICMP"}},
		{"lower-case protocol", entryWith("    protocol: TCP", "    protocol: tcp"), 8, 0,
			[]string{"not upper case", "fix: write TCP"}},
		{"icmpv6", entryWith("    protocol: TCP\n    port: \"443\"", "    protocol: ICMPv6"), 8, 0,
			[]string{`unknown protocol "ICMPv6"`, "fix: write ICMP"}},
		{"no protocol", entryWith("    protocol: TCP\n", ""), 2, 0, []string{"protocol is empty", "fix: set one of"}},
		{"node and namespace", entryWith("      workload: cluster-version-operator\n", "      workload: cluster-version-operator\n      nodeRole: worker\n"), 3, 0,
			[]string{"both nodeRole and namespace", "fix: a node source has only nodeRole"}},
		{"empty source", entryWith("      namespace: openshift-cluster-version\n      workload: cluster-version-operator\n", "      {}\n"), 3, 0,
			[]string{"source is empty", "fix: set source.namespace"}},
		{"workload without namespace", entryWith("      namespace: openshift-cluster-version\n", ""), 3, 0,
			[]string{"no namespace", "fix: set source.namespace"}},
		{"bad glob", entryWith("      namespace: openshift-cluster-version", `      namespace: "openshift-[a"`), 4, 0,
			[]string{`source.namespace "openshift-[a"`, "fix: use a shell glob"}},
		{"no destination", entryWith("      host: api.openshift.com\n", "      {}\n"), 6, 0,
			[]string{"destination is empty", "fix: set exactly one of"}},
		{"two destinations", entryWith("      host: api.openshift.com\n", "      host: api.openshift.com\n      cidr: 10.0.0.0/8\n"), 6, 0,
			[]string{"destination sets host and cidr", "fix: keep exactly one"}},
		{"in-cluster label", entryWith("      host: api.openshift.com", "      subnetLabel: Pods"), 7, 0,
			[]string{"inside the cluster", "fix: name an external destination"}},
		{"empty component", entryWith("component: Cluster Version Operator", `component: ""`), 2, 0,
			[]string{"component is empty", "fix: name the OpenShift component"}},
		{"empty reason", entryWith("    reason: update graph\n", ""), 2, 0,
			[]string{"reason is empty", "fix: say why"}},
		{"empty list item", validEntry + "  -\n", 12, 1, []string{"empty entry (a lone `-`)", "fix: remove the `-`"}},
		{"crlf", strings.ReplaceAll(validEntry, "\n", "\r\n"), 1, -1, []string{"carriage returns", "fix: convert it to LF"}},
		{"tagged list", "entries: !!map\n  - component: x\n", 0, -1, []string{"fix:"}},
		{"scalar entry", "entries:\n  - just text\n", 2, 0, []string{"cannot unmarshal", "fix: write a value of the expected type"}},
		{"duplicate", validEntry + strings.TrimPrefix(validEntry, "entries:\n"), 12, 1,
			[]string{"duplicate of", ".yaml:2 entries[0]", "fix: delete one of them"}},
		{"overlapping ports", validEntry + strings.Replace(strings.TrimPrefix(validEntry, "entries:\n"), `port: "443"`, `port: "400-500"`, 1), 12, 1,
			[]string{"overlaps", "ports 443 and 400-500", "fix: merge them"}},
		{"overlapping cidrs", strings.Replace(validEntry, "host: api.openshift.com", "cidr: 10.0.0.0/8", 1) +
			strings.Replace(strings.TrimPrefix(validEntry, "entries:\n"), "host: api.openshift.com", "cidr: 10.1.0.0/16", 1), 12, 1,
			[]string{"overlaps", "10.0.0.0/8 and 10.1.0.0/16", "fix: merge them"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "common.yaml", c.content)
			_, err := Load(p)
			if err == nil {
				t.Fatal("Load accepted an invalid file")
			}
			msg := err.Error()
			if !strings.Contains(msg, p) {
				t.Errorf("error does not name the file %s: %s", p, msg)
			}
			if c.line > 0 && !strings.Contains(msg, p+":"+strconv.Itoa(c.line)+":") {
				t.Errorf("error does not name line %d: %s", c.line, msg)
			}
			if c.index >= 0 && !strings.Contains(msg, "entries["+strconv.Itoa(c.index)+"]") {
				t.Errorf("error does not name entries[%d]: %s", c.index, msg)
			}
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q: %s", w, msg)
				}
			}
		})
	}
}

func TestLoadCollectsAllErrors(t *testing.T) {
	content := entryWith("      host: api.openshift.com", "      cidr: 10.0.0.1/8") +
		strings.Replace(strings.TrimPrefix(validEntry, "entries:\n"), "protocol: TCP", "protocol: QUIC", 1)
	dir := t.TempDir()
	p1 := writeFile(t, dir, "a.yaml", content)
	p2 := writeFile(t, dir, "b.yaml", "bogus: 1\n")
	_, err := Load(p1, p2)
	if err == nil {
		t.Fatal("no error")
	}
	var n int
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		n = len(j.Unwrap())
	}
	if n != 3 {
		t.Errorf("want 3 errors (cidr, protocol, top-level key), got %d: %v", n, err)
	}
}

func TestLoadDuplicateAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	p1 := writeFile(t, dir, "common.yaml", validEntry)
	p2 := writeFile(t, dir, "platform/aws.yaml", validEntry)
	_, err := Load(p1, p2)
	if err == nil || !strings.Contains(err.Error(), p2+":2: entries[0]: duplicate of "+p1+":2 entries[0]") {
		t.Fatalf("want a duplicate across files, got %v", err)
	}
}

func TestLoadWildcardAndHostMayCoexist(t *testing.T) {
	content := strings.Replace(validEntry, "host: api.openshift.com", `host: "*.quay.io"`, 1) +
		strings.Replace(strings.TrimPrefix(validEntry, "entries:\n"), "host: api.openshift.com", "host: cdn01.quay.io", 1)
	if _, err := Load(writeFile(t, t.TempDir(), "c.yaml", content)); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDirectoryIsAnError(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") || !strings.Contains(err.Error(), "--version") {
		t.Fatalf("got %v", err)
	}
	if _, err := Load(); err == nil {
		t.Fatal("Load() with no file succeeded")
	}
	_, err = Load(filepath.Join(dir, "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
