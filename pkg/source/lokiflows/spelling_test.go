package lokiflows

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// flpEntry is a record as flowlogs-pipeline writes it to Loki (docs: lab.md): the indexed
// fields as stream labels, the rest in the JSON line. indent spells the line with JSON
// white space (`"Flags": ["SYN", "ACK"]`), as another encoder may.
func flpEntry(t *testing.T, at time.Time, fields map[string]any, indent bool) lokitest.Entry {
	t.Helper()
	labels := map[string]string{"app": App, "FlowDirection": "1", "K8S_FlowLayer": "app"}
	line := map[string]any{}
	for k, v := range fields {
		switch k {
		case "SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_Type":
			labels[k] = v.(string)
		default:
			line[k] = v
		}
	}
	line["TimeFlowEndMs"], line["TimeFlowStartMs"] = at.UnixMilli(), at.UnixMilli()-5
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(line, "", " ")
		if err == nil {
			// One line, with a space after every separator.
			b = []byte(strings.NewReplacer("\n ", " ", "\n", " ", `":`, `": `, ",", ", ").Replace(string(b)))
		}
	} else {
		b, err = json.Marshal(line)
	}
	if err != nil {
		t.Fatal(err)
	}
	return lokitest.Entry{Labels: labels, Time: at, Line: b}
}

func spellingRecords(dstLabel string) []map[string]any {
	var out []map[string]any
	// A pod's TCP connections to a registered, non-server port: only the SYN says which is
	// the server's, so a SYN the stages cannot read makes the flow undecided.
	for i := range 20 {
		out = append(out, map[string]any{
			"SrcK8S_Namespace": "app", "SrcK8S_OwnerName": "web", "SrcK8S_Type": "Pod", "SrcK8S_OwnerType": "Deployment",
			"SrcK8S_Name": fmt.Sprintf("web-%d", i), "SrcAddr": "10.128.0.5", "SrcPort": 50000 + i,
			"DstAddr": "198.18.0.1", "DstPort": 8080, "Proto": 6, "Flags": []string{"SYN", "ACK"},
			"Bytes": 100, "Packets": 2, "Sampling": 1, "Etype": 2048, "SrcSubnetLabel": "Pods", "DstSubnetLabel": dstLabel,
			"Interfaces": []string{"genev_sys_6081"}, "IfDirections": []int{1},
		})
	}
	return out
}

// Counts-only reads every valid JSON spelling of a line: a SYN in `"Flags": ["SYN", "ACK"]`
// is a SYN (the regexp stages allowed no white space, and 20 of 20 flows vanished into
// "undecided"); a spelling it cannot read (a \u escape) fails the pull rather than lose
// flags. And a destination under a custom label without EXT: is in the selection (the
// Loki side of issue 22 item 7).
func TestCountsOnlyReadsEveryJSONSpelling(t *testing.T) {
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	from, to := window()
	opts := matrix.Options{ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.128.0.0/14")}}
	want := "app/Deployment/web -> AWS_S3_eu-west-3 TCP/8080 syn"

	var entries []lokitest.Entry
	for i, f := range spellingRecords("AWS_S3_eu-west-3") {
		entries = append(entries, flpEntry(t, from.Add(time.Duration(i)*time.Second), f, true))
	}
	// A line whose SYN is spelled with an escape, later in the window.
	esc := flpEntry(t, to.Add(-10*time.Minute), spellingRecords("")[0], false)
	esc.Line = []byte(strings.Replace(string(esc.Line), `"SYN"`, `"\u0053YN"`, 1))
	entries = append(entries, esc)
	pushed0(t, s, entries)

	c := testClient(t, s)
	mid := to.Add(-20 * time.Minute)
	for _, countsOnly := range []bool{false, true} {
		res, err := c.Egress(context.Background(), Options{From: from, To: mid, CountsOnly: countsOnly})
		if err != nil {
			t.Fatalf("counts-only %v: %v", countsOnly, err)
		}
		m := matrix.Build(res.Records, opts)
		if got := keys(m); got != want || m.Stats.Egress != 20 || m.Stats.Undecided != 0 {
			t.Errorf("counts-only %v: entries %q, stats %+v; want %q, 20 egress flows, none undecided", countsOnly, got, m.Stats, want)
		}
	}
	// The escaped line: read by the default pull, refused by counts-only.
	res, err := c.Egress(context.Background(), Options{From: mid, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if m := matrix.Build(res.Records, opts); m.Stats.Egress != 1 {
		t.Errorf("default pull of the escaped line: %+v, want 1 egress", m.Stats)
	}
	_, err = c.Egress(context.Background(), Options{From: mid, To: to, CountsOnly: true})
	if err == nil || !strings.Contains(err.Error(), `\u escape`) || !strings.Contains(err.Error(), "fix:") {
		t.Errorf("counts-only of a line it cannot read: %v; want a failure naming the escape and the fix", err)
	}
}

func pushed0(t *testing.T, s *lokitest.Server, entries []lokitest.Entry) {
	t.Helper()
	if err := s.Push(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
}

func keys(m *matrix.Matrix) string {
	var ks []string
	for _, e := range m.Entries {
		ks = append(ks, e.Key()+" "+e.PortEvidence)
	}
	return strings.Join(ks, "; ")
}
