package lokiflows

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// small is a capture for the tests that start their own Loki.
func small(t *testing.T, limits lokitest.Limits, seed uint64) (*lokitest.Server, []lokitest.Generated, time.Time, time.Time) {
	t.Helper()
	s := lokitest.Start(t, limits)
	from, to := window()
	gs := lokitest.Generate(lokitest.GenConfig{Records: 6000, From: from, To: to, Seed: seed, OldFormat: 0.3})
	pushed(t, s, gs)
	return s, gs, from, to
}

func TestSplitOnQueryLength(t *testing.T) {
	s, gs, from, to := small(t, lokitest.Limits{MaxQueryLength: 25 * time.Minute}, 2)
	c := testClient(t, s)
	res, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pieces < 3 {
		t.Fatalf("a 1h window under a 25m max_query_length must be split in 3 or more pieces, got %d", res.Pieces)
	}
	diffRecords(t, res.Records, expected(gs, matrix.PortPolicy{}, from, to))

	raw, err := c.Egress(context.Background(), Options{From: from, To: to, Mode: Raw})
	if err != nil {
		t.Fatal(err)
	}
	var proj []flow.Record
	for _, r := range raw.Records {
		proj = append(proj, matrix.Project(r, matrix.PortPolicy{}))
	}
	diffRecords(t, matrix.Fold(proj), res.Records)
}

func TestQueryTimeoutFailsClearly(t *testing.T) {
	s, _, from, to := small(t, lokitest.Limits{QueryTimeout: time.Millisecond}, 3)
	c := testClient(t, s)
	_, err := c.Egress(context.Background(), Options{From: from, To: to, MinPiece: 20 * time.Minute})
	if err == nil {
		t.Fatal("a query timeout that no split avoids must fail")
	}
	if !strings.Contains(err.Error(), "split") {
		t.Fatalf("the error must say the query could not be split enough: %v", err)
	}
}

// A piece that still has too many keys when cut to one owner and to MinPiece fails the
// pull, naming the limit and what to raise, and keeps Loki's answer as its cause.
func TestSeriesLimitUnsplittableFailsClearly(t *testing.T) {
	s, _, from, to := small(t, lokitest.Limits{MaxEntriesLimitPerQuery: 5000, MaxQuerySeries: 2}, 6)
	c := testClient(t, s)
	o := Options{From: from, To: to, MinPiece: 30 * time.Minute, CountsOnly: true}
	_, eerr := c.Egress(context.Background(), o)
	_, derr := c.DNSQueries(context.Background(), o)
	for name, err := range map[string]error{"egress": eerr, "DNS": derr} {
		var le *lokiquery.LokiError
		switch {
		case err == nil:
			t.Fatalf("%s: a piece over max_query_series that no cut brings under it must fail", name)
		case !strings.Contains(err.Error(), "raise max_query_series") || strings.Contains(err.Error(), "%!"):
			t.Fatalf("%s: the error must say which limit to raise: %v", name, err)
		case !errors.As(err, &le) || !strings.Contains(le.Body, "maximum number of series"):
			t.Fatalf("%s: the error must wrap Loki's answer: %v", name, err)
		}
	}
}

func TestLokiKilledMidQuery(t *testing.T) {
	s, _, from, to := small(t, lokitest.Limits{}, 4)
	var once sync.Once
	c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Retries: 2, Backoff: 10 * time.Millisecond,
		Trace: func(path, _ string, _ time.Duration, _ error) {
			if path == "/loki/api/v1/query" {
				once.Do(func() { go s.Kill() })
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err == nil {
		t.Fatalf("Loki was killed during the pull, yet it succeeded with %d records", res.Retrieved)
	}
	if res != nil {
		t.Fatal("a failed pull must not return a partial result")
	}
	if !strings.Contains(err.Error(), "connection refused") && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("the error must say Loki is unreachable: %v", err)
	}
}

func TestContextCancelled(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	c := testClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Egress(ctx, Options{From: from, To: to}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// The ingestion barrier gives the caller's cancellation back as it is, not as its own
// timeout.
func TestBarrierKeepsTheCallersCancel(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := testClient(t, s).Egress(ctx, Options{From: from, To: to,
		Barrier: Barrier{Timeout: 10 * time.Minute, Canary: `{app="netobserv-flowcollector"} |= "10.0.0.99"`}})
	if !errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "after 10m0s") {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}

// The caller's deadline is not a query too slow for Loki: nothing is split for it.
func TestCallersDeadlineNotSplit(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	c := testClient(t, s)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	_, err := c.Egress(ctx, Options{From: from, To: to, MinPiece: time.Second})
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "split") {
		t.Fatalf("want the caller's deadline as it is, got %v", err)
	}
}

func TestWrongTenant(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: "not-netobserv"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Egress(context.Background(), Options{From: from, To: to})
	if err == nil || !strings.Contains(err.Error(), "no NetObserv flow record") || !strings.Contains(err.Error(), "not-netobserv") {
		t.Fatalf("a tenant without records must fail naming the tenant: %v", err)
	}
	// No tenant at all: Loki refuses, and the error says what to check.
	c, _ = newClient(lokiquery.Config{URL: s.URL})
	_, err = c.Egress(context.Background(), Options{From: from, To: to})
	var le *lokiquery.LokiError
	if !errors.As(err, &le) || le.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "tenant") {
		t.Fatalf("no tenant: want a 401 that mentions the tenant, got %v", err)
	}
}

// gateway stands in for the LokiStack gateway: TLS, a bearer token, the tenant in the path.
// It forwards to the real Loki; the answers are Loki's.
func gateway(t *testing.T, s *lokitest.Server, token string) *httptest.Server {
	t.Helper()
	target, _ := url.Parse(s.URL)
	const prefix = "/api/logs/v1/network"
	proxy := httputil.NewSingleHostReverseProxy(target)
	gw := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if !strings.HasPrefix(r.URL.Path, prefix+"/loki/api/v1/") {
			http.Error(w, "no such tenant path", http.StatusNotFound)
			return
		}
		r.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
		r.Header.Del("Authorization")
		r.Header.Set("X-Scope-OrgID", s.Tenant)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(gw.Close)
	return gw
}

// A URL New refuses is never echoed with its password.
func TestNewRefusesURLsWithoutTheirPassword(t *testing.T) {
	for raw, want := range map[string]string{
		"https://admin:s3cretpw@loki.example.test":     "carries credentials",
		"ftp://admin:s3cretpw@loki.example.test":       "carries credentials",
		"https://admin:s3cretpw@loki.example.test/%zz": "not a URL",
		"loki:3100": "must be http(s)://",
	} {
		_, err := newClient(lokiquery.Config{URL: raw})
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cretpw") {
			t.Errorf("%s: %v, want an error with %q and no password", raw, err, want)
		}
	}
}

func TestGatewayTokenAndTLS(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	const token = "sha256~s3cr3t-t0ken-value"
	gw := gateway(t, s, token)
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tlsCfg := gw.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	base := gw.URL + "/api/logs/v1/network"

	c, err := newClient(lokiquery.Config{URL: base, Token: lokiquery.TokenFile(tokFile), TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, res.Records, expected(gs, matrix.PortPolicy{}, from, to))

	// A rotated (wrong) token is re-read at the next request and refused; the error names
	// what to check and never contains the token.
	if err := os.WriteFile(tokFile, []byte("wrong-"+token), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = c.Egress(context.Background(), Options{From: from, To: to})
	var le *lokiquery.LokiError
	if !errors.As(err, &le) || le.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "bearer token") {
		t.Fatalf("wrong token: want a 401 naming the bearer token, got %v", err)
	}
	if strings.Contains(err.Error(), token) {
		t.Fatal("the error contains the token")
	}

	// TLS is verified: without the gateway's CA the call fails.
	c, _ = newClient(lokiquery.Config{URL: base, Token: lokiquery.TokenFile(tokFile), Retries: -1})
	_, err = c.Egress(context.Background(), Options{From: from, To: to})
	var ue x509.UnknownAuthorityError
	if !errors.As(err, &ue) {
		t.Fatalf("an unknown CA must fail verification, got %v", err)
	}
}

func TestMalformedLineFails(t *testing.T) {
	s, gs, from, to := small(t, lokitest.Limits{}, 5)
	bad := lokitest.Entry{Labels: map[string]string{"app": App, "SrcK8S_Type": "Pod", "SrcK8S_Namespace": "x"},
		Time: from.Add(time.Minute), Line: []byte(`SrcAddr=10.128.0.1 DstAddr=198.51.100.9 DstPort=443`)}
	if err := s.Push(context.Background(), []lokitest.Entry{bad}); err != nil {
		t.Fatal(err)
	}
	_ = gs
	c := testClient(t, s)
	_, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err == nil || !strings.Contains(err.Error(), "JSONParserErr") {
		t.Fatalf("a line `| json` cannot parse must fail the aggregate pull, got %v", err)
	}
	// The raw path decodes lines itself and accounts for the bad one.
	res, err := c.Egress(context.Background(), Options{From: from, To: to, Mode: Raw})
	if err != nil {
		t.Fatal(err)
	}
	if res.Decode.Undecodable != 1 {
		t.Fatalf("want 1 undecodable line, got %+v", res.Decode)
	}
}

func TestBarrierWaitsForLateRecords(t *testing.T) {
	s := lokitest.Start(t, lokitest.Limits{})
	to := time.Now().Add(-30 * time.Second).Truncate(time.Millisecond)
	from := to.Add(-10 * time.Minute)
	gs := lokitest.Generate(lokitest.GenConfig{Records: 3000, From: from, To: to, Seed: 6})
	// The agents' last export is late: its records (stamped inside the window) and the
	// first records after the window arrive while the pull is waiting.
	early, late := gs[:2000], gs[2000:]
	pushed(t, s, early)
	after := lokitest.Generate(lokitest.GenConfig{Records: 200, From: to, To: to.Add(20 * time.Second), Seed: 7})
	c := testClient(t, s)
	go func() {
		time.Sleep(1500 * time.Millisecond)
		_ = s.Push(context.Background(), append(lokitest.Entries(late), lokitest.Entries(after)...))
	}()
	res, err := c.Egress(context.Background(), Options{From: from, To: to,
		Barrier: Barrier{Timeout: 30 * time.Second, Interval: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	diffRecords(t, res.Records, expected(gs, matrix.PortPolicy{}, from, to))

	// Nothing after the window end: the barrier gives up, saying why.
	_, err = c.Egress(context.Background(), Options{From: from, To: to.Add(20 * time.Second),
		Barrier: Barrier{Timeout: time.Second, Interval: 200 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "ingestion barrier") {
		t.Fatalf("want an ingestion barrier timeout, got %v", err)
	}
}

func TestBarrierCanary(t *testing.T) {
	s, _, _, _ := sharedLoki(t)
	c := testClient(t, s)
	end := time.Now().Add(-time.Minute)
	canary := `{app="netobserv-flowcollector"} |= "canary-7f3a"`
	go func() {
		time.Sleep(500 * time.Millisecond)
		_ = s.Push(context.Background(), []lokitest.Entry{{Labels: map[string]string{"app": App, "canary": "1"},
			Time: end.Add(time.Second), Line: []byte(`{"canary-7f3a":true}`)}})
	}()
	if err := c.WaitIngested(context.Background(), end, Barrier{Timeout: 20 * time.Second, Interval: 100 * time.Millisecond, Canary: canary}); err != nil {
		t.Fatal(err)
	}
}

// TestLabelFilterRegexAnchored pins the Loki quirk labelFilterString works around: a label
// filter regex of literal alternatives is a substring test in Loki v3.7, so
// SrcPort=~"53|5353" keeps 32853 unless anchored.
func TestLabelFilterRegexAnchored(t *testing.T) {
	s := lokitest.Start(t, lokitest.Limits{})
	from, to := window()
	at := from.Add(time.Minute)
	var entries []lokitest.Entry
	for _, port := range []int{53, 5353, 32853, 55311} {
		entries = append(entries, lokitest.Entry{Labels: map[string]string{"app": App}, Time: at,
			Line: fmt.Appendf(nil, `{"SrcPort":%d,"DstAddr":"198.51.100.1"}`, port)})
	}
	if err := s.Push(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	c := testClient(t, s)
	p := lokiquery.Pipeline{Selector: []lokiquery.Matcher{{Name: "app", Op: lokiquery.OpEq, Value: App}}, JSONFields: []string{"SrcPort"},
		LabelFilters: []lokiquery.Matcher{{Name: "SrcPort", Op: lokiquery.OpRe, Value: "53|5353"}}}
	n, err := c.count(context.Background(), p, from, to, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("%s counts %d lines, want 2 (53 and 5353)", p, n)
	}
	// The unanchored form Loki misreads, to notice when a Loki upgrade fixes it.
	raw := strings.Replace(p.String(), `"^(?:53|5353)$"`, `"53|5353"`, 1)
	v, err := c.Instant(context.Background(), fmt.Sprintf("sum(count_over_time(%s [%dms]))", raw, to.Sub(from).Milliseconds()), to.Add(-time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(v) == 1 && v[0].Value == 2 {
		t.Logf("this Loki anchors %s by itself", raw)
	} else {
		t.Logf("this Loki reads %s as a substring test: %v", raw, v)
	}
}

// Egress refuses at once a window older than Loki's max_query_lookback: Loki would have
// cut its start from the data and the count alike, and the pull passed.
func TestEgressRefusesWindowPastLookback(t *testing.T) {
	s := lokitest.Start(t, lokitest.Limits{MaxQueryLookback: 90 * time.Minute})
	from, to := window() // [now-2h, now-1h)
	gs := lokitest.Generate(lokitest.GenConfig{Records: 2000, From: from, To: to, Seed: 7})
	pushed(t, s, gs)
	c := testClient(t, s)
	_, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err == nil || !strings.Contains(err.Error(), "max_query_lookback") {
		t.Fatalf("a window past the lookback: %v, want refused naming max_query_lookback", err)
	}
	if n := c.Requests(); n != 0 {
		t.Errorf("%d queries before refusing", n)
	}
	_, err = c.Egress(context.Background(), Options{From: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), To: to})
	if err == nil || !strings.Contains(err.Error(), "fix:") {
		t.Fatalf("an unbounded window: %v, want refused at once", err)
	}
}
