// Package flowfile is the file source of the pipeline: NetObserv flow records saved as a
// Loki query_range answer, JSON lines (what `matrix collect --save-flows` and the lab's
// records.jsonl write) or logcli's jsonl output.
package flowfile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/observe"
)

// Source reads flow files. A file holds what was saved, not a store's count of it, so
// Evidence.Expected is -1: completeness is the saver's claim.
type Source struct {
	Paths []string
}

// New returns the source of the given files.
func New(paths ...string) (*Source, error) {
	if len(paths) == 0 {
		return nil, errors.New("no flow file given; fix: pass --flows FILE")
	}
	return &Source{Paths: paths}, nil
}

// Describe implements observe.Source.
func (s *Source) Describe() string { return "flows " + strings.Join(s.Paths, ", ") }

// Collect implements observe.Source. With a window set, records outside it are left out
// and counted (Evidence.OutsideWindow).
func (s *Source) Collect(_ context.Context, req observe.Request) (*observe.Batch, error) {
	start := time.Now()
	b := &observe.Batch{Evidence: observe.Evidence{Source: s.Describe(), Mode: "file", Expected: -1, Query: strings.Join(s.Paths, ",")}}
	var outside int64
	for _, p := range s.Paths {
		st, err := flow.DecodeFile(p, func(r flow.Record) error {
			if !req.Window.IsZero() && !r.End.IsZero() && (r.End.Before(req.Window.From) || !r.End.Before(req.Window.To)) {
				outside += r.Count
				return nil
			}
			b.Records = append(b.Records, r)
			b.Evidence.Retrieved += r.Count
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("flows %s: %w", p, err)
		}
		b.Evidence.Decode.Add(st)
		b.Evidence.Retrieved += st.Undecodable
	}
	b.Evidence.OutsideWindow = outside
	b.Evidence.Elapsed = time.Since(start)
	return b, nil
}

var _ observe.Source = (*Source)(nil)
