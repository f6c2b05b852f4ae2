package report

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/matrix"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// sample is a small matrix: a documented pod flow, a documented node flow through a
// wildcard, an undocumented IP flow with a pipe in its workload name, and an ICMP flow.
func sample() *matrix.Matrix {
	return &matrix.Matrix{
		Entries: []matrix.Entry{
			{SrcKind: matrix.KindNode, SrcWorkload: "worker", DstName: "cdn02.quay.io", DstNamedBy: matrix.NamedByHostname,
				DstAddress: "23.1.1.1", DstAddresses: []string{"23.1.1.1", "23.1.1.2"}, Protocol: matrix.TCP, Port: 443,
				PortEvidence: matrix.PortBySYN, Flows: 120, Bytes: 9000000, FirstSeen: t0, LastSeen: t0.Add(time.Hour)},
			{SrcNamespace: "openshift-cluster-version", SrcWorkload: "cluster-version-operator", SrcKind: "Deployment",
				DstName: "api.openshift.com", DstNamedBy: matrix.NamedByHostname, DstAddress: "3.3.3.3", Protocol: matrix.TCP, Port: 443,
				PortEvidence: matrix.PortBySYN, Flows: 3, Bytes: 4000, FirstSeen: t0.Add(time.Minute), LastSeen: t0.Add(2 * time.Minute)},
			{SrcNamespace: "tenant", SrcWorkload: "odd|name", SrcKind: "StatefulSet",
				DstName: "198.51.100.7", DstNamedBy: matrix.NamedByIP, DstAddress: "198.51.100.7", Protocol: matrix.TCP, Port: 9091,
				PortEvidence: matrix.PortByWellKnown, Flows: 5, Bytes: 512, FirstSeen: t0.Add(3 * time.Minute), LastSeen: t0.Add(4 * time.Minute)},
			{SrcKind: matrix.KindNode, SrcWorkload: "control-plane", DstName: "EXT:dns", DstNamedBy: matrix.NamedBySubnetLabel,
				DstAddress: "8.8.8.8", DstSubnetLabel: "EXT:dns", Protocol: matrix.ICMP, PortEvidence: matrix.PortNone, Flows: 1, Bytes: 84,
				FirstSeen: t0, LastSeen: t0},
		},
		Stats: matrix.Stats{Records: 1000, Egress: 129, NotEgress: 800, Responses: 60, Undecided: 11},
		Undecided: []matrix.Undecided{{SrcNamespace: "tenant", SrcWorkload: "batch", SrcKind: "Job", DstName: "203.0.113.5",
			DstAddress: "203.0.113.5", Protocol: matrix.UDP, SrcPort: 40000, DstPort: 50000, Flows: 11, Reason: "two dynamic ports"}},
		UndecidedDistinct: 1,
	}
}

func loadBaseline(t *testing.T) *baseline.Baseline {
	t.Helper()
	b, err := baseline.Load(filepath.Join("testdata", "baseline.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMatrixGolden(t *testing.T) {
	for _, f := range []string{CSV, YAML, Markdown, AsciiDoc} {
		var buf bytes.Buffer
		if err := WriteMatrix(&buf, sample(), f); err != nil {
			t.Fatal(err)
		}
		testfix.Golden(t, "matrix."+f+".golden", buf.Bytes())
	}
}

func TestMatrixJSONRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMatrix(&buf, sample(), JSON); err != nil {
		t.Fatal(err)
	}
	m, err := matrix.ReadJSON(bytes.NewReader(buf.Bytes()), "matrix.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 4 || m.Stats.Records != 1000 {
		t.Fatalf("round trip lost data: %+v", m)
	}
}

func TestDiffGolden(t *testing.T) {
	b := loadBaseline(t)
	r := baseline.Diff(sample(), b)
	// File names are those of the test: make them stable for the golden files.
	for i := range r.Unobserved {
		r.Unobserved[i].File = "baseline.yaml"
	}
	for i := range r.Matched {
		r.Matched[i].By.File = "baseline.yaml"
	}
	for _, f := range DiffFormats {
		var buf bytes.Buffer
		if err := WriteDiff(&buf, r, f); err != nil {
			t.Fatal(err)
		}
		testfix.Golden(t, "diff."+f+".golden", buf.Bytes())
	}
	var buf bytes.Buffer
	if err := WriteDiff(&buf, baseline.Diff(&matrix.Matrix{}, &baseline.Baseline{}), JSON); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"undocumented": []`) || !strings.Contains(buf.String(), `"matched": []`) {
		t.Errorf("empty diff must have empty lists: %s", buf.String())
	}
}

func TestBaselineGolden(t *testing.T) {
	b := loadBaseline(t)
	for _, f := range BaselineFormats {
		var buf bytes.Buffer
		if err := WriteBaseline(&buf, b, f); err != nil {
			t.Fatal(err)
		}
		testfix.Golden(t, "baseline."+f+".golden", buf.Bytes())
	}
}

func TestSummary(t *testing.T) {
	for _, c := range []struct {
		r    baseline.Result
		want string
	}{
		{baseline.Result{}, "PASS: 0 undocumented"},
		{baseline.Result{Undocumented: []matrix.Entry{{}}}, "FAIL: 1 undocumented"},
		{baseline.Result{Stats: matrix.Stats{Undecided: 1}}, "INCOMPLETE: 0 undocumented"},
		{baseline.Result{Stats: matrix.Stats{Undecodable: 1}}, "INCOMPLETE:"},
	} {
		if got := Summary(&c.r); !strings.HasPrefix(got, c.want) {
			t.Errorf("Summary = %q, want prefix %q", got, c.want)
		}
	}
}

func TestUnknownFormats(t *testing.T) {
	var buf bytes.Buffer
	for _, err := range []error{
		WriteMatrix(&buf, sample(), "xml"), WriteDiff(&buf, &baseline.Result{}, "csv"), WriteBaseline(&buf, &baseline.Baseline{}, "yaml"),
	} {
		if err == nil || !strings.Contains(err.Error(), "fix: use one of") {
			t.Errorf("got %v", err)
		}
	}
}

func TestEscaping(t *testing.T) {
	if got := mdCell("a|b\nc\\"); got != `a\|b<br>c\\` {
		t.Errorf("mdCell = %q", got)
	}
	if got := adocCell("a|b"); got != `a\|b` {
		t.Errorf("adocCell = %q", got)
	}
}

func BenchmarkWriteMatrixCSV(b *testing.B) {
	m := &matrix.Matrix{}
	for i := 0; i < 5000; i++ {
		e := sample().Entries[i%4]
		e.Port = i
		m.Entries = append(m.Entries, e)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		var buf bytes.Buffer
		if err := WriteMatrix(&buf, m, CSV); err != nil {
			b.Fatal(err)
		}
	}
}

func TestMatrixLackedColumnsAreEmpty(t *testing.T) {
	m := &matrix.Matrix{Lacks: []string{"bytes", "firstSeen", "lastSeen"}, Entries: []matrix.Entry{{
		SrcNamespace: "a", SrcWorkload: "w", SrcKind: "Deployment", DstName: "198.18.0.1", DstNamedBy: matrix.NamedByIP,
		Protocol: matrix.TCP, Port: 443, PortEvidence: matrix.PortBySYN, Flows: 3}}}
	var csvOut, md strings.Builder
	if err := WriteMatrix(&csvOut, m, CSV); err != nil {
		t.Fatal(err)
	}
	if err := WriteMatrix(&md, m, Markdown); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(strings.TrimSpace(csvOut.String()), ",3,,,") {
		t.Errorf("CSV row does not leave bytes and times empty:\n%s", csvOut.String())
	}
	if !strings.Contains(md.String(), "could not give: bytes, firstSeen, lastSeen") {
		t.Errorf("Markdown has no note on the lacked columns:\n%s", md.String())
	}
}
