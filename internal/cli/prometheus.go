package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/spf13/pflag"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/source/promflows"
)

func init() {
	// `matrix diff` and `baseline update` take --prometheus-url in place of --flows.
	registerMatrixSource(func() matrixSource { return &promSource{} })
}

// promFlags are the flags of the FlowMetrics source. The window (--since, --from, --to) and
// the credentials (--token-file, --ca-file) are the Loki source's flags, shared: one
// command line picks one source.
type promFlags struct {
	url, up string
	maxGap  time.Duration
}

func (f *promFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "prometheus-url", "", "Prometheus (or Thanos querier) base URL holding the egress FlowMetrics: the matrix from counters (no bytes, first or last seen)")
	fs.StringVar(&f.up, "prometheus-up", promflows.DefaultUp, "PromQL selector of the up series of FLP's scrape targets, whose scrapes must cover the window")
	fs.DurationVar(&f.maxGap, "prometheus-max-gap", time.Minute, "longest allowed time between two scrapes of FLP (below FLP's expiryTime, 2m)")
}

func (f *promFlags) set(fs *pflag.FlagSet) bool { return fs.Changed("prometheus-url") }

// lokiOnly are the Loki flags that mean nothing to the FlowMetrics source.
var lokiOnly = []string{"loki-url", "tenant", "insecure-skip-tls-verify", "save-flows", "raw", "counts-only", "dns", "ingest-wait", "loki-timeout", "loki-concurrency"}

// sharedWithLoki are the Loki source's flags the FlowMetrics source reads too.
var sharedWithLoki = map[string]bool{"since": true, "from": true, "to": true, "token-file": true, "ca-file": true}

// outcome reads the window's egress FlowMetrics and builds the matrix through observe.Run,
// diffed against b when set.
func (f *promFlags) outcome(ctx context.Context, fs *pflag.FlagSet, shared *lokiFlags, opts matrix.Options, b *baseline.Baseline, log io.Writer) (*observe.Outcome, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	for _, n := range lokiOnly {
		if fs.Changed(n) {
			return nil, fmt.Errorf("--%s applies to --loki-url, not to --prometheus-url; fix: drop it", n)
		}
	}
	from, to, err := shared.window()
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--prometheus-url %q is not an http(s) URL; fix: give e.g. https://thanos-querier.openshift-monitoring.svc:9091", f.url)
	}
	if shared.tokenFile != "" && u.Scheme != "https" {
		return nil, fmt.Errorf("--token-file with %s: refusing to send a bearer token over plain http; fix: use an https URL", f.url)
	}
	if shared.caFile != "" && u.Scheme != "https" {
		return nil, fmt.Errorf("--ca-file applies to https, but --prometheus-url is %s", u.Scheme)
	}
	src, err := promflows.New(promflows.Config{URL: f.url, TokenFile: shared.tokenFile, CAFile: shared.caFile, Up: f.up, MaxGap: f.maxGap})
	if err != nil {
		return nil, err
	}
	return observe.Run(ctx, observe.Config{Source: src, Window: observe.Window{From: from, To: to}, Matrix: opts, Baseline: b, Log: log})
}

// promSource lets `matrix diff` and `baseline update` read the observed matrix from the
// egress FlowMetrics.
type promSource struct {
	promFlags
	fs *pflag.FlagSet
}

func (s *promSource) flags() string { return "--prometheus-url" }
func (s *promSource) addFlags(fs *pflag.FlagSet) {
	s.fs = fs
	s.bind(fs)
}
func (s *promSource) isSet(fs *pflag.FlagSet) bool { return s.set(fs) }
func (s *promSource) usesNaming() bool             { return true }

// optionsGiven lists the FlowMetrics flags given besides --prometheus-url.
func (s *promSource) optionsGiven(fs *pflag.FlagSet) []string {
	var out []string
	for _, n := range []string{"prometheus-up", "prometheus-max-gap"} {
		if fs.Changed(n) {
			out = append(out, "--"+n)
		}
	}
	return out
}

func (s *promSource) outcome(ctx context.Context, opts matrix.Options, b *baseline.Baseline, log io.Writer) (*observe.Outcome, error) {
	shared, err := sharedLokiFlags(s.fs)
	if err != nil {
		return nil, err
	}
	return s.promFlags.outcome(ctx, s.fs, shared, opts, b, log)
}

// sharedLokiFlags reads the window and credential flags the Loki source bound on fs.
func sharedLokiFlags(fs *pflag.FlagSet) (*lokiFlags, error) {
	get := func(n string) (string, error) {
		f := fs.Lookup(n)
		if f == nil {
			return "", fmt.Errorf("internal: flag --%s is not bound beside --prometheus-url", n)
		}
		return f.Value.String(), nil
	}
	var l lokiFlags
	var err error
	var since string
	for _, p := range []struct {
		name string
		dst  *string
	}{{"since", &since}, {"from", &l.from}, {"to", &l.to}, {"token-file", &l.tokenFile}, {"ca-file", &l.caFile}} {
		if *p.dst, err = get(p.name); err != nil {
			return nil, err
		}
	}
	if l.since, err = time.ParseDuration(since); err != nil {
		return nil, fmt.Errorf("--since %q: %w", since, err)
	}
	return &l, nil
}
