package lokiflows

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/grafana/loki/v3/pkg/logql/syntax"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// inWindow is the generated truth of [from, to).
func inWindow(gs []lokitest.Generated, from, to time.Time) []flow.Record {
	var out []flow.Record
	for _, g := range gs {
		if !g.Time.Before(from) && g.Time.Before(to) {
			out = append(out, g.Truth)
		}
	}
	return out
}

// checkDNSEvidence checks that the DNS aggregates, fed to pkg/matrix with the egress
// records, give the DNS evidence and counters of the matrix of every generated record.
func checkDNSEvidence(t *testing.T, dns, egress []flow.Record, truth []flow.Record, from, to time.Time) {
	t.Helper()
	want := matrix.Build(truth, matrixOptions(from, to))
	have := matrix.Build(append(append([]flow.Record(nil), egress...), dns...), matrixOptions(from, to))
	if len(want.DNSQueries) == 0 || want.Stats.DNSNamedOnly == 0 {
		t.Fatalf("the generated capture has no in-cluster DNS query: %+v", want.Stats)
	}
	if !reflect.DeepEqual(have.DNSQueries, want.DNSQueries) {
		t.Fatalf("DNS evidence differs: %s", dnsDiff(have.DNSQueries, want.DNSQueries))
	}
	if have.Stats.DNSNamedOnly != want.Stats.DNSNamedOnly {
		t.Fatalf("DNSNamedOnly %d, want %d", have.Stats.DNSNamedOnly, want.Stats.DNSNamedOnly)
	}
	// The DNS aggregates add evidence only: the entries are the egress records' own.
	alone := matrix.Build(egress, matrixOptions(from, to))
	if !reflect.DeepEqual(have.Entries, alone.Entries) || have.Stats.Egress != alone.Stats.Egress || have.Stats.NotEgress != alone.Stats.NotEgress {
		t.Fatalf("the DNS aggregates changed the entries: %d entries, %+v; without them %d, %+v", len(have.Entries), have.Stats, len(alone.Entries), alone.Stats)
	}
	for _, r := range dns {
		query := r.SrcPort == flow.EphemeralPort && r.DstPort > 0
		answer := (r.SrcPort == 53 || r.SrcPort == 5353) && r.DstPort == flow.EphemeralPort
		if r.Count < 1 || r.DNSName == "" || !(query || answer) || r.SrcAddr != "" || r.DstAddr != "" || r.Proto == 0 {
			t.Fatalf("unexpected DNS aggregate %+v", r)
		}
		// What `matrix collect --save-flows` writes, `matrix build --flows` reads back.
		line, err := flow.EncodeJSONLine(r)
		if err != nil {
			t.Fatal(err)
		}
		back, err := flow.DecodeLine(nil, line)
		if err != nil || back != r {
			t.Fatalf("round trip of %s: %+v, %v", line, back, err)
		}
	}
}

func TestDNSQueriesExact(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	c := testClient(t, s)
	dns, err := c.DNSQueries(context.Background(), Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	egress, err := c.Egress(context.Background(), Options{From: from, To: to, CountsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range dns {
		n += r.Count
	}
	t.Logf("%d DNS query records in %d aggregates", n, len(dns))
	checkDNSEvidence(t, dns, egress.Records, inWindow(gs, from, to), from, to)

	// A selector matcher narrows the selection like Egress's.
	none, err := c.DNSQueries(context.Background(), Options{From: from, To: to, Matchers: []lokiquery.Matcher{{Name: "K8S_ClusterName", Op: lokiquery.OpEq, Value: "other"}}})
	if err != nil || len(none) != 0 {
		t.Fatalf("another cluster's DNS queries: %d, %v", len(none), err)
	}
}

// TestDNSQueriesShardsOnMaxSeries runs against a Loki whose max_query_series is far below
// the number of DNS keys: the query must shard (by namespace, then owner) and still add up.
func TestDNSQueriesShardsOnMaxSeries(t *testing.T) {
	gs, from, to := dnsExactUnder(t, lokitest.Limits{MaxEntriesLimitPerQuery: 5000, MaxQuerySeries: 15})

	// One key per series allowed cannot be met: fail, naming the limit, never a partial list.
	s1 := lokitest.Start(t, lokitest.Limits{MaxEntriesLimitPerQuery: 5000, MaxQuerySeries: 1})
	pushed(t, s1, gs)
	_, err := testClient(t, s1).DNSQueries(context.Background(), Options{From: from, To: to, MinPiece: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "max_query_series") || !strings.HasPrefix(err.Error(), "DNS queries: ") {
		t.Fatalf("want a max_query_series failure, got %v", err)
	}
}

// Where Loki refuses to list a window longer than max_query_length, the DNS pass still
// splits its way to an exact answer, as Egress does.
func TestDNSQueriesUnderQueryLength(t *testing.T) {
	dnsExactUnder(t, lokitest.Limits{MaxEntriesLimitPerQuery: 5000, MaxQuerySeries: 15, MaxQueryLength: 25 * time.Minute})
}

// dnsExactUnder pulls the DNS evidence of a capture with more keys than limits allow in one
// query, from a Loki with those limits, and checks it against the capture.
func dnsExactUnder(t *testing.T, limits lokitest.Limits) ([]lokitest.Generated, time.Time, time.Time) {
	t.Helper()
	s := lokitest.Start(t, limits)
	from, to := window()
	gs := lokitest.Generate(lokitest.GenConfig{Records: 4000, From: from, To: to, Seed: 3, Namespaces: 12})
	pushed(t, s, gs)
	c := testClient(t, s)
	dns, err := c.DNSQueries(context.Background(), Options{From: from, To: to, MaxSeries: limits.MaxQuerySeries})
	if err != nil {
		t.Fatal(err)
	}
	if len(dns) <= limits.MaxQuerySeries {
		t.Fatalf("%d DNS aggregates: the capture must exceed max_query_series", len(dns))
	}
	egress, err := c.Egress(context.Background(), Options{From: from, To: to, CountsOnly: true, MaxSeries: limits.MaxQuerySeries})
	if err != nil {
		t.Fatal(err)
	}
	checkDNSEvidence(t, dns, egress.Records, inWindow(gs, from, to), from, to)
	return gs, from, to
}

func TestDNSQueriesFailsClosed(t *testing.T) {
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	from, to := window()
	c := testClient(t, s)
	if _, err := c.DNSQueries(context.Background(), Options{From: to, To: from}); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("inverted window: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	if _, err := c.DNSQueries(ctx, Options{From: from, To: to}); err == nil || !strings.HasPrefix(err.Error(), "DNS queries: ") {
		t.Fatalf("Loki down: want an error, got %v", err)
	}
}

func TestDNSPipelineSyntax(t *testing.T) {
	p := DNSPipeline([]lokiquery.Matcher{{Name: "K8S_ClusterName", Op: lokiquery.OpEq, Value: "ci"}})
	m := lokiquery.Metric{Pipeline: p, Agg: lokiquery.AggCount, Range: time.Hour, By: dnsKeyLabels}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	q := m.String()
	for _, want := range []string{`|= "\"DnsName\""`, `| DnsName!=""`, `(DstK8S_Type!="" or DstSubnetLabel=~"^(?:Pods|Services|Machines)$")`,
		"sum by (SrcK8S_Namespace, SrcK8S_OwnerName, SrcK8S_Type, SrcK8S_OwnerType", `K8S_ClusterName="ci"`} {
		if !strings.Contains(q, want) {
			t.Errorf("query %s lacks %s", q, want)
		}
	}
	if _, err := syntax.ParseExpr(q); err != nil {
		t.Fatalf("Loki's parser rejects %s: %v", q, err)
	}
}

// dnsDiff names the first few (source, name) counts that differ.
func dnsDiff(got, want []matrix.DNSQueries) string {
	flat := func(qs []matrix.DNSQueries) map[string]int64 {
		m := map[string]int64{}
		for _, q := range qs {
			for _, n := range q.Names {
				m[q.SrcNamespace+"/"+q.SrcKind+"/"+q.SrcWorkload+" "+n.Name] = n.Flows
			}
		}
		return m
	}
	g, w := flat(got), flat(want)
	var out []string
	for k, v := range w {
		if gv, ok := g[k]; !ok || gv != v {
			out = append(out, fmt.Sprintf("%s: got %d (present %v), want %d", k, gv, ok, v))
		}
	}
	for k, v := range g {
		if _, ok := w[k]; !ok {
			out = append(out, fmt.Sprintf("%s: got %d, want none", k, v))
		}
	}
	sort.Strings(out)
	return fmt.Sprintf("%d differences: %s", len(out), strings.Join(head(out, 8), "; "))
}
