package promflows

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/openshift/egress-tests-ext/internal/promtest"
	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
)

func pairs(tv ...int64) []model.SamplePair {
	var out []model.SamplePair
	for i := 0; i < len(tv); i += 2 {
		out = append(out, model.SamplePair{Timestamp: model.Time(tv[i]), Value: model.SampleValue(tv[i+1])})
	}
	return out
}

func TestIncrease(t *testing.T) {
	scrapes := []int64{0, 10, 20, 30, 40, 50, 60}
	for _, c := range []struct {
		name    string
		samples []model.SamplePair
		want    float64
	}{
		{"steady from before the window", pairs(0, 5, 10, 7, 20, 9, 30, 9), 4},
		{"created inside the window counts its first value", pairs(20, 3, 30, 4), 4},
		{"reset counts the new value whole", pairs(0, 5, 10, 8, 20, 2, 30, 6), 3 + 2 + 4},
		{"expired and back from zero (missing from a scrape)", pairs(0, 5, 10, 6, 30, 9), 1 + 9},
		{"samples after the window's end are left out", pairs(0, 1, 10, 1, 20, 1, 30, 1, 40, 1, 50, 4, 60, 9), 3},
		{"only before the window", pairs(0, 3), 0},
	} {
		if got := Increase(c.samples, scrapes, 0, 50); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// flp is the job/instance our pushed series pretend to be scraped from.
var flp = map[string]string{"job": "flowlogs-pipeline", "instance": "127.0.0.1:9401"}

func labels(name string, kv ...string) map[string]string {
	m := map[string]string{"__name__": name}
	for k, v := range flp {
		m[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

type fixture struct {
	prom     *promtest.Server
	from, to time.Time
}

// upSeries is a target scraped every second over [from-2m, to+10s], except in skip.
func upSeries(from, to time.Time, value func(t time.Time) (float64, bool)) promtest.Series {
	s := promtest.Series{Labels: labels("up")}
	for t := from.Add(-2 * time.Minute); !t.After(to.Add(10 * time.Second)); t = t.Add(time.Second) {
		if v, ok := value(t); ok {
			s.Samples = append(s.Samples, promtest.Sample{T: t.UnixMilli(), V: v})
		}
	}
	return s
}

func start(t *testing.T, args ...string) *fixture {
	t.Helper()
	p := promtest.Start(t, promtest.Config{RemoteWrite: true, OutOfOrder: 2 * time.Hour, Args: args})
	to := time.Now().Add(-20 * time.Minute).Truncate(time.Second)
	return &fixture{prom: p, from: to.Add(-5 * time.Minute), to: to}
}

func (f *fixture) push(t *testing.T, series ...promtest.Series) {
	t.Helper()
	if err := f.prom.Push(context.Background(), series, 0); err != nil {
		t.Fatal(err)
	}
}

// counter samples a counter each second over [from-2m, to+10s], as scrapes would.
func (f *fixture) counter(lbl map[string]string, value func(t time.Time) (float64, bool)) promtest.Series {
	s := promtest.Series{Labels: lbl}
	for t := f.from.Add(-2 * time.Minute); !t.After(f.to.Add(10 * time.Second)); t = t.Add(time.Second) {
		if v, ok := value(t); ok {
			s.Samples = append(s.Samples, promtest.Sample{T: t.UnixMilli(), V: v})
		}
	}
	return s
}

func always(float64) func(time.Time) (float64, bool) {
	return func(time.Time) (float64, bool) { return 1, true }
}

func (f *fixture) source(t *testing.T, cfg Config) *Source {
	t.Helper()
	if cfg.URL == "" {
		cfg.URL = f.prom.URL
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (f *fixture) collect(t *testing.T, s *Source) (*observe.Outcome, error) {
	t.Helper()
	return observe.Run(context.Background(), observe.Config{Source: s, Window: observe.Window{From: f.from, To: f.to},
		Matrix: matrix.Options{NodeRoles: map[string]string{"node-a": "worker"}}})
}

func TestCollect(t *testing.T) {
	f := start(t)
	from, to := f.from, f.to
	// The TCP counter of a deployment: 10 before the window, +2 at each minute inside.
	dep := f.counter(labels(flowmetrics.Prefix+flowmetrics.TCPSYN, "SrcK8S_Namespace", "shop", "SrcK8S_OwnerName", "api",
		"SrcK8S_OwnerType", "Deployment", "SrcK8S_Type", "Pod", "DstAddr", "198.18.0.10", "DstPort", "443", "Flags", "SYN"),
		func(t time.Time) (float64, bool) {
			n := 10.0
			for m := from.Add(time.Minute); !m.After(t) && m.Before(to); m = m.Add(time.Minute) {
				n += 2
			}
			return n, true
		})
	// A node's NTP series created inside the window at 3, then reset by an FLP restart to 1.
	ntp := f.counter(labels(flowmetrics.Prefix+flowmetrics.DatagramServer+flowmetrics.VariantPod, "SrcK8S_OwnerName", "node-a",
		"SrcK8S_OwnerType", "Node", "SrcK8S_Type", "Node", "SrcK8S_Name", "node-a", "SrcK8S_HostName", "node-a",
		"SrcAddr", "10.0.0.5", "DstAddr", "198.18.0.123", "Proto", "17", "DstPort", "123"),
		func(t time.Time) (float64, bool) {
			switch {
			case t.Before(from.Add(time.Minute)):
				return 0, false
			case t.Before(from.Add(3 * time.Minute)):
				return 3, true
			}
			return 1, true
		})
	// An ICMP series whose only increase comes after the window's end.
	icmp := f.counter(labels(flowmetrics.Prefix+flowmetrics.ICMP, "SrcK8S_Namespace", "shop", "SrcK8S_OwnerName", "api",
		"SrcK8S_OwnerType", "Deployment", "SrcK8S_Type", "Pod", "DstAddr", "198.18.0.11", "Proto", "1"),
		func(t time.Time) (float64, bool) {
			if t.After(to) {
				return 5, true
			}
			return 4, true
		})
	f.push(t, upSeries(from, to, always(1)), dep, ntp, icmp)

	out, err := f.collect(t, f.source(t, Config{}))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, e := range out.Matrix.Entries {
		got[e.SrcNamespace+"/"+e.SrcKind+"/"+e.SrcWorkload+" "+e.DstName+" "+e.Protocol+"/"+itoa(e.Port)] = e.Flows
	}
	want := map[string]int64{
		"shop/Deployment/api 198.18.0.10 TCP/443": 8, // minutes 1-4 inside [from, to)
		"/Node/worker 198.18.0.123 UDP/123":       3 + 1,
	}
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d flows, want %d (all: %v)", k, got[k], n, got)
		}
	}
	for _, e := range out.Matrix.Entries {
		if !e.FirstSeen.IsZero() || !e.LastSeen.IsZero() || e.Bytes != 0 {
			t.Errorf("entry %+v shows a first/last seen or bytes the metrics cannot give", e)
		}
	}
	if strings.Join(out.Matrix.Lacks, ",") != "bytes,firstSeen,lastSeen" {
		t.Errorf("lacks %v", out.Matrix.Lacks)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestCoverageFailsClosed(t *testing.T) {
	f := start(t)
	from, to := f.from, f.to
	metric := f.counter(labels(flowmetrics.Prefix+flowmetrics.ICMP, "SrcK8S_Namespace", "a", "SrcK8S_Type", "Pod",
		"SrcK8S_OwnerName", "x", "SrcK8S_OwnerType", "Deployment", "DstAddr", "198.18.0.1", "Proto", "1"), always(1))
	cases := []struct {
		name string
		up   func(t time.Time) (float64, bool)
	}{
		{"gap inside", func(t time.Time) (float64, bool) {
			return 1, t.Before(from.Add(time.Minute)) || t.After(from.Add(3*time.Minute))
		}},
		{"failed scrape", func(t time.Time) (float64, bool) {
			if t.Equal(from.Add(2 * time.Minute)) {
				return 0, true
			}
			return 1, true
		}},
		{"starts after the window's start", func(t time.Time) (float64, bool) { return 1, t.After(from.Add(10 * time.Second)) }},
		{"ends before the window's end", func(t time.Time) (float64, bool) { return 1, t.Before(to.Add(-2 * time.Minute)) }},
	}
	for i, c := range cases {
		// One job per case, each its own target.
		up := upSeries(from, to, c.up)
		up.Labels["job"] = "case-" + itoa(i)
		f.push(t, up)
		s := f.source(t, Config{Up: `up{job="case-` + itoa(i) + `"}`})
		if _, err := f.collect(t, s); !errors.Is(err, ErrCoverage) {
			t.Errorf("%s: %v, want ErrCoverage", c.name, err)
		}
	}
	// No up series at all.
	if _, err := f.collect(t, f.source(t, Config{Up: `up{job="none"}`})); !errors.Is(err, ErrCoverage) {
		t.Errorf("no targets: %v, want ErrCoverage", err)
	}
	// Covered, but no flow metric at all.
	f.push(t, upSeries(from, to, always(1)))
	if _, err := f.collect(t, f.source(t, Config{})); !errors.Is(err, ErrMissing) {
		t.Errorf("no metrics: %v, want ErrMissing", err)
	}
	// A series from a target the up selector does not cover.
	metric.Labels["instance"] = "elsewhere:1"
	f.push(t, metric)
	if _, err := f.collect(t, f.source(t, Config{})); !errors.Is(err, ErrCoverage) {
		t.Errorf("series of an unselected target: %v, want ErrCoverage", err)
	}
}

func TestUncoveredAndSampledFail(t *testing.T) {
	for _, name := range []string{flowmetrics.DatagramUncovered, flowmetrics.Sampled} {
		t.Run(name, func(t *testing.T) {
			f := start(t)
			n := 0.0
			c := f.counter(labels(flowmetrics.Prefix+name, "SrcK8S_Namespace", "a", "Proto", "17", "Sampling", "50"),
				func(time.Time) (float64, bool) { n++; return n, true })
			f.push(t, upSeries(f.from, f.to, always(1)), c)
			if _, err := f.collect(t, f.source(t, Config{})); !errors.Is(err, ErrUncovered) {
				t.Errorf("%v, want ErrUncovered", err)
			}
		})
	}
}

func TestQueryLimitFails(t *testing.T) {
	f := start(t, "--query.max-samples=100")
	f.push(t, upSeries(f.from, f.to, always(1)))
	if _, err := f.collect(t, f.source(t, Config{})); !errors.Is(err, ErrQuery) {
		t.Errorf("%v, want ErrQuery", err)
	}
}

// TestTokenNeverInErrors puts a proxy in front of the real server that wants the bearer
// token, adds a warning to answers, or refuses with the token echoed in its error.
func TestTokenNeverInErrors(t *testing.T) {
	f := start(t)
	f.push(t, upSeries(f.from, f.to, always(1)))
	const token = "sekret-token-123"
	mode := "ok"
	target, _ := url.Parse(f.prom.URL)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if mode == "echo" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"status":"error","errorType":"forbidden","error":"token `+token+` may not read metrics"}`)
			return
		}
		r.Header.Del("Accept-Encoding")
		r.URL.Scheme, r.URL.Host, r.Host, r.RequestURI = target.Scheme, target.Host, target.Host, ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if mode == "warn" {
			body = bytes.Replace(body, []byte(`"status":"success"`), []byte(`"status":"success","warnings":["partial response: store `+token+` down"]`), 1)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
	}))
	defer proxy.Close()
	tokFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := f.source(t, Config{URL: proxy.URL, TokenFile: tokFile})
	// With the token and a whole answer: the metrics are missing (none pushed), not refused.
	if _, err := f.collect(t, s); !errors.Is(err, ErrMissing) {
		t.Fatalf("through the proxy: %v, want ErrMissing", err)
	}
	for _, m := range []string{"warn", "echo"} {
		mode = m
		_, err := f.collect(t, s)
		if !errors.Is(err, ErrQuery) {
			t.Errorf("%s: %v, want ErrQuery", m, err)
		}
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("%s: the token is in the error: %v", m, err)
		}
	}
}
