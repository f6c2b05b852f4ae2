package lokiflows

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"
)

// Barrier makes a query wait until Loki has ingested the flows of the window: NetObserv
// agents export a flow after its cache timeout plus the processor's batching, so flows
// stamped before the window end arrive after it.
type Barrier struct {
	// Timeout bounds the wait; 0 disables the barrier.
	Timeout time.Duration
	// Interval between polls (default 2 s).
	Interval time.Duration
	// Canary, when set, is a LogQL log query (e.g. {app="netobserv-flowcollector"} |=
	// "10.0.0.99") that must match a record stamped at or after the window end; use it
	// when the caller sends a known flow after the window.
	Canary string
	// Lookback is how far before the window end an agent must have reported to be waited
	// for (default 5 minutes). Without a canary, every agent (AgentIP) that reported in
	// [end-Lookback, end) must have reported a record stamped at or after the end.
	Lookback time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// WaitIngested blocks until the barrier condition holds for a window ending at end, or
// fails when the timeout passes first.
func (c *client) WaitIngested(ctx context.Context, end time.Time, b Barrier) error {
	if b.Interval <= 0 {
		b.Interval = 2 * time.Second
	}
	if b.Lookback <= 0 {
		b.Lookback = 5 * time.Minute
	}
	if b.Now == nil {
		b.Now = time.Now
	}
	end = end.Truncate(time.Millisecond)
	var want map[string]bool
	if b.Canary == "" {
		agents, err := c.agents(ctx, end.Add(-b.Lookback), end)
		if err != nil {
			return fmt.Errorf("ingestion barrier: %w", err)
		}
		want = agents
	}
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, b.Timeout)
	defer cancel()
	var missing []string
	for {
		now := b.Now().Truncate(time.Millisecond)
		if now.After(end) {
			// Looking past the end is enough for an hour; a longer range could meet
			// max_query_length for nothing.
			upTo := now.Add(time.Millisecond)
			if upTo.Sub(end) > time.Hour {
				upTo = end.Add(time.Hour)
			}
			done, miss, err := c.ingestedAfter(ctx, end, upTo, b.Canary, want)
			if err != nil && ctx.Err() == nil {
				return fmt.Errorf("ingestion barrier: %w", err)
			}
			if done {
				return nil
			}
			missing = miss
		}
		select {
		case <-ctx.Done():
			if err := parent.Err(); err != nil {
				// The caller's cancellation or deadline, not the barrier's timeout.
				return fmt.Errorf("ingestion barrier: %w", err)
			}
			what := "no record stamped at or after the window end"
			if b.Canary != "" {
				what = "the canary " + b.Canary + " has not appeared"
			} else if len(missing) > 0 {
				what = "agents " + strings.Join(missing, ", ") + " have not reported a record stamped at or after the window end"
			}
			return fmt.Errorf("ingestion barrier: after %s, %s (%s); flows of the window may still be in flight: wait longer (NetObserv exports after cacheActiveTimeout) or check the FlowCollector",
				b.Timeout, what, end.Format(time.RFC3339Nano))
		case <-time.After(b.Interval):
		}
	}
}

// agents lists the AgentIP values that reported in [from, to).
func (c *client) agents(ctx context.Context, from, to time.Time) (map[string]bool, error) {
	m := lokiquery.Metric{
		Pipeline: lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: App}}, JSONFields: []string{"AgentIP"}},
		Agg:      lokiquery.AggCount, Range: to.Sub(from), By: []string{"AgentIP"},
	}
	v, err := c.Instant(ctx, m.String(), to.Add(-time.Nanosecond))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range v {
		out[string(s.Metric["AgentIP"])] = true
	}
	return out, nil
}

// ingestedAfter checks [end, now): the canary matched, or every wanted agent reported (any
// record at all when no agent was active before the end).
func (c *client) ingestedAfter(ctx context.Context, end, now time.Time, canary string, want map[string]bool) (bool, []string, error) {
	if canary != "" {
		q := fmt.Sprintf("sum(count_over_time(%s [%dms]))", canary, now.Sub(end).Milliseconds())
		v, err := c.Instant(ctx, q, now.Add(-time.Nanosecond))
		if err != nil {
			return false, nil, err
		}
		for _, s := range v {
			if s.Value > 0 {
				return true, nil, nil
			}
		}
		return false, nil, nil
	}
	got, err := c.agents(ctx, end, now)
	if err != nil {
		return false, nil, err
	}
	if len(want) == 0 {
		return len(got) > 0, nil, nil
	}
	var missing []string
	for a := range want {
		if !got[a] {
			missing = append(missing, fmt.Sprintf("%q", a))
		}
	}
	sort.Strings(missing)
	return len(missing) == 0, missing, nil
}
