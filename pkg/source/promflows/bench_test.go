package promflows

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/promtest"
	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
)

// benchSizes are the distinct matrix keys of BenchmarkCollect: BENCH_KEYS (comma-separated),
// default 1000, 10000 and 100000.
func benchSizes(b *testing.B) []int {
	v := os.Getenv("BENCH_KEYS")
	if v == "" {
		return []int{1000, 10000, 100000}
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			b.Fatalf("BENCH_KEYS=%q: %q is not a positive integer", v, s)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkCollect pushes N distinct TCP egress keys by remote write into the real
// Prometheus, as a 30 s scrape of FLP would hold them over a 10 min window (each key's
// counter grows by one flow per scrape: the flows do not change the cost, the keys do), then
// runs the metrics path once (observe.Run: the queries, the exact increases, the matrix).
// It reports the time, the client's peak RSS during the run (VmHWM reset before it) and
// the server's RSS, and checks every key's count.
func BenchmarkCollect(b *testing.B) {
	for _, n := range benchSizes(b) {
		// The same keys with 1 and with 1,000 flows per key and scrape: the cost must not move.
		for _, perScrape := range []int{1, 1000} {
			b.Run(fmt.Sprintf("keys=%d/flowsPerScrape=%d", n, perScrape), func(b *testing.B) { benchCollect(b, n, perScrape) })
		}
	}
}

func benchCollect(b *testing.B, n, perScrape int) {
	p := promtest.Start(b, promtest.Config{RemoteWrite: true, OutOfOrder: 2 * time.Hour})
	const step = 30 * time.Second
	to := time.Now().Add(-30 * time.Minute).Truncate(time.Minute)
	from := to.Add(-10 * time.Minute)
	var ts []int64
	for t := from.Add(-time.Minute); !t.After(to); t = t.Add(step) {
		ts = append(ts, t.UnixMilli())
	}
	tgt := map[string]string{"job": "flowlogs-pipeline", "instance": "127.0.0.1:9401"}
	up := promtest.Series{Labels: map[string]string{"__name__": "up", "job": tgt["job"], "instance": tgt["instance"]}}
	for _, t := range ts {
		up.Samples = append(up.Samples, promtest.Sample{T: t, V: 1})
	}
	pushStart := time.Now()
	if err := p.Push(context.Background(), []promtest.Series{up}, 0); err != nil {
		b.Fatal(err)
	}
	const batch = 5000
	for lo := 0; lo < n; lo += batch {
		series := make([]promtest.Series, 0, batch)
		for i := lo; i < min(lo+batch, n); i++ {
			l := map[string]string{"__name__": flowmetrics.Prefix + flowmetrics.TCPSYN, "job": tgt["job"], "instance": tgt["instance"],
				"SrcK8S_Namespace": "ns-" + strconv.Itoa(i%500), "SrcK8S_OwnerName": "app-" + strconv.Itoa(i/500%100),
				"SrcK8S_OwnerType": "Deployment", "SrcK8S_Type": "Pod", "Flags": "SYN",
				"DstAddr": fmt.Sprintf("198.18.%d.%d", i/50000%256, i/200%250+1), "DstPort": strconv.Itoa(443 + i%200)}
			s := promtest.Series{Labels: l, Samples: make([]promtest.Sample, len(ts))}
			for j, t := range ts {
				s.Samples[j] = promtest.Sample{T: t, V: float64((j + 1) * perScrape)}
			}
			series = append(series, s)
		}
		if err := p.Push(context.Background(), series, batch); err != nil {
			b.Fatal(err)
		}
	}
	pushed := time.Since(pushStart)
	src, err := New(Config{URL: p.URL, MaxGap: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	// Samples strictly inside (from, to]: each counts one flow.
	var perKey int64
	for _, t := range ts {
		if t > from.UnixMilli() && t <= to.UnixMilli() {
			perKey += int64(perScrape)
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	resetHWM(b)
	b.ResetTimer()
	start := time.Now()
	out, err := observe.Run(context.Background(), observe.Config{Source: src, Window: observe.Window{From: from, To: to}, Matrix: matrix.Options{}})
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	hwm := vmKiB(b, "/proc/self/status", "VmHWM:")
	if len(out.Matrix.Entries) != n {
		b.Fatalf("%d entries, want %d", len(out.Matrix.Entries), n)
	}
	for _, e := range out.Matrix.Entries {
		if e.Flows != perKey {
			b.Fatalf("entry %+v: %d flows, want %d", e, e.Flows, perKey)
		}
	}
	server := vmKiB(b, fmt.Sprintf("/proc/%d/status", p.PID()), "VmRSS:")
	b.ReportMetric(elapsed.Seconds(), "s/collect")
	b.ReportMetric(float64(hwm)/1024, "clientPeakRSS-MB")
	b.ReportMetric(float64(server)/1024, "serverRSS-MB")
	b.Logf("%d keys x %d samples pushed in %s; collect %s, %d flows, client peak RSS %.0f MB, server RSS %.0f MB",
		n, len(ts), pushed.Round(time.Millisecond), elapsed.Round(time.Millisecond), out.Matrix.Stats.Egress, float64(hwm)/1024, float64(server)/1024)
}

// resetHWM resets the process's peak RSS (VmHWM) to its current RSS.
func resetHWM(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Fatalf("resetting VmHWM: %v", err)
	}
}

func vmKiB(b *testing.B, path, key string) int64 {
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(l, key); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatalf("no %s in %s", key, path)
	return 0
}
