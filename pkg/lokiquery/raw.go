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

// raw pulls every line of r.base in the window. Sharded, the streams are cut into shards
// read apart (rawShards), so that each chunk block is decompressed about once: time pieces
// over all streams would each decompress every block they overlap, and a low-rate stream
// has one block for the whole window. A query that keeps few of the lines it reads is
// better left whole (sharded false): each shard costs Loki a query of its own. Each piece
// is read oldest first in batches the way logcli --batch does (the next batch starts at
// the last timestamp seen; entries of that instant already read are skipped), and a piece
// whose first batch shows many more to come is cut in time parts read side by side.
func (r *run) raw(ctx context.Context, res *Result, sharded bool) error {
	var (
		mu      sync.Mutex
		records []flow.Record
		stats   flow.Stats
		lines   int64
	)
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
	rd := &rawRead{batch: &batchSize{n: r.o.BatchSize}, answers: make(chan struct{}, answersHeld), emit: emit}
	shards := []shard{{dim: -1}}
	if sharded {
		streams, err := r.shardStreams(ctx)
		switch kind, _ := classify(err); {
		case err == nil:
			shards = rawShards(streams)
		case kind == noLimit:
			return fmt.Errorf("listing the streams to read: %w", err)
		}
		// Too many streams to list: one piece, which its time cuts still spread.
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, sh := range shards {
		pl := r.base.With(sh.matchers(), nil)
		g.Go(func() error { return r.rawPiece(gctx, g, rd, pl, r.o.From, r.o.To, true) })
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

// rawShards cuts streams into shards that cover them all: one per source namespace, one
// per owner of the streams without a namespace (nodes, which often send most), and a rest
// for each of the two that takes the values the listing did not show (streams that began
// after it).
func rawShards(streams []map[string]string) []shard {
	const ns = "SrcK8S_Namespace"
	namespaced := []Matcher{{Name: ns, Op: OpNeq, Value: ""}}
	bare := []Matcher{{Name: ns, Op: OpEq, Value: ""}}
	nsValues := valuesOf(streams, nil, ns)
	owners := valuesOf(streams, bare, shardDims[1])
	out := make([]shard, 0, len(nsValues)+len(owners)+2)
	for _, v := range nsValues {
		out = append(out, shard{dim: 0, values: []string{v}})
	}
	out = append(out, shard{fixed: namespaced, dim: 0, rest: true, all: nsValues})
	for _, v := range owners {
		out = append(out, shard{fixed: bare, dim: 1, values: []string{v}})
	}
	return append(out, shard{fixed: bare, dim: 1, rest: true, all: owners})
}

// rawLines reads the lines of the aggregate query pl whole, and folds each projected
// record into the aggregates (bytes and times too, unless CountsOnly). Lines pkg/flow
// cannot decode are counted as retrieved and reported in res.Decode. sharded is raw's.
func (r *run) rawLines(ctx context.Context, res *Result, pl Pipeline, sharded bool) error {
	rr := &run{c: r.c, o: r.o, base: pl, sink: r.fold}
	var got Result
	if err := rr.raw(ctx, &got, sharded); err != nil {
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

// rawRead is what the pieces of one raw read share.
type rawRead struct {
	batch *batchSize
	// answers bounds the batches held at once (being decoded or folded): a decoded batch
	// is the largest thing a raw read holds. Loki's work on the batches is bounded by the
	// client's Concurrency alone.
	answers chan struct{}
	emit    func([]flow.Record, []flow.DecodeError, int64)
}

// answersHeld is how many raw batches are held at once. Decoding and folding a batch
// costs the client less than half the CPU Loki spends computing it, so one at a time keeps
// up with Loki's answers (1M records: same time as four, peak RSS 77-81 MB instead of
// 111-116 MB).
const answersHeld = 1

// maxTimeParts bounds the time parts a piece is cut into once its first batch is in.
const maxTimeParts = 8

// rawPiece reads the lines of pl in [from, to) in batches. When cut is set and the first
// batch is full, the time the batch spanned tells how many batches are left; more than two
// and the rest of the window is cut in time parts read side by side (a piece that fills a
// batch quickly has small blocks, so the parts share few).
func (r *run) rawPiece(ctx context.Context, g *errgroup.Group, rd *rawRead, pl Pipeline, from, to time.Time, cut bool) error {
	query := pl.String()
	start := from
	var boundary map[string]bool // keys of entries at `start` already emitted
	for {
		done, last, err := r.rawBatch(ctx, g, rd, pl, query, &start, &to, &boundary)
		if err != nil || done {
			return err
		}
		if cut {
			cut = false
			spanned, left := last.Sub(from), to.Sub(last)
			if spanned > 0 && left > 2*spanned {
				k := min(maxTimeParts, int(math.Ceil(float64(left)/float64(2*spanned))))
				if parts := r.splitTime(piece{from: last, to: to}, max(k, 2)); parts != nil {
					for _, q := range parts[1:] {
						g.Go(func() error { return r.rawPiece(ctx, g, rd, pl, q.from, q.to, false) })
					}
					to = parts[0].to
				}
			}
		}
	}
}

// rawBatch reads one batch of query from *start, emits its records, and moves *start and
// *boundary past them; done when the piece is exhausted. A limit Loki names lowers the
// batch, or cuts *to and queues the rest of the piece in g.
func (r *run) rawBatch(ctx context.Context, g *errgroup.Group, rd *rawRead, pl Pipeline, query string,
	start, to *time.Time, boundary *map[string]bool) (done bool, last time.Time, err error) {
	hold := &answerHold{gate: rd.answers}
	defer hold.release()
	for {
		limit := rd.batch.get()
		streams, err := r.c.queryRange(withAnswerHold(ctx, hold), query, limit, *start, *to)
		if err != nil {
			hold.release()
			kind, n := classify(err)
			switch kind {
			case limitEntries:
				if n <= 0 || int(n) >= limit {
					return false, last, err
				}
				rd.batch.lower(int(n))
				continue
			case limitLength, limitTimeout, limitBytes:
				parts := r.splitTime(piece{from: *start, to: *to}, 2)
				if parts == nil {
					return false, last, fmt.Errorf("raw lines of [%s, %s) cannot be split below %s: %w", start.Format(time.RFC3339), to.Format(time.RFC3339), r.o.MinPiece, err)
				}
				// The first part resumes this batch loop (keeping the boundary); the others start fresh.
				for _, q := range parts[1:] {
					g.Go(func() error { return r.rawPiece(ctx, g, rd, pl, q.from, q.to, false) })
				}
				*to = parts[0].to
				continue
			default:
				return false, last, err
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
		// An entry's identity across batches; only those at the batch's first and last
		// instants need one.
		id := func(e rawEntry) string {
			return e.key + "\x00" + strconv.FormatInt(e.ts.UnixNano(), 10) + "\x00" + e.line
		}

		var (
			recs  []flow.Record
			errs  []flow.DecodeError
			n     int64 // read and not yet emitted
			fresh int64 // read by this batch
			buf   []byte
		)
		// Records go out in small groups, so that a batch's decoded records are never all
		// held at once.
		const flushEvery = 256
		for i, e := range entries {
			if e.ts.Equal(*start) && (*boundary)[id(e)] {
				continue // read by the previous batch
			}
			n++
			fresh++
			buf = append(buf[:0], e.line...)
			rec, err := flow.DecodeLine(e.labels, buf)
			if err != nil {
				errs = append(errs, flow.DecodeError{Source: fmt.Sprintf("loki %s", e.ts.Format(time.RFC3339Nano)), Loki: true, Entry: i, Err: err})
			} else {
				recs = append(recs, rec)
			}
			if len(recs) == flushEvery {
				rd.emit(recs, errs, n)
				recs, errs, n = recs[:0], nil, 0
			}
		}
		rd.emit(recs, errs, n)
		if total < limit {
			return true, last, nil // the piece is exhausted
		}
		// The entries at the last instant, to skip when the next batch starts there (with
		// those skipped at the first instant, when both are the same).
		last = entries[len(entries)-1].ts
		next := map[string]bool{}
		if last.Equal(*start) {
			next = *boundary
		}
		for i := len(entries) - 1; i >= 0 && entries[i].ts.Equal(last); i-- {
			next[id(entries[i])] = true
		}
		if fresh == 0 {
			return false, last, fmt.Errorf("more than %d egress records share the timestamp %s: batches cannot move past it; raise max_entries_limit_per_query", limit, start.Format(time.RFC3339Nano))
		}
		*start, *boundary = last, next
		return false, last, nil
	}
}
