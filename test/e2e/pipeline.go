package e2e

import (
	"bytes"
	"context"
	"fmt"
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
	"github.com/openshift/egress-tests-ext/pkg/lokiquery"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/report"
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

// Outcome is everything the pipeline produced; writeArtifacts stores it.
type Outcome struct {
	Query       *lokiquery.Result
	Matrix      *matrix.Matrix
	Diff        *baseline.Result
	Names       *matrix.Names
	Baseline    *baseline.Baseline
	CanaryFlows []flow.Record // the canary's records found in Loki
	SuiteFlows  int64         // records of the suite's own namespace, kept out of the matrix
	// DNSQueries are the window's DNS queries to the cluster DNS, one aggregate per source
	// workload and name (lokiquery.DNSQueries): the egress selection never holds them, and
	// they are the evidence (Matrix.DNSQueries) of which names each workload looked up.
	DNSQueries []flow.Record
}

// lokiBarrier bounds the wait for the window's last flows to reach Loki: the agents export
// after cacheActiveTimeout (5 s in the FlowCollector we create, 15 s by default) plus the
// processor's batching.
const lokiBarrier = 3 * time.Minute

// serverPorts are the registered (above 1023) ports the cluster is known to serve on: API
// server, machine config server, common TLS alternates.
var serverPorts = flow.PortPolicy{Extra: map[int]bool{6443: true, 22623: true, 8443: true, 5000: true}}

// runPipeline retrieves the egress flows of the window from Loki, checks the canary's flow is
// among them (else the pipeline is broken and nothing it says can be trusted), folds the rest
// into the matrix with the window's names, and diffs it against the cluster's baseline files.
func runPipeline(ctx context.Context, facts *cluster.Facts, conn *cluster.LokiConn, win Window) (*Outcome, error) {
	client, err := lokiquery.New(lokiquery.Config{URL: conn.URL, Tenant: conn.Tenant, Token: conn.Token, TLS: conn.TLS})
	if err != nil {
		return nil, err
	}
	// Server-side aggregation is the fast path; only flows to addresses whose name changes
	// inside the window are pulled one by one, so each is named for when it happened.
	res, err := client.Egress(ctx, lokiquery.Options{
		From: win.Start, To: win.End, Mode: lokiquery.Aggregate, Ports: serverPorts,
		RawAddrs: rawAddrs(win), Barrier: lokiquery.Barrier{Timeout: lokiBarrier},
	})
	if err != nil {
		return nil, fmt.Errorf("retrieve the egress flows of %s: %w", conn.Describe, err)
	}
	// The same window (the barrier above already waited for it). DNS names are evidence the
	// report shows next to the entries: a failure fails the run rather than drop them.
	dns, err := client.DNSQueries(ctx, lokiquery.Options{From: win.Start, To: win.End})
	if err != nil {
		return nil, fmt.Errorf("retrieve the DNS queries of %s: %w", conn.Describe, err)
	}
	out := &Outcome{Query: res, Names: matrix.NewNames(), DNSQueries: dns}
	for _, r := range win.Resolutions {
		out.Names.Add(r.Address, r.Host, r.From, r.To)
	}

	var kept []flow.Record
	for _, r := range res.Records {
		if r.SrcNamespace == cluster.SuiteNamespace {
			out.SuiteFlows += r.Count
			if isCanaryFlow(r, win.Canary) {
				out.CanaryFlows = append(out.CanaryFlows, r)
			}
			continue
		}
		kept = append(kept, r)
	}
	if win.Canary != nil && len(out.CanaryFlows) == 0 {
		return out, fmt.Errorf("the canary connected to %s between %s and %s, but no flow from %s/%s to it is in Loki (%d egress records retrieved, %d from the suite's namespace): the flow pipeline is broken (agent, processor or Loki), so this run cannot tell whether the cluster's egress is documented",
			strings.Join(win.Canary.Addresses, ", "), win.Canary.Start.Format(time.RFC3339), win.Canary.End.Format(time.RFC3339),
			cluster.SuiteNamespace, cluster.CanaryName, len(res.Records), out.SuiteFlows)
	}

	b := matrix.NewBuilder(matrix.Options{ClusterNetworks: clusterPrefixes(facts), NodeRoles: nodeRoles(facts), Ports: serverPorts, Names: out.Names})
	b.AddDecodeStats(res.Decode)
	for _, r := range kept {
		b.Add(r)
	}
	for _, r := range dns {
		if r.SrcNamespace != cluster.SuiteNamespace { // the suite's resolver and canary are not the cluster's
			b.Add(r)
		}
	}
	out.Matrix = b.Matrix()
	// Sampled or undecodable records mean connections may be missing: fail rather than
	// report a clean diff. (An empty matrix is not checked here: the canary already proved
	// that flows reach Loki, and a cluster with no egress at all is a valid result.)
	if s := out.Matrix.Stats; s.Sampled > 0 || s.Undecodable > 0 {
		return out, fmt.Errorf("the window's flows cannot prove the cluster's egress: %w", out.Matrix.Check())
	}

	out.Baseline, err = baseline.Load(facts.BaselineFiles...)
	if err != nil {
		return out, err
	}
	out.Diff = baseline.Diff(out.Matrix, out.Baseline)
	return out, nil
}

// rawAddrs are the addresses whose resolution to a name starts or ends inside the window.
func rawAddrs(win Window) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range win.Resolutions {
		if (r.From.After(win.Start) || r.To.Before(win.End)) && !seen[r.Address.String()] {
			seen[r.Address.String()] = true
			out = append(out, r.Address.String())
		}
	}
	sort.Strings(out)
	return out
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

// failureMessage is what the spec fails with when flows are undocumented: the table of them
// and how to update the baseline.
func failureMessage(o *Outcome, dir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d egress flow(s) leave the cluster without being documented in the baseline (%s).\n\n", len(o.Diff.Undocumented), strings.Join(relFiles(o.Baseline.Files), ", "))
	if err := report.WriteDiff(&b, o.Diff, report.Text); err != nil {
		fmt.Fprintf(&b, "(diff not rendered: %v)\n", err)
	}
	fmt.Fprintf(&b, "\nTo document them: review %s (the selected baseline files with these flows added, component and reason to fill in), copy them into baseline/ of github.com/openshift/egress-tests-ext and open a PR; or find out why the flow happens if it should not. The observed matrix, the diff and the raw flows are in %s.\n",
		filepath.Join(dir, "baseline-update"), dir)
	return b.String()
}

func relFiles(files []string) []string {
	out := make([]string, 0, len(files))
	for _, f := range files {
		if i := strings.Index(f, string(filepath.Separator)+"baseline"+string(filepath.Separator)); i >= 0 {
			f = f[i+1:]
		}
		out = append(out, f)
	}
	return out
}

// baselineDir is EGRESS_BASELINE_DIR, or the embedded baseline written to a temporary
// directory (pkg/baseline reads files).
func baselineDir(cfg *cluster.Config) (dir string, cleanup func(), err error) {
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

// baselineHosts lists the hostnames the baseline documents, for the resolver.
func baselineHosts(b *baseline.Baseline) []string {
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
func proposeUpdate(dir, baselineRoot string, files []string, m *matrix.Matrix) ([]baseline.Entry, error) {
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
		a, err := baseline.UpdateWith(p, m, ob)
		if err != nil {
			return nil, fmt.Errorf("proposed baseline update of %s: %w", p, err)
		}
		added = append(added, a...)
	}
	return added, nil
}

// writeArtifacts stores the run: the observed matrix (json, csv, markdown), the diff (text
// and json), the raw flows retrieved, the names used, and the proposed baseline update.
func writeArtifacts(dir, baselineRoot string, o *Outcome) error {
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
	if o.Query != nil {
		if err := cluster.WriteJSONArtifact(dir, "flows.json", map[string]any{
			"query": o.Query.Query, "mode": o.Query.Mode.String(), "retrieved": o.Query.Retrieved, "expected": o.Query.Expected,
			"pieces": o.Query.Pieces, "decode": o.Query.Decode, "records": o.Query.Records,
			"dnsQuery": lokiquery.DNSPipeline(nil).String(), "dnsQueries": o.DNSQueries,
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
		added, err := proposeUpdate(dir, baselineRoot, o.Baseline.Files, o.Matrix)
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
