package lokiflows

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/lokiquery"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// fault is a RoundTripper in front of the real Loki that spoils answers: the fault
// classes a hostile run of issue 22 tried, kept as tests so that they stay handled.
type fault struct {
	next http.RoundTripper
	// times is how many answers to spoil (-1: all).
	times int64
	// raw picks log queries (query_range of a selector); otherwise every request.
	raw   bool
	spoil func(resp *http.Response, body []byte) (*http.Response, error)
	hits  atomic.Int64
}

func (f *fault) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/config") {
		return f.next.RoundTrip(req)
	}
	if f.raw && (!strings.HasSuffix(req.URL.Path, "/query_range") || !strings.HasPrefix(req.URL.Query().Get("query"), "{")) {
		return f.next.RoundTrip(req)
	}
	if f.times >= 0 && f.hits.Load() >= f.times {
		return f.next.RoundTrip(req)
	}
	resp, err := f.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	out, err := f.spoil(resp, body)
	if out != resp || err != nil {
		f.hits.Add(1)
	}
	return out, err
}

func status(code int, msg string) func(*http.Response, []byte) (*http.Response, error) {
	return func(resp *http.Response, _ []byte) (*http.Response, error) {
		return &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": []string{"text/plain"}}, Body: io.NopCloser(strings.NewReader(msg)), Request: resp.Request}, nil
	}
}

// values edits the values of the first stream of a raw answer that has two or more.
func values(edit func(v []json.RawMessage) []json.RawMessage) func(*http.Response, []byte) (*http.Response, error) {
	return func(resp *http.Response, body []byte) (*http.Response, error) {
		var a struct {
			Status string `json:"status"`
			Data   struct {
				ResultType string `json:"resultType"`
				Result     []struct {
					Stream map[string]string `json:"stream"`
					Values []json.RawMessage `json:"values"`
				} `json:"result"`
				Stats json.RawMessage `json:"stats,omitempty"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &a) != nil || a.Data.ResultType != "streams" {
			return resp, nil
		}
		for i := range a.Data.Result {
			if v := a.Data.Result[i].Values; len(v) >= 2 {
				a.Data.Result[i].Values = edit(v)
				b, err := json.Marshal(a)
				if err != nil {
					return nil, err
				}
				out := *resp
				out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
				out.Header = resp.Header.Clone()
				out.Header.Del("Content-Length")
				return &out, nil
			}
		}
		return resp, nil
	}
}

func TestFaultsRetriedOrFailed(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	want := expected(gs, matrix.PortPolicy{}, from, to)
	pull := func(f *fault, o Options) (*Result, error) {
		c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Retries: 2, Backoff: time.Millisecond, RequestTimeout: 20 * time.Second,
			WrapTransport: func(rt http.RoundTripper) http.RoundTripper { f.next = rt; return f }})
		if err != nil {
			t.Fatal(err)
		}
		o.From, o.To = from, to
		return c.Egress(context.Background(), o)
	}
	exact := func(name string, f *fault, res *Result, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v, want the pull retried and exact", name, err)
		}
		if f.hits.Load() == 0 {
			t.Fatalf("%s: no answer was spoiled", name)
		}
		diffRecords(t, res.Records, want)
	}
	failed := func(name string, f *fault, res *Result, err error, says ...string) {
		t.Helper()
		if err == nil || res != nil {
			t.Fatalf("%s: %v with a result: want a failure and no partial result", name, err)
		}
		for _, w := range says {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: %v, want it to say %q", name, err, w)
			}
		}
	}

	for _, c := range []struct {
		name  string
		spoil func(*http.Response, []byte) (*http.Response, error)
		says  string
	}{
		{"429", status(http.StatusTooManyRequests, "too many outstanding requests"), "429"},
		{"500", status(http.StatusInternalServerError, "rpc error: code = Internal"), "500"},
		{"502", status(http.StatusBadGateway, "upstream connect error"), "502"},
	} {
		f := &fault{times: 1, spoil: c.spoil}
		res, err := pull(f, Options{})
		exact(c.name+" once", f, res, err)
		f = &fault{times: -1, spoil: c.spoil}
		res, err = pull(f, Options{})
		failed(c.name+" always", f, res, err, c.says, "giving up after 3 attempts")
		f = &fault{times: -1, spoil: c.spoil}
		res, err = pull(f, Options{CountsOnly: true})
		failed(c.name+" always, counts-only", f, res, err, c.says)
	}

	// An answer cut short that still ends cleanly (a proxy that closed the body at a
	// boundary): a JSON error, never fewer records.
	truncate := func(resp *http.Response, body []byte) (*http.Response, error) {
		out := *resp
		out.Body, out.ContentLength = io.NopCloser(bytes.NewReader(body[:len(body)*2/3])), -1
		return &out, nil
	}
	f := &fault{times: -1, raw: true, spoil: truncate}
	res, err := pull(f, Options{})
	failed("truncated always", f, res, err)
	f = &fault{times: 1, raw: true, spoil: truncate}
	res, err = pull(f, Options{})
	if err == nil {
		diffRecords(t, res.Records, want)
	}

	// A value dropped or duplicated inside a well-formed answer: the count check catches
	// it (or the pull is exact all the same), never a silent difference.
	for name, edit := range map[string]func([]json.RawMessage) []json.RawMessage{
		"dropped":    func(v []json.RawMessage) []json.RawMessage { return v[1:] },
		"duplicated": func(v []json.RawMessage) []json.RawMessage { return append(v, v[0]) },
	} {
		for _, times := range []int64{1, -1} {
			f := &fault{times: times, raw: true, spoil: values(edit)}
			res, err := pull(f, Options{})
			if f.hits.Load() == 0 {
				t.Fatalf("%s: no answer spoiled", name)
			}
			if err == nil {
				diffRecords(t, res.Records, want)
			} else if res != nil {
				t.Fatalf("%s: an error with a result", name)
			}
			if times < 0 && err == nil {
				t.Fatalf("%s in every answer: the pull passed", name)
			}
		}
	}
}

// A Loki that stalls past the request timeout fails the request; with every answer
// stalled the pull fails, with no partial result.
func TestFaultStalledAnswer(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Retries: 1, Backoff: time.Millisecond, RequestTimeout: 300 * time.Millisecond,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper { return stall{next: rt} }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Egress(context.Background(), Options{From: from, To: to, MinPiece: 20 * time.Minute})
	if err == nil || res != nil {
		t.Fatalf("every answer stalled: %v, want a failure and no result", err)
	}
}

type stall struct{ next http.RoundTripper }

func (s stall) RoundTrip(req *http.Request) (*http.Response, error) {
	select {
	case <-req.Context().Done():
		return nil, req.Context().Err()
	case <-time.After(time.Minute):
	}
	return s.next.RoundTrip(req)
}

// Loki killed in the middle of a pull and started again on its data (its WAL replayed):
// the requests in between fail as a proxy in front of it answers them (502), are retried,
// and the pull comes out exact, or fails whole; never part of the window.
func TestLokiKilledMidPullAndRestarted(t *testing.T) {
	s, gs, from, to := small(t, lokitest.Limits{}, 9)
	dir := filepath.Dir(s.LogPath())
	var target atomic.Pointer[url.URL]
	u, _ := url.Parse(s.URL)
	target.Store(u)
	proxy := httptest.NewServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target.Load())
	}, ErrorLog: log.New(io.Discard, "", 0)})
	t.Cleanup(proxy.Close)

	var once sync.Once
	restarted := make(chan error, 1)
	c, err := newClient(lokiquery.Config{URL: proxy.URL, Tenant: s.Tenant, Retries: 8, Backoff: 500 * time.Millisecond,
		Trace: func(path, _ string, _ time.Duration, _ error) {
			if path == "/loki/api/v1/query_range" {
				once.Do(func() {
					go func() {
						_ = s.Kill()
						again, err := lokitest.StartBinary(lokitest.Binary(t), dir, lokitest.Limits{})
						if err == nil {
							t.Cleanup(func() { _ = again.Stop() })
							nu, _ := url.Parse(again.URL)
							target.Store(nu)
						}
						restarted <- err
					}()
				})
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Egress(context.Background(), Options{From: from, To: to})
	if rerr := <-restarted; rerr != nil {
		t.Fatalf("restarting Loki: %v", rerr)
	}
	if err != nil {
		if res != nil {
			t.Fatal("a failed pull returned a result")
		}
		t.Fatalf("Loki restarted within the retries, yet the pull failed: %v", err)
	}
	diffRecords(t, res.Records, expected(gs, matrix.PortPolicy{}, from, to))
}
