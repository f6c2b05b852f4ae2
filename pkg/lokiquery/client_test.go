package lokiquery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/grafana/loki/v3/pkg/loghttp"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
)

// testLoki is a real Loki holding a few thousand generated flow records, and a client of it.
func testLoki(t *testing.T) (*Client, time.Time, time.Time) {
	t.Helper()
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	to := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	from := to.Add(-30 * time.Minute)
	gs := lokitest.Generate(lokitest.GenConfig{Records: 3000, From: from, To: to, Seed: 5, OldFormat: 0.2})
	if err := s.Push(context.Background(), lokitest.Entries(gs)); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{URL: s.URL, Tenant: s.Tenant})
	if err != nil {
		t.Fatal(err)
	}
	return c, from, to
}

type readEntry struct {
	Stream string
	Index  [2]int
	TS     int64
	Line   string
}

func TestClassify(t *testing.T) {
	le := func(status int, body string) error { return &LokiError{Status: status, Body: body} }
	for _, c := range []struct {
		err  error
		kind LimitKind
		n    int64
	}{
		{le(400, "maximum number of series (500) reached for a single query; consider reducing"), LimitSeries, 500},
		{le(400, "max entries limit per query exceeded, limit > max_entries_limit_per_query (20000 > 5000)"), LimitEntries, 5000},
		{le(400, "the query time range exceeds the limit (query length: 1h0m0s, limit: 25m0s)"), LimitLength, int64(25 * time.Minute)},
		{le(400, "the query time range exceeds the limit (query length: 60d, limit: 30d)"), LimitLength, int64(30 * 24 * time.Hour)},
		{le(504, "request timed out, decrease the duration of the request"), LimitTimeout, 0},
		{le(400, "the query would read too many bytes (query: 10 GiB, limit: 1 GiB)"), LimitBytes, 0},
		{le(400, "parse error at line 1"), NoLimit, 0},
	} {
		kind, n := Classify(c.err)
		if kind != c.kind || n != c.n {
			t.Errorf("%v: got %v %d, want %v %d", c.err, kind, n, c.kind, c.n)
		}
	}
}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&LokiError{Status: 429, Body: "too many outstanding requests"}, true},
		{&LokiError{Status: 502, Body: "bad gateway"}, true},
		{&LokiError{Status: 503}, true},
		{&LokiError{Status: 504, Body: "request timed out"}, false},
		{&LokiError{Status: 400, Body: "parse error"}, false},
		{&LokiError{Status: 401}, false},
		{&url.Error{Op: "GET", URL: "http://x", Err: syscall.ECONNREFUSED}, true},
		{&url.Error{Op: "GET", URL: "http://x", Err: syscall.ECONNRESET}, true},
		{&url.Error{Op: "GET", URL: "http://x", Err: syscall.EPIPE}, true}, // a kept-alive connection to a Loki that went away
		{context.Canceled, false},
		{fmt.Errorf("wrapped: %w", &LokiError{Status: 500}), true},
		{permanent(errors.New("token file missing")), false},
	} {
		if got := Transient(c.err); got != c.want {
			t.Errorf("%v: got %v, want %v", c.err, got, c.want)
		}
	}
}

func TestLokiErrorNamesTheFix(t *testing.T) {
	err := (&LokiError{Status: http.StatusForbidden, Path: "/x", Body: "forbidden"}).Error()
	if !strings.Contains(err, "bearer token") || !strings.Contains(err, "403") {
		t.Fatal(err)
	}
}

func TestPipelineString(t *testing.T) {
	p := Pipeline{
		Selector:     []Matcher{{"app", OpEq, "netobserv-flowcollector"}, {"DstK8S_Type", OpEq, ""}},
		LineFilters:  []LineFilter{{LineNotContains, `"DstSubnetLabel":"Pods"`}},
		JSONFields:   []string{"DstAddr", "DstPort"},
		LabelFilters: []Matcher{{"DstSubnetLabel", OpNotRe, "Pods|Machines"}},
	}
	want := `{app="netobserv-flowcollector", DstK8S_Type=""} != "\"DstSubnetLabel\":\"Pods\"" | json DstAddr, DstPort | DstSubnetLabel!~"^(?:Pods|Machines)$"`
	if got := p.String(); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	m := Metric{Pipeline: p.WithFields("Bytes"), Agg: AggSum, Unwrap: "Bytes", Range: 90 * time.Minute, By: []string{"DstAddr"}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := m.String(); !strings.HasPrefix(got, "sum by (DstAddr) (sum_over_time({") || !strings.HasSuffix(got, "| json Bytes, DstAddr, DstPort | DstSubnetLabel!~\"^(?:Pods|Machines)$\" | unwrap Bytes [5400000ms]))") {
		t.Fatalf("metric: %s", got)
	}
}

func TestRegexAlternatives(t *testing.T) {
	re := regexp.MustCompile("^(?:" + RegexAlternatives([]string{"a.b", "c|d", "e+"}) + ")$")
	for s, want := range map[string]bool{"a.b": true, "axb": false, "c|d": true, "c": false, "e+": true, "ee": false} {
		if re.MatchString(s) != want {
			t.Errorf("%q: got %v", s, !want)
		}
	}
}

// An answer is decoded only once its request holds a slot: with the one slot taken, a
// request to a real Loki waits after Loki answered and gives up with its context; once
// the slot is free, the same request reads its lines.
func TestAnswerHoldGatesDecoding(t *testing.T) {
	c, from, to := testLoki(t)
	gate := make(chan struct{}, 1)
	first := &AnswerHold{gate: gate}
	if err := first.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := first.acquire(context.Background()); err != nil || len(gate) != 1 {
		t.Fatalf("a second acquire by the holder must not take another slot: %v, %d taken", err, len(gate))
	}
	query := `{app="netobserv-flowcollector"}`
	var requests int
	c.cfg.Trace = func(string, string, time.Duration, error) { requests++ }
	second := &AnswerHold{gate: gate}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	entries := 0
	read := func(r io.Reader) error {
		entries = 0
		return ReadStreams(r, func(*LineStream, int64, jsontext.Value, jsontext.Value) { entries++ })
	}
	if err := c.QueryLines(WithAnswerHold(ctx, second), query, 100, from, to, read); !errors.Is(err, context.DeadlineExceeded) || second.held {
		t.Fatalf("with the slot taken: err %v, held %v; want a deadline while waiting for the slot", err, second.held)
	}
	if requests != 1 {
		t.Fatalf("%d requests reached Loki, want 1: the slot is taken after Loki answers", requests)
	}
	first.Release()
	first.Release() // harmless
	err := c.QueryLines(WithAnswerHold(context.Background(), second), query, 100, from, to, read)
	if err != nil || !second.held || entries != 100 {
		t.Fatalf("with the slot free: %d entries, held %v, err %v", entries, second.held, err)
	}
	second.Release()
	if len(gate) != 0 {
		t.Fatalf("%d slots still taken after release", len(gate))
	}
}

// A request that is not retried does not say it was tried six times.
func TestRequestTimeoutNotRetried(t *testing.T) {
	c, from, to := testLoki(t)
	c.cfg.RequestTimeout = time.Microsecond
	_, err := c.LabelValues(context.Background(), "SrcK8S_Namespace", from, to)
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "attempts") || c.Requests() != 1 {
		t.Fatalf("%d requests, error %v; want one request and its deadline", c.Requests(), err)
	}
}

// readAll reads an answer with readStreams and returns what it handed on, unquoted.
func readAll(body []byte) ([]readEntry, error) {
	var out []readEntry
	err := ReadStreams(bytes.NewReader(body), func(s *LineStream, ts int64, quoted, _ jsontext.Value) {
		line, err := jsontext.AppendUnquote(nil, quoted)
		if err != nil {
			panic(err)
		}
		out = append(out, readEntry{Stream: s.Key, Index: [2]int{s.Index, s.Entry}, TS: ts, Line: string(line)})
	})
	return out, err
}

// What readStreams reads from a real answer of Loki is what Loki's own decoder (the one
// logcli uses) reads from it: every stream's labels, every entry's time and line.
func TestReadStreamsAgreesWithLoghttp(t *testing.T) {
	c, from, to := testLoki(t)
	var body []byte
	err := c.QueryLines(context.Background(), `{app="netobserv-flowcollector"} | json DstAddr`, 5000, from, to, func(r io.Reader) error {
		var err error
		body, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var resp loghttp.QueryResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	var want []readEntry
	for i, st := range resp.Data.Result.(loghttp.Streams) {
		for j, e := range st.Entries {
			want = append(want, readEntry{Stream: MapKey(st.Labels), Index: [2]int{i, j}, TS: e.Timestamp.UnixNano(), Line: e.Line})
		}
	}
	got, err := readAll(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 1000 || !bytes.Contains(body, []byte(`\"`)) {
		t.Fatalf("the answer should hold many escaped lines: %d entries", len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("read %d entries, loghttp %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("entry %d: read %+v\nloghttp %+v", i, got[i], want[i])
		}
	}
}

func TestReadStreamsRejects(t *testing.T) {
	const ok = `{"status":"success","data":{"resultType":"streams","result":[{"stream":{"app":"a"},"values":[["1700000000000000001","{\"SrcAddr\":\"10.0.0.1\"}"]]}]}}`
	if got, err := readAll([]byte(ok)); err != nil || len(got) != 1 || got[0].Line != `{"SrcAddr":"10.0.0.1"}` || got[0].TS != 1700000000000000001 {
		t.Fatalf("a plain answer: %+v, %v", got, err)
	}
	for _, tc := range []struct{ name, body, want string }{
		{"truncated", ok[:len(ok)-20], "unexpected EOF"},
		{"error status", strings.Replace(ok, `"success"`, `"error"`, 1), `status "error"`},
		{"partial warning", strings.Replace(ok, `"data"`, `"warnings":["partial result: an ingester did not answer"],"data"`, 1), "incomplete"},
		{"a matrix", strings.Replace(ok, `"streams"`, `"matrix"`, 1), "expected a streams answer, got matrix"},
		{"values before the labels", `{"status":"success","data":{"resultType":"streams","result":[{"values":[["1","x"]],"stream":{}}]}}`, `"values" come before`},
		{"an entry not an array", strings.Replace(ok, `["1700000000000000001","{\"SrcAddr\":\"10.0.0.1\"}"]`, `{}`, 1), "not an array"},
		{"a number for a time", strings.Replace(ok, `"1700000000000000001"`, `1700000000000000001`, 1), "not a string of nanoseconds"},
		{"a time that is not a number", strings.Replace(ok, `"1700000000000000001"`, `"yesterday"`, 1), "not a string of nanoseconds"},
		{"a line that is not a string", strings.Replace(ok, `"{\"SrcAddr\":\"10.0.0.1\"}"`, `{"SrcAddr":"10.0.0.1"}`, 1), "not a string"},
		{"a time alone", strings.Replace(ok, `,"{\"SrcAddr\":\"10.0.0.1\"}"`, ``, 1), "not a string"},
		{"not JSON", `<html>gateway</html>`, "reading Loki's answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
	// What Loki may add is passed over: structured metadata after a line, unknown members,
	// a null result.
	extra := strings.Replace(ok, `\"}"]`, `\"}",{"trace_id":"x"}]`, 1)
	extra = strings.Replace(extra, `"status"`, `"stats":{"summary":{}},"status"`, 1)
	if got, err := readAll([]byte(extra)); err != nil || len(got) != 1 {
		t.Fatalf("with metadata and stats: %+v, %v", got, err)
	}
	if got, err := readAll([]byte(`{"status":"success","data":{"resultType":"streams","result":null}}`)); err != nil || len(got) != 0 {
		t.Fatalf("a null result: %+v, %v", got, err)
	}
}

// A server that echoes the bearer token in its error bodies never gets it into our errors:
// a gateway's 401 that quotes the token it rejected, and a 500 that dumps the request's
// headers. Bodies in errors are bounded too.
func TestErrorBodiesRedactTheToken(t *testing.T) {
	const token = "sha256~echoed-t0ken-Value-123"
	long := strings.Repeat("x", 100_000)
	const bound = 8192 // what an error keeps of a body
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)[0] {
		case "401":
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "token %s rejected", r.Header.Get("Authorization"))
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "internal error; request headers:\n")
			_ = r.Header.Write(w)
		case "long":
			// The token straddles the point where the body is cut.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, long[:bound-5]+token+long)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kase := range []string{"401", "500", "long"} {
		c, err := New(Config{URL: srv.URL + "/" + kase, Token: TokenFile(tokFile), Retries: 1, Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.LabelValues(context.Background(), "app", time.Now().Add(-time.Hour), time.Now())
		if err == nil {
			t.Fatalf("%s: want an error", kase)
		}
		msg := err.Error()
		for i := 8; i <= len(token); i++ {
			if strings.Contains(msg, token[:i]) || strings.Contains(msg, token[len(token)-i:]) {
				t.Fatalf("%s: the error carries (part of) the token: %.300s", kase, msg)
			}
		}
		if len(msg) > bound+500 {
			t.Fatalf("%s: an error of %d bytes: error bodies must be bounded", kase, len(msg))
		}
		if kase != "long" && !strings.Contains(msg, "[redacted]") {
			t.Fatalf("%s: want the echoed token marked [redacted], got %.300s", kase, msg)
		}
	}
}

// A token file of two lines (or with another control character) fails naming the file and
// the fix, never with net/http's bare "invalid header field value", and never quoting it.
func TestTokenFileOfTwoLines(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"two-lines": "sha256~first-line\nsha256~second-line\n", "crlf": "sha256~t0k\r\nx", "tab": "sha256~a\tb"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := TokenFile(p)(context.Background())
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "fix:") || strings.Contains(err.Error(), "sha256~") {
			t.Errorf("%s: %v, want an error naming the file and the fix, without the token", name, err)
		}
	}
	// Surrounding white space (a trailing newline) is fine.
	p := filepath.Join(dir, "ok")
	os.WriteFile(p, []byte("  sha256~ok\n"), 0o600)
	if tok, err := TokenFile(p)(context.Background()); err != nil || tok != "sha256~ok" {
		t.Errorf("one line: %q, %v", tok, err)
	}
}
