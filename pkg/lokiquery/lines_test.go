package lokiquery

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/grafana/loki/v3/pkg/loghttp"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

type readEntry struct {
	Stream string
	Index  [2]int
	TS     int64
	Line   string
}

// readAll reads an answer with readStreams and returns what it handed on, unquoted.
func readAll(body []byte) ([]readEntry, error) {
	var out []readEntry
	err := readStreams(bytes.NewReader(body), func(s *lineStream, ts int64, quoted, _ jsontext.Value) {
		line, err := jsontext.AppendUnquote(nil, quoted)
		if err != nil {
			panic(err)
		}
		out = append(out, readEntry{Stream: s.key, Index: [2]int{s.index, s.entry}, TS: ts, Line: string(line)})
	})
	return out, err
}

// What readStreams reads from a real answer of Loki is what Loki's own decoder (the one
// logcli uses) reads from it: every stream's labels, every entry's time and line.
func TestReadStreamsAgreesWithLoghttp(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	c := newClient(t, s)
	var body []byte
	err := c.queryLines(context.Background(), EgressPipeline(nil).String(), 5000, from, to, func(r io.Reader) error {
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
			want = append(want, readEntry{Stream: mapKey(st.Labels), Index: [2]int{i, j}, TS: e.Timestamp.UnixNano(), Line: e.Line})
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

// breakOnce cuts the body of the first log answer it sees half-way (of the first metric
// answer with metric), as a connection reset would.
type breakOnce struct {
	next   http.RoundTripper
	metric bool
	done   atomic.Bool
}

func (b *breakOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	// A log query starts with its selector, a metric query with its aggregation.
	q := req.URL.Query().Get("query")
	if err != nil || resp.StatusCode != http.StatusOK || q == "" || strings.HasPrefix(q, "{") == b.metric || b.done.Load() {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if len(body) > 100 && b.done.CompareAndSwap(false, true) {
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:len(body)/2]), errReader{io.ErrUnexpectedEOF}))
	}
	return resp, nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// An answer whose connection breaks half-way through is asked again, and what the broken
// one gave is dropped: the pull stays exact.
func TestBrokenAnswerRetriedWhole(t *testing.T) {
	s, gs, from, to := sharedLoki(t)
	c := newClient(t, s)
	cut := &breakOnce{next: c.transport}
	c.transport = cut
	res, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if !cut.done.Load() {
		t.Fatal("no answer was cut")
	}
	diffRecords(t, res.Records, expected(gs, matrix.PortPolicy{}, from, to))

	// So is one of the metric answers, which logcli decodes.
	c = newClient(t, s)
	cut = &breakOnce{next: c.transport, metric: true}
	c.transport = cut
	res, err = c.Egress(context.Background(), Options{From: from, To: to, CountsOnly: true})
	if err != nil {
		t.Fatalf("a metric answer broken once: %v", err)
	}
	if !cut.done.Load() {
		t.Fatal("no metric answer was cut")
	}
	want := countsOnly(expected(gs, matrix.PortPolicy{}, from, to))
	matrix.SortRecords(want)
	diffRecords(t, res.Records, want)

	// Without retries, the break is the error.
	c = newClient(t, s)
	c.cfg.Retries = -1
	c.transport = &breakOnce{next: c.transport}
	_, err = c.Egress(context.Background(), Options{From: from, To: to})
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("error %v, want the broken answer's", err)
	}
}
