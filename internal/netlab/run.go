package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	baselinefs "github.com/openshift/egress-tests-ext/baseline"
	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/internal/netlab/netobserv"
	"github.com/openshift/egress-tests-ext/internal/promtest"
	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/report"
	"github.com/openshift/egress-tests-ext/pkg/source/lokiflows"
	"github.com/openshift/egress-tests-ext/pkg/source/promflows"
)

// Options configure one lab run.
type Options struct {
	AgentBin, FLPBin, LokiBin string
	// PrometheusBin, when set, adds the FlowMetrics path: FLP also encodes the egress
	// FlowMetrics (pkg/flowmetrics, rendered as the operator does), this Prometheus scrapes
	// them, and the window is folded from its counters too (Result.FlowMetrics,
	// matrix-flowmetrics.json).
	PrometheusBin string
	// Out, when set, receives records.jsonl, matrix.json, diff.json, diff.txt, names.json
	// (and matrix-flowmetrics.json, diff-flowmetrics.txt with PrometheusBin).
	Out string
	// BaselineDir is a baseline/ tree; empty uses the one embedded in the binary.
	BaselineDir string
	// CacheActiveTimeout is the agent's flush period (default 1 s).
	CacheActiveTimeout time.Duration
	// CacheMaxFlows is the agent's flow map size (0: the agent's default).
	CacheMaxFlows int
	// Prefix names the lab's objects (default: a new Prefix()).
	Prefix string
	// Log receives one line per phase; nil discards.
	Log io.Writer
	// NoPipeline stops after the capture and records.jsonl (the loss test): no matrix.
	NoPipeline bool
}

// Result is what a lab run captured and produced.
type Result struct {
	Prefix string
	Window observe.Window
	// Outcome is observe.Run's on the Loki source (nil with NoPipeline).
	Outcome *observe.Outcome
	// FlowMetrics is observe.Run's on the Prometheus source (with PrometheusBin).
	FlowMetrics *observe.Outcome
	// Names are the lab DNS's answers as matrix names.
	Names   *matrix.Names
	Answers []Answer
	// Records is the number of NetObserv records Loki holds for the window (records.jsonl).
	Records int
	// Connections is how many connections the traffic made.
	Connections int
	// AgentVersion and FLPVersion are what captured.
	AgentVersion, FLPVersion string
	// Phases are the durations of the run's steps, in order.
	Phases []Phase
}

// Phase is one timed step.
type Phase struct {
	Name string
	Took time.Duration
}

// Addresses of the emulated cluster, for callers that check records.
func (r *Result) String() string {
	var b strings.Builder
	for _, p := range r.Phases {
		fmt.Fprintf(&b, "%s %s; ", p.Name, p.Took.Round(time.Millisecond))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// Run builds the lab of the scenario, captures its traffic with the real agent and FLP into
// a real Loki, and folds the window through observe.Run. Everything it creates is removed
// before it returns, on failure and on cancellation (SIGINT/SIGTERM: cancel ctx) too.
func Run(ctx context.Context, s *Scenario, o Options) (res *Result, err error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if err := netobserv.CheckCapabilities(); err != nil {
		return nil, fmt.Errorf("netlab cannot capture on this machine: %w", err)
	}
	for _, b := range []struct{ what, path, fix string }{
		{"agent", o.AgentBin, "make agent"}, {"flowlogs-pipeline", o.FLPBin, "make flp"}, {"Loki", o.LokiBin, "make loki"},
		{"Prometheus", o.PrometheusBin, "make prometheus"},
	} {
		if b.path == "" && b.what == "Prometheus" {
			continue // optional
		}
		if b.path == "" {
			return nil, fmt.Errorf("netlab: no %s binary given; fix: %s", b.what, b.fix)
		}
		if _, err := os.Stat(b.path); err != nil {
			return nil, fmt.Errorf("netlab: %s binary: %w; fix: %s", b.what, err, b.fix)
		}
	}
	if o.CacheActiveTimeout <= 0 {
		o.CacheActiveTimeout = time.Second
	}
	if o.Prefix == "" {
		o.Prefix = Prefix()
	}
	res = &Result{Prefix: o.Prefix}
	res.AgentVersion, res.FLPVersion = netobserv.Versions()
	phase := func(name string, start time.Time) {
		res.Phases = append(res.Phases, Phase{name, time.Since(start)})
		fmt.Fprintf(log, "netlab: %s (%s)\n", name, time.Since(start).Round(time.Millisecond))
	}

	dir, err := os.MkdirTemp("", "netlab-"+o.Prefix+"-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	t0 := time.Now()
	topo, err := plan(s, o.Prefix)
	if err != nil {
		return nil, err
	}
	if err := topo.Build(); err != nil {
		return nil, fmt.Errorf("netlab: building the topology: %w", err)
	}
	defer func() {
		if terr := topo.Teardown(); terr != nil {
			err = errors.Join(err, fmt.Errorf("netlab: removing the topology (run netlab.Cleanup(%q)): %w", o.Prefix, terr))
		}
	}()
	srv := newServers(topo)
	if err := srv.start(topo); err != nil {
		srv.stop()
		return res, fmt.Errorf("netlab: starting the internet and DNS servers: %w", err)
	}
	defer srv.stop()
	phase(fmt.Sprintf("topology %s: %d nodes, %d pods, %d external hosts", o.Prefix, len(topo.nodes), countPods(topo), len(topo.external)), t0)

	t0 = time.Now()
	lokiDir := filepath.Join(dir, "loki")
	if err := os.MkdirAll(lokiDir, 0o700); err != nil {
		return res, err
	}
	limits := lokitest.LokiStackLimits
	limits.MaxEntriesLimitPerQuery = 50000
	loki, err := lokitest.StartBinary(o.LokiBin, lokiDir, limits)
	if err != nil {
		return res, fmt.Errorf("netlab: starting Loki: %w", err)
	}
	defer loki.Stop()
	ports, err := freePorts(2)
	if err != nil {
		return res, err
	}
	flpDir := filepath.Join(dir, "flp")
	if err := os.MkdirAll(flpDir, 0o700); err != nil {
		return res, err
	}
	flpCfg := netobserv.FLPConfig{
		GRPCPort: ports[0], MetricsPort: ports[1], LokiURL: loki.URL,
		Endpoints: topo.endpoints(), SubnetLabels: subnetLabels(),
	}
	mopts := matrixOptions(s, nil)
	if o.PrometheusBin != "" {
		prom, err := flowmetrics.ForFLP(flowmetrics.Options{Ports: mopts.Ports})
		if err != nil {
			return res, fmt.Errorf("netlab: rendering the FlowMetrics: %w", err)
		}
		flpCfg.Prom = prom
	}
	flp, err := netobserv.StartFLP(o.FLPBin, flpCfg, flpDir)
	if err != nil {
		return res, fmt.Errorf("netlab: starting flowlogs-pipeline: %w", err)
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w\nflowlogs-pipeline log tail:\n%s", err, tail(flp.Log(), 15))
		}
		flp.Stop()
	}()
	var prom *promtest.Server
	if o.PrometheusBin != "" {
		pdir := filepath.Join(dir, "prometheus")
		if err := os.MkdirAll(pdir, 0o700); err != nil {
			return res, err
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		if prom, err = promtest.StartBinary(o.PrometheusBin, pdir, promtest.Config{Scrapes: []promtest.Scrape{promtest.FLPScrape(addr)}}); err != nil {
			return res, fmt.Errorf("netlab: starting Prometheus: %w", err)
		}
		defer prom.Stop()
	}
	var agents []*netobserv.Process
	defer func() {
		for i, a := range agents {
			if err != nil {
				err = fmt.Errorf("%w\nagent %s log tail:\n%s", err, topo.nodes[i].addr, tail(a.Log(), 10))
			}
			a.Stop()
		}
	}()
	for _, n := range topo.nodes {
		adir := filepath.Join(dir, "agent-"+n.Name)
		if err := os.MkdirAll(adir, 0o700); err != nil {
			return res, err
		}
		a, err := netobserv.StartAgent(o.AgentBin, netobserv.AgentConfig{
			AgentIP: n.addr.String(), Interfaces: n.interfaces(), TargetPort: ports[0],
			CacheActiveTimeout: o.CacheActiveTimeout, CacheMaxFlows: o.CacheMaxFlows,
			DNSTracking: true, Sampling: 1,
		}, adir)
		if err != nil {
			return res, fmt.Errorf("netlab: starting the agent of node %s: %w", n.Name, err)
		}
		agents = append(agents, a)
	}
	lh := &lokiHTTP{url: loki.URL, tenant: loki.Tenant, limit: limits.MaxEntriesLimitPerQuery, client: &http.Client{Timeout: time.Minute}}
	if err := topo.warmUp(ctx, lh); err != nil {
		return res, err
	}
	if prom != nil {
		// The FlowMetrics coverage rule wants a scrape of FLP before the window's start
		// (whole seconds): wait for one now, then a second more. A loaded machine starts
		// Prometheus late (seen in CI: its first scrape after the window had begun).
		w, err := promflows.New(promflows.Config{URL: prom.URL})
		if err != nil {
			return res, err
		}
		if err := w.WaitScraped(ctx, time.Now(), time.Minute); err != nil {
			return res, fmt.Errorf("netlab: Prometheus never scraped flowlogs-pipeline: %w", err)
		}
		time.Sleep(time.Second)
	}
	phase(fmt.Sprintf("capture ready: Loki, flowlogs-pipeline %s, %d agents %s", res.FLPVersion, len(agents), res.AgentVersion), t0)

	// Long-lived connections open before the window; their SYN is flushed before it starts.
	t0 = time.Now()
	var lls []*longLived
	defer func() {
		for _, l := range lls {
			l.close()
		}
	}()
	for _, tr := range s.Traffic {
		if !tr.LongLived {
			continue
		}
		l, err := topo.openLongLived(s, tr)
		if err != nil {
			return res, err
		}
		lls = append(lls, l)
	}
	// Past the agent's flush, so no record of the window holds a packet from before it.
	sleep(ctx, 2*o.CacheActiveTimeout+500*time.Millisecond)
	// The window is in whole milliseconds, as records are stamped and as LogQL ranges go, so
	// that Loki's count of it and a read of it select the same lines.
	res.Window.From = time.Now().UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	sleep(ctx, time.Until(res.Window.From))
	for _, l := range lls {
		for range 3 {
			if err := l.exchange(); err != nil {
				return res, err
			}
			sleep(ctx, 200*time.Millisecond)
		}
		res.Connections++
	}
	for _, tr := range s.Traffic {
		if tr.LongLived {
			continue
		}
		n, err := topo.runTraffic(ctx, s, tr)
		res.Connections += n
		if err != nil {
			return res, err
		}
	}
	sleep(ctx, 50*time.Millisecond)
	res.Window.To = time.Now().UTC().Truncate(time.Millisecond).Add(time.Millisecond)
	sleep(ctx, time.Until(res.Window.To))
	if err := ctx.Err(); err != nil {
		return res, err
	}
	phase(fmt.Sprintf("traffic: %d connections in window [%s, %s)", res.Connections, res.Window.From.Format(time.RFC3339Nano), res.Window.To.Format(time.RFC3339Nano)), t0)

	// Every agent reports a record stamped after the end; the barrier waits for them all.
	t0 = time.Now()
	sleep(ctx, 10*time.Millisecond)
	for _, n := range topo.nodes {
		if err := sendCanary(n.ns); err != nil {
			return res, fmt.Errorf("netlab: post-window canary from %s: %w", n.Name, err)
		}
	}
	// The ingestion barrier runs here, before records.jsonl is written, so Collect does not
	// wait again (no IngestWait).
	src, err := lokiflows.New(lokiflows.Config{URL: loki.URL, Tenant: loki.Tenant, DNS: true})
	if err != nil {
		return res, err
	}
	if err := src.WaitIngested(ctx, res.Window.To, time.Minute, 500*time.Millisecond); err != nil {
		return res, fmt.Errorf("netlab: %w", err)
	}
	// Under load the barrier is not enough: with 2,000 connections a second, Loki still
	// received records of the window for seconds after every agent's post-window record
	// was queryable. The window is complete once Loki's count of it stops moving.
	settled, err := lh.settle(ctx, res.Window)
	if err != nil {
		return res, fmt.Errorf("netlab: %w", err)
	}
	phase(fmt.Sprintf("ingestion barrier, then %d records settled", settled), t0)

	t0 = time.Now()
	res.Answers = srv.Answers()
	res.Names = matrix.NewNames()
	for _, a := range res.Answers {
		// From the answer's millisecond: the agent stamps records in whole milliseconds
		// (truncated), so a connection made within the millisecond of its lookup carries
		// a time before the answer's exact one.
		from := a.Time.Truncate(time.Millisecond)
		res.Names.Add(a.Address, a.Name, from, from.Add(answerTTL*time.Second))
	}
	if o.Out != "" {
		if err := os.MkdirAll(o.Out, 0o755); err != nil {
			return res, err
		}
		n, err := lh.writeRecords(ctx, filepath.Join(o.Out, "records.jsonl"), res.Window)
		if err != nil {
			return res, fmt.Errorf("netlab: %w", err)
		}
		res.Records = n
		if err := matrix.SaveNamesFile(filepath.Join(o.Out, "names.json"), res.Names); err != nil {
			return res, err
		}
	} else {
		n, err := lh.count(ctx, allRecords, res.Window.From, res.Window.To)
		if err != nil {
			return res, err
		}
		res.Records = int(n)
	}
	if o.NoPipeline {
		phase(fmt.Sprintf("%d records in the window", res.Records), t0)
		return res, nil
	}
	bl, err := loadBaseline(s, o.BaselineDir)
	if err != nil {
		return res, err
	}
	out, err := observe.Run(ctx, observe.Config{
		Source:   src,
		Window:   res.Window,
		Matrix:   matrixOptions(s, res.Names),
		Baseline: bl,
		Log:      log,
	})
	res.Outcome = out
	if err != nil {
		return res, fmt.Errorf("netlab: %w", err)
	}
	if o.Out != "" {
		if err := writeOutputs(o.Out, "", out); err != nil {
			return res, err
		}
	}
	phase(fmt.Sprintf("pipeline: %d records, %d matrix entries, %d undocumented", res.Records, len(out.Matrix.Entries), len(out.Diff.Undocumented)), t0)
	if prom == nil {
		return res, nil
	}

	// The same window from the counters. FLP counted every record of the window by the time
	// Loki's count settled; a scrape after that holds them all.
	t0 = time.Now()
	counted := time.Now()
	psrc, err := promflows.New(promflows.Config{URL: prom.URL, Lag: counted.Sub(res.Window.To)})
	if err != nil {
		return res, err
	}
	if err := psrc.WaitScraped(ctx, counted, 30*time.Second); err != nil {
		return res, fmt.Errorf("netlab: %w", err)
	}
	pout, err := observe.Run(ctx, observe.Config{
		Source: psrc, Window: res.Window, Matrix: matrixOptions(s, res.Names), Baseline: bl, Log: log,
		// The post-window canaries are counted inside the Lag; they are the lab's own
		// barrier, not the scenario's traffic (counted in Excluded).
		Exclude: func(r flow.Record) bool { return r.DstAddr == canaryAddr.String() },
	})
	res.FlowMetrics = pout
	if err != nil {
		return res, fmt.Errorf("netlab: the FlowMetrics path: %w", err)
	}
	if o.Out != "" {
		if err := writeOutputs(o.Out, "-flowmetrics", pout); err != nil {
			return res, err
		}
	}
	phase(fmt.Sprintf("flowmetrics: %d matrix entries, %d undocumented, %d canary records excluded", len(pout.Matrix.Entries), len(pout.Diff.Undocumented), len(pout.Excluded)), t0)
	return res, nil
}

func countPods(t *Topology) int {
	n := 0
	for _, nn := range t.nodes {
		n += len(nn.pods)
	}
	return n
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func freePorts(n int) ([]int, error) {
	var out []int
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
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// endpoints are what FLP enriches: every pod and node address, and the DNS service.
func (t *Topology) endpoints() []netobserv.Endpoint {
	var out []netobserv.Endpoint
	for _, n := range t.nodes {
		out = append(out, netobserv.Endpoint{Addr: n.addr.String(), Name: n.Name, OwnerName: n.Name, OwnerType: "Node",
			Type: "Node", HostIP: n.addr.String(), HostName: n.Name})
		for _, p := range n.pods {
			out = append(out, netobserv.Endpoint{Addr: p.addr.String(), Namespace: p.Namespace, Name: p.podName,
				OwnerName: p.Name, OwnerType: p.Kind, Type: "Pod", HostIP: n.addr.String(), HostName: n.Name})
		}
	}
	out = append(out, netobserv.Endpoint{Addr: ClusterDNS.String(), Namespace: "openshift-dns", Name: "dns-default",
		OwnerName: "dns-default", OwnerType: "Service", Type: "Service"})
	return out
}

// subnetLabels are the FlowCollector's default subnet labels of a cluster with the lab's
// networks.
func subnetLabels() []netobserv.SubnetLabel {
	return []netobserv.SubnetLabel{
		{Name: "Pods", CIDRs: []string{PodNetwork.String()}},
		{Name: "Services", CIDRs: []string{ServiceNetwork.String()}},
		{Name: "Machines", CIDRs: []string{MachineNetwork.String()}},
	}
}

func matrixOptions(s *Scenario, names *matrix.Names) matrix.Options {
	roles := map[string]string{}
	for _, n := range s.Nodes {
		roles[n.Name] = n.Role
	}
	return matrix.Options{
		ClusterNetworks: []netip.Prefix{PodNetwork, ServiceNetwork, MachineNetwork},
		NodeRoles:       roles,
		Names:           names,
	}
}

// loadBaseline selects the scenario's baseline files, from dir or the embedded tree.
func loadBaseline(s *Scenario, dir string) (*baseline.Baseline, error) {
	c := s.Cluster
	var b *baseline.Baseline
	if dir == "" {
		sel, err := baseline.SelectFS(baselinefs.FS, ".", c.Version, c.Platform, c.Topology)
		if err != nil {
			return nil, fmt.Errorf("%s: cluster: %w", s.File, err)
		}
		if b, err = baseline.LoadFS(baselinefs.FS, sel.Files...); err != nil {
			return nil, err
		}
	} else {
		sel, err := baseline.SelectFiles(dir, c.Version, c.Platform, c.Topology)
		if err != nil {
			return nil, fmt.Errorf("%s: cluster: %w", s.File, err)
		}
		if b, err = baseline.Load(sel.Files...); err != nil {
			return nil, err
		}
	}
	var v baseline.Values
	if c.Domain != "" {
		var err error
		if v, err = baseline.ClusterDomainValues(c.Domain); err != nil {
			return nil, fmt.Errorf("%s: cluster.domain: %w", s.File, err)
		}
	}
	v.Region = c.Region
	r, err := baseline.Resolve(b, v)
	if err != nil {
		return nil, fmt.Errorf("%s: the baseline uses placeholders the scenario does not resolve (set cluster.domain and cluster.region): %w", s.File, err)
	}
	return r, nil
}

// writeOutputs writes matrix<suffix>.json, diff<suffix>.json and diff<suffix>.txt.
func writeOutputs(dir, suffix string, out *observe.Outcome) error {
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"matrix" + suffix + ".json", func(w io.Writer) error { return report.WriteMatrix(w, out.Matrix, report.JSON) }},
		{"diff" + suffix + ".json", func(w io.Writer) error { return report.WriteDiff(w, out.Diff, report.JSON) }},
		{"diff" + suffix + ".txt", func(w io.Writer) error { return report.WriteDiff(w, out.Diff, report.Text) }},
	}
	for _, f := range files {
		var b bytes.Buffer
		if err := f.write(&b); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// settle polls Loki's count of the window until two polls a second apart agree.
func (l *lokiHTTP) settle(ctx context.Context, w observe.Window) (int64, error) {
	deadline := time.Now().Add(2 * time.Minute)
	last := int64(-1)
	for {
		n, err := l.count(ctx, allRecords, w.From, w.To)
		if err != nil {
			return 0, err
		}
		if n == last {
			return n, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the lab Loki's count of the window still changes after 2 minutes (%d, then %d): ingestion does not settle", last, n)
		}
		last = n
		sleep(ctx, time.Second)
		if err := ctx.Err(); err != nil {
			return 0, err
		}
	}
}

// warmUp sends a datagram from every node and pod namespace until Loki holds a record of
// each: every agent is attached to every interface and the pipeline writes.
func (t *Topology) warmUp(ctx context.Context, lh *lokiHTTP) error {
	type probe struct{ ns, addr string }
	var probes []probe
	for _, n := range t.nodes {
		probes = append(probes, probe{n.ns, n.addr.String()})
		for _, p := range n.pods {
			probes = append(probes, probe{p.ns, p.addr.String()})
		}
	}
	start := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	deadline := time.Now().Add(90 * time.Second)
	pending := probes
	for len(pending) > 0 {
		if time.Now().After(deadline) {
			var miss []string
			for _, p := range pending {
				miss = append(miss, p.addr)
			}
			sort.Strings(miss)
			return fmt.Errorf("netlab: after 90 s Loki holds no record from %s: an agent is not attached or not exporting (see its log)", strings.Join(miss, ", "))
		}
		for _, p := range pending {
			if err := sendCanary(p.ns); err != nil {
				return fmt.Errorf("netlab: warm-up from %s: %w", p.ns, err)
			}
		}
		sleep(ctx, time.Second)
		if err := ctx.Err(); err != nil {
			return err
		}
		var still []probe
		for _, p := range pending {
			q := fmt.Sprintf(`%s |= "\"SrcAddr\":\"%s\"" |= %q`, allRecords, p.addr, canaryAddr.String())
			n, err := lh.count(ctx, q, start, time.Now().Truncate(time.Millisecond).Add(time.Millisecond))
			if err != nil {
				return fmt.Errorf("netlab: warm-up: %w", err)
			}
			if n == 0 {
				still = append(still, p)
			}
		}
		pending = still
	}
	return nil
}
