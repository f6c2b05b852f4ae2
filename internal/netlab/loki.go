package netlab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/source/lokiflows"
)

// allRecords is the selection records.jsonl holds: every NetObserv record of the window.
var allRecords = `{app="` + lokiflows.App + `"}`

// rawLine is one Loki entry: its labels and its line.
type rawLine struct {
	labels map[string]string
	ts     int64 // ns
	line   string
}

// lokiHTTP is the lab's plain access to its own Loki on loopback, for what pkg/source/lokiflows
// does not do: every raw line of a window whatever its selection, and counts of a line filter.
type lokiHTTP struct {
	url, tenant string
	limit       int // the server's max_entries_limit_per_query
	client      *http.Client
}

func (l *lokiHTTP) get(ctx context.Context, path string, q url.Values, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url+path+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Scope-OrgID", l.tenant)
	resp, err := l.client.Do(req)
	if err != nil {
		return fmt.Errorf("loki %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("loki %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loki %s %s: %s: %s", path, q.Get("query"), resp.Status, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}

type lokiAnswer struct {
	Data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Stream map[string]string  `json:"stream"`
			Values [][2]string        `json:"values"`
			Metric map[string]string  `json:"metric"`
			Value  [2]json.RawMessage `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// lines returns every line of query in [from, to), oldest first. A window that returns the
// server's limit is cut in two and each half read again, so nothing is left out.
func (l *lokiHTTP) lines(ctx context.Context, query string, from, to time.Time) ([]rawLine, error) {
	q := url.Values{}
	q.Set("query", query)
	q.Set("start", strconv.FormatInt(from.UnixNano(), 10))
	q.Set("end", strconv.FormatInt(to.UnixNano(), 10))
	q.Set("limit", strconv.Itoa(l.limit))
	q.Set("direction", "forward")
	var a lokiAnswer
	if err := l.get(ctx, "/loki/api/v1/query_range", q, &a); err != nil {
		return nil, err
	}
	var out []rawLine
	for _, s := range a.Data.Result {
		for _, v := range s.Values {
			ts, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("loki: timestamp %q: %w", v[0], err)
			}
			out = append(out, rawLine{labels: s.Stream, ts: ts, line: v[1]})
		}
	}
	if len(out) >= l.limit {
		if to.Sub(from) <= time.Millisecond {
			return nil, fmt.Errorf("loki: more than %d lines in one millisecond at %s: fix: raise the lab Loki's max_entries_limit_per_query", l.limit, from.Format(time.RFC3339Nano))
		}
		mid := from.Add(to.Sub(from) / 2).Truncate(time.Millisecond)
		if !mid.After(from) {
			mid = from.Add(time.Millisecond)
		}
		a, err := l.lines(ctx, query, from, mid)
		if err != nil {
			return nil, err
		}
		b, err := l.lines(ctx, query, mid, to)
		if err != nil {
			return nil, err
		}
		return append(a, b...), nil
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ts < out[j].ts })
	return out, nil
}

// count is Loki's own count of query's lines in [from, to).
func (l *lokiHTTP) count(ctx context.Context, query string, from, to time.Time) (int64, error) {
	rng := to.Sub(from)
	if rng <= 0 || rng%time.Millisecond != 0 {
		return 0, fmt.Errorf("loki count: range %s is not a positive number of milliseconds", rng)
	}
	q := url.Values{}
	q.Set("query", fmt.Sprintf("sum(count_over_time(%s [%dms]))", query, rng.Milliseconds()))
	q.Set("time", strconv.FormatInt(to.UnixNano()-1, 10))
	var a lokiAnswer
	if err := l.get(ctx, "/loki/api/v1/query", q, &a); err != nil {
		return 0, err
	}
	if len(a.Data.Result) == 0 {
		return 0, nil
	}
	var s string
	if err := json.Unmarshal(a.Data.Result[0].Value[1], &s); err != nil {
		return 0, fmt.Errorf("loki count: %w", err)
	}
	f, err := strconv.ParseFloat(s, 64)
	return int64(f), err
}

// mergedRecord is a line with its stream labels put back, as NetObserv wrote it: Loki
// takes label fields out of the JSON line.
func mergedRecord(r rawLine) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader([]byte(r.line)))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("loki line is not a JSON object: %w", err)
	}
	for k, v := range r.labels {
		if _, ok := m[k]; !ok {
			m[k] = v
		}
	}
	return m, nil
}

// writeRecords writes every record of the window as JSON lines, labels merged; it checks
// the number against Loki's count.
func (l *lokiHTTP) writeRecords(ctx context.Context, path string, w observe.Window) (int, error) {
	lines, err := l.lines(ctx, allRecords, w.From, w.To)
	if err != nil {
		return 0, err
	}
	want, err := l.count(ctx, allRecords, w.From, w.To)
	if err != nil {
		return 0, err
	}
	if int64(len(lines)) != want {
		return 0, fmt.Errorf("records.jsonl: read %d lines of the window but Loki counts %d", len(lines), want)
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(f)
	for _, rl := range lines {
		m, err := mergedRecord(rl)
		if err != nil {
			f.Close()
			return 0, err
		}
		b, err := json.Marshal(m)
		if err != nil {
			f.Close()
			return 0, err
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	if err := errors.Join(bw.Flush(), f.Close()); err != nil {
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return len(lines), nil
}
