// Package lokiflows is the Loki source of the pipeline: the egress flow records of a window
// and the DNS queries of its workloads, read exactly out of the Loki NetObserv writes to,
// through the Loki client of pkg/lokiquery. It is the only package that imports that client.
package lokiflows

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/lokiquery"
	"github.com/openshift/egress-tests-ext/pkg/observe"
)

// Config says which Loki to read and how.
type Config struct {
	// URL is http://loki:3100 (monolithic) or the LokiStack gateway
	// https://<stack>-gateway-http.<ns>.svc:8080/api/logs/v1/network.
	URL string
	// Tenant goes in X-Scope-OrgID (monolithic Loki); the gateway takes it from the URL.
	Tenant string
	// Token, when set, returns the bearer token for each request (TokenFile reads a file).
	Token func(context.Context) (string, error)
	// TLS configures https; nil verifies against the system roots.
	TLS *tls.Config
	// RequestTimeout bounds one request; Concurrency the requests in flight (defaults of
	// pkg/lokiquery when zero).
	RequestTimeout time.Duration
	Concurrency    int
	// Mode is Aggregate (every egress line read once and folded here: exact ports, bytes,
	// first and last seen) or Raw (every line a record of its own).
	Mode Mode
	// CountsOnly, with Aggregate, has Loki count per matrix key: exact flows and ports, no
	// bytes or times (Evidence.Lacks says so).
	CountsOnly bool
	// IngestWait bounds the wait for Loki to hold the records stamped after the window
	// end (0: do not wait). IngestCanary, when set, is the LogQL query that must match a
	// record stamped at or after the end, in place of every agent reporting.
	IngestWait   time.Duration
	IngestCanary string
	// DNS also collects each workload's DNS queries to the cluster DNS (evidence).
	DNS bool
	// Describe, when set, replaces the URL in messages (e.g. "LokiStack netobserv/loki
	// through a port-forward").
	Describe string
}

// TokenFile reads the bearer token from path at every request (a projected token rotates).
func TokenFile(path string) func(context.Context) (string, error) {
	return lokiquery.TokenFile(path)
}

// CheckURL checks a Loki base URL without repeating a password it carries.
func CheckURL(raw string) (scheme string, err error) {
	u, err := lokiquery.ParseURL(raw)
	if err != nil {
		return "", err
	}
	return u.Scheme, nil
}

// Source reads one Loki.
type Source struct {
	cfg Config
	c   *client
}

// New checks the configuration; it does not contact Loki.
func New(cfg Config) (*Source, error) {
	if cfg.Mode == Raw && cfg.CountsOnly {
		return nil, fmt.Errorf("raw and counts-only read Loki in two different ways; fix: pick one")
	}
	c, err := newClient(lokiquery.Config{
		URL: cfg.URL, Tenant: cfg.Tenant, Token: cfg.Token, TLS: cfg.TLS,
		RequestTimeout: cfg.RequestTimeout, Concurrency: cfg.Concurrency,
	})
	if err != nil {
		return nil, err
	}
	return &Source{cfg: cfg, c: c}, nil
}

// Describe implements observe.Source.
func (s *Source) Describe() string {
	if s.cfg.Describe != "" {
		return s.cfg.Describe
	}
	u, err := lokiquery.ParseURL(s.cfg.URL)
	if err != nil {
		return "loki"
	}
	return "loki " + u.Redacted()
}

// Requests is the number of HTTP requests sent so far.
func (s *Source) Requests() int { return s.c.Requests() }

// Collect implements observe.Source: the window's egress records, checked against Loki's
// own count of the selection, and (Config.DNS) the DNS evidence of the same window.
func (s *Source) Collect(ctx context.Context, req observe.Request) (*observe.Batch, error) {
	start := time.Now()
	o := Options{From: req.Window.From, To: req.Window.To, Ports: req.Ports, RawAddrs: req.TimeSensitive,
		Mode: s.cfg.Mode, CountsOnly: s.cfg.CountsOnly}
	if s.cfg.IngestWait > 0 {
		o.Barrier = Barrier{Timeout: s.cfg.IngestWait, Canary: s.cfg.IngestCanary}
	}
	res, err := s.c.Egress(ctx, o)
	if err != nil {
		return nil, err
	}
	b := &observe.Batch{Records: res.Records, Evidence: observe.Evidence{
		Source: s.Describe(), Query: res.Query, Mode: s.mode(),
		Retrieved: res.Retrieved, Expected: res.Expected, Decode: res.Decode, Pieces: res.Pieces,
	}}
	if s.cfg.CountsOnly {
		b.Evidence.Lacks = []string{observe.LackBytes, observe.LackFirstSeen, observe.LackLastSeen}
	}
	if s.cfg.DNS {
		// The same window, already waited for. Evidence the report lists: a failure fails
		// the collection rather than yield a matrix without it.
		dns, err := s.c.DNSQueries(ctx, Options{From: o.From, To: o.To, MinPiece: o.MinPiece})
		if err != nil {
			return nil, fmt.Errorf("DNS evidence (it can be skipped): %w", err)
		}
		b.DNS = dns
		if b.DNS == nil {
			b.DNS = []flow.Record{}
		}
		b.Evidence.DNSQuery = DNSPipeline(nil).String()
	}
	b.Evidence.Requests = s.c.Requests()
	b.Evidence.Elapsed = time.Since(start)
	return b, nil
}

// WaitFlowing returns once Loki holds a NetObserv record stamped at or after since: from
// then on the flows are being recorded.
func (s *Source) WaitFlowing(ctx context.Context, since time.Time, timeout time.Duration) error {
	return s.c.WaitIngested(ctx, since, Barrier{Timeout: timeout, Canary: `{app="` + App + `"}`})
}

func (s *Source) mode() string {
	if s.cfg.CountsOnly {
		return "counts-only"
	}
	return s.cfg.Mode.String()
}

var _ observe.Source = (*Source)(nil)

// WaitIngested returns once every agent that reported in the minutes before end has a
// record stamped at or after end in Loki (the ingestion barrier Collect runs with
// Config.IngestWait), or fails after timeout. interval 0 polls every 2 s.
func (s *Source) WaitIngested(ctx context.Context, end time.Time, timeout, interval time.Duration) error {
	return s.c.WaitIngested(ctx, end, Barrier{Timeout: timeout, Interval: interval})
}
