// Package clustercheck runs the pipeline against a cluster: the Loki the suite installed,
// the cluster's facts (networks, node roles), the window's name resolutions and the canary
// that proves the recording, then the artifacts of the run. The e2e spec and the capture
// commands share it.
package clustercheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	baselinefs "github.com/openshift/egress-tests-ext/baseline"
	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/cluster"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/flowmetrics"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/report"
	"github.com/openshift/egress-tests-ext/pkg/source/lokiflows"
	"github.com/openshift/egress-tests-ext/pkg/source/promflows"
)

// Window is the observation window and the evidence gathered during it.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// StartSource says where Start came from: EGRESS_WINDOW_START, or the first flow seen.
	StartSource string `json:"startSource"`
	// Canary is what the canary connected to; its flow must be found in the window.
	Canary *cluster.CanaryResult `json:"canary"`
	// Resolutions are the in-cluster answers for the baseline's hostnames during the window.
	Resolutions []cluster.Resolution `json:"-"`
	Unresolved  []string             `json:"unresolved,omitempty"`
}

// Outcome is everything a cluster run produced; WriteArtifacts stores it.
type Outcome struct {
	*observe.Outcome
	Names       *matrix.Names
	CanaryFlows []flow.Record // the canary's records found in Loki
	SuiteFlows  int64         // records of the suite's own namespace, kept out of the matrix
	// Values resolved the baseline's placeholders ({appsDomain}, ...) from the cluster's facts.
	Values baseline.Values
}

// lokiBarrier bounds the wait for the window's last flows to reach Loki: the agents export
// after cacheActiveTimeout (5 s in the FlowCollector we create, 15 s by default) plus the
// processor's batching.
const lokiBarrier = 3 * time.Minute

// serverPorts are the registered (above 1023) ports the cluster is known to serve on: API
// server, machine config server, common TLS alternates.
var serverPorts = matrix.PortPolicy{Extra: map[int]bool{6443: true, 22623: true, 8443: true, 5000: true}}

// Run retrieves the egress flows of the window from Loki, checks the canary's flow is among
// them (else the pipeline is broken and nothing it says can be trusted), folds the rest
// into the matrix with the window's names, and diffs it against the cluster's baseline
// files. On error, what was produced so far is returned for the artifacts.
func Run(ctx context.Context, facts *cluster.Facts, conn *cluster.LokiConn, win Window, log io.Writer) (*Outcome, error) {
	src, err := lokiSource(conn)
	if err != nil {
		return nil, err
	}
	out, err := run(ctx, facts, src, win, log)
	if err != nil {
		return out, fmt.Errorf("retrieve and fold the egress flows of %s: %w", conn.Describe, err)
	}
	return out, nil
}

func lokiSource(conn *cluster.LokiConn) (*lokiflows.Source, error) {
	return lokiflows.New(lokiflows.Config{URL: conn.URL, Tenant: conn.Tenant, Token: conn.Token, TLS: conn.TLS,
		IngestWait: lokiBarrier, DNS: true, Describe: conn.Describe})
}

// FlowMetricsLag is how long after a flow the FlowMetrics counters in Thanos may first hold
// it: the agent's cacheActiveTimeout (5 s in the FlowCollector the suite creates, 15 s by
// default), FLP's processing, and a 30 s scrape.
const FlowMetricsLag = time.Minute

// FlowMetrics are the egress FlowMetrics the spec creates in the FlowCollector's namespace,
// for the port policy the matrix is built with.
func FlowMetrics(namespace string) []flowmetrics.FlowMetric {
	return flowmetrics.Resources(flowmetrics.Options{Namespace: namespace, Ports: serverPorts})
}

// RunFlowMetrics folds the window from the FlowMetrics counters (pkg/source/promflows)
// read through conn, with the same facts, names, exclusions and canary proof as Run. Its
// counts are those FLP made up to FlowMetricsLag after the window's end.
func RunFlowMetrics(ctx context.Context, facts *cluster.Facts, conn *cluster.PromConn, win Window, log io.Writer) (*Outcome, error) {
	src, err := promflows.New(promflows.Config{URL: conn.URL, Token: conn.Token, TLS: conn.TLS, Describe: conn.Describe,
		Lag: FlowMetricsLag, Metrics: FlowMetrics("")})
	if err != nil {
		return nil, err
	}
	if err := src.WaitScraped(ctx, win.End.Add(FlowMetricsLag), FlowMetricsLag+2*time.Minute); err != nil {
		return nil, fmt.Errorf("the FlowMetrics of the window's end: %w", err)
	}
	out, err := run(ctx, facts, src, win, log)
	if err != nil {
		return out, fmt.Errorf("retrieve and fold the egress FlowMetrics through %s: %w", conn.Describe, err)
	}
	return out, nil
}

// run is the pipeline of one source over the window: the names the resolver saw, the
// suite's own flows kept out, the canary's flow required.
func run(ctx context.Context, facts *cluster.Facts, src observe.Source, win Window, log io.Writer) (*Outcome, error) {
	bl, err := LoadBaseline(facts)
	if err != nil {
		return nil, err
	}
	out := &Outcome{Names: matrix.NewNames(), Values: Placeholders(facts)}
	for _, r := range win.Resolutions {
		out.Names.Add(r.Address, r.Host, r.From, r.To)
	}
	opts := MatrixOptions(facts)
	opts.Names = out.Names
	res, err := observe.Run(ctx, observe.Config{
		Source: src, Window: observe.Window{From: win.Start, To: win.End}, Matrix: opts, Baseline: bl, Log: log,
		// The suite's resolver and canary are not the cluster's.
		Exclude: func(r flow.Record) bool { return r.SrcNamespace == cluster.SuiteNamespace },
		Prove: func(excluded []flow.Record) error {
			for _, r := range excluded {
				if r.DNSName == "" {
					out.SuiteFlows += r.Count
				}
				if isCanaryFlow(r, win.Canary) {
					out.CanaryFlows = append(out.CanaryFlows, r)
				}
			}
			if win.Canary != nil && len(out.CanaryFlows) == 0 {
				return fmt.Errorf("the canary connected to %s between %s and %s, but no flow from %s/%s to it is in %s (%d records from the suite's namespace): the flow pipeline is broken (agent, processor or store), so this run cannot tell whether the cluster's egress is documented",
					strings.Join(win.Canary.Addresses, ", "), win.Canary.Start.Format(time.RFC3339), win.Canary.End.Format(time.RFC3339),
					cluster.SuiteNamespace, cluster.CanaryName, src.Describe(), out.SuiteFlows)
			}
			return nil
		},
	})
	out.Outcome = res
	return out, err
}

// Agree checks that the Loki and FlowMetrics matrices of the window hold the same entries.
// The counters cover the window shifted by up to FlowMetricsLag (what FLP counted after the
// start, until the lag after the end), so an entry only the counters hold is explained when
// Loki holds it in the window widened by the lag on both sides; every other difference is a
// disagreement, listed with both sides. explained lists the entries the edges explained.
func Agree(ctx context.Context, facts *cluster.Facts, conn *cluster.LokiConn, win Window, lokiOut, fmOut *Outcome, log io.Writer) (explained []matrix.Key, err error) {
	d := matrix.Compare("loki", lokiOut.Matrix, "flowmetrics", fmOut.Matrix)
	if d == nil {
		return nil, nil
	}
	if len(d.OnlyB) > 0 && conn != nil {
		wide := win
		wide.Start, wide.End = win.Start.Add(-FlowMetricsLag), win.End.Add(FlowMetricsLag)
		src, err := lokiSource(conn)
		if err != nil {
			return nil, err
		}
		w, err := run(ctx, facts, src, wide, log)
		if err != nil && (w == nil || w.Outcome == nil || w.Matrix == nil) {
			return nil, fmt.Errorf("reading Loki over the window widened by %s, to check the entries only the FlowMetrics hold: %w", FlowMetricsLag, err)
		}
		inWide := map[matrix.Key]bool{}
		for _, e := range w.Matrix.Entries {
			inWide[matrix.KeyOf(e)] = true
		}
		var left []matrix.Key
		for _, k := range d.OnlyB {
			if inWide[k] {
				explained = append(explained, k)
			} else {
				left = append(left, k)
			}
		}
		d.OnlyB = left
	}
	if len(d.OnlyA)+len(d.OnlyB) == 0 {
		return explained, nil
	}
	return explained, d
}

// WaitFlowing returns once the store holds a flow stamped after the call: from then on the
// window's flows are being recorded.
func WaitFlowing(ctx context.Context, conn *cluster.LokiConn, timeout time.Duration) (time.Time, error) {
	src, err := lokiflows.New(lokiflows.Config{URL: conn.URL, Tenant: conn.Tenant, Token: conn.Token, TLS: conn.TLS, Describe: conn.Describe})
	if err != nil {
		return time.Time{}, err
	}
	start := time.Now()
	if err := src.WaitFlowing(ctx, start, timeout); err != nil {
		return time.Time{}, fmt.Errorf("no NetObserv flow reached %s within %s of the FlowCollector being ready: %w", conn.Describe, timeout, err)
	}
	return start, nil
}

// MatrixOptions are the cluster's networks, node roles and server ports as the matrix
// builder takes them.
func MatrixOptions(f *cluster.Facts) matrix.Options {
	o := matrix.Options{ClusterNetworks: clusterPrefixes(f), NodeRoles: nodeRoles(f), Ports: serverPorts}
	if f.MasqueradeSource != "" {
		// Read from the cluster (cluster.ReadMasqueradeNetworks); else the matrix's default.
		o.MasqueradeNetworks = []netip.Prefix{}
		for _, c := range f.MasqueradeNetworks {
			if p, err := netip.ParsePrefix(c); err == nil {
				o.MasqueradeNetworks = append(o.MasqueradeNetworks, p)
			}
		}
	}
	return o
}

// Placeholders are the cluster's values of the baseline's placeholders; one the facts lack
// stays empty, and a baseline entry using it fails to resolve, naming it.
func Placeholders(f *cluster.Facts) baseline.Values {
	return baseline.Values{AppsDomain: f.AppsDomain, APIHost: f.APIHost, Region: f.Region,
		BMCNetwork: strings.Join(f.BMCNetworks, ","), PlatformAPI: f.PlatformAPI}
}

// LoadBaseline loads the cluster's baseline files and resolves their placeholders from its
// facts; an unresolved placeholder is an error naming the entry and the fact.
func LoadBaseline(f *cluster.Facts) (*baseline.Baseline, error) {
	bl, err := baseline.Load(f.BaselineFiles...)
	if err != nil {
		return nil, err
	}
	return baseline.Resolve(bl, Placeholders(f))
}

// isCanaryFlow reports whether r is the canary's connection: from its Job to an address it
// reported, after NAT or not.
func isCanaryFlow(r flow.Record, c *cluster.CanaryResult) bool {
	if c == nil || r.SrcOwnerName != cluster.CanaryName {
		return false
	}
	return slices.Contains(c.Addresses, r.DstAddr) || (r.XlatDstAddr != "" && slices.Contains(c.Addresses, r.XlatDstAddr))
}

// clusterPrefixes are the addresses that are not egress: pods, services and machines.
func clusterPrefixes(f *cluster.Facts) []netip.Prefix {
	var out []netip.Prefix
	for _, group := range [][]string{f.ClusterNetworks, f.ServiceNetworks, f.MachineNetworks} {
		for _, c := range group {
			if p, err := netip.ParsePrefix(c); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// nodeRoles maps node names to the role the matrix folds node sources into.
func nodeRoles(f *cluster.Facts) map[string]string {
	out := map[string]string{}
	for _, n := range f.Nodes {
		switch {
		case slices.Contains(n.Roles, "control-plane") || slices.Contains(n.Roles, "master"):
			out[n.Name] = matrix.RoleControlPlane
		case slices.Contains(n.Roles, "worker"):
			out[n.Name] = matrix.RoleWorker
		case len(n.Roles) > 0:
			out[n.Name] = n.Roles[0]
		}
	}
	return out
}

// FailureMessage is what the spec fails with when flows are undocumented: the table of them
// and how to update the baseline.
func FailureMessage(o *Outcome, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d egress flow(s) leave the cluster without being documented in the baseline (%s).\n\n", len(o.Diff.Undocumented), strings.Join(RelFiles(o.Baseline.Files), ", "))
	if err := report.WriteDiff(&b, o.Diff, report.Text); err != nil {
		fmt.Fprintf(&b, "(diff not rendered: %v)\n", err)
	}
	fmt.Fprintf(&b, "\nTo document them: review %s (the selected baseline files with these flows added, component and reason to fill in), copy them into baseline/ of github.com/openshift/egress-tests-ext and open a PR; or find out why the flow happens if it should not. The observed matrix, the diff and the raw flows are in %s.\n",
		filepath.Join(dir, "baseline-update"), dir)
	return b.String()
}

func RelFiles(files []string) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		if i := strings.Index(f, string(filepath.Separator)+"baseline"+string(filepath.Separator)); i >= 0 {
			f = f[i+1:]
		}
		out = append(out, f)
	}
	return out
}

// BaselineDir is EGRESS_BASELINE_DIR, or the embedded baseline written to a temporary
// directory (pkg/baseline reads files).
func BaselineDir(cfg *cluster.Config) (dir string, cleanup func(), err error) {
	if cfg.BaselineDir != "" {
		return cfg.BaselineDir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", "egress-baseline-")
	if err != nil {
		return "", nil, fmt.Errorf("extract the embedded baseline: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	dir = filepath.Join(tmp, "baseline")
	err = fs.WalkDir(baselinefs.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := baselinefs.FS.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("extract the embedded baseline: %w", err)
	}
	return dir, cleanup, nil
}

// BaselineHosts lists the hostnames the baseline documents, for the resolver.
func BaselineHosts(b *baseline.Baseline) []string {
	var hosts []string
	for _, e := range b.Entries {
		if e.Destination.Host != "" {
			hosts = append(hosts, e.Destination.Host)
		}
	}
	return hosts
}

// proposeUpdate copies the selected baseline files under dir/baseline-update (same relative
// paths) and merges the observed matrix into the copies: new entries go to the version's
// common file, the other files only get their entries marked observed.
func proposeUpdate(dir, baselineRoot string, files []string, m *matrix.Matrix, vals baseline.Values) ([]baseline.Entry, error) {
	out := filepath.Join(dir, "baseline-update")
	copies := make([]string, 0, len(files))
	for _, f := range files {
		rel, err := filepath.Rel(baselineRoot, f)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = filepath.Base(f)
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("proposed baseline update: %w", err)
		}
		if err := cluster.WriteArtifact(out, rel, data); err != nil {
			return nil, err
		}
		copies = append(copies, filepath.Join(out, rel))
	}
	// Common first (Select lists it first), so the other files see the entries it gained.
	var added []baseline.Entry
	for i, p := range copies {
		others := append(append([]string{}, copies[:i]...), copies[i+1:]...)
		var ob *baseline.Baseline
		if len(others) > 0 {
			var err error
			if ob, err = baseline.Load(others...); err != nil {
				return nil, fmt.Errorf("proposed baseline update: %w", err)
			}
		}
		a, err := baseline.UpdateResolved(p, m, ob, vals)
		if err != nil {
			return nil, fmt.Errorf("proposed baseline update of %s: %w", p, err)
		}
		added = append(added, a...)
	}
	return added, nil
}

// WriteArtifacts stores the run: the observed matrix (json, csv, markdown), the diff (text
// and json), the raw flows retrieved, the names used, and the proposed baseline update.
func WriteArtifacts(dir, baselineRoot string, o *Outcome) error {
	var errs []string
	put := func(name string, render func(*bytes.Buffer) error) {
		var buf bytes.Buffer
		if err := render(&buf); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", name, err))
			return
		}
		if err := cluster.WriteArtifact(dir, name, buf.Bytes()); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if o.Outcome == nil {
		o.Outcome = &observe.Outcome{}
	}
	if o.Batch != nil {
		ev := o.Batch.Evidence
		if err := cluster.WriteJSONArtifact(dir, "flows.json", map[string]any{
			"source": ev.Source, "query": ev.Query, "mode": ev.Mode, "retrieved": ev.Retrieved, "expected": ev.Expected,
			"pieces": ev.Pieces, "requests": ev.Requests, "decode": ev.Decode, "records": o.Batch.Records,
			"dnsQuery": ev.DNSQuery, "dnsQueries": o.Batch.DNS, "excluded": o.Excluded,
		}); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if o.Names != nil {
		put("names.json", func(b *bytes.Buffer) error { return o.Names.WriteJSON(b) })
	}
	if o.Matrix != nil {
		put("matrix.json", func(b *bytes.Buffer) error { return report.WriteMatrix(b, o.Matrix, report.JSON) })
		put("matrix.csv", func(b *bytes.Buffer) error { return report.WriteMatrix(b, o.Matrix, report.CSV) })
		put("matrix.md", func(b *bytes.Buffer) error { return report.WriteMatrix(b, o.Matrix, report.Markdown) })
	}
	if o.Diff != nil {
		put("diff.txt", func(b *bytes.Buffer) error { return report.WriteDiff(b, o.Diff, report.Text) })
		put("diff.json", func(b *bytes.Buffer) error { return report.WriteDiff(b, o.Diff, report.JSON) })
	}
	if o.Matrix != nil && o.Baseline != nil {
		added, err := proposeUpdate(dir, baselineRoot, o.Baseline.Files, o.Matrix, o.Values)
		if err != nil {
			errs = append(errs, err.Error())
		} else if err := cluster.WriteJSONArtifact(dir, "baseline-update/added.json", added); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("artifacts in %s incomplete:\n  %s", dir, strings.Join(errs, "\n  "))
	}
	return nil
}
