// Package lokitest runs a real Loki server (the bin/loki that `make loki` builds at the
// version of the logcli client we import) on 127.0.0.1 for tests and benchmarks, pushes flow
// records into it and generates realistic NetObserv records.
package lokitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"golang.org/x/sync/errgroup"
)

// Tenant is the tenant NetObserv uses with a monolithic Loki (X-Scope-OrgID).
const Tenant = "netobserv"

// Limits are the per-tenant query limits of the server. Zero values keep the defaults of
// LokiStack (5000 entries, 500 series) so that tests meet the limits a real cluster has.
type Limits struct {
	MaxEntriesLimitPerQuery int           // limits_config.max_entries_limit_per_query
	MaxQuerySeries          int           // limits_config.max_query_series
	MaxQueryLength          time.Duration // limits_config.max_query_length (0: Loki's default)
	QueryTimeout            time.Duration // limits_config.query_timeout (0: Loki's default)
	// SplitQueriesByInterval is the time the query frontend cuts a query into, computing
	// the parts side by side (0: Loki's default, 1h).
	SplitQueriesByInterval time.Duration
	// MaxOutstandingPerTenant bounds the query scheduler queue, so a test can provoke
	// "too many outstanding requests" (0: Loki's default).
	MaxOutstandingPerTenant int
	// MaxQueryLookback is limits_config.max_query_lookback: how far back Loki answers
	// (0: Loki's default, unlimited). Loki cuts older parts of a query silently.
	MaxQueryLookback time.Duration
}

// LokiStackLimits are the query limits a LokiStack has by default, and the interval its
// query frontend splits queries at.
var LokiStackLimits = Limits{MaxEntriesLimitPerQuery: 5000, MaxQuerySeries: 500, SplitQueriesByInterval: 30 * time.Minute}

// Server is one running Loki process.
type Server struct {
	// URL is the HTTP base address, http://127.0.0.1:<port>.
	URL string
	// Tenant is the tenant the server requires (auth_enabled: true).
	Tenant string

	dir     string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Binary finds the Loki server binary: $LOKI_BIN, else <repo>/bin/loki. When neither exists
// the test is skipped, or fails when $CI is set (CI must run the real-Loki tests).
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("LOKI_BIN"); p != "" {
		if root, err := repoRoot(); err == nil && !filepath.IsAbs(p) {
			// `go test` runs in the package directory; a relative LOKI_BIN is from the repo.
			if _, err := os.Stat(p); err != nil {
				p = filepath.Join(root, p)
			}
		}
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("LOKI_BIN=%s: %v; run `make loki`", p, err)
		}
		return p
	}
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, "bin", "loki")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "no Loki server binary: set LOKI_BIN or run `make loki` (builds bin/loki)"
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// repoRoot walks up from this source file's directory to the directory holding go.mod.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("no caller information")
	}
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found")
		}
		dir = parent
	}
}

// Start runs Loki with the given limits in a temporary directory and waits until it is
// ready. The server is stopped when the test ends.
func Start(tb testing.TB, limits Limits) *Server {
	tb.Helper()
	s, err := StartBinary(Binary(tb), tb.TempDir(), limits)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Logf("stopping Loki: %v", err)
		}
	})
	return s
}

var configTemplate = template.Must(template.New("loki").Parse(`# Written by internal/lokitest: a single-binary Loki on loopback only.
auth_enabled: true
server:
  http_listen_address: 127.0.0.1
  http_listen_port: {{.HTTPPort}}
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: {{.GRPCPort}}
  grpc_server_max_recv_msg_size: 268435456
  grpc_server_max_send_msg_size: 268435456
  http_server_read_timeout: 5m
  http_server_write_timeout: 5m
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: {{.Dir}}
  storage:
    filesystem:
      chunks_directory: {{.Dir}}/chunks
      rules_directory: {{.Dir}}/rules
  replication_factor: 1
  ring:
    instance_addr: 127.0.0.1
    kvstore:
      store: inmemory
memberlist:
  bind_addr: [127.0.0.1]
  bind_port: {{.MemberlistPort}}
  advertise_addr: 127.0.0.1
schema_config:
  configs:
    - from: 2020-10-24
      store: tsdb
      object_store: filesystem
      schema: v13
      index:
        prefix: index_
        period: 24h
ingester_client:
  remote_timeout: 60s
# Chunks as LokiStack's ingesters cut them (loki-operator's config template): snappy blocks
# of 256 KiB, 2 MiB chunks. With Loki's own default, gzip, the scan floor over 1M records
# took Loki 15 % more CPU, so the figures would not be LokiStack's.
ingester:
  lifecycler:
    min_ready_duration: 0s
    final_sleep: 0s
  chunk_encoding: snappy
  chunk_block_size: 262144
  chunk_target_size: 2097152
  chunk_idle_period: 1h
  max_chunk_age: 2h
limits_config:
  reject_old_samples: false
  creation_grace_period: 1h
  ingestion_rate_mb: 4096
  ingestion_burst_size_mb: 4096
  per_stream_rate_limit: 1GB
  per_stream_rate_limit_burst: 2GB
  max_global_streams_per_user: 0
  max_entries_limit_per_query: {{.Limits.MaxEntriesLimitPerQuery}}
  max_query_series: {{.Limits.MaxQuerySeries}}
{{- if .Limits.MaxQueryLength}}
  max_query_length: {{.Limits.MaxQueryLength}}
{{- end}}
{{- if .Limits.QueryTimeout}}
  query_timeout: {{.Limits.QueryTimeout}}
{{- end}}
{{- if .Limits.MaxQueryLookback}}
  max_query_lookback: {{.Limits.MaxQueryLookback}}
{{- end}}
{{- if .Limits.SplitQueriesByInterval}}
  split_queries_by_interval: {{.Limits.SplitQueriesByInterval}}
{{- end}}
# The frontend and queriers find the scheduler directly rather than through its ring,
# which takes ~10 s to settle at startup.
query_scheduler:
  use_scheduler_ring: false
{{- if .Limits.MaxOutstandingPerTenant}}
  max_outstanding_requests_per_tenant: {{.Limits.MaxOutstandingPerTenant}}
{{- end}}
frontend:
  scheduler_address: 127.0.0.1:{{.GRPCPort}}
{{- if .Limits.MaxOutstandingPerTenant}}
  max_outstanding_per_tenant: {{.Limits.MaxOutstandingPerTenant}}
{{- end}}
frontend_worker:
  scheduler_address: 127.0.0.1:{{.GRPCPort}}
# No result or chunk caches: benchmarks must measure real scans, and tests real answers.
query_range:
  cache_results: false
  cache_index_stats_results: false
  cache_volume_results: false
  cache_series_results: false
  cache_label_results: false
  cache_instant_metric_results: false
chunk_store_config:
  chunk_cache_config:
    embedded_cache:
      enabled: false
# Nothing may dial out of the test host.
analytics:
  reporting_enabled: false
tracing:
  enabled: false
`))

// StartBinary runs the Loki binary at bin with its data under dir.
func StartBinary(bin, dir string, limits Limits) (*Server, error) {
	if limits.MaxEntriesLimitPerQuery == 0 {
		limits.MaxEntriesLimitPerQuery = LokiStackLimits.MaxEntriesLimitPerQuery
	}
	if limits.MaxQuerySeries == 0 {
		limits.MaxQuerySeries = LokiStackLimits.MaxQuerySeries
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	var cfg bytes.Buffer
	if err := configTemplate.Execute(&cfg, map[string]any{
		"HTTPPort": ports[0], "GRPCPort": ports[1], "MemberlistPort": ports[2],
		"Dir": dir, "Limits": limits,
	}); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "loki.yaml")
	if err := os.WriteFile(cfgPath, cfg.Bytes(), 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "loki.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-config.file="+cfgPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so Kill also ends anything it spawned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &Server{
		URL:     fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		Tenant:  Tenant,
		dir:     dir,
		cmd:     cmd,
		logFile: logFile,
		done:    make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.done)
	}()
	if err := s.waitReady(90 * time.Second); err != nil {
		_ = s.Kill()
		return nil, fmt.Errorf("%w\nLoki log tail:\n%s", err, s.LogTail(40))
	}
	return s, nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("loki exited before it was ready: %v", s.waitErr)
		default:
		}
		resp, err := http.Get(s.URL + "/ready")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = strings.TrimSpace(string(b))
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("loki at %s not ready after %s: %s", s.URL, timeout, last)
}

// LogPath is the server's log file (in its data directory).
func (s *Server) LogPath() string { return filepath.Join(s.dir, "loki.log") }

// LogTail returns the last n lines of the server log, for failure messages.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.dir, "loki.log"))
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop ends the server gracefully (SIGTERM, then SIGKILL after 10 s).
func (s *Server) Stop() error {
	var err error
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		s.logFile.Close()
	})
	return err
}

// Kill ends the server at once (SIGKILL), e.g. in the middle of a query.
func (s *Server) Kill() error {
	s.once.Do(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		s.logFile.Close()
	})
	return nil
}

// Entry is one Loki log entry: stream labels, timestamp and line.
type Entry struct {
	Labels map[string]string
	Time   time.Time
	Line   []byte
}

// PushOptions tune Push.
type PushOptions struct {
	BatchEntries int // entries per push request (default 20000)
	Concurrency  int // concurrent push requests (default 4)
}

// Push sends entries to the server through the push API (JSON), in batches, concurrently.
func (s *Server) Push(ctx context.Context, entries []Entry) error {
	return s.PushWith(ctx, entries, PushOptions{})
}

// PushWith is Push with options.
func (s *Server) PushWith(ctx context.Context, entries []Entry, o PushOptions) error {
	if o.BatchEntries <= 0 {
		o.BatchEntries = 10000
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for start := 0; start < len(entries); start += o.BatchEntries {
		batch := entries[start:min(start+o.BatchEntries, len(entries))]
		g.Go(func() error {
			// A loaded test host can make Loki time out on a push: retry a few times.
			var err error
			for attempt := range 4 {
				if err = s.pushBatch(ctx, batch); err == nil || !retryablePush(err) {
					return err
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
				}
			}
			return err
		})
	}
	return g.Wait()
}

type pushStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

type pushError struct {
	status int
	msg    string
}

func (e *pushError) Error() string { return e.msg }

func retryablePush(err error) bool {
	var pe *pushError
	return errors.As(err, &pe) && (pe.status/100 == 5 || pe.status == http.StatusTooManyRequests)
}

func (s *Server) pushBatch(ctx context.Context, entries []Entry) error {
	byStream := map[string]*pushStream{}
	var order []string
	for _, e := range entries {
		key := labelsKey(e.Labels)
		ps, ok := byStream[key]
		if !ok {
			ps = &pushStream{Stream: e.Labels}
			byStream[key] = ps
			order = append(order, key)
		}
		ps.Values = append(ps.Values, [2]string{strconv.FormatInt(e.Time.UnixNano(), 10), string(e.Line)})
	}
	req := struct {
		Streams []*pushStream `json:"streams"`
	}{}
	for _, k := range order {
		req.Streams = append(req.Streams, byStream[k])
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/loki/api/v1/push", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("X-Scope-OrgID", s.Tenant)
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("push to Loki: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &pushError{status: resp.StatusCode, msg: fmt.Sprintf("push to Loki: %s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	return nil
}

func labelsKey(l map[string]string) string {
	b, _ := json.Marshal(l) // map keys are sorted by encoding/json
	return string(b)
}
