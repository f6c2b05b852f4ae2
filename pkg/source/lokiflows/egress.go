package lokiflows

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// App is the stream label every NetObserv record carries; a stream selector needs one
// matcher with a non-empty value and this is the one.
const App = "netobserv-flowcollector"

// Mode chooses how records are retrieved.
type Mode int

const (
	// Aggregate asks Loki for sums per matrix key (fast; the answer grows with keys).
	Aggregate Mode = iota
	// Raw pulls every egress line, batched, and decodes it (needed when the matrix uses
	// per-record fields aggregation drops: exact source ports, times for DNS naming).
	Raw
)

func (m Mode) String() string {
	if m == Raw {
		return "raw"
	}
	return "aggregate"
}

// Options describe the window and how to retrieve it.
type Options struct {
	// From and To bound the window [From, To) on the entry timestamp (TimeFlowEndMs). They
	// are widened to whole milliseconds, the finest unit of a LogQL range.
	From, To time.Time
	// Matchers are added to the stream selector, e.g. K8S_ClusterName="ci".
	Matchers []lokiquery.Matcher
	// Ports says which source ports aggregation keeps exact; the others become
	// flow.EphemeralPort.
	Ports matrix.PortPolicy
	Mode  Mode
	// BatchSize is the line limit of one raw request (default 5000, lowered to the
	// server's max_entries_limit_per_query when Loki says so).
	BatchSize int
	// MinPiece is the shortest time piece a query is split into before giving up (default 1m).
	MinPiece time.Duration
	// CountsOnly has Loki count the lines per matrix key, and read whole only the few
	// lines whose exact ports the matrix needs: matrix entries, ports, evidence and flow
	// counts stay exact, but the aggregates carry no bytes and no times (entries get zero
	// Bytes, FirstSeen, LastSeen). Without it, the aggregate path reads every egress line,
	// shard by shard, and folds it here: Loki's sums of bytes and times would cost three
	// more scans of each aggregate query, more than reading the lines once.
	CountsOnly bool
	// MaxSeries is the max_query_series the shards are planned for (default 500, Loki's
	// and LokiStack's default); a smaller real limit is met by splitting further.
	MaxSeries int
	// Barrier, when its Timeout is set, waits for ingestion past To before querying.
	Barrier Barrier
	// RawAddrs are destination addresses whose records are pulled raw even in Aggregate
	// mode: those whose name depends on when each flow happened (a hostname resolution that
	// starts or ends inside the window); an aggregate's time span would blur it.
	RawAddrs []string
}

// Result is what Egress retrieved.
type Result struct {
	Mode Mode
	// Records are decoded lines (Raw) or aggregates with Count (Aggregate).
	Records []flow.Record
	// Decode accounts for raw lines pkg/flow could not decode (they are not in Records).
	Decode flow.Stats
	// Retrieved is the number of flow records retrieved (sum of Count, plus undecodable
	// raw lines); Expected is Loki's own count_over_time of the same selection. Egress
	// fails unless they are equal.
	Retrieved, Expected int64
	// Pieces is how many query pieces the window ended up split into.
	Pieces int
	// Query is the LogQL log query that selects the egress records of the window.
	Query string
}

// EgressPipeline is the selection of flow records whose destination is not a known cluster
// object: no destination K8S type and no Pods/Services/Machines subnet label. It keeps
// records from pods and from nodes/host-network pods (SrcK8S_Type Node, SrcSubnetLabel
// Machines), and does not filter on FlowDirection, which is absent when host IPs are
// unknown. It works on both record formats: DstK8S_Type is a stream label since NetObserv
// 1.6 and a JSON field before, so it is matched in the selector and again after `| json`.
//
// The selector also wants no destination namespace and owner. NetObserv's enrichment writes
// a destination's namespace, owner and type together, from one matched object, so these
// drop no record the type test keeps; but they are stream labels in both formats, so Loki
// skips the old format's in-cluster streams without opening them.
//
// There are no line filters: with in-cluster streams left out by the selector they drop
// few lines, and each costs Loki a scan of every selected line; they would pay again only
// where a large part of the selected lines went to internal subnets. (Figures:
// docs/performance.md, "Why the code is shaped so".)
func EgressPipeline(extra []lokiquery.Matcher) lokiquery.Pipeline {
	sel := []lokiquery.Matcher{
		{Name: "app", Op: lokiquery.OpEq, Value: App},
		{Name: "DstK8S_Type", Op: lokiquery.OpEq, Value: ""},
		{Name: "DstK8S_Namespace", Op: lokiquery.OpEq, Value: ""},
		{Name: "DstK8S_OwnerName", Op: lokiquery.OpEq, Value: ""},
		// Conversation tracking records (newConnection/heartbeat/endConnection) repeat flows.
		{Name: "_RecordType", Op: lokiquery.OpRe, Value: "|flowLog"},
	}
	sel = append(sel, extra...)
	return lokiquery.Pipeline{
		Selector:   sel,
		JSONFields: []string{"DstK8S_Type", "DstSubnetLabel"},
		LabelFilters: []lokiquery.Matcher{
			{Name: "DstK8S_Type", Op: lokiquery.OpEq, Value: ""},
			{Name: "DstSubnetLabel", Op: lokiquery.OpNotRe, Value: lokiquery.RegexAlternatives(internalSubnets)},
		},
	}
}

var internalSubnets = []string{"Pods", "Services", "Machines"}

// streamLabels are the labels NetObserv may index. Loki removes them from the JSON line,
// so a raw line read through a parsing query keeps them to be decoded whole.
var streamLabels = []string{
	"app", "SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_Type", "DstK8S_Namespace", "DstK8S_OwnerName",
	"DstK8S_Type", "K8S_FlowLayer", "FlowDirection", "K8S_ClusterName", "SrcK8S_Zone", "DstK8S_Zone", "UdnId",
	"_RecordType",
}

// metricKind is one of the four sums taken per key.
type metricKind int

const (
	mCount metricKind = iota
	mBytes
	mStart
	mEnd
	nMetrics
)

var metricAgg = [nMetrics]struct{ agg, unwrap string }{
	mCount: {lokiquery.AggCount, ""},
	mBytes: {lokiquery.AggSum, "Bytes"},
	mStart: {lokiquery.AggMin, "TimeFlowStartMs"},
	mEnd:   {lokiquery.AggMax, "TimeFlowEndMs"},
}

// aggregate is the running value of one projected record.
type aggregate struct {
	count      int64
	bytes      int64
	start, end int64 // ms
}

// normalized checks the window and fills the defaults. Egress and DNSQueries share it so the
// DNS evidence covers exactly the egress window: From rounds down and To up to the
// millisecond that Loki's timestamps carry.
func (o Options) normalized() (Options, error) {
	if o.To.IsZero() || !o.From.Before(o.To) {
		return o, fmt.Errorf("window [%s, %s) is empty: give a start before the end", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	}
	o.From = o.From.Truncate(time.Millisecond)
	if t := o.To.Truncate(time.Millisecond); !t.Equal(o.To) {
		o.To = t.Add(time.Millisecond)
	}
	if o.MinPiece <= 0 {
		o.MinPiece = time.Minute
	}
	// A piece is a LogQL range: whole milliseconds.
	if rem := o.MinPiece % time.Millisecond; rem != 0 {
		o.MinPiece += time.Millisecond - rem
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.MaxSeries <= 0 {
		o.MaxSeries = 500
	}
	return o, nil
}

// Egress retrieves the egress flow records of a window. It fails, rather than return
// part of the window, when Loki cannot answer, when a limit cannot be worked around, and
// when what it retrieved does not add up to Loki's own count of the window.
func (c *client) Egress(ctx context.Context, o Options) (*Result, error) {
	o, err := o.normalized()
	if err != nil {
		return nil, err
	}
	base := EgressPipeline(o.Matchers)
	if err := base.Validate(); err != nil {
		return nil, err
	}
	if err := c.CheckWindow(ctx, o.From, o.To); err != nil {
		return nil, err
	}
	if o.Barrier.Timeout > 0 {
		if err := c.WaitIngested(ctx, o.To, o.Barrier); err != nil {
			return nil, err
		}
	}
	res := &Result{Mode: o.Mode, Query: base.String()}
	var expected int64
	if o.Mode == Raw {
		r := &run{c: c, o: o, base: base}
		if err := r.raw(ctx, res, true); err != nil {
			return nil, err
		}
		res.Pieces = r.pieces
		// Raw lines are decoded here, and the ones pkg/flow cannot decode are counted in
		// Result.Decode: Loki's count must include lines its own parser rejects.
		countBase := base
		countBase.Stages = append(countBase.Stages, "drop __error__, __error_details__")
		n, err := c.count(ctx, countBase, o.From, o.To, o.MinPiece)
		if err != nil {
			return nil, fmt.Errorf("completeness check: %w", err)
		}
		expected = n
	} else {
		aggBase := base
		if len(o.RawAddrs) > 0 {
			re := lokiquery.RegexAlternatives(o.RawAddrs)
			aggBase = base.WithFields("DstAddr").With(nil, []lokiquery.Matcher{{Name: "DstAddr", Op: lokiquery.OpNotRe, Value: re}})
			rr := &run{c: c, o: o, base: base.WithFields("DstAddr").With(nil, []lokiquery.Matcher{{Name: "DstAddr", Op: lokiquery.OpRe, Value: re}})}
			// Few lines of many streams: read whole, not shard by shard.
			if err := rr.raw(ctx, res, false); err != nil {
				return nil, err
			}
			res.Pieces += rr.pieces
		}
		queries, err := aggregateQueries(aggBase, o.Ports)
		if err != nil {
			return nil, err
		}
		if !o.CountsOnly {
			// Bytes and times would take Loki three more scans of each aggregate query; a
			// read of every egress line, shard by shard, costs Loki less than those, and
			// the lines fold here into the same aggregates (docs/performance.md).
			queries = []aggQuery{{pipeline: aggBase, plan: planRead}}
		}
		r := &run{c: c, o: o, base: aggBase, queries: queries, keys: aggregates{},
			inFlight: make(chan struct{}, c.Concurrency())}
		perNS, err := r.aggregate(ctx, res, base)
		if err != nil {
			if strings.Contains(err.Error(), "JSONParserErr") {
				return nil, fmt.Errorf("some egress lines in the window are not JSON flow records, so Loki cannot aggregate them; pull raw lines (--raw) to see which: %w", err)
			}
			return nil, err
		}
		for _, n := range perNS {
			expected += n
		}
		res.Pieces += r.pieces
		if len(o.RawAddrs) > 0 {
			// The aggregates are distinct already; raw records may repeat keys.
			res.Records = matrix.Fold(res.Records)
		}
	}
	res.Expected = expected
	if res.Retrieved > expected {
		return nil, fmt.Errorf("inconsistent answer for [%s, %s): retrieved %d egress records but Loki counts %d for %s (%d more): some were read twice, or Loki's data changed during the pull; re-run, and report it if it persists",
			o.From.Format(time.RFC3339Nano), o.To.Format(time.RFC3339Nano), res.Retrieved, expected, base, res.Retrieved-expected)
	}
	if res.Retrieved != expected {
		return nil, fmt.Errorf("incomplete answer for [%s, %s): retrieved %d egress records but Loki counts %d for %s (%d missing); records may still be arriving: re-run with the ingestion barrier or a later window end",
			o.From.Format(time.RFC3339Nano), o.To.Format(time.RFC3339Nano), res.Retrieved, expected, base, expected-res.Retrieved)
	}
	if expected == 0 {
		all, err := c.count(ctx, lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: App}}}, o.From, o.To, o.MinPiece)
		if err != nil {
			return nil, fmt.Errorf("checking the window is not empty: %w", err)
		}
		if all == 0 {
			return nil, fmt.Errorf("loki holds no NetObserv flow record (app=%q) in [%s, %s) for tenant %q: check the tenant (X-Scope-OrgID or gateway URL), that the FlowCollector writes to this Loki, and the window",
				App, o.From.Format(time.RFC3339), o.To.Format(time.RFC3339), c.Tenant())
		}
	}
	return res, nil
}

// run is the state of one Egress call.
type run struct {
	c    *client
	o    Options
	base lokiquery.Pipeline
	// queries are the aggregate queries (aggregateQueries).
	queries []aggQuery

	mu     sync.Mutex
	keys   aggregates
	pieces int
	// inFlight bounds the pieces being queried (queryPiece).
	inFlight chan struct{}
	// into, when set, is the run whose aggregates the records of a raw pull fold into,
	// instead of going to the Result.
	into *run
}

// piece is one query unit: a shard of the egress streams and a time range.
type piece struct {
	q        int // index in run.queries (aggregate path)
	shard    shard
	from, to time.Time
}

func (p piece) String() string {
	return fmt.Sprintf("%s [%s, %s)", lokiquery.SelectorString(p.shard.matchers()), p.from.Format(time.RFC3339), p.to.Format(time.RFC3339))
}

// aggregate runs the aggregate queries, and returns Loki's own count of the lines of
// countBase (the whole egress selection) per source namespace: what the aggregates must
// add up to, and what the shards are planned on. A record ingested meanwhile makes the
// sums disagree and Egress fail, never pass short.
func (r *run) aggregate(ctx context.Context, res *Result, countBase lokiquery.Pipeline) (map[string]int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// stop ends the queries beside a failed step, and reports the first real cause.
	stop := func(err error) error {
		cancel()
		if werr := g.Wait(); werr != nil && !errors.Is(werr, context.Canceled) {
			return werr
		}
		return err
	}
	// The queries that select few keys run beside the count, once over the window, split
	// only if Loki says they must be; so do the lines read raw.
	for q, aq := range r.queries {
		switch aq.plan {
		case planNone:
			g.Go(func() error {
				return r.runPiece(gctx, g, piece{q: q, shard: aq.shard, from: r.o.From, to: r.o.To})
			})
		case planRaw, planRead:
			g.Go(func() error { return r.rawLines(gctx, res, aq.pipeline, aq.plan == planRead) })
		}
	}
	perNS, err := r.c.countBy(gctx, countBase, r.o.From, r.o.To, r.o.MinPiece, shardDims[0])
	if kind, _ := lokiquery.Classify(err); kind == lokiquery.LimitSeries {
		perNS, err = r.c.countBy(gctx, countBase, r.o.From, r.o.To, r.o.MinPiece, "")
	}
	if err != nil {
		// A query that failed beside it cancels the count: its error is the cause then.
		return nil, stop(fmt.Errorf("completeness check: %w", err))
	}
	for q, aq := range r.queries {
		if aq.plan != planPilots {
			continue
		}
		shards, err := r.planAggregate(gctx, g, q, perNS)
		if err != nil {
			return nil, stop(err)
		}
		for _, sh := range shards {
			p := piece{q: q, shard: sh, from: r.o.From, to: r.o.To}
			g.Go(func() error { return r.runPiece(gctx, g, p) })
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Sized once: grown by append, the records' slice left as much garbage as it holds,
	// at the client's peak.
	res.Records = slices.Grow(res.Records, len(r.keys))
	for rec, a := range r.keys {
		rec.Count, rec.Bytes = a.count, a.bytes
		if a.start != math.MaxInt64 && a.start != 0 {
			rec.Start = msTime(a.start)
		}
		if a.end != math.MinInt64 && a.end != 0 {
			rec.End = msTime(a.end)
		}
		res.Records = append(res.Records, rec)
		res.Retrieved += a.count
	}
	matrix.SortRecords(res.Records)
	return perNS, nil
}

// planAggregate shards query q (qPlain) so that each shard fits max_query_series at the
// first try: a query over the limit costs Loki a scan for nothing, and Loki cannot count
// the keys of a namespace without holding them (the limit applies inside the query). A
// window of at most max_query_series lines is one shard (a key has a line at least).
// Otherwise a few namespaces go first, as pilots: their keys per line of q size the shards
// of the others (with a margin; a pilot whose lines are mostly other queries' tells nothing
// and is passed over). The pilots' answers are kept. Pilots are the largest namespaces of
// at most max_query_series lines, which fit whatever their keys, then the smallest of the
// others: where every namespace has more lines than the limit, a pilot that fits still
// measures, and one Loki refuses still bounds the keys per line from below, where a plan
// without pilots gave each namespace a shard (docs/performance.md).
func (r *run) planAggregate(ctx context.Context, g *errgroup.Group, q int, lines map[string]int64) ([]shard, error) {
	// Lines without a namespace are qNodes's.
	var total int64
	var values []string
	for ns, n := range lines {
		if ns != "" {
			total += n
			values = append(values, ns)
		}
	}
	if total <= int64(r.o.MaxSeries) {
		return []shard{{dim: -1}}, nil
	}
	var fit, over []string
	for _, ns := range values {
		switch n := lines[ns]; {
		case n <= 0:
		case n <= int64(r.o.MaxSeries):
			fit = append(fit, ns)
		default:
			over = append(over, ns)
		}
	}
	sort.Slice(fit, func(i, j int) bool {
		if lines[fit[i]] != lines[fit[j]] {
			return lines[fit[i]] > lines[fit[j]]
		}
		return fit[i] < fit[j]
	})
	sort.Slice(over, func(i, j int) bool {
		if lines[over[i]] != lines[over[j]] {
			return lines[over[i]] < lines[over[j]]
		}
		return over[i] < over[j]
	})
	candidates := append(fit, over...)
	const maxPilots, usablePilots, minPilotLines = 4, 2, 50
	keysPerLine, usable := 0.0, 0
	pilots := map[string]bool{}
	for _, ns := range candidates[:min(len(candidates), maxPilots)] {
		if usable == usablePilots {
			break
		}
		pilots[ns] = true
		p := piece{q: q, shard: shard{dim: 0, values: []string{ns}}, from: r.o.From, to: r.o.To}
		keys, plainLines, err := r.queryPiece(ctx, p)
		if kind, _ := lokiquery.Classify(err); kind != lokiquery.NoLimit {
			// Too many keys, too long or too slow for this Loki: split like any piece.
			g.Go(func() error { return r.runPiece(ctx, g, p) })
			if kind == lokiquery.LimitSeries {
				// More keys than the limit in at most lines[ns] lines of q.
				usable++
				keysPerLine = max(keysPerLine, float64(r.o.MaxSeries)/float64(lines[ns]))
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if plainLines >= minPilotLines {
			usable++
			keysPerLine = max(keysPerLine, float64(keys)/float64(plainLines))
		}
	}
	if usable == 0 {
		keysPerLine = 1 // every line its own key: many shards, none refused
	}
	// A margin for namespaces that repeat their keys less than the pilots do.
	keysPerLine = min(1, 1.5*keysPerLine)
	keys := map[string]int{}
	for ns, n := range lines {
		if ns != "" && !pilots[ns] {
			keys[ns] = int(math.Ceil(float64(n) * keysPerLine))
		}
	}
	return packShards(keys, values, pilots, r.o.MaxSeries), nil
}

// metric is one sum of a piece.
func (r *run) metric(p piece, k metricKind) lokiquery.Metric {
	aq := r.queries[p.q]
	m := lokiquery.Metric{Pipeline: aq.pipeline.With(p.shard.matchers(), nil), Agg: metricAgg[k].agg, Unwrap: metricAgg[k].unwrap,
		Range: p.to.Sub(p.from), By: aq.by}
	if m.Unwrap != "" {
		// Loki pushes the grouping down into count_over_time only: without this keep, every
		// other JSON field would make its own series under an unwrap.
		m.Pipeline = m.Pipeline.WithFields(m.Unwrap)
		m.Pipeline.Stages = append(m.Pipeline.Stages, "keep "+strings.Join(append(append([]string(nil), aq.by...), m.Unwrap), ", "))
	}
	return m
}

// queryPiece runs the sums of a piece and merges them; nothing is merged unless all of
// them succeed, so a piece that is split afterwards is never counted twice.
func (r *run) queryPiece(ctx context.Context, p piece) (keys int, lines int64, err error) {
	// At most Concurrency pieces hold answers at a time: a piece whose count came back
	// waits for its sums, and many such pieces would hold many answers.
	select {
	case r.inFlight <- struct{}{}:
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	defer func() { <-r.inFlight }()
	at := p.to.Add(-time.Nanosecond)
	// Each answer is reduced to its values by key as it arrives (the labels of the count's
	// only), so that Loki's answers are garbage before the piece is merged.
	var vals [nMetrics]map[string]float64
	var labels map[string]map[string]string
	query := func(ctx context.Context, k metricKind) error {
		m := r.metric(p, k)
		if err := m.Validate(); err != nil {
			return err
		}
		v, err := r.c.Instant(ctx, m.String(), at)
		if err != nil {
			return err
		}
		out := make(map[string]float64, len(v))
		for _, smp := range v {
			lbs := labelsOf(smp.Metric)
			key := lokiquery.MapKey(lbs)
			out[key] = float64(smp.Value)
			if k == mCount {
				if labels == nil {
					labels = make(map[string]map[string]string, len(v))
				}
				labels[key] = lbs
			}
		}
		vals[k] = out
		return nil
	}
	// The count goes first, alone: when the piece has too many keys it is the query that
	// fails (each failure costs Loki a scan); the sums have the same keys.
	if err := query(ctx, mCount); err != nil {
		return 0, 0, err
	}
	if !r.o.CountsOnly && len(vals[mCount]) > 0 {
		// One after the other: the other pieces keep Loki's cores busy, and a piece holds
		// one answer being decoded, not three: as fast, less memory (docs/performance.md).
		for k := mCount + 1; k < nMetrics; k++ {
			if err := query(ctx, k); err != nil {
				return 0, 0, err
			}
		}
	}
	if err := r.merge(p, labels, vals); err != nil {
		return 0, 0, err
	}
	r.mu.Lock()
	r.pieces++
	r.mu.Unlock()
	for _, n := range vals[mCount] {
		lines += int64(n)
	}
	return len(vals[mCount]), lines, nil
}

// runPiece queries a piece of the aggregate queries, cut further as Loki requires.
func (r *run) runPiece(ctx context.Context, g *errgroup.Group, p piece) error {
	return r.runCut(ctx, g, p, func(ctx context.Context, p piece) error {
		_, _, err := r.queryPiece(ctx, p)
		return err
	})
}

// runCut runs query on a piece; when Loki answers with a limit it cuts the piece
// (partsOnLimit) and queues the parts in g, each run the same way.
func (r *run) runCut(ctx context.Context, g *errgroup.Group, p piece, query func(context.Context, piece) error) error {
	err := query(ctx, p)
	if err == nil {
		return nil
	}
	parts, err := r.partsOnLimit(ctx, p, err)
	if err != nil {
		return err
	}
	for _, q := range parts {
		g.Go(func() error { return r.runCut(ctx, g, q, query) })
	}
	return nil
}

// partsOnLimit cuts a piece Loki refused with err: by stream label values, then by time,
// for too many series; by time for a range too long, and for a timeout or too many bytes
// (then by label values). It returns err itself when err names no limit, and an error
// naming the limit when the piece cannot be cut further.
func (r *run) partsOnLimit(ctx context.Context, p piece, err error) ([]piece, error) {
	kind, n := lokiquery.Classify(err)
	switch kind {
	case lokiquery.LimitSeries:
		parts, lerr := r.splitShard(ctx, p)
		if lerr != nil {
			return nil, lerr
		}
		if parts == nil {
			parts = r.splitTime(p, 2)
		}
		if parts == nil {
			return nil, fmt.Errorf("piece %s still exceeds max_query_series (%d) when split down to %s by time and to one owner: raise max_query_series on this Loki: %w", p, n, r.o.MinPiece, err)
		}
		return parts, nil
	case lokiquery.LimitLength:
		k := 2
		if n > 0 {
			k = int(math.Ceil(float64(p.to.Sub(p.from)) / float64(n)))
		}
		if parts := r.splitTime(p, max(k, 2)); parts != nil {
			return parts, nil
		}
		return nil, fmt.Errorf("piece %s: cannot split below %s to meet max_query_length: %w", p, r.o.MinPiece, err)
	case lokiquery.LimitTimeout, lokiquery.LimitBytes:
		parts := r.splitTime(p, 2)
		if parts == nil {
			parts, _ = r.splitShard(ctx, p)
		}
		if parts == nil {
			return nil, fmt.Errorf("piece %s still too large for this Loki when split down to %s: %w", p, r.o.MinPiece, err)
		}
		return parts, nil
	default:
		return nil, err
	}
}

// merge folds the answers of a piece into the running aggregates: labels are the
// count's keys, vals the sums by key.
func (r *run) merge(p piece, labels map[string]map[string]string, vals [nMetrics]map[string]float64) error {
	for k := mCount + 1; k < nMetrics; k++ {
		for key := range vals[k] {
			if _, ok := vals[mCount][key]; !ok {
				return fmt.Errorf("piece %s: key %s is in an answer but not in the count (Loki answered inconsistently; did data change during the query?)", p, key)
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, lbs := range labels {
		var v [nMetrics]float64
		var seen [nMetrics]bool
		for k := range nMetrics {
			v[k], seen[k] = vals[k][key]
			if seen[k] && (v[k] != math.Trunc(v[k]) || v[k] < 0 || v[k] > 1<<53) {
				return fmt.Errorf("piece %s: %s of key %s is %v, not an exact integer", p, metricAgg[k].agg, key, v[k])
			}
		}
		if r.o.CountsOnly {
			seen[mStart], seen[mEnd] = false, false
		}
		// A line without a numeric Bytes or time field contributes nothing to that sum,
		// as a decoded record with the field absent (0, zero time) would. (The bounds are
		// set as integers: math.MaxInt64 rounds up as a float64 and wraps to MinInt64.)
		start, end := int64(math.MaxInt64), int64(math.MinInt64)
		if seen[mStart] {
			start = int64(v[mStart])
		}
		if seen[mEnd] {
			end = int64(v[mEnd])
		}
		rec, err := keyRecord(lbs, r.o.Ports)
		if err != nil {
			return err
		}
		r.keys.add(rec, int64(v[mCount]), int64(v[mBytes]), start, end)
	}
	return nil
}

// aggregates are running aggregates by key.
type aggregates map[flow.Record]*aggregate

// add folds values into the aggregate of key rec; start and end are ms, math.MaxInt64 and
// math.MinInt64 when unknown.
func (m aggregates) add(rec flow.Record, count, bytes, start, end int64) {
	a := m[rec]
	if a == nil {
		a = &aggregate{start: math.MaxInt64, end: math.MinInt64}
		m[rec] = a
	}
	a.count += count
	a.bytes += bytes
	a.start = min(a.start, start)
	a.end = max(a.end, end)
}

// merge adds o's aggregates to m's.
func (m aggregates) merge(o aggregates) {
	for rec, a := range o {
		m.add(rec, a.count, a.bytes, a.start, a.end)
	}
}

// splitTime cuts a piece into k time parts on whole milliseconds; nil when the parts would
// be shorter than MinPiece.
func (r *run) splitTime(p piece, k int) []piece {
	d := p.to.Sub(p.from)
	step := (d / time.Duration(k)).Truncate(time.Millisecond)
	if step < r.o.MinPiece || step <= 0 {
		if d/2 >= r.o.MinPiece && k > 2 {
			step = r.o.MinPiece
		} else {
			return nil
		}
	}
	var out []piece
	for from := p.from; from.Before(p.to); from = from.Add(step) {
		q := p
		q.from, q.to = from, from.Add(step)
		if q.to.After(p.to) || p.to.Sub(q.to) < r.o.MinPiece/2 {
			q.to = p.to
		}
		out = append(out, q)
		if q.to.Equal(p.to) {
			break
		}
	}
	return out
}

// labelsOf is a series' labels as a plain map.
func labelsOf(m model.Metric) map[string]string {
	l := make(map[string]string, len(m))
	for name, v := range m {
		l[string(name)] = string(v)
	}
	return l
}

// recordFromLabels turns an aggregate's labels into the flow.Record it stands for (without
// Count, Bytes and times).
func recordFromLabels(l map[string]string) (flow.Record, error) {
	num := func(name string) (int, error) {
		v := strings.TrimSpace(l[name])
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			f, ferr := strconv.ParseFloat(v, 64)
			if ferr != nil || f != math.Trunc(f) {
				return 0, fmt.Errorf("aggregate %s: %s=%q is not an integer", lokiquery.MapKey(l), name, v)
			}
			n = int64(f)
		}
		return int(n), nil
	}
	r := flow.Record{
		SrcNamespace: l["SrcK8S_Namespace"], SrcOwnerName: l["SrcK8S_OwnerName"], SrcOwnerType: l["SrcK8S_OwnerType"],
		SrcType: l["SrcK8S_Type"], SrcHostName: l["SrcK8S_HostName"], SrcAddr: l["SrcAddr"], SrcName: l["SrcK8S_Name"],
		SrcSubnetLabel: l["SrcSubnetLabel"],
		DstNamespace:   l["DstK8S_Namespace"], DstOwnerName: l["DstK8S_OwnerName"], DstOwnerType: l["DstK8S_OwnerType"],
		DstType: l["DstK8S_Type"], DstAddr: l["DstAddr"], DstSubnetLabel: l["DstSubnetLabel"],
		DstName: l["DstK8S_Name"], DstHostName: l["DstK8S_HostName"],
		FlowDirection: l["FlowDirection"], FlowLayer: l["K8S_FlowLayer"], ClusterName: l["K8S_ClusterName"],
		DNSName: l["DnsName"], XlatSrcAddr: l["XlatSrcAddr"], XlatDstAddr: l["XlatDstAddr"],
	}
	var err error
	set := func(dst *int, name string) {
		if err == nil {
			*dst, err = num(name)
		}
	}
	set(&r.DstPort, "DstPort")
	set(&r.Proto, "Proto")
	set(&r.Sampling, "Sampling")
	set(&r.Etype, "Etype")
	set(&r.SrcPort, "SrcPort")
	set(&r.XlatSrcPort, "XlatSrcPort")
	set(&r.XlatDstPort, "XlatDstPort")
	if err != nil {
		return r, err
	}
	if r.Flags, err = parseFlagsLabel(l["Flags"]); err != nil {
		return r, fmt.Errorf("aggregate %s: %w", lokiquery.MapKey(l), err)
	}
	switch strings.ToLower(strings.TrimSpace(l["Duplicate"])) {
	case "", "false", "0":
	case "true", "1":
		r.Duplicate = true
	default:
		return r, fmt.Errorf("aggregate %s: Duplicate=%q is not a boolean", lokiquery.MapKey(l), l["Duplicate"])
	}
	return r, nil
}

// parseFlagsLabel reads Flags as `| json` extracts it: the JSON text of a list of names
// (NetObserv 1.8+) or an integer bitfield.
func parseFlagsLabel(v string) (uint32, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	if v[0] == '[' {
		inner := strings.TrimSpace(v[1 : len(v)-1])
		if inner == "" {
			return 0, nil
		}
		var names []string
		for _, n := range strings.Split(inner, ",") {
			n = strings.TrimSpace(n)
			if uq, err := strconv.Unquote(n); err == nil {
				n = uq
			}
			if b, err := strconv.ParseUint(n, 10, 32); err == nil {
				names = append(names, flow.FlagNames(uint32(b))...)
				continue
			}
			names = append(names, n)
		}
		return flow.FlagsFromNames(names...), nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("flags %q are neither a bitfield nor a list of names", v)
	}
	return uint32(n), nil
}

// count is Loki's own count of the lines a pipeline selects in [from, to), split by time
// when a limit requires it.
func (c *client) count(ctx context.Context, p lokiquery.Pipeline, from, to time.Time, minPiece time.Duration) (int64, error) {
	m, err := c.countBy(ctx, p, from, to, minPiece, "")
	var n int64
	for _, v := range m {
		n += v
	}
	return n, err
}

// countBy is count per value of a label ("" label: one total under "").
func (c *client) countBy(ctx context.Context, p lokiquery.Pipeline, from, to time.Time, minPiece time.Duration, label string) (map[string]int64, error) {
	m := lokiquery.Metric{Pipeline: p, Agg: lokiquery.AggCount, Range: to.Sub(from)}
	if label != "" {
		m.By = []string{label}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	v, err := c.Instant(ctx, m.String(), to.Add(-time.Nanosecond))
	if err == nil {
		out := map[string]int64{}
		for _, s := range v {
			f := float64(s.Value)
			if f != math.Trunc(f) || f < 0 {
				return nil, fmt.Errorf("count %v is not a whole number", f)
			}
			out[string(s.Metric[model.LabelName(label)])] += int64(f)
		}
		return out, nil
	}
	kind, limit := lokiquery.Classify(err)
	if kind != lokiquery.LimitLength && kind != lokiquery.LimitTimeout && kind != lokiquery.LimitBytes {
		return nil, err
	}
	k := 2
	if kind == lokiquery.LimitLength && limit > 0 {
		k = max(2, int(math.Ceil(float64(to.Sub(from))/float64(limit))))
	}
	step := (to.Sub(from) / time.Duration(k)).Truncate(time.Millisecond)
	if step < minPiece {
		return nil, fmt.Errorf("cannot split [%s, %s) below %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), minPiece, err)
	}
	var mu sync.Mutex
	total := map[string]int64{}
	g, gctx := errgroup.WithContext(ctx)
	for f := from; f.Before(to); f = f.Add(step) {
		t := f.Add(step)
		if t.After(to) || to.Sub(t) < step/2 {
			t = to
		}
		g.Go(func() error {
			part, err := c.countBy(gctx, p, f, t, minPiece, label)
			mu.Lock()
			for k, v := range part {
				total[k] += v
			}
			mu.Unlock()
			return err
		})
		if t.Equal(to) {
			break
		}
	}
	return total, g.Wait()
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
