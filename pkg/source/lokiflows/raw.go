package lokiflows

import (
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"sync"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/sync/errgroup"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
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
	commit := func(b *batchOut) {
		if r.into != nil {
			r.into.mu.Lock()
			r.into.keys.merge(b.folded)
			r.into.mu.Unlock()
		}
		mu.Lock()
		defer mu.Unlock()
		records = append(records, b.recs...)
		lines += b.lines
		stats.Records += b.lines - b.undecodable
		stats.Undecodable += b.undecodable
		for _, e := range b.errs {
			if len(stats.Errors) < maxKeptDecodeErrors {
				stats.Errors = append(stats.Errors, e)
			}
		}
	}
	rd := &rawRead{batch: &batchSize{n: r.o.BatchSize}, answers: make(chan struct{}, answersHeld), commit: commit, seed: maphash.MakeSeed()}
	shards := []shard{{dim: -1}}
	if sharded {
		var err error
		if shards, err = r.streamShards(ctx); err != nil {
			return fmt.Errorf("listing the streams to read: %w", err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, sh := range shards {
		pl := r.base.With(sh.matchers(), nil)
		g.Go(func() error { return r.rawPiece(gctx, g, rd, pl, r.o.From, r.o.To, true) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	matrix.SortRecords(records)
	res.Records = append(res.Records, records...)
	res.Decode.Add(stats)
	res.Retrieved += lines
	return nil
}

// streamShards is rawShards of shardStreams. Where Loki refuses the listing (a window
// longer than max_query_length, too many streams), it is one shard of the whole query,
// which Loki's limits then cut.
func (r *run) streamShards(ctx context.Context) ([]shard, error) {
	streams, err := r.shardStreams(ctx)
	switch kind, _ := lokiquery.Classify(err); {
	case err == nil:
		return rawShards(streams), nil
	case kind == lokiquery.NoLimit:
		return nil, err
	}
	return []shard{{dim: -1}}, nil
}

// rawShards cuts streams into shards that cover them all: one per source namespace, one
// per owner of the streams without a namespace (nodes, which often send most), and a rest
// for each of the two that takes the values the listing did not show (streams that began
// after it).
func rawShards(streams []map[string]string) []shard {
	const ns = "SrcK8S_Namespace"
	namespaced := []lokiquery.Matcher{{Name: ns, Op: lokiquery.OpNeq, Value: ""}}
	bare := []lokiquery.Matcher{{Name: ns, Op: lokiquery.OpEq, Value: ""}}
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
// record into r's aggregates (bytes and times too, unless CountsOnly). Lines pkg/flow
// cannot decode are counted as retrieved and reported in res.Decode. sharded is raw's.
func (r *run) rawLines(ctx context.Context, res *Result, pl lokiquery.Pipeline, sharded bool) error {
	rr := &run{c: r.c, o: r.o, base: pl, into: r}
	var got Result
	if err := rr.raw(ctx, &got, sharded); err != nil {
		return fmt.Errorf("raw lines of %s: %w", lokiquery.Shorten(pl.String()), err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pieces += rr.pieces
	res.Decode.Add(got.Decode)
	// The decoded ones are counted with the aggregates they fold into.
	res.Retrieved += got.Retrieved - got.Decode.Records
	return nil
}

// foldRecord adds a decoded record to aggs, as Loki's sums would have.
func foldRecord(aggs aggregates, rec flow.Record, o Options) {
	pr := matrix.Project(rec, o.Ports)
	var bytes, start, end int64 = 0, math.MaxInt64, math.MinInt64
	// A record without a time is left out of min and max, as Loki leaves out a line
	// without the field.
	if !o.CountsOnly {
		bytes = pr.Bytes
		if !pr.Start.IsZero() {
			start = pr.Start.UnixMilli()
		}
		if !pr.End.IsZero() {
			end = pr.End.UnixMilli()
		}
	}
	pr.Count, pr.Bytes, pr.Start, pr.End = 0, 0, time.Time{}, time.Time{}
	aggs.add(pr, 1, bytes, start, end)
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

// rawRead is what the pieces of one raw read share.
type rawRead struct {
	batch *batchSize
	// answers bounds the batches held at once (being read, decoded and folded). Loki's
	// work on the batches is bounded by the client's Concurrency alone.
	answers chan struct{}
	// commit takes a batch once its whole answer is read.
	commit func(*batchOut)
	// seed hashes lines into entry identities.
	seed maphash.Seed
}

// batchOut is what one batch decodes. It is kept apart until the whole answer is read and
// checked (a request retried after a broken answer starts it again), then committed.
type batchOut struct {
	recs        []flow.Record // decoded records, unless the run folds them (run.into)
	folded      aggregates    // the records folded, when the run folds them
	errs        []flow.DecodeError
	undecodable int64
	lines       int64 // entries read by this batch: not skipped as read by the previous one
	entries     int   // entries in the answer
	newest      int64 // the latest timestamp in the answer, ns
	atNewest    []entryID
}

// entryID tells an entry from the others of its stream and instant. The line is hashed:
// two different lines of one stream at one nanosecond with one 64-bit hash would lose one
// of them, and the completeness check would then fail the pull, never pass it short.
type entryID struct {
	stream string
	ts     int64
	line   uint64
}

// answersHeld is how many raw batches are read at once. Reading, decoding and folding a
// batch costs the client a small part of the CPU Loki spends computing it, so one at a
// time keeps up with Loki's answers, and the others wait in their connections instead of
// in memory (figures: docs/performance.md).
const answersHeld = 1

// maxTimeParts bounds the time parts a piece is cut into once its first batch is in.
const maxTimeParts = 8

// rawPiece reads the lines of pl in [from, to) in batches. When cut is set and the first
// batch is full, the time the batch spanned tells how many batches are left; more than two
// and the rest of the window is cut in time parts read side by side (a piece that fills a
// batch quickly has small blocks, so the parts share few).
func (r *run) rawPiece(ctx context.Context, g *errgroup.Group, rd *rawRead, pl lokiquery.Pipeline, from, to time.Time, cut bool) error {
	query := pl.String()
	start := from
	var boundary map[entryID]bool // entries at `start` already read
	for {
		done, err := r.rawBatch(ctx, g, rd, pl, query, &start, &to, &boundary)
		if err != nil || done {
			return err
		}
		if cut {
			cut = false
			// start is now the last instant of the first batch.
			spanned, left := start.Sub(from), to.Sub(start)
			if spanned > 0 && left > 2*spanned {
				k := min(maxTimeParts, int(math.Ceil(float64(left)/float64(2*spanned))))
				if parts := r.splitTime(piece{from: start, to: to}, max(k, 2)); parts != nil {
					for _, q := range parts[1:] {
						g.Go(func() error { return r.rawPiece(ctx, g, rd, pl, q.from, q.to, false) })
					}
					to = parts[0].to
				}
			}
		}
	}
}

// rawBatch reads one batch of query from *start, commits its records, and moves *start
// and *boundary past them; done when the piece is exhausted. A limit Loki names lowers the
// batch, or cuts *to and queues the rest of the piece in g.
func (r *run) rawBatch(ctx context.Context, g *errgroup.Group, rd *rawRead, pl lokiquery.Pipeline, query string,
	start, to *time.Time, boundary *map[entryID]bool) (done bool, err error) {
	hold := lokiquery.NewAnswerHold(rd.answers)
	defer hold.Release()
	first := start.UnixNano()
	var out batchOut
	read := func(body io.Reader) error {
		out = batchOut{newest: math.MinInt64}
		if r.into != nil {
			out.folded = aggregates{}
		}
		var buf []byte
		return lokiquery.ReadStreams(body, func(s *lokiquery.LineStream, ts int64, quoted, meta jsontext.Value) {
			id := entryID{stream: s.Key, ts: ts, line: maphash.Bytes(rd.seed, quoted)}
			out.entries++
			switch {
			case ts > out.newest:
				out.newest, out.atNewest = ts, append(out.atNewest[:0], id)
			case ts == out.newest:
				out.atNewest = append(out.atNewest, id)
			}
			if ts == first && (*boundary)[id] {
				return // read by the previous batch
			}
			out.lines++
			var rec flow.Record
			var err error
			buf, err = jsontext.AppendUnquote(buf[:0], quoted)
			if err == nil {
				var md map[string]string
				if meta != nil {
					md = flow.EntryMetadata(meta)
				}
				rec, err = flow.DecodeEntry(s.Labels, ts, buf, md)
			}
			if err != nil {
				out.undecodable++
				if len(out.errs) < maxKeptDecodeErrors {
					out.errs = append(out.errs, flow.DecodeError{Source: fmt.Sprintf("loki %s", time.Unix(0, ts).UTC().Format(time.RFC3339Nano)),
						Loki: true, Stream: s.Index, Entry: s.Entry, Err: err})
				}
				return
			}
			if r.into != nil {
				foldRecord(out.folded, rec, r.o)
			} else {
				out.recs = append(out.recs, rec)
			}
		})
	}
	for {
		limit := rd.batch.get()
		err := r.c.QueryLines(lokiquery.WithAnswerHold(ctx, hold), query, limit, *start, *to, read)
		if err != nil {
			hold.Release()
			kind, n := lokiquery.Classify(err)
			switch kind {
			case lokiquery.LimitEntries:
				if n <= 0 || int(n) >= limit {
					return false, err
				}
				rd.batch.lower(int(n))
				continue
			case lokiquery.LimitLength, lokiquery.LimitTimeout, lokiquery.LimitBytes:
				parts := r.splitTime(piece{from: *start, to: *to}, 2)
				if parts == nil {
					return false, fmt.Errorf("raw lines of [%s, %s) cannot be split below %s: %w", start.Format(time.RFC3339), to.Format(time.RFC3339), r.o.MinPiece, err)
				}
				// The first part resumes this batch loop (keeping the boundary); the others start fresh.
				for _, q := range parts[1:] {
					g.Go(func() error { return r.rawPiece(ctx, g, rd, pl, q.from, q.to, false) })
				}
				*to = parts[0].to
				continue
			default:
				return false, err
			}
		}
		r.mu.Lock()
		r.pieces++
		r.mu.Unlock()
		rd.commit(&out)
		if out.entries < limit {
			return true, nil // the piece is exhausted
		}
		if out.lines == 0 {
			return false, fmt.Errorf("more than %d egress records share the timestamp %s: batches cannot move past it; raise max_entries_limit_per_query", limit, start.Format(time.RFC3339Nano))
		}
		// The entries at the last instant, to skip when the next batch starts there (with
		// those skipped at the first instant, when both are the same).
		next := map[entryID]bool{}
		if out.newest == first {
			next = *boundary
		}
		for _, id := range out.atNewest {
			next[id] = true
		}
		*start, *boundary = time.Unix(0, out.newest), next
		return false, nil
	}
}
