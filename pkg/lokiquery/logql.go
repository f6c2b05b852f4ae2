// Package lokiquery pulls the egress flows of a time window out of Loki, exactly: it builds
// LogQL from a typed description, asks Loki to aggregate server side (so the answer grows with
// the number of distinct matrix keys, not with the number of flows), falls back to batched
// raw lines where needed, splits queries that hit Loki's limits until every piece fits, and
// checks that what it got adds up to Loki's own count of the window.
package lokiquery

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Label matcher and filter operators.
const (
	OpEq    = "="
	OpNeq   = "!="
	OpRe    = "=~"
	OpNotRe = "!~"
)

// Matcher is one label matcher of a stream selector or a label filter after a parser.
type Matcher struct {
	Name, Op, Value string
}

func (m Matcher) String() string {
	return m.Name + m.Op + strconv.Quote(m.Value)
}

// Validate checks the name and operator, and that a regular expression compiles.
func (m Matcher) Validate() error {
	if !labelName.MatchString(m.Name) {
		return fmt.Errorf("label %q is not a valid label name", m.Name)
	}
	switch m.Op {
	case OpEq, OpNeq:
	case OpRe, OpNotRe:
		if _, err := regexp.Compile("^(?:" + m.Value + ")$"); err != nil {
			return fmt.Errorf("label %s: %w", m.Name, err)
		}
	default:
		return fmt.Errorf("label %s: operator %q is not one of = != =~ !~", m.Name, m.Op)
	}
	return nil
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Line filter operators.
const (
	LineContains    = "|="
	LineNotContains = "!="
	LineMatches     = "|~"
	LineNotMatches  = "!~"
)

// LineFilter is a filter on the raw line, applied before any parser (cheap).
type LineFilter struct {
	Op, Text string
}

func (f LineFilter) String() string { return f.Op + " " + strconv.Quote(f.Text) }

// Pipeline is a log query: a stream selector, line filters, `| json` with only the named
// fields, then label filters on stream or extracted labels.
type Pipeline struct {
	Selector    []Matcher
	LineFilters []LineFilter
	JSONFields  []string // fields `| json` extracts; none: no parser
	// JSONAll is a bare `| json` (JSONFields ignored). Loki then extracts only the labels
	// the query uses, which costs less than listing the fields as expressions.
	JSONAll      bool
	LabelFilters []Matcher // applied after the parser, in order
	// Stages are more pipeline stages (label_format, ...) after LabelFilters; built by this
	// package only (not validated).
	Stages []string
}

// Validate checks what Loki would reject, so that a bad filter is reported with its name
// rather than as a parse error on a long query. A selector needs one matcher that cannot
// match the empty value.
func (p Pipeline) Validate() error {
	positive := false
	for _, m := range p.Selector {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("stream selector: %w", err)
		}
		if m.Op == OpEq && m.Value != "" {
			positive = true
		}
	}
	if !positive {
		return fmt.Errorf("stream selector %s needs a matcher with a non-empty value, e.g. app=\"netobserv-flowcollector\"", SelectorString(p.Selector))
	}
	for _, f := range p.JSONFields {
		if !labelName.MatchString(f) {
			return fmt.Errorf("json field %q is not a valid label name", f)
		}
	}
	for _, m := range p.LabelFilters {
		if err := m.Validate(); err != nil {
			return fmt.Errorf("label filter: %w", err)
		}
	}
	return nil
}

// SelectorString is the stream selector {m, ...} of ms.
func SelectorString(ms []Matcher) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// String renders the log query.
func (p Pipeline) String() string {
	var b strings.Builder
	b.WriteString(SelectorString(p.Selector))
	for _, f := range p.LineFilters {
		b.WriteString(" ")
		b.WriteString(f.String())
	}
	switch {
	case p.JSONAll:
		b.WriteString(" | json")
	case len(p.JSONFields) > 0:
		b.WriteString(" | json ")
		b.WriteString(strings.Join(p.JSONFields, ", "))
	}
	for _, m := range p.LabelFilters {
		b.WriteString(" | ")
		b.WriteString(LabelFilterString(m))
	}
	for _, e := range p.Stages {
		b.WriteString(" | ")
		b.WriteString(e)
	}
	return b.String()
}

// labelFilterString renders a label filter (after a parser). Loki v3.7 rewrites a label
// filter regex made of literal alternatives into substring tests (`SrcPort=~"53|5353"`
// keeps 32853), so regular expressions are anchored explicitly.
// LabelFilterString is m as a label filter after a parser.
func LabelFilterString(m Matcher) string {
	if m.Op == OpRe || m.Op == OpNotRe {
		return m.Name + m.Op + strconv.Quote("^(?:"+m.Value+")$")
	}
	return m.String()
}

// With returns a copy of p with more selector matchers and label filters.
func (p Pipeline) With(selector []Matcher, filters []Matcher) Pipeline {
	q := p
	q.Selector = append(append([]Matcher(nil), p.Selector...), selector...)
	q.LabelFilters = append(append([]Matcher(nil), p.LabelFilters...), filters...)
	q.Stages = append([]string(nil), p.Stages...)
	return q
}

// WithFields returns a copy of p whose `| json` also extracts fields (deduplicated, sorted).
func (p Pipeline) WithFields(fields ...string) Pipeline {
	q := p
	set := map[string]bool{}
	for _, f := range append(append([]string(nil), p.JSONFields...), fields...) {
		set[f] = true
	}
	q.JSONFields = make([]string, 0, len(set))
	for f := range set {
		q.JSONFields = append(q.JSONFields, f)
	}
	sort.Strings(q.JSONFields)
	return q
}

// Range aggregations used on the fast path.
const (
	AggCount = "count_over_time"
	AggSum   = "sum_over_time"
	AggMin   = "min_over_time"
	AggMax   = "max_over_time"
)

// Metric is `sum|min|max by (By) (<agg>(<pipeline> [| unwrap Unwrap] [Range]))`.
type Metric struct {
	Pipeline Pipeline
	Agg      string        // AggCount, AggSum, AggMin, AggMax
	Unwrap   string        // field for sum/min/max_over_time; must be among JSONFields
	Range    time.Duration // whole milliseconds (LogQL ranges have no finer unit)
	By       []string      // grouping labels; none: a single series
}

// String renders the metric query.
func (m Metric) String() string {
	inner := m.Pipeline.String()
	if m.Unwrap != "" {
		inner += " | unwrap " + m.Unwrap
	}
	outer := "sum"
	switch m.Agg {
	case AggMin:
		outer = "min"
	case AggMax:
		outer = "max"
	}
	by := ""
	if len(m.By) > 0 {
		by = " by (" + strings.Join(m.By, ", ") + ")"
	}
	return fmt.Sprintf("%s%s (%s(%s [%dms]))", outer, by, m.Agg, inner, m.Range.Milliseconds())
}

// Validate checks the metric on top of its pipeline.
func (m Metric) Validate() error {
	if err := m.Pipeline.Validate(); err != nil {
		return err
	}
	if m.Range <= 0 || m.Range%time.Millisecond != 0 {
		return fmt.Errorf("range %s must be a positive whole number of milliseconds", m.Range)
	}
	switch m.Agg {
	case AggCount:
		if m.Unwrap != "" {
			return fmt.Errorf("%s takes no unwrap", m.Agg)
		}
	case AggSum, AggMin, AggMax:
		if m.Unwrap == "" {
			return fmt.Errorf("%s needs an unwrap field", m.Agg)
		}
	default:
		return fmt.Errorf("aggregation %q is not supported", m.Agg)
	}
	for _, l := range m.By {
		if !labelName.MatchString(l) {
			return fmt.Errorf("grouping label %q is not a valid label name", l)
		}
	}
	return nil
}

// RegexAlternatives is a regular expression matching exactly the given strings.
func RegexAlternatives(values []string) string {
	q := make([]string, len(values))
	for i, v := range values {
		q[i] = regexp.QuoteMeta(v)
	}
	return strings.Join(q, "|")
}
