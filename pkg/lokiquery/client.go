package lokiquery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	logcli "github.com/grafana/loki/v3/pkg/logcli/client"
	"github.com/grafana/loki/v3/pkg/loghttp"
	"github.com/grafana/loki/v3/pkg/logproto"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TokenSource returns the bearer token for one request. It is called for every request so
// that a rotated token (a projected service-account token file) is picked up.
type TokenSource func(ctx context.Context) (string, error)

// TokenFile reads the token from path at every request.
func TokenFile(path string) TokenSource {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			// The path is not secret; the content never appears in errors.
			return "", fmt.Errorf("reading the bearer token file %s: %w", path, err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("bearer token file %s is empty", path)
		}
		if i := strings.IndexFunc(tok, func(r rune) bool { return r < ' ' || r == 0x7f }); i >= 0 {
			// net/http would refuse the header with a bare "invalid header field value".
			what := "a control character"
			if tok[i] == '\n' || tok[i] == '\r' {
				what = "more than one line"
			}
			return "", fmt.Errorf("bearer token file %s holds %s; fix: write only the token, on one line (e.g. `oc whoami -t > FILE`)", path, what)
		}
		return tok, nil
	}
}

// Config says how to reach Loki.
type Config struct {
	// URL is the base address: http://loki:3100 for a monolithic Loki, or the LokiStack
	// gateway with its tenant prefix, https://<stack>-gateway-http.<ns>.svc:8080/api/logs/v1/network.
	URL string
	// Tenant goes in X-Scope-OrgID (monolithic Loki with NetObserv: "netobserv"). The
	// LokiStack gateway derives the tenant from the URL and needs none.
	Tenant string
	// Token, when set, is sent as a bearer token (the LokiStack gateway).
	Token TokenSource
	// TLS configures https; nil means the system roots with verification.
	TLS *tls.Config
	// RequestTimeout bounds one HTTP request (default 2 minutes).
	RequestTimeout time.Duration
	// Retries is how many times a transient failure (5xx, 429, connection reset) is
	// retried with exponential backoff (default 5; negative: none).
	Retries int
	// Backoff is the first retry delay (default 500 ms, doubled at each retry, capped at 30 s).
	Backoff time.Duration
	// Concurrency bounds the requests in flight (default 4).
	Concurrency int
	// MaxWindow bounds the window a pull may span (default DefaultMaxWindow).
	MaxWindow time.Duration
	// Trace, when set, is called after every request with its path, query, duration and
	// error (the token never reaches it).
	Trace func(path, query string, d time.Duration, err error)
	// WrapTransport, when set, wraps the HTTP transport (as client-go's rest.Config does):
	// a proxy, extra headers, or a test's fault injection.
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Client queries Loki through the logcli client.
type Client struct {
	cfg       Config
	transport http.RoundTripper
	sem       chan struct{}

	mu       sync.Mutex
	requests int

	limitsOnce sync.Once
	limits     ServerLimits
	limitsErr  error
}

// ParseURL checks a Loki base URL. Its errors never repeat a password the URL carries.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the whole URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a URL (%w); fix: give http(s)://host[:port][/prefix]", err)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s carries credentials; fix: drop user:password@ and send a bearer token from a file", u.Redacted())
	}
	if u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%q must be http(s)://host[:port][/prefix]", raw)
	}
	return u, nil
}

// New checks the configuration and builds a client. It does not contact Loki.
func New(cfg Config) (*Client, error) {
	if _, err := ParseURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("loki URL: %w", err)
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 2 * time.Minute
	}
	if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	tlsCfg := cfg.TLS
	if tlsCfg == nil {
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	// One shared transport: logcli builds a new http.Client (and so new connections and TLS
	// handshakes) for every request; reusing connections matters for many small queries.
	tr := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: 30 * time.Second,
		MaxIdleConnsPerHost: cfg.Concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		// Loki answers are JSON; gzip cuts raw pulls several-fold.
		DisableCompression: false,
	}
	var rt http.RoundTripper = tr
	if cfg.WrapTransport != nil {
		rt = cfg.WrapTransport(rt)
	}
	return &Client{cfg: cfg, transport: rt, sem: make(chan struct{}, cfg.Concurrency)}, nil
}

// Requests is the number of HTTP requests sent so far (retries included).
func (c *Client) Requests() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.requests
}

// LokiError is an answer from Loki (or the gateway in front of it) that is not a success.
// Body is the start of Loki's message (maxErrorBody bytes at most), with the bearer token
// redacted wherever the server echoed it.
type LokiError struct {
	Status int
	Path   string
	Body   string
}

func (e *LokiError) Error() string {
	msg := fmt.Sprintf("loki answered %d %s on %s: %s", e.Status, http.StatusText(e.Status), e.Path, e.Body)
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		msg += " (check the bearer token and that its user may read the network tenant, or the X-Scope-OrgID tenant)"
	}
	return msg
}

// callTransport adapts the logcli client to one call: it carries the call's context (the
// client's methods take none), adds the bearer token, and keeps Loki's real answer when it
// is not a success. logcli would otherwise log the URL and the error body through the
// global logger, drop the status code and return only "run out of attempts"; we need the
// status and body to recognise limit answers, so a failure is recorded here and logcli gets
// an empty 200 answer it decodes into nothing. The recorded failure is what the call returns.
type callTransport struct {
	c   *Client
	ctx context.Context
	err error
	// body is the 2xx answer being read, and req its request: a connection that breaks in
	// the middle of it is a transport error (retried), not a decoding one.
	body *bodyReader
	req  *http.Request
}

// bodyErr is the transport error of the answer read, if its body broke.
func (t *callTransport) bodyErr() error {
	if t.body == nil || t.body.err == nil {
		return nil
	}
	return transportError(t.req, t.body.err)
}

// transportError is err of req as net/http gives it (url.Error, which Transient reads),
// with the URL's query and user info left out.
func transportError(req *http.Request, err error) error {
	return &url.Error{Op: req.Method, URL: redactURL(req.URL), Err: err}
}

func (t *callTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(t.ctx)
	var tok string
	if t.c.cfg.Token != nil {
		var err error
		tok, err = t.c.cfg.Token(t.ctx)
		if err != nil {
			t.err = permanent(err)
			return emptyOK(req), nil
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	t.c.mu.Lock()
	t.c.requests++
	t.c.mu.Unlock()
	start := time.Now()
	resp, err := t.c.transport.RoundTrip(req)
	if tr := t.c.cfg.Trace; tr != nil {
		defer func() {
			tr(req.URL.Path, req.URL.Query().Get("query"), time.Since(start), t.err)
		}()
	}
	if err != nil {
		t.err = transportError(req, err)
		return emptyOK(req), nil
	}
	if resp.StatusCode/100 == 2 {
		if h, ok := t.ctx.Value(answerHoldKey{}).(*AnswerHold); ok {
			// Loki has computed the answer; what is left is decoding it, which is what
			// takes the client's memory.
			if err := h.acquire(t.ctx); err != nil {
				resp.Body.Close()
				t.err = err
				return emptyOK(req), nil
			}
		}
		t.body, t.req = &bodyReader{r: resp.Body}, req
		if read, ok := t.ctx.Value(answerReaderKey{}).(AnswerReader); ok {
			// The caller reads the answer itself (QueryLines); logcli decodes nothing. A
			// broken connection is bodyErr's; anything else wrong is the answer's.
			err := read(t.body)
			resp.Body.Close()
			if err != nil && t.body.err == nil {
				t.err = permanent(err)
			}
			return emptyOK(req), nil
		}
		resp.Body = struct {
			io.Reader
			io.Closer
		}{t.body, resp.Body}
		return resp, nil
	}
	t.err = &LokiError{Status: resp.StatusCode, Path: req.URL.Path, Body: errorBody(resp.Body, tok)}
	resp.Body.Close()
	return emptyOK(req), nil
}

// maxErrorBody bounds what an error keeps of an answer's body: Loki's messages are short,
// and a proxy's error page or a header dump is not worth more.
const maxErrorBody = 8192

// errorBody reads the start of a failed answer's body with every copy of tok (the bearer
// token sent) replaced: a gateway may echo the token it rejected, or dump the request's
// headers, and errors end up in logs and artifacts. The read goes len(tok) past the bound
// so that a token cut by the bound is still seen whole, then redacted, then cut.
func errorBody(r io.Reader, tok string) string {
	b, _ := io.ReadAll(io.LimitReader(r, int64(maxErrorBody+len(tok))))
	s := string(b)
	if tok != "" {
		s = strings.ReplaceAll(s, tok, "[redacted]")
	}
	if len(s) > maxErrorBody {
		s = s[:maxErrorBody]
		if tok != "" {
			// What is left at the cut may still be the start of a token.
			for i := min(len(tok)-1, len(s)); i > 0; i-- {
				if strings.HasSuffix(s, tok[:i]) {
					s = s[:len(s)-i]
					break
				}
			}
		}
		s += " [cut]"
	}
	return strings.TrimSpace(s)
}

// AnswerHold is one caller's slot in a gate that bounds the answers being decoded and
// used at once. A raw batch spends most of its time waiting for Loki to compute it, and
// takes its memory only once the answer arrives: gating that part alone keeps Loki busy
// with Concurrency queries while the client holds few answers. The slot is taken when
// Loki's answer begins (once, whatever the retries) and given back by the caller.
type AnswerHold struct {
	gate chan struct{}
	held bool
}

// NewAnswerHold is a slot in gate, whose capacity is the number of answers held at once.
func NewAnswerHold(gate chan struct{}) *AnswerHold { return &AnswerHold{gate: gate} }

type answerHoldKey struct{}

// WithAnswerHold makes the requests of ctx take h's slot when their answer arrives.
func WithAnswerHold(ctx context.Context, h *AnswerHold) context.Context {
	return context.WithValue(ctx, answerHoldKey{}, h)
}

func (h *AnswerHold) acquire(ctx context.Context) error {
	if h.held {
		return nil
	}
	select {
	case h.gate <- struct{}{}:
		h.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *AnswerHold) Release() {
	if h.held {
		<-h.gate
		h.held = false
	}
}

// redactURL keeps the path and drops the query string from error messages (queries are long
// and not secret, but user info would be).
func redactURL(u *url.URL) string {
	v := *u
	v.User = nil
	v.RawQuery = ""
	return v.String()
}

func emptyOK(req *http.Request) *http.Response {
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": []string{"application/json"}},
		Body:   io.NopCloser(strings.NewReader("{}")), ContentLength: 2, Request: req,
	}
}

// bodyReader keeps the error of reading an answer's body apart from what is wrong with
// its content.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// callerDone is an error of a request whose caller's context ended: the caller's deadline
// or cancellation, not a query too slow for Loki, so nothing is split and retried for it.
type callerDone struct{ error }

func (e callerDone) Unwrap() error { return e.error }

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

func permanent(err error) error { return permanentError{err} }

// do runs fn with a logcli client bound to ctx, bounded by the concurrency limit and the
// request timeout, retrying transient failures with exponential backoff.
func (c *Client) do(ctx context.Context, fn func(lc *logcli.DefaultClient) error) (err error) {
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = callerDone{err}
		}
	}()
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.sem }()

	steps := c.cfg.Retries + 1
	if c.cfg.Retries < 0 {
		steps = 1
	}
	backoff := wait.Backoff{Duration: c.cfg.Backoff, Factor: 2, Jitter: 0.2, Steps: steps, Cap: 30 * time.Second}
	var last error
	attempts, permanentStop := 0, false
	err = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		attempts++
		last = c.once(ctx, fn)
		switch {
		case last == nil:
			return true, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case Transient(last):
			return false, nil
		default:
			permanentStop = true
			return false, last
		}
	})
	switch {
	case err == nil:
		return nil
	case permanentStop:
		// Not worth retrying: as it came, whatever it wraps (a request timeout included).
		return last
	case wait.Interrupted(err) && last != nil:
		if ctx.Err() != nil {
			return fmt.Errorf("%w (last answer: %v)", ctx.Err(), last)
		}
		return fmt.Errorf("giving up after %d attempts: %w", attempts, last)
	}
	return err
}

func (c *Client) once(ctx context.Context, fn func(lc *logcli.DefaultClient) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	ct := &callTransport{c: c, ctx: ctx}
	lc := &logcli.DefaultClient{
		Address: c.cfg.URL,
		OrgID:   c.cfg.Tenant,
		// Retries 0 = one attempt: retries and backoff are ours, with the context.
		Retries:     0,
		Tripperware: func(http.RoundTripper) http.RoundTripper { return ct },
		// The token is not put in BearerToken: the struct has no redacting String method,
		// and TokenSource re-reads rotated tokens; callTransport adds the header.
	}
	err := fn(lc)
	if ct.err != nil {
		return ct.err
	}
	if berr := ct.bodyErr(); berr != nil {
		return berr
	}
	if err != nil {
		return fmt.Errorf("decoding Loki's answer: %w", err)
	}
	return ctx.Err()
}

// Transient reports whether err is worth retrying: 5xx except a query timeout, 429,
// connection refused, reset or broken (a request written to a kept-alive connection of a
// Loki that went away).
func Transient(err error) bool {
	var pe permanentError
	if errors.As(err, &pe) {
		return false
	}
	var le *LokiError
	if errors.As(err, &le) {
		if le.Status == http.StatusTooManyRequests {
			return true
		}
		if le.Status/100 == 5 {
			// A query that timed out in Loki times out again: it is split, not retried.
			return !isTimeout(le)
		}
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// Our request timeout: the query is too slow, and is split rather than repeated.
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
			errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || ue.Timeout()
	}
	return false
}

// Limit kinds a Loki answer can report.
type LimitKind int

const (
	NoLimit LimitKind = iota
	LimitSeries
	LimitEntries
	LimitLength
	LimitTimeout
	LimitBytes
)

var (
	reSeries  = regexp.MustCompile(`maximum (?:number )?of series \((\d+)\) reached`)
	reEntries = regexp.MustCompile(`max entries limit per query exceeded, limit > max_entries_limit(?:_per_query)? \((\d+) > (\d+)\)`)
	reLength  = regexp.MustCompile(`the query time range exceeds the limit \(query length: ([^,]+), limit: ([^)]+)\)`)
	reBytes   = regexp.MustCompile(`would read too many bytes|too large to execute on a single querier`)
)

// Classify recognises Loki's limit answers; n is the limit when the answer names it.
func Classify(err error) (LimitKind, int64) {
	if errors.As(err, new(callerDone)) {
		return NoLimit, 0
	}
	var le *LokiError
	if !errors.As(err, &le) {
		if errors.Is(err, context.DeadlineExceeded) {
			return LimitTimeout, 0
		}
		return NoLimit, 0
	}
	if m := reSeries.FindStringSubmatch(le.Body); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return LimitSeries, n
	}
	if m := reEntries.FindStringSubmatch(le.Body); m != nil {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		return LimitEntries, n
	}
	if m := reLength.FindStringSubmatch(le.Body); m != nil {
		d, err := parseLokiDuration(m[2])
		if err == nil {
			return LimitLength, int64(d)
		}
		return LimitLength, 0
	}
	if reBytes.MatchString(le.Body) {
		return LimitBytes, 0
	}
	if isTimeout(le) {
		return LimitTimeout, 0
	}
	return NoLimit, 0
}

func isTimeout(le *LokiError) bool {
	return le.Status == http.StatusGatewayTimeout || strings.Contains(le.Body, "request timed out") ||
		strings.Contains(le.Body, "context deadline exceeded") || strings.Contains(le.Body, "query timed out")
}

// parseLokiDuration reads durations as Loki prints them: Go's "1h0m0s" or Prometheus' "30d".
func parseLokiDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if strings.HasSuffix(s, "d") {
		n, err := strconv.ParseFloat(strings.TrimSuffix(s, "d"), 64)
		if err == nil {
			return time.Duration(n * float64(24*time.Hour)), nil
		}
	}
	return 0, fmt.Errorf("unknown duration %q", s)
}

// Instant runs an instant metric query and returns its vector.
func (c *Client) Instant(ctx context.Context, query string, at time.Time) (loghttp.Vector, error) {
	var out loghttp.Vector
	err := c.do(ctx, func(lc *logcli.DefaultClient) error {
		// The line limit does not apply to metric queries, but Loki rejects 0.
		resp, err := lc.Query(query, 100, at, logproto.FORWARD, true)
		if err != nil {
			return err
		}
		v, err := vectorOf(resp)
		out = v
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", Shorten(query), err)
	}
	return out, nil
}

func vectorOf(resp *loghttp.QueryResponse) (loghttp.Vector, error) {
	if err := checkResponse(resp); err != nil {
		return nil, err
	}
	switch v := resp.Data.Result.(type) {
	case loghttp.Vector:
		return v, nil
	case nil:
		return nil, nil
	default:
		return nil, fmt.Errorf("expected a vector answer, got %s", resp.Data.ResultType)
	}
}

// checkResponse fails on an unsuccessful status and on any warning that says the answer is
// partial: a partial answer must never pass for a whole one.
func checkResponse(resp *loghttp.QueryResponse) error {
	if resp.Status != "" && resp.Status != loghttp.QueryStatusSuccess {
		return fmt.Errorf("loki answered status %q", resp.Status)
	}
	for _, w := range resp.Warnings {
		lw := strings.ToLower(w)
		if strings.Contains(lw, "partial") || strings.Contains(lw, "maximum") || strings.Contains(lw, "limit") {
			return fmt.Errorf("loki warned that the answer is incomplete: %s", w)
		}
	}
	return nil
}

// Series lists the label sets of the streams matching a selector over [start, end),
// splitting the range when Loki's max_query_length refuses it.
func (c *Client) Series(ctx context.Context, selector string, start, end time.Time) ([]loghttp.LabelSet, error) {
	out, err := c.series1(ctx, selector, start, end)
	if err == nil {
		return out, nil
	}
	kind, n := Classify(err)
	if kind != LimitLength || n <= 0 {
		return nil, err
	}
	step := time.Duration(n)
	if step > time.Minute {
		step -= time.Minute // margin for how Loki rounds the range
	}
	seen := map[string]bool{}
	out = nil
	for f := start; f.Before(end); f = f.Add(step) {
		t := f.Add(step)
		if t.After(end) {
			t = end
		}
		part, err := c.series1(ctx, selector, f, t)
		if err != nil {
			return nil, err
		}
		for _, l := range part {
			if k := MapKey(l); !seen[k] {
				seen[k] = true
				out = append(out, l)
			}
		}
	}
	return out, nil
}

func (c *Client) series1(ctx context.Context, selector string, start, end time.Time) ([]loghttp.LabelSet, error) {
	var out []loghttp.LabelSet
	err := c.do(ctx, func(lc *logcli.DefaultClient) error {
		resp, err := lc.Series([]string{selector}, start, end, true)
		if err != nil {
			return err
		}
		out = resp.Data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("series %s: %w", selector, err)
	}
	return out, nil
}

// LabelValues lists the values of a label over [start, end).
func (c *Client) LabelValues(ctx context.Context, name string, start, end time.Time) ([]string, error) {
	var out []string
	err := c.do(ctx, func(lc *logcli.DefaultClient) error {
		resp, err := lc.ListLabelValues(name, true, start, end)
		if err != nil {
			return err
		}
		out = resp.Data
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("label values of %s: %w", name, err)
	}
	return out, nil
}

func Shorten(q string) string {
	if len(q) > 300 {
		return q[:300] + "..."
	}
	return q
}

// Concurrency is the bound on requests in flight.
func (c *Client) Concurrency() int { return c.cfg.Concurrency }

// Tenant is the X-Scope-OrgID the client sends ("" for none).
func (c *Client) Tenant() string { return c.cfg.Tenant }

// ServerLimits are the limits of a Loki that bound which windows it can answer whole, as
// its /config says (a monolithic Loki serves it; the LokiStack gateway does not).
type ServerLimits struct {
	// Known says /config answered; the durations are zero otherwise.
	Known bool
	// MaxQueryLookback: Loki answers only the last MaxQueryLookback, and cuts an older part
	// of a query silently, data and count alike (0: no limit).
	MaxQueryLookback time.Duration
	// Retention: with the compactor's retention on, older data is deleted (0: kept).
	Retention time.Duration
	// MaxQueryLength is the longest range one query may span (0: no limit).
	MaxQueryLength time.Duration
}

// DefaultMaxWindow is Config.MaxWindow when left zero: windows are test runs, hours long; a
// month of flows is already a pull of hours.
const DefaultMaxWindow = 31 * 24 * time.Hour

// Limits asks Loki for its limits once (GET /config) and keeps the answer. An answer that
// is not Loki's configuration (the gateway's 404 or 403) is no error: the limits are
// unknown, and only the window's length is checked.
func (c *Client) Limits(ctx context.Context) (ServerLimits, error) {
	c.limitsOnce.Do(func() { c.limits, c.limitsErr = c.fetchLimits(ctx) })
	return c.limits, c.limitsErr
}

func (c *Client) fetchLimits(ctx context.Context) (ServerLimits, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.cfg.URL, "/")+"/config", nil)
	if err != nil {
		return ServerLimits{}, err
	}
	if c.cfg.Tenant != "" {
		req.Header.Set("X-Scope-OrgID", c.cfg.Tenant)
	}
	if c.cfg.Token != nil {
		tok, err := c.cfg.Token(ctx)
		if err != nil {
			return ServerLimits{}, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return ServerLimits{}, fmt.Errorf("asking Loki for its limits: %w", transportError(req, err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ServerLimits{}, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return ServerLimits{}, fmt.Errorf("asking Loki for its limits: %w", transportError(req, err))
	}
	return parseServerLimits(body), nil
}

// parseServerLimits reads /config; anything it cannot read leaves the limits unknown.
func parseServerLimits(body []byte) ServerLimits {
	var cfg struct {
		Limits struct {
			Lookback  string `yaml:"max_query_lookback"`
			Length    string `yaml:"max_query_length"`
			Retention string `yaml:"retention_period"`
		} `yaml:"limits_config"`
		Compactor struct {
			Retention bool `yaml:"retention_enabled"`
		} `yaml:"compactor"`
	}
	if err := yaml.Unmarshal(body, &cfg); err != nil {
		return ServerLimits{}
	}
	d := func(s string) (time.Duration, bool) {
		if s == "" {
			return 0, true
		}
		v, err := model.ParseDuration(s)
		return time.Duration(v), err == nil
	}
	lookback, ok1 := d(cfg.Limits.Lookback)
	length, ok2 := d(cfg.Limits.Length)
	retention, ok3 := d(cfg.Limits.Retention)
	if !ok1 || !ok2 || !ok3 || (cfg.Limits.Lookback == "" && cfg.Limits.Length == "") {
		return ServerLimits{}
	}
	l := ServerLimits{Known: true, MaxQueryLookback: lookback, MaxQueryLength: length}
	if cfg.Compactor.Retention {
		l.Retention = retention
	}
	return l
}

// CheckWindow refuses, before any query, a window Loki would cut silently (its start older
// than max_query_lookback or the retention) or too long to pull (Config.MaxWindow): such a
// pull would return part of the window with a count that agrees, or run for hours.
func (c *Client) CheckWindow(ctx context.Context, from, to time.Time) error {
	maxWindow := c.cfg.MaxWindow
	if maxWindow <= 0 {
		maxWindow = DefaultMaxWindow
	}
	span := fmt.Sprintf("[%s, %s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	if w := to.Sub(from); w > maxWindow {
		return fmt.Errorf("the window %s spans %s, more than the %s a pull is bounded to; fix: narrow the window (--since, or --from/--to) to the test run", span, model.Duration(w), model.Duration(maxWindow))
	}
	l, err := c.Limits(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, b := range []struct {
		d    time.Duration
		name string
	}{{l.MaxQueryLookback, "max_query_lookback"}, {l.Retention, "retention_period"}} {
		if b.d > 0 && from.Before(now.Add(-b.d)) {
			return fmt.Errorf("the window %s starts before what Loki answers: its %s is %s, so Loki would cut everything before %s from the data and the count alike, silently; fix: start the window after %s, or raise limits_config.%s",
				span, b.name, model.Duration(b.d), now.Add(-b.d).UTC().Format(time.RFC3339), now.Add(-b.d).UTC().Format(time.RFC3339), b.name)
		}
	}
	return nil
}
