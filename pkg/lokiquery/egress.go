package lokiquery

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grafana/loki/v3/pkg/loghttp"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/openshift/egress-tests-ext/pkg/flow"
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
	Matchers []Matcher
	// Ports says which source ports aggregation keeps exact; the others become
	// flow.EphemeralPort.
	Ports flow.PortPolicy
	Mode  Mode
	// BatchSize is the line limit of one raw request (default 5000, lowered to the
	// server's max_entries_limit_per_query when Loki says so).
	BatchSize int
	// MinPiece is the shortest time piece a query is split into before giving up (default 1m).
	MinPiece time.Duration
	// CountsOnly skips the Bytes, Start and End sums on the aggregate path (three of its
	// four queries): matrix entries, ports, evidence and flow counts stay exact, but the
	// aggregates carry no bytes and no times (entries get zero Bytes, FirstSeen, LastSeen).
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
// The line filters only drop lines the label filters would drop; they spare `| json` the
// bulk of in-cluster traffic.
func EgressPipeline(extra []Matcher) Pipeline {
	sel := []Matcher{
		{Name: "app", Op: OpEq, Value: App},
		{Name: "DstK8S_Type", Op: OpEq, Value: ""},
		// Conversation tracking records (newConnection/heartbeat/endConnection) repeat flows.
		{Name: "_RecordType", Op: OpRe, Value: "|flowLog"},
	}
	sel = append(sel, extra...)
	var lf []LineFilter
	for _, v := range internalSubnets {
		lf = append(lf, LineFilter{Op: LineNotContains, Text: `"DstSubnetLabel":"` + v + `"`})
	}
	for _, v := range []string{"Pod", "Node", "Service"} {
		lf = append(lf, LineFilter{Op: LineNotContains, Text: `"DstK8S_Type":"` + v + `"`})
	}
	return Pipeline{
		Selector:    sel,
		LineFilters: lf,
		JSONFields:  []string{"DstK8S_Type", "DstSubnetLabel"},
		LabelFilters: []Matcher{
			{Name: "DstK8S_Type", Op: OpEq, Value: ""},
			{Name: "DstSubnetLabel", Op: OpNotRe, Value: regexAlternatives(internalSubnets)},
		},
	}
}

var internalSubnets = []string{"Pods", "Services", "Machines"}

// Stream labels kept in every aggregate (absent ones are empty).
var keyLabels = []string{
	"SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_Type",
	"DstK8S_Namespace", "DstK8S_OwnerName", "DstK8S_Type",
	"K8S_FlowLayer", "FlowDirection", "K8S_ClusterName",
}

// JSON fields kept in every aggregate (some emptied by projectionStages).
var keyFields = []string{
	"SrcK8S_OwnerType", "SrcSubnetLabel", "DstAddr", "DstPort", "DstSubnetLabel", "DstK8S_OwnerType",
	"Proto", "Flags", "DnsName", "Sampling", "Duplicate", "Etype",
	"SrcK8S_Type", "SrcK8S_Name", "SrcK8S_HostName", "SrcAddr", "SrcPort",
	"XlatSrcAddr", "XlatDstAddr", "XlatSrcPort", "XlatDstPort",
}

// DynamicPortMin is where client port ranges start (Linux: 32768-60999). Below it a port
// may be a registered server port, and pkg/matrix's UDP rules compare exact values.
const DynamicPortMin = 32768

// projectionStages are the `label_format` stages that compute, line by line in Loki, the
// fields Project keeps, so that one aggregation over all egress streams yields Project's
// aggregates: a kept field keeps its value, a dropped one becomes empty, a client port
// becomes -1, and Flags keeps only the SYN and SYN_ACK bits, the
// ones pkg/matrix reads (the other bits would multiply the aggregates by flag combinations).
// The translated fields (XlatSrcAddr, XlatDstAddr, XlatSrcPort, XlatDstPort) and the
// source address of nodes are kept as Project keeps them: pkg/matrix needs them to fold
// OVN's SNAT'd node-side copy of pod egress into the pod.
func projectionStages(p flow.PortPolicy) []string {
	var extra []string
	ports := make([]int, 0, len(p.Extra))
	for port, ok := range p.Extra {
		if ok && port >= 1 && port <= 65535 {
			ports = append(ports, port)
		}
	}
	sort.Ints(ports)
	for _, port := range ports {
		extra = append(extra, strconv.Itoa(port))
	}
	isExtra := func(l string) string {
		if len(extra) == 0 {
			return "false"
		}
		var alts []string
		for _, e := range extra {
			alts = append(alts, fmt.Sprintf("(eq .%s %q)", l, e))
		}
		return "(or " + strings.Join(alts, " ") + ")"
	}
	// Ports are compared as decimal strings with the template builtins (len, eq, le, ge):
	// NetObserv writes them without leading zeros, so for equal lengths the string order is
	// the numeric order. sprig's int converts through reflection and costs several times more.
	isServer := func(l string) string {
		return fmt.Sprintf(`(or (and (le (len .%[1]s) 3) (ne .%[1]s "0") (ne .%[1]s "")) (and (eq (len .%[1]s) 4) (le .%[1]s "1023")) %[2]s)`, l, isExtra(l))
	}
	dynamic := func(l string) string {
		return fmt.Sprintf(`(and (or (gt (len .%[1]s) 5) (and (eq (len .%[1]s) 5) (ge .%[1]s "%[2]d"))) (not %[3]s))`, l, DynamicPortMin, isExtra(l))
	}
	// A pure SYN: "SYN" in the list of names (1.8+), or bit 0x02 of the integer bitfield;
	// SYN_ACK: "SYN_ACK", or bit 0x100. The list test comes first: it is the common case
	// and needs no conversion. Templates cost Loki per call and per line, so each rule is
	// written to stop at its first false test.
	isInt := `(and (ne .Flags "") (not (hasPrefix "[" .Flags)))`
	hasSYN := `(or (contains "\"SYN\"" .Flags) (and ` + isInt + ` (ge (mod (int .Flags) 4) 2)))`
	keepNames := `(or (eq .SrcK8S_Type "") (eq .SrcK8S_Type "Node") (eq .SrcK8S_OwnerType "Node") (eq .SrcK8S_OwnerType "Pod") (eq .SrcK8S_OwnerType ""))`
	response := fmt.Sprintf(`(and %s %s (or (eq .Proto "6") (eq .Proto "17") (eq .Proto "132")) (not %s))`,
		dynamic("DstPort"), isServer("SrcPort"), hasSYN)
	exactUDP := fmt.Sprintf(`(and (eq .Proto "17") (not %s))`, isServer("DstPort"))
	xlatKept := fmt.Sprintf(`(and (ne .XlatSrcPort "") (ne .XlatSrcPort "0") (or (not %s) %s))`, dynamic("XlatSrcPort"), exactUDP)
	dstPort := "{{if " + response + "}}-1{{else}}{{.DstPort}}{{end}}"
	// Most lines have no translation: their test stops at the first (and/or short-circuit).
	xlatDstPort := "{{if and (ne .XlatDstPort \"\") (not " + response + ")}}{{.XlatDstPort}}{{end}}"
	srcPort := fmt.Sprintf("{{if and %s (not %s) (not %s)}}-1{{else}}{{.SrcPort}}{{end}}", dynamic("SrcPort"), exactUDP, xlatKept)
	xlatSrcPort := "{{if " + xlatKept + "}}{{.XlatSrcPort}}{{end}}"
	flags := fmt.Sprintf(`{{if hasPrefix "[" .Flags}}`+
		`{{if contains "\"SYN\"" .Flags}}{{if contains "\"SYN_ACK\"" .Flags}}%[1]d{{else}}%[2]d{{end}}`+
		`{{else if contains "\"SYN_ACK\"" .Flags}}%[3]d{{else}}0{{end}}`+
		`{{else if .Flags}}{{$f := int .Flags}}{{$s := ge (mod $f 4) 2}}{{$a := eq (mod (div $f 256) 2) 1}}`+
		`{{if and $s $a}}%[1]d{{else if $s}}%[2]d{{else if $a}}%[3]d{{else}}0{{end}}`+
		`{{else}}0{{end}}`, flow.FlagSYN|flow.FlagSYNACK, flow.FlagSYN, flow.FlagSYNACK)
	// One stage: Loki evaluates every template of a label_format on the labels as they were
	// before it (one snapshot per line), so each rule reads the original values.
	return []string{
		"label_format DstPort=`" + dstPort + "`" +
			", Flags=`" + flags + "`" +
			", SrcPort=`" + srcPort + "`" +
			", SrcK8S_Name=`{{if " + keepNames + "}}{{.SrcK8S_Name}}{{end}}`" +
			", SrcK8S_HostName=`{{if " + keepNames + "}}{{.SrcK8S_HostName}}{{end}}`" +
			", XlatDstPort=`" + xlatDstPort + "`" +
			", XlatSrcPort=`" + xlatSrcPort + "`" +
			", SrcAddr=`{{if or (eq .SrcK8S_Type \"\") (eq .SrcK8S_Type \"Node\")}}{{.SrcAddr}}{{end}}`",
	}
}

// family is the set of streams a piece shards (all egress streams).
type family struct{ name string }

var allStreams = &family{name: "egress"}

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
	mCount: {AggCount, ""},
	mBytes: {AggSum, "Bytes"},
	mStart: {AggMin, "TimeFlowStartMs"},
	mEnd:   {AggMax, "TimeFlowEndMs"},
}

// aggregate is the running value of one key.
type aggregate struct {
	rec        flow.Record // the key, decoded once (smaller to keep than its labels)
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
func (c *Client) Egress(ctx context.Context, o Options) (*Result, error) {
	o, err := o.normalized()
	if err != nil {
		return nil, err
	}
	base := EgressPipeline(o.Matchers)
	if err := base.Validate(); err != nil {
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
		if err := r.raw(ctx, res); err != nil {
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
			re := regexAlternatives(o.RawAddrs)
			aggBase = base.WithFields("DstAddr").With(nil, []Matcher{{Name: "DstAddr", Op: OpNotRe, Value: re}})
			rr := &run{c: c, o: o, base: base.WithFields("DstAddr").With(nil, []Matcher{{Name: "DstAddr", Op: OpRe, Value: re}})}
			if err := rr.raw(ctx, res); err != nil {
				return nil, err
			}
			res.Pieces += rr.pieces
		}
		// Loki's own count of the egress lines, per source namespace, first: it plans the
		// shards and is what the aggregates must add up to. A record ingested meanwhile
		// makes the sums disagree and the call fail, never pass short.
		perNS, err := c.countBy(ctx, base, o.From, o.To, o.MinPiece, "SrcK8S_Namespace")
		if kind, _ := classify(err); kind == limitSeries {
			perNS, err = c.countBy(ctx, base, o.From, o.To, o.MinPiece, "")
		}
		if err != nil {
			if strings.Contains(err.Error(), "JSONParserErr") {
				return nil, fmt.Errorf("completeness check: some egress lines in the window are not JSON flow records, so Loki cannot aggregate them; pull raw lines (--raw) to see which: %w", err)
			}
			return nil, fmt.Errorf("completeness check: %w", err)
		}
		for _, n := range perNS {
			expected += n
		}
		r := &run{c: c, o: o, base: aggBase, keys: map[string]*aggregate{}}
		if err := r.aggregate(ctx, res, perNS); err != nil {
			return nil, err
		}
		res.Pieces += r.pieces
		res.Records = Fold(res.Records)
	}
	res.Expected = expected
	if res.Retrieved != expected {
		return nil, fmt.Errorf("incomplete answer for [%s, %s): retrieved %d egress records but Loki counts %d for %s (%d missing); records may still be arriving: re-run with the ingestion barrier or a later window end",
			o.From.Format(time.RFC3339Nano), o.To.Format(time.RFC3339Nano), res.Retrieved, expected, base, expected-res.Retrieved)
	}
	if expected == 0 {
		all, err := c.count(ctx, Pipeline{Selector: []Matcher{{Name: "app", Op: OpEq, Value: App}}}, o.From, o.To, o.MinPiece)
		if err != nil {
			return nil, fmt.Errorf("checking the window is not empty: %w", err)
		}
		if all == 0 {
			return nil, fmt.Errorf("loki holds no NetObserv flow record (app=%q) in [%s, %s) for tenant %q: check the tenant (X-Scope-OrgID or gateway URL), that the FlowCollector writes to this Loki, and the window",
				App, o.From.Format(time.RFC3339), o.To.Format(time.RFC3339), c.cfg.Tenant)
		}
	}
	return res, nil
}

// run is the state of one Egress call.
type run struct {
	c    *Client
	o    Options
	base Pipeline

	mu     sync.Mutex
	keys   map[string]*aggregate
	pieces int

	listMu sync.Mutex
	all    []loghttp.LabelSet // the egress streams of the window, listed when sharding needs them
	listed bool
}

// piece is one query unit: a shard of the egress streams and a time range.
type piece struct {
	fam      *family
	shard    shard
	from, to time.Time
}

func (p piece) String() string {
	return fmt.Sprintf("%s [%s, %s)", selector(p.shard.matchers()), p.from.Format(time.RFC3339), p.to.Format(time.RFC3339))
}

func (r *run) aggregate(ctx context.Context, res *Result, perNS map[string]int64) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, sh := range planShards(perNS, r.o.MaxSeries*linesPerKey) {
		p := piece{fam: allStreams, shard: sh, from: r.o.From, to: r.o.To}
		g.Go(func() error { return r.runPiece(gctx, g, p) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, a := range r.keys {
		rec := a.rec
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
	sortRecords(res.Records)
	return nil
}

func (r *run) pipeline(p piece) (Pipeline, []string) {
	pl := r.base.With(p.shard.matchers(), nil).WithFields(keyFields...)
	pl.Stages = append(pl.Stages, projectionStages(r.o.Ports)...)
	return pl, dedupe(append(append([]string(nil), keyLabels...), keyFields...))
}

// runPiece queries the four sums of a piece; when Loki answers with a limit it splits the
// piece (by stream label values, then by time) and queues the parts in g.
func (r *run) runPiece(ctx context.Context, g *errgroup.Group, p piece) error {
	pl, by := r.pipeline(p)
	var vecs [nMetrics]loghttp.Vector
	metric := func(k metricKind) Metric {
		m := Metric{Pipeline: pl, Agg: metricAgg[k].agg, Unwrap: metricAgg[k].unwrap, Range: p.to.Sub(p.from), By: by}
		if m.Unwrap != "" {
			m.Pipeline = m.Pipeline.WithFields(m.Unwrap)
		}
		return m
	}
	at := p.to.Add(-time.Nanosecond)
	// The count goes first, alone: when the piece has too many keys it is the one query
	// that fails (each failure costs Loki a scan); the three others have the same keys.
	cm := metric(mCount)
	if err := cm.Validate(); err != nil {
		return err
	}
	v, err := r.c.instant(ctx, cm.String(), at)
	vecs[mCount] = v
	if err == nil && !r.o.CountsOnly {
		mg, mctx := errgroup.WithContext(ctx)
		for k := mCount + 1; k < nMetrics; k++ {
			m := metric(k)
			if err := m.Validate(); err != nil {
				return err
			}
			mg.Go(func() error {
				v, err := r.c.instant(mctx, m.String(), at)
				vecs[k] = v
				return err
			})
		}
		err = mg.Wait()
	}
	if err == nil {
		r.mu.Lock()
		r.pieces++
		r.mu.Unlock()
		return r.merge(p, vecs)
	}
	kind, n := classify(err)
	var parts []piece
	switch kind {
	case limitSeries:
		parts, err = r.splitShard(ctx, p)
		if err != nil {
			return err
		}
		if parts == nil {
			parts = r.splitTime(p, 2)
		}
		if parts == nil {
			return fmt.Errorf("piece %s still exceeds max_query_series (%d) when split down to %s by time and to one owner: raise max_query_series on this Loki: %w", p, n, r.o.MinPiece, err)
		}
	case limitLength:
		k := 2
		if n > 0 {
			k = int(math.Ceil(float64(p.to.Sub(p.from)) / float64(n)))
		}
		parts = r.splitTime(p, max(k, 2))
		if parts == nil {
			return fmt.Errorf("piece %s: cannot split below %s to meet max_query_length: %w", p, r.o.MinPiece, err)
		}
	case limitTimeout, limitBytes:
		parts = r.splitTime(p, 2)
		if parts == nil {
			parts, _ = r.splitShard(ctx, p)
		}
		if parts == nil {
			return fmt.Errorf("piece %s still too large for this Loki when split down to %s: %w", p, r.o.MinPiece, err)
		}
	default:
		return err
	}
	for _, q := range parts {
		g.Go(func() error { return r.runPiece(ctx, g, q) })
	}
	return nil
}

// merge folds the four answers of a piece into the running aggregates.
func (r *run) merge(p piece, vecs [nMetrics]loghttp.Vector) error {
	type entry struct {
		labels map[string]string
		vals   [nMetrics]float64
		seen   [nMetrics]bool
	}
	local := map[string]*entry{}
	for k := range nMetrics {
		for _, s := range vecs[k] {
			lbs := make(map[string]string, len(s.Metric))
			for name, v := range s.Metric {
				lbs[string(name)] = string(v)
			}
			key := mapKey(lbs)
			e := local[key]
			if e == nil {
				e = &entry{labels: lbs}
				local[key] = e
			}
			e.vals[k], e.seen[k] = float64(s.Value), true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, e := range local {
		if !e.seen[mCount] {
			return fmt.Errorf("piece %s: key %s is in an answer but not in the count (Loki answered inconsistently; did data change during the query?)", p, key)
		}
		for k := range nMetrics {
			if v := e.vals[k]; e.seen[k] && (v != math.Trunc(v) || v < 0 || v > 1<<53) {
				return fmt.Errorf("piece %s: %s of key %s is %v, not an exact integer", p, metricAgg[k].agg, key, v)
			}
		}
		if r.o.CountsOnly {
			e.seen[mStart], e.seen[mEnd] = false, false
		}
		// A line without a numeric Bytes or time field contributes nothing to that sum,
		// as a decoded record with the field absent (0, zero time) would.
		if !e.seen[mStart] {
			e.vals[mStart] = math.MaxInt64
		}
		if !e.seen[mEnd] {
			e.vals[mEnd] = math.MinInt64
		}
		a := r.keys[key]
		if a == nil {
			rec, err := recordFromLabels(e.labels)
			if err != nil {
				return err
			}
			a = &aggregate{rec: rec, start: math.MaxInt64, end: math.MinInt64}
			r.keys[key] = a
		}
		a.count += int64(e.vals[mCount])
		a.bytes += int64(e.vals[mBytes])
		a.start = min(a.start, int64(e.vals[mStart]))
		a.end = max(a.end, int64(e.vals[mEnd]))
	}
	return nil
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

func mapKey(l map[string]string) string {
	names := make([]string, 0, len(l))
	for k := range l {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l[k]))
		b.WriteByte(',')
	}
	return b.String()
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	out := s[:0:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
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
				return 0, fmt.Errorf("aggregate %s: %s=%q is not an integer", mapKey(l), name, v)
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
		return r, fmt.Errorf("aggregate %s: %w", mapKey(l), err)
	}
	switch strings.ToLower(strings.TrimSpace(l["Duplicate"])) {
	case "", "false", "0":
	case "true", "1":
		r.Duplicate = true
	default:
		return r, fmt.Errorf("aggregate %s: Duplicate=%q is not a boolean", mapKey(l), l["Duplicate"])
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

// sortRecords gives a stable order, so outputs and --save-flows files are reproducible.
func sortRecords(rs []flow.Record) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := &rs[i], &rs[j]
		for _, c := range [][2]string{
			{a.SrcNamespace, b.SrcNamespace}, {a.SrcOwnerName, b.SrcOwnerName}, {a.SrcHostName, b.SrcHostName},
			{a.SrcAddr, b.SrcAddr}, {a.DstAddr, b.DstAddr},
		} {
			if c[0] != c[1] {
				return c[0] < c[1]
			}
		}
		if a.DstPort != b.DstPort {
			return a.DstPort < b.DstPort
		}
		if a.SrcPort != b.SrcPort {
			return a.SrcPort < b.SrcPort
		}
		if a.Flags != b.Flags {
			return a.Flags < b.Flags
		}
		if !a.End.Equal(b.End) {
			return a.End.Before(b.End)
		}
		return fmt.Sprint(*a) < fmt.Sprint(*b)
	})
}

// count is Loki's own count of the lines a pipeline selects in [from, to), split by time
// when a limit requires it.
func (c *Client) count(ctx context.Context, p Pipeline, from, to time.Time, minPiece time.Duration) (int64, error) {
	m, err := c.countBy(ctx, p, from, to, minPiece, "")
	var n int64
	for _, v := range m {
		n += v
	}
	return n, err
}

// countBy is count per value of a label ("" label: one total under "").
func (c *Client) countBy(ctx context.Context, p Pipeline, from, to time.Time, minPiece time.Duration, label string) (map[string]int64, error) {
	m := Metric{Pipeline: p, Agg: AggCount, Range: to.Sub(from)}
	if label != "" {
		m.By = []string{label}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	v, err := c.instant(ctx, m.String(), to.Add(-time.Nanosecond))
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
	kind, limit := classify(err)
	if kind != limitLength && kind != limitTimeout && kind != limitBytes {
		return nil, err
	}
	k := 2
	if kind == limitLength && limit > 0 {
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
