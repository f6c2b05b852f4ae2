// Package promtest runs a real Prometheus server (the bin/prometheus that `make prometheus`
// builds at the version pinned in hack/tools/prometheus) on 127.0.0.1 for tests and
// benchmarks, and pushes series into it by remote write.
package promtest

import (
	"bytes"
	"context"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// Scrape is one scrape job of the server.
type Scrape struct {
	Job     string
	Targets []string // host:port, on loopback or inside the test's own network namespaces
	Path    string   // metrics path; "" is /metrics
}

// Config shapes the server.
type Config struct {
	Scrapes []Scrape
	// RemoteWrite enables /api/v1/write (--web.enable-remote-write-receiver).
	RemoteWrite bool
	// OutOfOrder lets pushed samples be older than the head (tsdb out_of_order_time_window),
	// so tests can push a past window.
	OutOfOrder time.Duration
	// Args are extra command-line flags (e.g. --query.max-samples=1000).
	Args []string
}

// Server is one running Prometheus process.
type Server struct {
	// URL is the HTTP base address, http://127.0.0.1:<port>.
	URL string

	dir     string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// Binary finds the Prometheus server binary: $PROMETHEUS_BIN, else <repo>/bin/prometheus.
// When neither exists the test is skipped, or fails under CI.
func Binary(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("PROMETHEUS_BIN"); p != "" {
		if root, err := repoRoot(); err == nil && !filepath.IsAbs(p) {
			if _, err := os.Stat(p); err != nil {
				p = filepath.Join(root, p)
			}
		}
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("PROMETHEUS_BIN=%s: %v; run `make prometheus`", p, err)
		}
		return p
	}
	if root, err := repoRoot(); err == nil {
		p := filepath.Join(root, "bin", "prometheus")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "no Prometheus server binary: set PROMETHEUS_BIN or run `make prometheus` (builds bin/prometheus)"
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

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

// Start runs Prometheus in a temporary directory and waits until it is ready. The server
// is stopped when the test ends.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := StartBinary(Binary(tb), tb.TempDir(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Logf("stopping Prometheus: %v", err)
		}
	})
	return s
}

// ConfigYAML is the configuration file of cfg: every job scraped each second.
func ConfigYAML(cfg Config) ([]byte, error) {
	type static struct {
		Targets []string `yaml:"targets"`
	}
	type job struct {
		Name           string   `yaml:"job_name"`
		Interval       string   `yaml:"scrape_interval"`
		Timeout        string   `yaml:"scrape_timeout"`
		Path           string   `yaml:"metrics_path,omitempty"`
		StaticConfigs  []static `yaml:"static_configs"`
		HonorTimestamp bool     `yaml:"honor_timestamps"`
	}
	doc := map[string]any{"global": map[string]string{"scrape_interval": "1s", "evaluation_interval": "1s"}}
	var jobs []job
	for _, s := range cfg.Scrapes {
		if s.Job == "" || len(s.Targets) == 0 {
			return nil, fmt.Errorf("scrape job %+v has no name or no target; fix: give both", s)
		}
		jobs = append(jobs, job{Name: s.Job, Interval: "1s", Timeout: "1s", Path: s.Path,
			StaticConfigs: []static{{Targets: s.Targets}}, HonorTimestamp: true})
	}
	if len(jobs) > 0 {
		doc["scrape_configs"] = jobs
	}
	if cfg.OutOfOrder > 0 {
		doc["storage"] = map[string]any{"tsdb": map[string]string{"out_of_order_time_window": cfg.OutOfOrder.String()}}
	}
	return yaml.Marshal(doc)
}

// StartBinary runs the Prometheus binary bin with its data in dir (which it leaves in
// place) and waits until /-/ready answers.
func StartBinary(bin, dir string, cfg Config) (*Server, error) {
	conf, err := ConfigYAML(cfg)
	if err != nil {
		return nil, err
	}
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, conf, 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{
		"--config.file=" + confPath,
		"--web.listen-address=" + addr,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--log.level=warn",
	}
	if cfg.RemoteWrite {
		args = append(args, "--web.enable-remote-write-receiver")
	}
	args = append(args, cfg.Args...)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, killed with the test process if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	s := &Server{URL: "http://" + addr, dir: dir, cmd: cmd, logFile: logFile, done: make(chan struct{})}
	go func() { s.waitErr = cmd.Wait(); close(s.done) }()
	if err := s.waitReady(30 * time.Second); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("%w; log:\n%s", err, s.Log())
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("prometheus exited before it was ready: %v", s.waitErr)
		default:
		}
		resp, err := http.Get(s.URL + "/-/ready")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("prometheus at %s not ready after %s", s.URL, timeout)
}

// Log returns what the server wrote so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "prometheus.log"))
	return string(b)
}

// PID is the server's process id (for RSS figures).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop terminates the server (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (s *Server) Stop() error {
	var err error
	s.once.Do(func() {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		s.logFile.Close()
		var ee *exec.ExitError
		if s.waitErr != nil && !(errors.As(s.waitErr, &ee) && !ee.Exited()) {
			err = s.waitErr
		}
	})
	return err
}

// get is a small helper for tests: the body of GET url, or an error on a non-200 answer.
func get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// FLPJob is the scrape job name of flowlogs-pipeline's metrics endpoint; the FlowMetrics
// source's default up selector (promflows.DefaultUp) matches it.
const FLPJob = "flowlogs-pipeline"

// FLPScrape scrapes flowlogs-pipeline's prom endpoint at addr (host:port).
func FLPScrape(addr string) Scrape { return Scrape{Job: FLPJob, Targets: []string{addr}} }
