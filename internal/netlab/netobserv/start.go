package netobserv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ReadyTimeout bounds how long StartFLP and StartAgent wait for their program to be ready.
var ReadyTimeout = 60 * time.Second

// baseEnv is the environment of the children: PATH only, so nothing of the caller's
// environment reaches the agent's many env settings by accident.
func baseEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH")}
}

// StartFLP writes dir/flp.yaml from cfg and starts FLP (bin) with it, then waits until its
// grpc ingest port and metrics port accept connections on loopback.
func StartFLP(bin string, cfg FLPConfig, dir string) (*Process, error) {
	conf, err := RenderFLPConfig(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "flp.yaml")
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		return nil, err
	}
	// Health and profile servers stay off (their defaults: port 0).
	p, err := start("flowlogs-pipeline", bin, []string{"--config", path}, baseEnv(), dir)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(ReadyTimeout)
	for _, port := range []int{cfg.GRPCPort, cfg.MetricsPort} {
		if err := waitPort(p, port, deadline); err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	return p, nil
}

func waitPort(p *Process, port int, deadline time.Time) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited before listening on %s (%v); its log:\n%s", p.Name, addr, err, p.Log())
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after %s; its log:\n%s", p.Name, addr, ReadyTimeout, p.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// AgentConfig is what the lab decides about one agent (one "node").
type AgentConfig struct {
	AgentIP            string   // the node's address (AGENT_IP)
	Interfaces         []string // INTERFACES: exactly the interfaces to capture; required
	TargetPort         int      // FLP's grpc port on 127.0.0.1
	CacheActiveTimeout time.Duration
	CacheMaxFlows      int  // 0: the agent's default
	DNSTracking        bool // ENABLE_DNS_TRACKING
	Sampling           int  // must be 1 unless a test says otherwise; 0 is refused
	// LogLevel is the agent's LOG_LEVEL; "" is debug, which logs the TCX attachments that
	// WaitAttached looks for.
	LogLevel string
	Env      map[string]string // extra settings; may not repeat one of the fields above
}

// agentOwned are the settings AgentConfig's fields set; Env may not set them too.
var agentOwned = []string{"EXPORT", "TARGET_HOST", "TARGET_PORT", "AGENT_IP", "INTERFACES",
	"SAMPLING", "CACHE_ACTIVE_TIMEOUT", "CACHE_MAX_FLOWS", "ENABLE_DNS_TRACKING", "LOG_LEVEL",
	"METRICS_ENABLE", "PROFILE_PORT"}

// AgentEnv returns the agent's environment for cfg (names from the agent's pkg/config).
func AgentEnv(cfg AgentConfig) ([]string, error) {
	if net.ParseIP(cfg.AgentIP) == nil {
		return nil, fmt.Errorf("AgentConfig.AgentIP %q: want the node's IP address", cfg.AgentIP)
	}
	if len(cfg.Interfaces) == 0 {
		// The agent's default is every interface but lo: this machine's uplink too.
		return nil, fmt.Errorf("AgentConfig.Interfaces is empty: the agent would capture every interface of this machine; fix: name the lab's interfaces")
	}
	for _, i := range cfg.Interfaces {
		if i == "" || strings.ContainsAny(i, ", ") {
			return nil, fmt.Errorf("AgentConfig.Interfaces: bad interface name %q", i)
		}
	}
	if cfg.TargetPort <= 0 || cfg.TargetPort > 65535 {
		return nil, fmt.Errorf("AgentConfig.TargetPort %d: want FLP's grpc port", cfg.TargetPort)
	}
	if cfg.Sampling < 1 {
		return nil, fmt.Errorf("AgentConfig.Sampling %d: want 1 (every packet); the agent's 0 is its own default, not 1", cfg.Sampling)
	}
	if cfg.CacheActiveTimeout < 0 || cfg.CacheMaxFlows < 0 {
		return nil, fmt.Errorf("AgentConfig: negative CacheActiveTimeout or CacheMaxFlows")
	}
	level := cfg.LogLevel
	if level == "" {
		level = "debug"
	}
	env := map[string]string{
		"EXPORT":              "grpc",
		"TARGET_HOST":         "127.0.0.1",
		"TARGET_PORT":         strconv.Itoa(cfg.TargetPort),
		"AGENT_IP":            cfg.AgentIP,
		"INTERFACES":          strings.Join(cfg.Interfaces, ","),
		"SAMPLING":            strconv.Itoa(cfg.Sampling),
		"ENABLE_DNS_TRACKING": strconv.FormatBool(cfg.DNSTracking),
		"LOG_LEVEL":           level,
		// Its metrics server would listen on all addresses: off, as is PROFILE_PORT (unset).
		"METRICS_ENABLE": "false",
	}
	if cfg.CacheActiveTimeout > 0 {
		env["CACHE_ACTIVE_TIMEOUT"] = cfg.CacheActiveTimeout.String()
	}
	if cfg.CacheMaxFlows > 0 {
		env["CACHE_MAX_FLOWS"] = strconv.Itoa(cfg.CacheMaxFlows)
	}
	for k, v := range cfg.Env {
		for _, o := range agentOwned {
			if k == o {
				return nil, fmt.Errorf("AgentConfig.Env sets %s, which AgentConfig sets itself; fix: use the field, or drop it from Env", k)
			}
		}
		env[k] = v
	}
	out := baseEnv()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

// StartAgent starts the agent (bin) in the root network namespace with cfg and waits until
// it says it started (its BPF programs loaded). It has attached to an interface only once
// WaitAttached says so.
func StartAgent(bin string, cfg AgentConfig, dir string) (*Process, error) {
	env, err := AgentEnv(cfg)
	if err != nil {
		return nil, err
	}
	p, err := start("netobserv-ebpf-agent", bin, nil, env, dir)
	if err != nil {
		return nil, err
	}
	if err := p.waitLog([]string{"Flows agent successfully started"}, time.Now().Add(ReadyTimeout)); err != nil {
		_ = p.Stop()
		return nil, err
	}
	return p, nil
}

// WaitAttached waits until the agent's log says it attached its TCX hooks to every one of
// ifaces (the agent logs it at debug level: AgentConfig.LogLevel "" or "debug").
func (p *Process) WaitAttached(ifaces []string, timeout time.Duration) error {
	var want []string
	for _, i := range ifaces {
		want = append(want, "Name:"+i+" ")
	}
	return p.waitLog(want, time.Now().Add(timeout), "TCX hook attached")
}

// waitLog waits until every one of want is on a log line (containing also every one of
// also), or the process exits, or the deadline passes.
func (p *Process) waitLog(want []string, deadline time.Time, also ...string) error {
	for {
		exited, werr := p.Exited()
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			return err
		}
		missing := missingLines(string(b), want, also)
		if len(missing) == 0 {
			return nil
		}
		if exited {
			return fmt.Errorf("%s exited (%v) before logging %q; its log:\n%s", p.Name, werr, missing, p.Log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has not logged %q %v; its log:\n%s", p.Name, missing, also, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func missingLines(log string, want, also []string) []string {
	var missing []string
	lines := strings.Split(log, "\n")
	for _, w := range want {
		found := false
		for _, l := range lines {
			if strings.Contains(l, w) && containsAll(l, also) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, w)
		}
	}
	return missing
}

func containsAll(s string, subs []string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
