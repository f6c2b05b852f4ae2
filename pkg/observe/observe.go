// Package observe is the one pipeline of the suite: a Source yields the egress flow
// records of a window with the evidence that they are complete, and Run folds them into
// the egress matrix and diffs it against the baseline. The CLI, the demo, the lab and the
// e2e spec all go through Run; nothing else joins a source to a matrix.
package observe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// Window is the observed time range [From, To).
type Window struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Validate refuses an empty or reversed window.
func (w Window) Validate() error {
	if w.From.IsZero() || w.To.IsZero() {
		return errors.New("window has no start or no end; fix: give both")
	}
	if !w.From.Before(w.To) {
		return fmt.Errorf("window start %s is not before its end %s; fix: give a start before the end", w.From.Format(time.RFC3339Nano), w.To.Format(time.RFC3339Nano))
	}
	return nil
}

// Request is what a source is asked for.
type Request struct {
	Window Window
	// Ports says which ports are server ports: a source that aggregates keeps these exact
	// and may fold the others to flow.EphemeralPort.
	Ports matrix.PortPolicy
	// TimeSensitive are destination addresses whose name changes inside the window (see
	// TimeSensitive): a source that aggregates must keep their records apart in time, so
	// that each is named for when it happened.
	TimeSensitive []string
}

// Source yields the egress flow records of a window.
type Source interface {
	// Describe names the source for messages and artifacts, e.g. "loki http://127.0.0.1:3100".
	// It never holds a secret.
	Describe() string
	// Collect returns the window's egress records, or an error when it cannot prove that
	// they are all of them (a store error, a limit it cannot work around, counts that do
	// not add up). An empty window is not an error here: Run decides.
	Collect(ctx context.Context, req Request) (*Batch, error)
}

// Batch is what a source collected.
type Batch struct {
	// Records are egress flow records: decoded lines (Count 1) or aggregates (Count n).
	Records []flow.Record `json:"records"`
	// DNS are DNS query records to the cluster's resolver: evidence of which names each
	// workload looked up (never part of the egress selection). Nil when not collected.
	DNS []flow.Record `json:"dnsQueries,omitempty"`
	// Evidence says why the records are complete.
	Evidence Evidence `json:"evidence"`
}

// Evidence is the account of a collection.
type Evidence struct {
	// Source is the source's Describe.
	Source string `json:"source"`
	// Query is what selected the records (a LogQL or PromQL expression, a file name).
	Query string `json:"query,omitempty"`
	// DNSQuery is what selected the DNS evidence, when collected.
	DNSQuery string `json:"dnsQuery,omitempty"`
	// Mode says how they were read, e.g. "aggregate", "raw", "counts-only", "file".
	Mode string `json:"mode,omitempty"`
	// Retrieved is the number of flow records the batch stands for (sum of Count, plus the
	// undecodable); Expected is the store's own count of the same selection, -1 when the
	// store has none to give (a file).
	Retrieved int64 `json:"retrieved"`
	Expected  int64 `json:"expected"`
	// Decode accounts for records that could not be decoded (not in Records).
	Decode flow.Stats `json:"decode"`
	// OutsideWindow counts records the source held but left out because they fall outside
	// the window asked for (a file saved for a wider one).
	OutsideWindow int64 `json:"outsideWindow,omitempty"`
	// Pieces and Requests say how the window was split and how many calls it took.
	Pieces   int `json:"pieces,omitempty"`
	Requests int `json:"requests,omitempty"`
	// Lacks lists the matrix columns this source cannot give (LackBytes, ...): the matrix
	// marks them as unknown instead of showing zeros as facts.
	Lacks []string `json:"lacks,omitempty"`
	// Elapsed is how long the collection took.
	Elapsed time.Duration `json:"elapsed"`
}

// Matrix columns a source may not give.
const (
	LackBytes     = "bytes"
	LackFirstSeen = "firstSeen"
	LackLastSeen  = "lastSeen"
)

// ErrIncomplete marks a run whose records cannot prove the window's egress: sampled or
// undecodable records, or no egress record at all. The outcome is whole (matrix and diff)
// for inspection, but it is not a result.
var ErrIncomplete = errors.New("the window's flows cannot prove the cluster's egress")

// Config is one run of the pipeline.
type Config struct {
	Source Source
	Window Window
	// Matrix shapes how records become entries (cluster networks, node roles, ports, names).
	Matrix matrix.Options
	// Baseline, when set, is what the matrix is diffed against.
	Baseline *baseline.Baseline
	// Exclude keeps records out of the matrix (e.g. the suite's own namespace); they are
	// counted and returned in Outcome.Excluded, never dropped silently.
	Exclude func(flow.Record) bool
	// Prove, when set, is given the excluded records and says whether they prove that the
	// window was recorded (the e2e canary's connection is among them): then a window with
	// no other egress is a result, not a failure. Its error fails the run.
	Prove func(excluded []flow.Record) error
	// Log receives one line per phase; nil discards.
	Log io.Writer
}

// Outcome is everything a run produced. On error, what was produced so far is returned
// with it, for artifacts.
type Outcome struct {
	Window   Window             `json:"window"`
	Batch    *Batch             `json:"-"`
	Matrix   *matrix.Matrix     `json:"-"`
	Diff     *baseline.Result   `json:"-"`
	Baseline *baseline.Baseline `json:"-"`
	// Excluded are the records Config.Exclude kept out of the matrix.
	Excluded []flow.Record `json:"-"`
}
