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
// diffs it. It fails closed: a source error, a window whose records cannot prove the
// cluster's egress (sampled or undecodable records, no egress at all) is an error, and the
// outcome so far is returned with it.
func Run(ctx context.Context, cfg Config) (*Outcome, error) {
	log := cfg.Log
	if log == nil {
		log = io.Discard
	}
	if cfg.Source == nil {
		return nil, fmt.Errorf("observe: no flow source; fix: give Config.Source")
	}
	if err := cfg.Window.Validate(); err != nil {
		return nil, err
	}
	out := &Outcome{Window: cfg.Window, Baseline: cfg.Baseline}
	start := time.Now()
	batch, err := cfg.Source.Collect(ctx, Request{
		Window:        cfg.Window,
		Ports:         cfg.Matrix.Ports,
		TimeSensitive: TimeSensitive(cfg.Matrix.Names, cfg.Window),
	})
	if err != nil {
		return out, fmt.Errorf("%s: %w", cfg.Source.Describe(), err)
	}
	if batch.Evidence.Elapsed == 0 {
		batch.Evidence.Elapsed = time.Since(start)
	}
	if batch.Evidence.Source == "" {
		batch.Evidence.Source = cfg.Source.Describe()
	}
	out.Batch = batch
	ev := batch.Evidence
	fmt.Fprintf(log, "%s: %d egress flow records in [%s, %s) as %d %s records, %d DNS query records, %s\n",
		ev.Source, ev.Retrieved, cfg.Window.From.Format(time.RFC3339), cfg.Window.To.Format(time.RFC3339),
		len(batch.Records), orDefault(ev.Mode, "flow"), len(batch.DNS), ev.Elapsed.Round(time.Millisecond))

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
		if cfg.Exclude != nil && cfg.Exclude(r) {
			continue
		}
		b.Add(r)
	}
	out.Matrix = b.Matrix()
	out.Matrix.Lacks = ev.Lacks
	out.Matrix.ClearLacking()

	if st := out.Matrix.Stats; st.Sampled > 0 || st.Undecodable > 0 {
		return out, fmt.Errorf("the window's flows cannot prove the cluster's egress: %w", out.Matrix.Check())
	}
	if st := out.Matrix.Stats; st.Egress+st.Undecided+st.Translated == 0 && !cfg.AllowNoEgress {
		return out, fmt.Errorf("%w: %s holds no egress flow record in [%s, %s): with no known connection to prove the recording, this cannot be told from a collector that labels every destination as in-cluster, or a selection that matched nothing; fix: check the FlowCollector's subnet labels and flow filters, or widen the window to cover traffic that leaves the cluster",
			matrix.ErrEmpty, ev.Source, cfg.Window.From.Format(time.RFC3339), cfg.Window.To.Format(time.RFC3339))
	}
	if cfg.Baseline != nil {
		out.Diff = baseline.Diff(out.Matrix, cfg.Baseline)
	}
	return out, nil
}

// TimeSensitive lists the addresses whose name changes inside the window: a resolution
// of theirs starts or ends strictly inside it. Records to them must be named at their own
// time, so an aggregating source keeps them apart. A resolution that ended before the
// window or starts after it names nothing in it and does not count.
func TimeSensitive(n *matrix.Names, w Window) []string {
	if n == nil {
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

// Records is a Source of records already in memory (a replay, a test): Expected is -1, as
// nothing else counted them.
type Records struct {
	Name  string
	Batch Batch
}

// Describe implements Source.
func (s *Records) Describe() string { return s.Name }

// Collect implements Source.
func (s *Records) Collect(context.Context, Request) (*Batch, error) {
	b := s.Batch
	if b.Evidence.Retrieved == 0 {
		for _, r := range b.Records {
			b.Evidence.Retrieved += r.Count
		}
	}
	if b.Evidence.Expected == 0 {
		b.Evidence.Expected = -1
	}
	return &b, nil
}

var _ Source = (*Records)(nil)
