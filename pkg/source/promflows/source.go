// Package promflows is the flow source that reads the egress FlowMetrics (pkg/flowmetrics)
// from a Prometheus query API: per matrix key, the number of flow records of a window,
// whatever the number of flows. It implements observe.Source.
package promflows

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"golang.org/x/sync/errgroup"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
	"github.com/openshift/egress-tests-ext/pkg/observe"
)

// Errors the source fails with; each comes wrapped with what was seen and the fix.
var (
	// ErrCoverage: the window's edges or its inside are not covered by successful scrapes.
	ErrCoverage = errors.New("the window is not covered by scrapes of the flow metrics")
	// ErrMissing: none of the egress FlowMetrics has a series in the window.
	ErrMissing = errors.New("the egress flow metrics are missing")
	// ErrQuery: Prometheus refused a query, answered with an error or a warning (a limit,
	// a partial answer), or answered something that is not the counters we wrote.
	ErrQuery = errors.New("the Prometheus query failed")
	// ErrUncovered: egress records no label of ours can place (UDP/SCTP between two
	// non-server ports), or records sampled above 1.
	ErrUncovered = errors.New("egress flows the metrics cannot place")
)

// Config says where the metrics are and how they were written.
type Config struct {
	// URL is the base address of the Prometheus (or Thanos querier) HTTP API.
	URL string
	// TokenFile holds a bearer token sent with every request (never logged or echoed).
	TokenFile string
	// Token, instead of TokenFile, gives the bearer token for each request (a service
	// account's, renewed underneath); never logged or echoed.
	Token func(context.Context) (string, error)
	// TLS, instead of CAFile, is the client's TLS configuration (e.g. the service CA of a
	// port-forwarded Thanos querier). Verification stays on.
	TLS *tls.Config
	// Describe, when set, names the source in messages (e.g. the port-forward it goes through).
	Describe string
	// CAFile is a PEM bundle of CAs trusted for the server's certificate, beside the system
	// ones. TLS is always verified.
	CAFile string
	// Up selects the `up` series of the scrape targets holding the flow metrics (FLP's
	// metrics endpoints). Default: up{job=~".*flowlogs-pipeline.*"}.
	Up string
	// MaxGap is the longest time allowed between two successful scrapes of a target, and
	// between the window's start and the scrape before it. It must stay below FLP's
	// expiryTime (2 min by default), or a series could update and expire between two
	// scrapes and its flows be lost. Default 1 min.
	MaxGap time.Duration
	// Metrics are the FlowMetrics written to FLP (their names and labels). Default:
	// flowmetrics.Resources of the request's port policy.
	Metrics []flowmetrics.FlowMetric
	// Lag is how long after a flow FLP may count it: the agent reports a flow up to its
	// cacheActiveTimeout after the packets, and FLP counts it when the report arrives. The
	// counts are read over (From, To+Lag], so the window's last flows are in; flows of the
	// Lag before From may be counted too: the matrix may hold more than the window, never
	// less.
	Lag time.Duration
	// Transport overrides the HTTP transport (tests); TokenFile and CAFile still apply.
	Transport *http.Transport
}

// DefaultUp selects FLP's scrape targets.
const DefaultUp = `up{job=~".*flowlogs-pipeline.*"}`

// Source reads the egress FlowMetrics of a window from Prometheus.
type Source struct {
	cfg    Config
	api    v1.API
	tokens secrets
}

var _ observe.Source = (*Source)(nil)

// New checks cfg and reads the token and CA files.
func New(cfg Config) (*Source, error) {
	if cfg.URL == "" {
		return nil, errors.New("no Prometheus URL; fix: give --prometheus-url")
	}
	if cfg.Up == "" {
		cfg.Up = DefaultUp
	}
	if cfg.MaxGap <= 0 {
		cfg.MaxGap = time.Minute
	}
	tr := cfg.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	} else {
		tr = tr.Clone()
	}
	if cfg.TLS != nil {
		if cfg.TLS.InsecureSkipVerify {
			return nil, errors.New("prometheus TLS: InsecureSkipVerify is refused; fix: give the server's CA")
		}
		tr.TLSClientConfig = cfg.TLS.Clone()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("reading the CA file: %w; fix: give a readable PEM file to --ca-file", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate; fix: give the CA bundle of the server's certificate", cfg.CAFile)
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	s := &Source{cfg: cfg}
	var rt http.RoundTripper = tr
	switch {
	case cfg.TokenFile != "" && cfg.Token != nil:
		return nil, errors.New("both a token file and a token source; fix: give one")
	case cfg.TokenFile != "":
		b, err := os.ReadFile(cfg.TokenFile)
		if err != nil {
			// The path only: never what the file holds.
			return nil, fmt.Errorf("reading the token file %s: %w; fix: give a readable file to --token-file", cfg.TokenFile, err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return nil, fmt.Errorf("token file %s is empty; fix: write the bearer token into it", cfg.TokenFile)
		}
		s.tokens.seen(tok)
		rt = &bearer{token: func(context.Context) (string, error) { return tok, nil }, seen: &s.tokens, next: tr}
	case cfg.Token != nil:
		rt = &bearer{token: cfg.Token, seen: &s.tokens, next: tr}
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("prometheus URL %q: %w; fix: give an http(s) URL", cfg.URL, err)
	}
	s.api = v1.NewAPI(c)
	return s, nil
}

type bearer struct {
	token func(context.Context) (string, error)
	seen  *secrets
	next  http.RoundTripper
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !isLoopback(r.URL.Hostname()) {
		return nil, fmt.Errorf("refusing to send the bearer token over plain http to %s; fix: an https URL", r.URL.Host)
	}
	tok, err := b.token(r.Context())
	if err != nil {
		return nil, fmt.Errorf("the Prometheus bearer token: %w", err)
	}
	b.seen.seen(tok)
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return b.next.RoundTrip(r)
}

// secrets are the tokens sent so far, to be redacted from errors.
type secrets struct {
	mu   sync.Mutex
	toks []string
}

func (s *secrets) seen(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok != "" && !slices.Contains(s.toks, tok) {
		s.toks = append(s.toks, tok)
	}
}

func (s *secrets) redact(msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.toks {
		msg = strings.ReplaceAll(msg, t, "[REDACTED]")
	}
	return msg
}

// Describe names the source.
func (s *Source) Describe() string {
	if s.cfg.Describe != "" {
		return "prometheus " + s.cfg.Describe
	}
	return "prometheus " + s.cfg.URL
}

// redact removes the tokens from an error's text, in case a server echoed one.
func (s *Source) redact(err error) error {
	if err == nil {
		return nil
	}
	if msg := s.tokens.redact(err.Error()); msg != err.Error() {
		return errors.New(msg)
	}
	return err
}

// query runs an instant query at ts; warnings are errors (a partial answer is not an answer).
func (s *Source) query(ctx context.Context, q string, ts time.Time) (model.Matrix, error) {
	v, warns, err := s.api.Query(ctx, q, ts)
	if err != nil {
		return nil, fmt.Errorf("%w: %s at %s: %w; fix: check the URL, the token's right to read metrics, and the server's query limits", ErrQuery, q, ts.Format(time.RFC3339), s.redact(err))
	}
	if len(warns) > 0 {
		return nil, fmt.Errorf("%w: %s at %s answered with warnings (a partial or truncated answer): %s; fix: make the querier answer whole (all stores up, limits above the series count)", ErrQuery, q, ts.Format(time.RFC3339), s.redact(errors.New(strings.Join(warns, "; "))))
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("%w: %s answered a %s, not a range vector", ErrQuery, q, v.Type())
	}
	return m, nil
}

// rangeSel is a PromQL range of d in whole milliseconds.
func rangeSel(d time.Duration) string { return "[" + strconv.FormatInt(d.Milliseconds(), 10) + "ms]" }

// target is a scrape target: its job and instance.
type target struct{ job, instance string }

func targetOf(m model.Metric) target {
	return target{job: string(m[model.JobLabel]), instance: string(m[model.InstanceLabel])}
}

// coverage checks that every target of cfg.Up was scraped successfully at most MaxGap
// before the window's start, at most MaxGap before its end, and never more than MaxGap
// apart in between, and returns each target's scrape times.
func (s *Source) coverage(ctx context.Context, w observe.Window) (map[target][]int64, error) {
	q := s.cfg.Up + rangeSel(w.To.Sub(w.From)+s.cfg.MaxGap)
	m, err := s.query(ctx, q, w.To)
	if err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%w: %s has no sample in the window; fix: scrape FLP's metrics endpoint and give its up series with --prometheus-up", ErrCoverage, q)
	}
	from, to, gap := w.From.UnixMilli(), w.To.UnixMilli(), s.cfg.MaxGap.Milliseconds()
	out := map[target][]int64{}
	for _, ss := range m {
		tg := targetOf(ss.Metric)
		var prev int64
		have := false
		for _, p := range ss.Values {
			t := int64(p.Timestamp)
			if p.Value != 1 {
				return nil, fmt.Errorf("%w: target %s failed a scrape at %s; fix: a window with every scrape of FLP successful", ErrCoverage, ss.Metric, time.UnixMilli(t).UTC().Format(time.RFC3339))
			}
			if have && t-prev > gap {
				return nil, fmt.Errorf("%w: target %s was not scraped from %s to %s (more than %s); fix: a window without scrape gaps, or a larger --prometheus-max-gap below FLP's expiryTime", ErrCoverage, ss.Metric, time.UnixMilli(prev).UTC().Format(time.RFC3339), time.UnixMilli(t).UTC().Format(time.RFC3339), s.cfg.MaxGap)
			}
			prev, have = t, true
			out[tg] = append(out[tg], t)
		}
		ts := out[tg]
		if len(ts) == 0 || ts[0] > from {
			return nil, fmt.Errorf("%w: target %s has no scrape in the %s before the window's start %s; fix: start the window after FLP's metrics are scraped", ErrCoverage, ss.Metric, s.cfg.MaxGap, w.From.Format(time.RFC3339))
		}
		if ts[len(ts)-1] < to-gap {
			return nil, fmt.Errorf("%w: target %s has no scrape in the %s before the window's end %s (last at %s); fix: end the window at a time already scraped", ErrCoverage, ss.Metric, s.cfg.MaxGap, w.To.Format(time.RFC3339), time.UnixMilli(ts[len(ts)-1]).UTC().Format(time.RFC3339))
		}
	}
	return out, nil
}

// Increase is the exact number of counts a counter series gained in (from, to], from its
// samples (in time order) and the times its target was scraped:
//   - the last sample at or before from is the starting value; without one the series was
//     created inside the window (its target was scraped without it) and starts from zero;
//   - a drop is a reset (FLP restarted): the new value counts whole;
//   - a series missing from a successful scrape of its target between two of its samples
//     was expired by FLP (expiryTime) and came back from zero: the new value counts whole.
//
// PromQL's increase() would extrapolate to the window's edges and miss a series' first
// value, so the counts would be neither integers nor exact.
func Increase(samples []model.SamplePair, scrapes []int64, from, to int64) float64 {
	var total, prev float64
	prevT := int64(math.MinInt64)
	for _, p := range samples {
		t, v := int64(p.Timestamp), float64(p.Value)
		if t > to {
			break
		}
		if t <= from {
			prev, prevT = v, t
			continue
		}
		switch {
		case prevT == math.MinInt64, v < prev, scrapedBetween(scrapes, prevT, t):
			total += v
		default:
			total += v - prev
		}
		prev, prevT = v, t
	}
	return total
}

// scrapedBetween reports whether a scrape time lies strictly between a and b.
func scrapedBetween(scrapes []int64, a, b int64) bool {
	i := sort.Search(len(scrapes), func(i int) bool { return scrapes[i] > a })
	return i < len(scrapes) && scrapes[i] < b
}

// Collect reads the window's egress counters and returns them as flow aggregates: Count is
// the number of flow records; bytes and first/last seen are not known (Evidence.Lacks).
func (s *Source) Collect(ctx context.Context, req observe.Request) (*observe.Batch, error) {
	start := time.Now()
	w := req.Window
	if s.cfg.Lag > 0 {
		w.To = w.To.Add(s.cfg.Lag)
	}
	scrapes, err := s.coverage(ctx, w)
	if err != nil {
		return nil, err
	}
	fms := s.cfg.Metrics
	if fms == nil {
		fms = flowmetrics.Resources(flowmetrics.Options{Ports: req.Ports})
	}
	from, to := w.From.UnixMilli(), w.To.UnixMilli()
	sel := rangeSel(w.To.Sub(w.From) + s.cfg.MaxGap)
	counts := map[flow.Record]float64{}
	var queries []string
	series, requests := 0, 1
	uncovered := map[string]float64{}
	// One query per metric, a few in flight: most are empty, and the large ones overlap the
	// server's encoding with our decoding.
	answers := make([]model.Matrix, len(fms))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range fms {
		q := flowmetrics.Prefix + fms[i].Spec.MetricName + sel
		queries = append(queries, q)
		g.Go(func() error {
			m, err := s.query(gctx, q, w.To)
			answers[i] = m
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	requests += len(fms)
	for i, m := range answers {
		fm := &fms[i]
		series += len(m)
		for _, ss := range m {
			tg := targetOf(ss.Metric)
			sc, ok := scrapes[tg]
			if !ok {
				return nil, fmt.Errorf("%w: series %s comes from target %s/%s, which %s does not select; fix: give the up series of FLP's targets with --prometheus-up", ErrCoverage, ss.Metric, tg.job, tg.instance, s.cfg.Up)
			}
			n := Increase(ss.Values, sc, from, to)
			if n == 0 {
				continue
			}
			if n != math.Trunc(n) || n < 0 {
				return nil, fmt.Errorf("%w: series %s increased by %v in the window, not a whole number of flows; fix: the FlowMetrics must count flows (no valueField)", ErrQuery, ss.Metric, n)
			}
			switch fm.Spec.MetricName {
			case flowmetrics.DatagramUncovered:
				uncovered[fmt.Sprintf("namespace %q protocol %s", ss.Metric["SrcK8S_Namespace"], ss.Metric["Proto"])] += n
				continue
			case flowmetrics.Sampled:
				uncovered[fmt.Sprintf("sampling %s", ss.Metric["Sampling"])] += n
				continue
			}
			r, err := record(fm.Spec.MetricName, ss.Metric)
			if err != nil {
				return nil, err
			}
			r.Start, r.End = req.Window.From, req.Window.To
			counts[r] += n
		}
	}
	if series == 0 {
		return nil, fmt.Errorf("%w: none of %s has a series in [%s, %s); fix: create the egress FlowMetrics (pkg/flowmetrics) and check that Prometheus scrapes FLP", ErrMissing, strings.Join(flowmetrics.Names(fms), ", "), w.From.Format(time.RFC3339), w.To.Format(time.RFC3339))
	}
	if len(uncovered) > 0 {
		var parts []string
		for k, n := range uncovered {
			parts = append(parts, fmt.Sprintf("%s: %d", k, int64(n)))
		}
		sort.Strings(parts)
		return nil, fmt.Errorf("%w: %s; fix: for UDP/SCTP, add the server ports to the port policy (and regenerate the FlowMetrics) so they become labels; for sampling, set the FlowCollector's sampling to 1", ErrUncovered, strings.Join(parts, "; "))
	}
	b := &observe.Batch{Records: make([]flow.Record, 0, len(counts))}
	for r, n := range counts {
		r.Count = int64(n)
		b.Evidence.Retrieved += r.Count
		b.Records = append(b.Records, r)
	}
	sortRecords(b.Records)
	b.Evidence = observe.Evidence{
		Source: s.Describe(), Query: strings.Join(queries, " ; "), Mode: "flowmetrics",
		Retrieved: b.Evidence.Retrieved, Expected: -1, Requests: requests, Pieces: len(fms),
		Lacks:   []string{observe.LackBytes, observe.LackFirstSeen, observe.LackLastSeen},
		Elapsed: time.Since(start),
	}
	return b, nil
}

// WaitScraped waits until every target of Config.Up has been scraped at or after t (the
// counts of what FLP processed before t are then in Prometheus), polling every second.
func (s *Source) WaitScraped(ctx context.Context, t time.Time, timeout time.Duration) error {
	q := "min(timestamp(" + s.cfg.Up + "))"
	deadline := time.Now().Add(timeout)
	var last time.Time
	for {
		v, warns, err := s.api.Query(ctx, q, time.Now())
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrQuery, q, s.redact(err))
		}
		if len(warns) > 0 {
			return fmt.Errorf("%w: %s answered with warnings: %s", ErrQuery, q, s.redact(errors.New(strings.Join(warns, "; "))))
		}
		if vec, ok := v.(model.Vector); ok && len(vec) == 1 {
			last = time.UnixMilli(int64(math.Round(float64(vec[0].Value) * 1000)))
			if !last.Before(t) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			seen := "no scrape at all"
			if !last.IsZero() {
				seen = "the last at " + last.UTC().Format(time.RFC3339Nano)
			}
			return fmt.Errorf("%w: no scrape of %s at or after %s within %s (%s); fix: check that Prometheus scrapes FLP's metrics endpoint", ErrCoverage, s.cfg.Up, t.UTC().Format(time.RFC3339Nano), timeout, seen)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// record turns a series' labels into the flow aggregate it counts.
func record(metric string, m model.Metric) (flow.Record, error) {
	l := func(n string) string { return string(m[model.LabelName(n)]) }
	r := flow.Record{
		SrcNamespace: l("SrcK8S_Namespace"), SrcOwnerName: l("SrcK8S_OwnerName"), SrcOwnerType: l("SrcK8S_OwnerType"),
		SrcType: l("SrcK8S_Type"), SrcSubnetLabel: l("SrcSubnetLabel"), SrcName: l("SrcK8S_Name"),
		SrcHostName: l("SrcK8S_HostName"), SrcAddr: l("SrcAddr"),
		DstAddr: l("DstAddr"), DstSubnetLabel: l("DstSubnetLabel"),
		SrcPort: flow.EphemeralPort, FlowDirection: "1",
	}
	num := func(n string) (int, error) {
		v, err := strconv.Atoi(l(n))
		if err != nil {
			return 0, fmt.Errorf("%w: series %s has %s=%q, not a number; fix: the FlowMetric %s must label %s", ErrQuery, m, n, l(n), metric, n)
		}
		return v, nil
	}
	var err error
	base := strings.TrimSuffix(metric, flowmetrics.VariantPod)
	switch base {
	case flowmetrics.TCPSYN, flowmetrics.TCPSYNBoth:
		r.Proto, r.Flags = flow.ProtoTCP, flow.FlagSYN
		r.DstPort, err = num("DstPort")
	case flowmetrics.TCPServer:
		// No SYN: the matrix places it by its server port, as it does a Loki record of a
		// connection opened before the window.
		r.Proto = flow.ProtoTCP
		r.DstPort, err = num("DstPort")
	case flowmetrics.DatagramServer:
		if r.Proto, err = num("Proto"); err == nil {
			r.DstPort, err = num("DstPort")
		}
	case flowmetrics.DatagramBoth:
		if r.Proto, err = num("Proto"); err == nil {
			if r.DstPort, err = num("DstPort"); err == nil {
				r.SrcPort, err = num("SrcPort")
			}
		}
	case flowmetrics.DatagramResponse:
		if r.Proto, err = num("Proto"); err == nil {
			r.SrcPort, err = num("SrcPort")
			r.DstPort = flow.EphemeralPort
		}
	case flowmetrics.ICMP, flowmetrics.OtherProto:
		r.Proto, err = num("Proto")
		r.SrcPort = 0
	default:
		return r, fmt.Errorf("%w: metric %s is not one of the egress FlowMetrics; fix: give the FlowMetrics of pkg/flowmetrics", ErrQuery, metric)
	}
	return r, err
}

// sortRecords orders records by the fields record sets, so the batch does not depend on map
// order.
func sortRecords(rs []flow.Record) {
	slices.SortFunc(rs, func(a, b flow.Record) int {
		return cmp.Or(
			cmp.Compare(a.SrcNamespace, b.SrcNamespace), cmp.Compare(a.SrcOwnerName, b.SrcOwnerName),
			cmp.Compare(a.SrcOwnerType, b.SrcOwnerType), cmp.Compare(a.SrcType, b.SrcType),
			cmp.Compare(a.SrcName, b.SrcName), cmp.Compare(a.SrcHostName, b.SrcHostName), cmp.Compare(a.SrcAddr, b.SrcAddr),
			cmp.Compare(a.SrcSubnetLabel, b.SrcSubnetLabel), cmp.Compare(a.DstAddr, b.DstAddr),
			cmp.Compare(a.DstSubnetLabel, b.DstSubnetLabel), cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.SrcPort, b.SrcPort), cmp.Compare(a.DstPort, b.DstPort), cmp.Compare(a.Flags, b.Flags))
	})
}

// isLoopback reports whether host is this machine (a test server, a port-forward).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
