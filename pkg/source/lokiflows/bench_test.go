package lokiflows

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	logcli "github.com/grafana/loki/v3/pkg/logcli/client"
	"github.com/grafana/loki/v3/pkg/loghttp"
	"github.com/grafana/loki/v3/pkg/logproto"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// EnhancementQuery is the egress query of the enhancement proposal, for comparison: raw
// lines, pods only.
const EnhancementQuery = `{K8S_FlowLayer="infra", FlowDirection="1"} | json | DstSubnetLabel = "" | SrcSubnetLabel = "Pods" | line_format "{{.SrcAddr}},{{.SrcPort}},{{.DstAddr}},{{.DstPort}}"`

// childResult is what one approach reports from its own process.
type childResult struct {
	Seconds float64
	HWMKiB  int64
	Lines   int64
	Digest  string
}

// BenchmarkEgress pushes BENCH_RECORDS generated records (default 100000) over one hour,
// in time order, into a Loki with LokiStack's limits, then runs each approach once in a fresh process (so
// peak RSS figures do not mix): our aggregate pull, the enhancement's query pulled raw
// through the logcli client like `logcli --limit=0 --batch=5000`, and the scan floor, one
// count_over_time over the egress selection. The aggregate answer is checked exact.
func BenchmarkEgress(b *testing.B) {
	n := 100000
	if v := os.Getenv("BENCH_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("BENCH_RECORDS=%q is not a positive integer", v)
		}
	}
	s := lokitest.Start(b, lokitest.LokiStackLimits)
	from, to := window()
	var want []flow.Record
	pushStart := time.Now()
	const chunk = 100000
	// NetObserv writes flows as they end, so Loki receives each stream in time order and
	// cuts its blocks along time; a batch of lines then starts in the block of its start.
	// BENCH_LAYOUT=unordered pushes each chunk over the whole hour instead, as the figures
	// before 2026-11-23 were measured: every block then spans the window, and a batch read
	// from the middle of it decodes every line before its start again.
	ordered := os.Getenv("BENCH_LAYOUT") != "unordered"
	chunks := (n + chunk - 1) / chunk
	for i := range chunks {
		lo, hi := from, to
		if ordered {
			step := to.Sub(from) / time.Duration(chunks)
			lo, hi = from.Add(time.Duration(i)*step), from.Add(time.Duration(i+1)*step)
		}
		gs := lokitest.Generate(lokitest.GenConfig{Records: min(chunk, n-i*chunk), From: lo, To: hi, Seed: 42, Chunk: uint64(i + 1), OldFormat: 0.1})
		es := lokitest.Entries(gs)
		if ordered {
			slices.SortStableFunc(es, func(a, b lokitest.Entry) int { return a.Time.Compare(b.Time) })
		}
		if err := s.PushWith(context.Background(), es, lokitest.PushOptions{BatchEntries: 20000, Concurrency: 4}); err != nil {
			b.Fatal(err)
		}
		want = append(want, expected(gs, matrix.PortPolicy{}, from, to)...)
	}
	want = matrix.Fold(want)
	b.Logf("pushed %d records in %s", n, time.Since(pushStart).Round(time.Millisecond))
	var wantLines int64
	for _, r := range want {
		wantLines += r.Count
	}

	results := map[string]childResult{}
	for _, approach := range []string{"floor", "aggregate", "aggregate-counts", "raw-enhancement", "dns"} {
		b.Run(approach, func(b *testing.B) {
			for range b.N {
				res := runChild(b, approach, s, from, to)
				results[approach] = res
				b.ReportMetric(res.Seconds, "s")
				b.ReportMetric(float64(res.HWMKiB)/1024, "peakRSS-MB")
				b.ReportMetric(float64(res.Lines), "lines")
			}
		})
	}
	agg, cnt, raw, floor, dns := results["aggregate"], results["aggregate-counts"], results["raw-enhancement"], results["floor"], results["dns"]
	if agg.Digest != digest(want) || agg.Lines != wantLines {
		b.Fatalf("the aggregate pull is not exact: %d records, digest %s; want %d, %s", agg.Lines, agg.Digest, wantLines, digest(want))
	}
	if cnt.Digest != digest(countsOnly(want)) || cnt.Lines != wantLines {
		b.Fatalf("the counts-only pull is not exact: %d records, digest %s; want %d, %s", cnt.Lines, cnt.Digest, wantLines, digest(countsOnly(want)))
	}
	fmt.Fprintf(os.Stderr, "records %d, egress %d in %d aggregates: aggregate %.2fs %dMB (exact); counts only %.2fs %dMB (exact counts); raw enhancement query %.2fs %dMB (%d lines, pods only); scan floor %.2fs; aggregate %.2fx faster than raw, %.1fx the floor; counts only %.2fx faster than raw, %.1fx the floor",
		n, wantLines, len(want), agg.Seconds, agg.HWMKiB/1024, cnt.Seconds, cnt.HWMKiB/1024, raw.Seconds, raw.HWMKiB/1024, raw.Lines, floor.Seconds,
		raw.Seconds/agg.Seconds, agg.Seconds/floor.Seconds, raw.Seconds/cnt.Seconds, cnt.Seconds/floor.Seconds)
	// matrix collect pulls the DNS evidence after the egress flows (its exactness is
	// TestDNSQueriesExact's; DNSQueries checks its sum against Loki's count).
	fmt.Fprintf(os.Stderr, "; DNS evidence %.2fs %dMB (%d query records), so matrix collect pulls in %.2fs\n",
		dns.Seconds, dns.HWMKiB/1024, dns.Lines, agg.Seconds+dns.Seconds)
}

// countsOnly drops what a CountsOnly pull does not get.
func countsOnly(rs []flow.Record) []flow.Record {
	out := make([]flow.Record, len(rs))
	for i, r := range rs {
		r.Bytes, r.Start, r.End = 0, time.Time{}, time.Time{}
		out[i] = r
	}
	return out
}

func digest(rs []flow.Record) string {
	lines := make([]string, len(rs))
	for i, r := range rs {
		lines[i] = fmt.Sprintf("%+v\n", r)
	}
	sort.Strings(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// runChild re-executes the test binary to run one approach in its own process.
func runChild(b *testing.B, approach string, s *lokitest.Server, from, to time.Time) childResult {
	args := []string{"-test.run=^TestBenchChild$", "-test.v"}
	if dir := os.Getenv("BENCH_PROFILE_DIR"); dir != "" {
		// Allocation profiles of each approach, for `go tool pprof -sample_index=alloc_space`.
		args = append(args, "-test.memprofile="+dir+"/"+approach+".mem", "-test.memprofilerate=65536")
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BENCH_CHILD="+approach, "BENCH_LOKI="+s.URL, "BENCH_TENANT="+s.Tenant,
		"BENCH_FROM="+from.Format(time.RFC3339Nano), "BENCH_TO="+to.Format(time.RFC3339Nano))
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("%s: %v\n%s", approach, err, out)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if line, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "BENCH_RESULT "); ok {
			var r childResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				b.Fatal(err)
			}
			return r
		}
	}
	b.Fatalf("%s: no result in\n%s", approach, out)
	return childResult{}
}

// TestBenchChild is one approach of BenchmarkEgress, in its own process.
func TestBenchChild(t *testing.T) {
	approach := os.Getenv("BENCH_CHILD")
	if approach == "" {
		t.Skip("run by BenchmarkEgress")
	}
	from, _ := time.Parse(time.RFC3339Nano, os.Getenv("BENCH_FROM"))
	to, _ := time.Parse(time.RFC3339Nano, os.Getenv("BENCH_TO"))
	cfg := lokiquery.Config{URL: os.Getenv("BENCH_LOKI"), Tenant: os.Getenv("BENCH_TENANT")}
	if p := os.Getenv("BENCH_TRACE"); p != "" {
		// A file that collects every request of the child, for profiling the approaches.
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var mu sync.Mutex
		cfg.Trace = func(path, q string, d time.Duration, err error) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(f, "%s %s %s err=%v %.120s ... %.100s\n", approach, d.Round(time.Millisecond), path, err, q, q[max(0, len(q)-100):])
		}
	}
	c, err := newClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var res childResult
	var r *Result
	start := time.Now()
	switch approach {
	case "floor":
		res.Lines, err = c.count(ctx, EgressPipeline(nil), from, to, time.Minute)
	case "aggregate":
		r, err = c.Egress(ctx, Options{From: from, To: to})
	case "aggregate-counts":
		r, err = c.Egress(ctx, Options{From: from, To: to, CountsOnly: true})
	case "dns":
		var rs []flow.Record
		rs, err = c.DNSQueries(ctx, Options{From: from, To: to})
		for _, r := range rs {
			res.Lines += r.Count
		}
	case "raw-enhancement":
		res.Lines, err = logcliPull(os.Getenv("BENCH_LOKI"), os.Getenv("BENCH_TENANT"), EnhancementQuery, from, to, 5000)
	default:
		t.Fatalf("unknown approach %q", approach)
	}
	if err != nil {
		t.Fatal(err)
	}
	res.Seconds = time.Since(start).Seconds()
	// The peak is read before the digest: checking the answer is the benchmark's work.
	res.HWMKiB = vmHWM(t)
	switch approach {
	case "aggregate":
		res.Lines, res.Digest = r.Retrieved, digest(r.Records)
	case "aggregate-counts":
		res.Lines, res.Digest = r.Retrieved, digest(r.Records)
	}
	line, _ := json.Marshal(res)
	fmt.Printf("BENCH_RESULT %s\n", line)
}

// logcliPull reads every line of a log query the way `logcli query --limit=0 --batch=N
// --forward` does, keeping the lines in memory as logcli's output would have to be kept to
// aggregate them.
func logcliPull(addr, tenant, query string, from, to time.Time, batch int) (int64, error) {
	c := &logcli.DefaultClient{Address: addr, OrgID: tenant}
	var lines []string
	start := from
	var last []loghttp.Entry
	for {
		resp, err := c.QueryRange(query, batch, start, to, logproto.FORWARD, 0, 0, true)
		if err != nil {
			return 0, err
		}
		streams, _ := resp.Data.Result.(loghttp.Streams)
		var all []loghttp.Entry
		for _, s := range streams {
			all = append(all, s.Entries...)
		}
		n := 0
		var newLast []loghttp.Entry
		var lastTS time.Time
		for _, e := range all {
			if e.Timestamp.After(lastTS) {
				lastTS = e.Timestamp
			}
		}
	next:
		for _, e := range all {
			if e.Timestamp.Equal(start) {
				for _, l := range last {
					if l.Line == e.Line {
						continue next
					}
				}
			}
			lines = append(lines, e.Line)
			n++
		}
		for _, e := range all {
			if e.Timestamp.Equal(lastTS) {
				newLast = append(newLast, e)
			}
		}
		if len(all) < batch || n == 0 {
			return int64(len(lines)), nil
		}
		start, last = lastTS, newLast
	}
}

// vmHWM is this process's peak resident set size, in KiB.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}
