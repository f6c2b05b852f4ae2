package lokiflows

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// window is a test window an hour ago, on whole seconds.
func window() (time.Time, time.Time) {
	to := time.Now().Add(-time.Hour).Truncate(time.Second)
	return to.Add(-time.Hour), to
}

func pushed(t *testing.T, s *lokitest.Server, gs []lokitest.Generated) {
	t.Helper()
	if err := s.Push(context.Background(), lokitest.Entries(gs)); err != nil {
		t.Fatal(err)
	}
}

// expected is the aggregate answer computed in Go from the generated truth.
func expected(gs []lokitest.Generated, p matrix.PortPolicy, from, to time.Time) []flow.Record {
	var rs []flow.Record
	for _, g := range gs {
		if g.Time.Before(from) || !g.Time.Before(to) {
			continue
		}
		if g.Truth.DstType != "" || g.Truth.DstSubnetLabel == "Pods" || g.Truth.DstSubnetLabel == "Services" || g.Truth.DstSubnetLabel == "Machines" {
			continue
		}
		rs = append(rs, matrix.Project(g.Truth, p))
	}
	return matrix.Fold(rs)
}

func diffRecords(t *testing.T, got, want []flow.Record) {
	t.Helper()
	if len(got) == len(want) {
		same := true
		for i := range got {
			if got[i] != want[i] {
				same = false
				break
			}
		}
		if same {
			return
		}
	}
	gm := map[string]int{}
	for _, r := range got {
		gm[fmt.Sprintf("%+v", r)]++
	}
	var missing, extra []string
	for _, r := range want {
		k := fmt.Sprintf("%+v", r)
		if gm[k] > 0 {
			gm[k]--
		} else {
			missing = append(missing, k)
		}
	}
	for k, n := range gm {
		for range n {
			extra = append(extra, k)
		}
	}
	t.Fatalf("got %d records, want %d\nmissing (%d):\n%s\nextra (%d):\n%s", len(got), len(want),
		len(missing), strings.Join(head(missing, 5), "\n"), len(extra), strings.Join(head(extra, 5), "\n"))
}

func head(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// shared is one Loki with LokiStack's default limits holding a generated capture bigger
// than those limits (more egress records than max_entries_limit_per_query, more keys than
// max_query_series), in both record formats.
var shared struct {
	once     sync.Once
	s        *lokitest.Server
	gs       []lokitest.Generated
	from, to time.Time
	err      error
}

func sharedLoki(t *testing.T) (*lokitest.Server, []lokitest.Generated, time.Time, time.Time) {
	t.Helper()
	bin := lokitest.Binary(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "lokiquery-test-")
		if err != nil {
			shared.err = err
			return
		}
		s, err := lokitest.StartBinary(bin, dir, lokitest.LokiStackLimits)
		if err != nil {
			shared.err = err
			return
		}
		shared.s = s
		shared.from, shared.to = window()
		shared.gs = lokitest.Generate(lokitest.GenConfig{Records: 30000, From: shared.from, To: shared.to, Seed: 1, OldFormat: 0.2})
		shared.err = s.Push(context.Background(), lokitest.Entries(shared.gs))
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.s, shared.gs, shared.from, shared.to
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.s != nil {
		_ = shared.s.Stop()
		os.RemoveAll(filepath.Dir(shared.s.LogPath()))
	}
	os.Exit(code)
}

func testClient(t *testing.T, s *lokitest.Server) *client {
	t.Helper()
	c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEgressAggregateExact(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	c := testClient(t, s)
	start := time.Now()
	// 203.0.113.20 is named for part of the window only (matrixOptions): pulled raw.
	res, err := c.Egress(context.Background(), Options{From: from, To: to, RawAddrs: []string{"203.0.113.20"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records, %d aggregates, %d pieces, %d requests, %s", res.Retrieved, len(res.Records), res.Pieces, c.Requests(), time.Since(start))
	if res.Retrieved <= int64(lokitest.LokiStackLimits.MaxEntriesLimitPerQuery) || res.Pieces < 2 {
		t.Fatalf("the capture must exceed the entries limit and force a split: %d records, %d pieces", res.Retrieved, res.Pieces)
	}
	sameMatrix(t, res.Records, gs, from, to)

	// Without the raw addresses, the aggregates are exactly the projected records, and the
	// shards are planned to fit max_query_series: Loki refuses none (each refusal costs it
	// a scan).
	var refused atomic.Int32
	planned, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Trace: func(_, q string, _ time.Duration, err error) {
		if kind, _ := lokiquery.Classify(err); kind == lokiquery.LimitSeries {
			refused.Add(1)
			t.Logf("refused: %.300s", q[strings.Index(q, "{"):])
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	res, err = planned.Egress(context.Background(), Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	want := expected(gs, matrix.PortPolicy{}, from, to)
	diffRecords(t, res.Records, want)
	if n := refused.Load(); n > 0 || res.Pieces < 4 {
		t.Errorf("%d queries were refused by max_query_series in %d pieces; the plan should fit the limit in 4 or more", n, res.Pieces)
	}

	// Counts only: the same aggregates without bytes and times.
	res, err = c.Egress(context.Background(), Options{From: from, To: to, CountsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got, wantCounts := countsOnly(res.Records), countsOnly(want)
	matrix.SortRecords(got)
	matrix.SortRecords(wantCounts)
	diffRecords(t, got, wantCounts)
}

func TestEgressRawExact(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	c := testClient(t, s)
	// A batch above the server's limit: Loki names its limit and the batches shrink to it.
	res, err := c.Egress(context.Background(), Options{From: from, To: to, Mode: Raw, BatchSize: 20000})
	if err != nil {
		t.Fatal(err)
	}
	if res.Decode.Undecodable != 0 {
		t.Fatalf("undecodable lines: %+v", res.Decode.Errors)
	}
	var want []flow.Record
	for _, g := range gs {
		if !g.Time.Before(from) && g.Time.Before(to) && g.Truth.DstType == "" &&
			g.Truth.DstSubnetLabel != "Pods" && g.Truth.DstSubnetLabel != "Services" && g.Truth.DstSubnetLabel != "Machines" {
			want = append(want, g.Truth)
		}
	}
	matrix.SortRecords(want)
	diffRecords(t, res.Records, want)
	sameMatrix(t, res.Records, gs, from, to)
}

func TestEgressServerPortsPolicy(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	c := testClient(t, s)
	p := matrix.PortPolicy{Extra: map[int]bool{8443: true, 40001: true}}
	res, err := c.Egress(context.Background(), Options{From: from, To: to, Ports: p})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, res.Records, expected(gs, p, from, to))
}

// matrixOptions names two of the generated servers for part of the window.
func matrixOptions(from, to time.Time) matrix.Options {
	names := matrix.NewNames()
	names.Add(netip.MustParseAddr("198.51.100.10"), "quay.io", from, to)
	names.Add(netip.MustParseAddr("203.0.113.20"), "sts.amazonaws.com", from.Add(10*time.Minute), to.Add(-10*time.Minute))
	var nets []netip.Prefix
	for _, c := range lokitest.ClusterNetworks {
		nets = append(nets, netip.MustParsePrefix(c))
	}
	return matrix.Options{ClusterNetworks: nets, NodeRoles: lokitest.NodeRoles(), Names: names}
}

// sameMatrix checks that the matrix built from what Loki returned equals the matrix built
// from the generated records the egress selection keeps.
func sameMatrix(t *testing.T, got []flow.Record, gs []lokitest.Generated, from, to time.Time) {
	t.Helper()
	var truth []flow.Record
	for _, g := range gs {
		if !g.Time.Before(from) && g.Time.Before(to) && g.Truth.DstType == "" &&
			g.Truth.DstSubnetLabel != "Pods" && g.Truth.DstSubnetLabel != "Services" && g.Truth.DstSubnetLabel != "Machines" {
			truth = append(truth, g.Truth)
		}
	}
	want := matrix.Build(truth, matrixOptions(from, to))
	have := matrix.Build(got, matrixOptions(from, to))
	if len(want.Entries) == 0 || want.Stats.Egress == 0 {
		t.Fatalf("the generated capture has no egress entry: %+v", want.Stats)
	}
	if !reflect.DeepEqual(have.Entries, want.Entries) {
		for i := range min(len(have.Entries), len(want.Entries)) {
			if !reflect.DeepEqual(have.Entries[i], want.Entries[i]) {
				t.Fatalf("entry %d differs:\n got %+v\nwant %+v", i, have.Entries[i], want.Entries[i])
			}
		}
		t.Fatalf("got %d entries, want %d", len(have.Entries), len(want.Entries))
	}
	if have.Stats != want.Stats {
		t.Fatalf("stats differ:\n got %+v\nwant %+v", have.Stats, want.Stats)
	}
	if !reflect.DeepEqual(have.DNSQueries, want.DNSQueries) {
		t.Fatalf("DNS queries differ:\n got %+v\nwant %+v", have.DNSQueries, want.DNSQueries)
	}
}

// TestEgressSNATFolds checks that the aggregate path keeps what pkg/matrix needs to fold
// OVN's SNAT'd node leg into the pod that sent it (the pod's XlatSrcAddr, the node's
// SrcAddr): every node-sourced egress record of this capture is such a leg, so neither the
// matrix of the raw records nor the one of the aggregates may have a node entry.
func TestEgressSNATFolds(t *testing.T) {
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	from, to := window()
	var gs []lokitest.Generated
	legs := int64(0)
	for _, g := range lokitest.Generate(lokitest.GenConfig{Records: 6000, From: from, To: to, Seed: 7, OldFormat: 0.2, SNAT: 1}) {
		if g.Truth.SrcType == "Node" && g.Egress && !g.SNATLeg {
			continue // the node's own egress would share the SNAT legs' counts
		}
		if g.SNATLeg && g.Truth.FlowDirection != "0" {
			legs++
		}
		gs = append(gs, g)
	}
	if legs == 0 {
		t.Fatal("the capture has no SNAT leg")
	}
	pushed(t, s, gs)
	c := testClient(t, s)
	// 203.0.113.20 is named for part of the window only (matrixOptions): pulled raw.
	for _, o := range []Options{
		{From: from, To: to, RawAddrs: []string{"203.0.113.20"}},
		{From: from, To: to, RawAddrs: []string{"203.0.113.20"}, Ports: matrix.PortPolicy{Extra: map[int]bool{8443: true}}},
	} {
		res, err := c.Egress(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		sameMatrix(t, res.Records, gs, from, to)
		m := matrix.Build(res.Records, matrixOptions(from, to))
		if !m.PacketTranslation {
			t.Fatal("the aggregates lost the PacketTranslation fields")
		}
		if m.Stats.Translated != legs {
			t.Fatalf("%d node legs folded into their pods, want %d", m.Stats.Translated, legs)
		}
		for _, e := range m.Entries {
			if e.SrcKind == matrix.KindNode {
				t.Fatalf("SNAT'd traffic left a node entry: %+v", e)
			}
		}
		// Without raw addresses, the aggregates are exactly the projected records.
		o.RawAddrs = nil
		if res, err = c.Egress(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		diffRecords(t, res.Records, expected(gs, o.Ports, from, to))
	}
}

// TestEgressHardLinesRawInBatches: the lines whose exact ports the matrix needs are read
// as raw lines, and in batches when there are more than a batch holds; the aggregates stay
// exact, bytes and times included.
func TestEgressHardLinesRawInBatches(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	var batches atomic.Int32
	hardQuery := mustQueries(t)[qHard].pipeline.String()
	c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Trace: func(path, q string, _ time.Duration, err error) {
		if strings.HasSuffix(path, "/query_range") && q == hardQuery && err == nil {
			batches.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Counts only: the default mode reads every egress line, not the hard ones apart.
	res, err := c.Egress(context.Background(), Options{From: from, To: to, BatchSize: 5, CountsOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if n := batches.Load(); n < 3 {
		t.Fatalf("the hard lines were read in %d batches of 5; the capture should need 3 or more", n)
	}
	want := countsOnly(expected(gs, matrix.PortPolicy{}, from, to))
	matrix.SortRecords(want) // without times the order is another
	diffRecords(t, res.Records, want)
}

// The default mode reads every egress line shard by shard; with small batches the batch
// boundaries and the time cuts of large shards fall everywhere, and the answer stays exact.
func TestEgressDefaultReadsShardsExactly(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	var mu sync.Mutex
	selectors := map[string]bool{}
	var rangeCalls atomic.Int32
	c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Trace: func(path, q string, _ time.Duration, err error) {
		if strings.HasSuffix(path, "/query_range") && err == nil {
			rangeCalls.Add(1)
			mu.Lock()
			selectors[q[:strings.Index(q, "}")+1]] = true
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range []int{40, 5000} {
		rangeCalls.Store(0)
		res, err := c.Egress(context.Background(), Options{From: from, To: to, BatchSize: batch})
		if err != nil {
			t.Fatal(err)
		}
		diffRecords(t, res.Records, expected(gs, matrix.PortPolicy{}, from, to))
		if res.Retrieved != res.Expected || res.Decode.Undecodable != 0 {
			t.Fatalf("batch %d: retrieved %d of %d, %d undecodable", batch, res.Retrieved, res.Expected, res.Decode.Undecodable)
		}
		if batch == 40 && int(rangeCalls.Load()) < int(res.Retrieved)/40 {
			t.Fatalf("batch 40: %d requests for %d lines", rangeCalls.Load(), res.Retrieved)
		}
	}
	// A shard per namespace, per node and the two rests.
	if len(selectors) < 10 {
		t.Fatalf("the lines were read through %d stream selectors, want one per shard: %v", len(selectors), selectors)
	}
}

func mustQueries(t *testing.T) []aggQuery {
	t.Helper()
	qs, err := aggregateQueries(EgressPipeline(nil), matrix.PortPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	return qs
}

// Where every namespace has more egress lines than max_query_series but repeats its keys
// (each flow below recurs sixty times over the hour; the namespaces that would still have
// fewer lines are left out), the pilots are the smallest of them, and the plan packs
// several namespaces into each shard, within the limit. A plan that took pilots only among
// namespaces under the limit gave each namespace a shard of its own.
func TestCountsOnlyPacksNamespacesOverTheLimit(t *testing.T) {
	limits := lokitest.LokiStackLimits
	limits.MaxQuerySeries = 150
	s := lokitest.Start(t, limits)
	from, to := window()
	const repeats = 60
	step := to.Sub(from) / repeats
	base := lokitest.Generate(lokitest.GenConfig{Records: 2000, From: from, To: from.Add(step), Seed: 7, OldFormat: 0.2})
	lines := map[string]int{}
	for _, g := range base {
		if g.Egress {
			lines[g.Truth.SrcNamespace] += repeats
		}
	}
	var gs []lokitest.Generated
	for i := range repeats {
		for _, g := range base {
			if ns := g.Truth.SrcNamespace; ns != "" && lines[ns] <= 2*limits.MaxQuerySeries {
				continue
			}
			g.Time = g.Time.Add(time.Duration(i) * step)
			gs = append(gs, g)
		}
	}
	pushed(t, s, gs)
	var refused, namespaced atomic.Int32
	c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Trace: func(path, q string, _ time.Duration, err error) {
		if strings.HasSuffix(path, "/query") && strings.Contains(q, "SrcK8S_Namespace=~") {
			namespaced.Add(1)
			if kind, _ := lokiquery.Classify(err); kind == lokiquery.LimitSeries {
				refused.Add(1)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	perNS, err := c.countBy(context.Background(), EgressPipeline(nil), from, to, time.Minute, "SrcK8S_Namespace")
	if err != nil {
		t.Fatal(err)
	}
	over := 0
	for ns, n := range perNS {
		switch {
		case ns == "":
		case n > int64(limits.MaxQuerySeries):
			over++
		default:
			t.Fatalf("namespace %s has %d egress lines, not over the limit (%d): the test is built on none", ns, n, limits.MaxQuerySeries)
		}
	}
	res, err := c.Egress(context.Background(), Options{From: from, To: to, CountsOnly: true, MaxSeries: limits.MaxQuerySeries})
	if err != nil {
		t.Fatal(err)
	}
	want := countsOnly(expected(gs, matrix.PortPolicy{}, from, to))
	matrix.SortRecords(want)
	diffRecords(t, res.Records, want)
	t.Logf("%d namespaces, %d of them over %d lines: %d namespace queries, %d refused", len(perNS), over, limits.MaxQuerySeries, namespaced.Load(), refused.Load())
	if over < 15 || int(namespaced.Load()) > over/2 || refused.Load() > 0 {
		t.Fatalf("%d namespaces over the limit took %d namespace queries, %d refused by max_query_series: want at least 15 such namespaces packed two or more to a query, none refused", over, namespaced.Load(), refused.Load())
	}
}
