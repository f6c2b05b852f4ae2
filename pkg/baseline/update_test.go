package baseline

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/matrix"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

var seen = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

func updateMatrix() *matrix.Matrix {
	withTime := func(e matrix.Entry, flows int64) matrix.Entry {
		e.FirstSeen, e.LastSeen, e.Flows = seen, seen.Add(time.Minute), flows
		if e.PortEvidence == "" {
			e.PortEvidence = matrix.PortBySYN
		}
		return e
	}
	cvo := pod("openshift-cluster-version", "cluster-version-operator", "", matrix.TCP, 443)
	cvo.DstName, cvo.DstNamedBy, cvo.DstAddress = "api.openshift.com", matrix.NamedByHostname, "3.3.3.3"
	s3 := pod("openshift-image-registry", "image-registry", "52.1.2.3", matrix.TCP, 443)
	s3.DstName, s3.DstNamedBy, s3.DstSubnetLabel = "EXT:aws-s3", matrix.NamedBySubnetLabel, "EXT:aws-s3"
	n := node("worker", "registry.redhat.io", matrix.NamedByHostname, 443)
	n.DstAddress = "23.1.1.1"
	ntp := node("worker", "2.rhel.pool.ntp.org", matrix.NamedByHostname, 123)
	ntp.Protocol, ntp.PortEvidence = matrix.UDP, matrix.PortByWellKnown
	return &matrix.Matrix{Entries: []matrix.Entry{
		withTime(n, 120),
		withTime(cvo, 3),
		withTime(pod("openshift-monitoring", "prometheus-k8s", "198.51.100.7", matrix.TCP, 9091), 5),
		withTime(s3, 40),
		withTime(ntp, 9),
	}}
}

func TestUpdateKeepsCommentsAndFormatting(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "update-input.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p := writeFile(t, t.TempDir(), "common.yaml", string(in))
	m := updateMatrix()
	added, err := Update(p, m)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 3 {
		t.Errorf("added %d entries, want 3 (prometheus IP, s3 label, ntp): %+v", len(added), added)
	}
	out, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	testfix.Golden(t, "update.golden", out)

	// Round trip: the updated file documents the whole matrix, and confirms what it saw.
	b, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	r := Diff(m, b)
	if len(r.Undocumented) != 0 {
		t.Errorf("undocumented after update: %+v", r.Undocumented)
	}
	for _, e := range b.Entries {
		if e.Observed != (e.Component != "Never seen") {
			t.Errorf("entries[%d] %s: observed %v", e.Index, e.Component, e.Observed)
		}
	}
	if err := CheckReviewed(b); err == nil || strings.Count(err.Error(), "not reviewed") != 3 {
		t.Errorf("CheckReviewed must flag the 3 added entries: %v", err)
	}
	// A second update finds nothing to do and leaves the file as it is.
	added, err = Update(p, m)
	if err != nil || len(added) != 0 {
		t.Fatalf("second update: %v, %v", added, err)
	}
	again, _ := os.ReadFile(p)
	if !bytes.Equal(again, out) {
		t.Error("a second update changed the file")
	}
}

func TestUpdateEmptyFiles(t *testing.T) {
	m := &matrix.Matrix{Entries: []matrix.Entry{node("worker", "quay.io", matrix.NamedByHostname, 443)}}
	for name, content := range map[string]*string{
		"missing": nil, "empty": ptr(""), "comment": ptr("# only a comment\n"),
		"flow-empty": ptr("# c\nentries: [] # trailing\n"), "null": ptr("entries:\n"),
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "b.yaml")
			if content != nil {
				writeFile(t, filepath.Dir(p), "b.yaml", *content)
			}
			added, err := Update(p, m)
			if err != nil || len(added) != 1 {
				t.Fatalf("%v, %v", added, err)
			}
			b, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Entries) != 1 || b.Entries[0].Destination.Host != "quay.io" || b.Entries[0].Source.NodeRole != "worker" {
				t.Fatalf("entries = %+v", b.Entries)
			}
			out, _ := os.ReadFile(p)
			if content != nil && strings.HasPrefix(*content, "#") && !strings.HasPrefix(string(out), strings.SplitAfter(*content, "\n")[0]) {
				t.Errorf("leading comment lost:\n%s", out)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestUpdateRefusesInvalidFile(t *testing.T) {
	p := writeFile(t, t.TempDir(), "b.yaml", "entries:\n  - component: x\n")
	before, _ := os.ReadFile(p)
	_, err := Update(p, updateMatrix())
	if err == nil || !strings.Contains(err.Error(), "is invalid, fix it first") {
		t.Fatalf("got %v", err)
	}
	after, _ := os.ReadFile(p)
	if !bytes.Equal(before, after) {
		t.Error("an invalid file was modified")
	}
}

func TestUpdateWithOtherFiles(t *testing.T) {
	dir := t.TempDir()
	common := writeFile(t, dir, "common.yaml", `entries:
  - {component: CRI-O, source: {nodeRole: "*"}, destination: {host: quay.io}, protocol: TCP, port: "443", reason: pulls}
`)
	aws := writeFile(t, dir, "platform/aws.yaml", "entries: []\n")
	others, err := Load(common)
	if err != nil {
		t.Fatal(err)
	}
	m := &matrix.Matrix{Entries: []matrix.Entry{
		node("worker", "quay.io", matrix.NamedByHostname, 443),
		node("worker", "ec2.us-east-1.amazonaws.com", matrix.NamedByHostname, 443),
	}}
	added, err := UpdateWith(aws, m, others)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 1 || added[0].Destination.Host != "ec2.us-east-1.amazonaws.com" {
		t.Fatalf("added = %+v; what common.yaml documents must not be added to aws.yaml", added)
	}
}

func TestUpdateFlowStyleList(t *testing.T) {
	p := writeFile(t, t.TempDir(), "b.yaml", `entries: [{component: CRI-O, source: {nodeRole: "*"}, destination: {host: quay.io}, protocol: TCP, port: "443", reason: pulls}]
`)
	_, err := Update(p, &matrix.Matrix{Entries: []matrix.Entry{node("worker", "example.com", matrix.NamedByHostname, 443)}})
	if err == nil || !strings.Contains(err.Error(), "flow-style list") {
		t.Fatalf("got %v", err)
	}
}

func TestEntriesFor(t *testing.T) {
	v6 := pod("ns", "w", "2001:db8::1", matrix.TCP, 443)
	v6.DstAddresses = []string{"2001:db8::1", "::ffff:192.0.2.1"}
	got := EntriesFor(v6)
	if len(got) != 2 || got[0].Destination.CIDR != "2001:db8::1/128" || got[1].Destination.CIDR != "192.0.2.1/32" {
		t.Errorf("got %+v", got)
	}
	trunc := node("worker", strings.Repeat("a", DNSNameMax-4)+".com", matrix.NamedByDNSFlow, 443)
	trunc.DstAddress = "192.0.2.9"
	if got := EntriesFor(trunc); len(got) != 1 || got[0].Destination.CIDR != "192.0.2.9/32" {
		t.Errorf("a possibly truncated DNS name must not become a host: %+v", got)
	}
	unknown := pod("", "10.128.3.4", "192.0.2.1", matrix.TCP, 443)
	unknown.SrcKind = matrix.KindUnknown
	if got := EntriesFor(unknown); got[0].Source != (Source{Namespace: "*", Kind: matrix.KindUnknown}) {
		t.Errorf("unattributed source: %+v", got[0].Source)
	}
	icmp := pod("ns", "w", "192.0.2.1", matrix.ICMP, 0)
	if got := EntriesFor(icmp); got[0].Port != "" {
		t.Errorf("ICMP got port %q", got[0].Port)
	}
}
