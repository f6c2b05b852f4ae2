package lokiflows

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

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
	cutting := func(cut *breakOnce, retries int) *client {
		c, err := newClient(lokiquery.Config{URL: s.URL, Tenant: s.Tenant, Retries: retries,
			WrapTransport: func(rt http.RoundTripper) http.RoundTripper { cut.next = rt; return cut }})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	cut := &breakOnce{}
	c := cutting(cut, 0)
	res, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	if !cut.done.Load() {
		t.Fatal("no answer was cut")
	}
	diffRecords(t, res.Records, expected(gs, matrix.PortPolicy{}, from, to))

	// So is one of the metric answers, which logcli decodes.
	cut = &breakOnce{metric: true}
	c = cutting(cut, 0)
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
	c = cutting(&breakOnce{}, -1)
	_, err = c.Egress(context.Background(), Options{From: from, To: to})
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("error %v, want the broken answer's", err)
	}
}
