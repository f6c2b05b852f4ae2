package lokiquery

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/grafana/loki/v3/pkg/loghttp"
	"golang.org/x/sync/errgroup"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// maxKeptDecodeErrors bounds the decode errors a Result keeps (all are counted).
const maxKeptDecodeErrors = 20

// raw pulls every line of r.base in the window: the window is cut in `parts` time pieces,
// and each piece is read oldest first in batches the way logcli --batch does (the next
// batch starts at the last timestamp seen; entries of that instant already read are
// skipped). Each piece reads the chunk blocks it overlaps whole, so a query that keeps few
// of the lines it reads is better left in one piece.
func (r *run) raw(ctx context.Context, res *Result, parts int) error {
	var (
		mu      sync.Mutex
		records []flow.Record
		stats   flow.Stats
		lines   int64
	)
	batch := &batchSize{n: r.o.BatchSize}
	emit := func(rs []flow.Record, errs []flow.DecodeError, n int64) {
		mu.Lock()
		defer mu.Unlock()
		if r.sink != nil {
			r.sink(rs)
		} else {
			records = append(records, rs...)
		}
		lines += n
		stats.Records += int64(len(rs))
		stats.Undecodable += int64(len(errs))
		for _, e := range errs {
			if len(stats.Errors) < maxKeptDecodeErrors {
				stats.Errors = append(stats.Errors, e)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	p := piece{from: r.o.From, to: r.o.To}
	pieces := []piece{p}
	if parts > 1 {
		if cut := r.splitTime(p, parts); cut != nil {
			pieces = cut
		}
	}
	for _, q := range pieces {
		g.Go(func() error { return r.rawPiece(gctx, g, q.from, q.to, batch, emit) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sortRecords(records)
	res.Records = append(res.Records, records...)
	res.Decode.Add(stats)
	res.Retrieved += lines
	return nil
}

// rawLines reads the lines of the aggregate query pl whole, and folds each projected
// record into the aggregates (bytes and times too, unless CountsOnly). Lines pkg/flow
// cannot decode are counted as retrieved and reported in res.Decode.
func (r *run) rawLines(ctx context.Context, res *Result, pl Pipeline) error {
	rr := &run{c: r.c, o: r.o, base: pl, sink: r.fold}
	var got Result
	// One piece: the query reads every egress line to keep a few, and time pieces would
	// each decompress the blocks they share.
	if err := rr.raw(ctx, &got, 1); err != nil {
		return fmt.Errorf("raw lines of %s: %w", shorten(pl.String()), err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pieces += rr.pieces
	res.Decode.Add(got.Decode)
	// The decoded ones are counted with the aggregates they fold into.
	res.Retrieved += got.Retrieved - got.Decode.Records
	return nil
}

// fold adds decoded records to the aggregates, as Loki's sums would have.
func (r *run) fold(rs []flow.Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range rs {
		pr := Project(rec, r.o.Ports)
		var bytes, start, end int64 = 0, math.MaxInt64, math.MinInt64
		// A record without a time is left out of min and max, as Loki leaves out a line
		// without the field.
		if !r.o.CountsOnly {
			bytes = pr.Bytes
			if !pr.Start.IsZero() {
				start = pr.Start.UnixMilli()
			}
			if !pr.End.IsZero() {
				end = pr.End.UnixMilli()
			}
		}
		pr.Count, pr.Bytes, pr.Start, pr.End = 0, 0, time.Time{}, time.Time{}
		r.add(pr, 1, bytes, start, end)
	}
}

// batchSize is shared by the pieces: once Loki names its max_entries_limit_per_query,
// every piece uses it.
type batchSize struct {
	mu sync.Mutex
	n  int
}

func (b *batchSize) get() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

func (b *batchSize) lower(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < b.n {
		b.n = n
	}
}

type rawEntry struct {
	labels loghttp.LabelSet
	key    string
	ts     time.Time
	line   string
}

func (r *run) rawPiece(ctx context.Context, g *errgroup.Group, from, to time.Time, batch *batchSize,
	emit func([]flow.Record, []flow.DecodeError, int64)) error {
	query := r.base.String()
	start := from
	var boundary map[string]bool // keys of entries at `start` already emitted
	for {
		limit := batch.get()
		streams, err := r.c.queryRange(ctx, query, limit, start, to)
		if err != nil {
			kind, n := classify(err)
			switch kind {
			case limitEntries:
				if n <= 0 || int(n) >= limit {
					return err
				}
				batch.lower(int(n))
				continue
			case limitLength, limitTimeout, limitBytes:
				parts := r.splitTime(piece{from: start, to: to}, 2)
				if parts == nil {
					return fmt.Errorf("raw lines of [%s, %s) cannot be split below %s: %w", start.Format(time.RFC3339), to.Format(time.RFC3339), r.o.MinPiece, err)
				}
				// The first part resumes this batch loop (keeping the boundary); the others start fresh.
				for _, q := range parts[1:] {
					g.Go(func() error { return r.rawPiece(ctx, g, q.from, q.to, batch, emit) })
				}
				to = parts[0].to
				continue
			default:
				return err
			}
		}
		r.mu.Lock()
		r.pieces++
		r.mu.Unlock()

		var entries []rawEntry
		total := 0
		for _, s := range streams {
			lk := mapKey(s.Labels)
			for _, e := range s.Entries {
				total++
				entries = append(entries, rawEntry{labels: s.Labels, key: lk, ts: e.Timestamp, line: e.Line})
			}
		}
		sort.SliceStable(entries, func(i, j int) bool { return entries[i].ts.Before(entries[j].ts) })

		var (
			recs []flow.Record
			errs []flow.DecodeError
			n    int64
		)
		var last time.Time
		next := map[string]bool{}
		for i, e := range entries {
			k := e.key + "\x00" + strconv.FormatInt(e.ts.UnixNano(), 10) + "\x00" + e.line
			if e.ts.Equal(start) && boundary[k] {
				continue // read by the previous batch
			}
			n++
			rec, err := flow.DecodeLine(e.labels, []byte(e.line))
			if err != nil {
				errs = append(errs, flow.DecodeError{Source: fmt.Sprintf("loki %s", e.ts.Format(time.RFC3339Nano)), Loki: true, Entry: i, Err: err})
			} else {
				recs = append(recs, rec)
			}
			if !e.ts.Equal(last) {
				last = e.ts
				next = map[string]bool{}
				if last.Equal(start) {
					for bk := range boundary {
						next[bk] = true
					}
				}
			}
			next[k] = true
		}
		emit(recs, errs, n)
		if total < limit {
			return nil // the piece is exhausted
		}
		if n == 0 {
			return fmt.Errorf("more than %d egress records share the timestamp %s: batches cannot move past it; raise max_entries_limit_per_query", limit, start.Format(time.RFC3339Nano))
		}
		start, boundary = last, next
	}
}
