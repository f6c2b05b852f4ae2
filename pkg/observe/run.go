package observe

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// Run collects the window from the source, folds it into the matrix and, with a baseline,
// diffs it. A source error returns no matrix. A window whose records cannot prove the
// cluster's egress (sampled or undecodable records, no egress record unless Config.Prove
// says the recording is proven) returns the whole outcome with an error wrapping
// ErrIncomplete: for artifacts and inspection, never as a pass.
func Run(ctx context.Context, cfg Config) (*Outcome, error) {
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	if cfg.Source == nil {
		return nil, fmt.Errorf("observe: no flow source; fix: give Config.Source")
	}
	if !cfg.Window.IsZero() {
		if err := cfg.Window.Validate(); err != nil {
			return nil, err
		}
	}
	out := &Outcome{Window: cfg.Window, Baseline: cfg.Baseline}
	start := time.Now()
	batch, err := cfg.Source.Collect(ctx, Request{
		Window:        cfg.Window,
		Ports:         cfg.Matrix.Ports,
		TimeSensitive: TimeSensitive(cfg.Matrix.Names, cfg.Window),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Source.Describe(), err)
	}
	if batch.Evidence.Elapsed == 0 {
		batch.Evidence.Elapsed = time.Since(start)
	}
	if batch.Evidence.Source == "" {
		batch.Evidence.Source = cfg.Source.Describe()
	}
	out.Batch = batch
	ev := batch.Evidence
	fmt.Fprintf(log, "%s: %d egress flow records%s as %d %s records, %d DNS query records, %d requests, %s\n",
		ev.Source, ev.Retrieved, cfg.Window.describe(), len(batch.Records), orDefault(ev.Mode, "flow"),
		len(batch.DNS), ev.Requests, ev.Elapsed.Round(time.Millisecond))

	if ev.OutsideWindow > 0 {
		fmt.Fprintf(log, "%s: %d records outside the window left out\n", ev.Source, ev.OutsideWindow)
	}
	b := matrix.NewBuilder(cfg.Matrix)
	b.AddDecodeStats(ev.Decode)
	for _, r := range batch.Records {
		if cfg.Exclude != nil && cfg.Exclude(r) {
			out.Excluded = append(out.Excluded, r)
			continue
		}
		b.Add(r)
	}
	for _, r := range batch.DNS {
		if cfg.Exclude == nil || !cfg.Exclude(r) {
			b.Add(r)
		}
	}
	out.Matrix = b.Matrix()
	out.Matrix.Lacks = ev.Lacks
	out.Matrix.ClearLacking()
	if cfg.Baseline != nil {
		out.Diff = baseline.Diff(out.Matrix, cfg.Baseline)
	}

	if cfg.Prove != nil {
		if err := cfg.Prove(out.Excluded); err != nil {
			return out, err
		}
	}
	st := out.Matrix.Stats
	if st.Sampled > 0 || st.Undecodable > 0 {
		return out, fmt.Errorf("%w: %w", ErrIncomplete, out.Matrix.Check())
	}
	if st.Egress+st.Undecided+st.Translated == 0 && cfg.Prove == nil {
		return out, fmt.Errorf("%w: %w: no egress flow record%s from %s (%d records, none of them egress): with no known connection to prove the recording, this cannot be told from a collector that labels every destination as in-cluster, or a selection that matched nothing; fix: check the FlowCollector's subnet labels and flow filters, or widen the window to cover traffic that leaves the cluster",
			ErrIncomplete, matrix.ErrEmpty, cfg.Window.describe(), ev.Source, st.Records)
	}
	return out, nil
}

// IsZero reports whether the window is unset: the source's whole content (a file).
func (w Window) IsZero() bool { return w.From.IsZero() && w.To.IsZero() }

func (w Window) describe() string {
	if w.IsZero() {
		return ""
	}
	return fmt.Sprintf(" in [%s, %s)", w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
}

// TimeSensitive lists the addresses whose name changes inside the window: a resolution
// of theirs starts or ends strictly inside it. Records to them must be named at their own
// time, so an aggregating source keeps them apart. A resolution that ended before the
// window or starts after it names nothing in it and does not count.
func TimeSensitive(n *matrix.Names, w Window) []string {
	if n == nil || w.IsZero() {
		return nil
	}
	inside := func(t time.Time) bool { return !t.IsZero() && t.After(w.From) && t.Before(w.To) }
	seen := map[string]bool{}
	var out []string
	for _, r := range n.Resolutions() {
		a := r.Address.String()
		if (inside(r.From) || inside(r.To)) && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
