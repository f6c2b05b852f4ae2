// Command lab captures a scenario live (`make lab`, `make demo`): it builds the emulated
// cluster of a scenario file in network namespaces, captures its traffic with the real
// NetObserv eBPF agent and flowlogs-pipeline into a real Loki, and writes the window's
// records, matrix and diff against the baseline. It needs root and BPF; --check says
// whether this machine has them.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/openshift/egress-tests-ext/internal/netlab"
	"github.com/openshift/egress-tests-ext/internal/netlab/netobserv"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/report"
)

func main() {
	var (
		scenario = flag.String("scenario", "", "scenario file (internal/netlab/scenario.go describes it)")
		out      = flag.String("out", "_output/lab", "output directory")
		base     = flag.String("baseline", "", "baseline/ tree (default: the embedded one)")
		agent    = flag.String("agent", "bin/netobserv-ebpf-agent", "NetObserv eBPF agent binary (make agent)")
		flp      = flag.String("flp", "bin/flowlogs-pipeline", "flowlogs-pipeline binary (make flp)")
		loki     = flag.String("loki", "bin/loki", "Loki binary (make loki)")
		prom     = flag.String("prometheus", "bin/prometheus", "Prometheus binary (make prometheus): the FlowMetrics path beside Loki; empty: Loki only")
		maxFlows = flag.Int("cache-max-flows", 0, "agent CACHE_MAX_FLOWS (0: the agent's default)")
		check    = flag.Bool("check", false, "only check that this machine can run the lab (root, BPF); exit 1 with the reason if not")
		cleanup  = flag.String("cleanup", "", "remove the leftovers of a crashed lab with this prefix (etl for all) and exit")
		demo     = flag.Bool("demo", false, "print the demo's framing around the capture")
	)
	flag.Parse()
	if *check {
		if err := capable(); err != nil {
			fmt.Fprintf(os.Stderr, "lab: this machine cannot capture live: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if *cleanup != "" {
		if err := netlab.Cleanup(*cleanup); err != nil {
			fmt.Fprintf(os.Stderr, "lab: cleanup: %v\n", err)
			os.Exit(1)
		}
		return
	}
	code, err := run(*scenario, *out, *base, *agent, *flp, *loki, *prom, *maxFlows, *demo)
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nlab: FAILED: %v\n", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func capable() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: network namespaces and BPF need root (CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_BPF)")
	}
	return netobserv.CheckCapabilities()
}

func run(scenarioFile, out, base, agent, flp, loki, prom string, maxFlows int, demo bool) (int, error) {
	if scenarioFile == "" {
		return 0, errors.New("no scenario; fix: make lab SCENARIO=FILE")
	}
	s, err := netlab.LoadScenario(scenarioFile)
	if err != nil {
		return 0, err
	}
	if err := capable(); err != nil {
		return 0, err
	}
	abs := func(p string) string {
		if p == "" {
			return ""
		}
		a, _ := filepath.Abs(p)
		return a
	}
	agentV, flpV := netobserv.Versions()
	if demo {
		fmt.Printf(`egress-tests-ext demo: LIVE capture
===================================
%s describes an AWS-like OpenShift %s cluster (%d nodes, %d workloads). It is EMULATED in
network namespaces on this machine, but the capture is LIVE: the real NetObserv eBPF agent
%s (one per node) and flowlogs-pipeline %s write to a real Loki, then the same pipeline as
'matrix collect' and 'matrix diff' folds the window and diffs it against baseline/.

`, scenarioFile, s.Cluster.Version, len(s.Nodes), len(s.Workloads), agentV, flpV)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := netlab.Run(ctx, s, netlab.Options{
		AgentBin: abs(agent), FLPBin: abs(flp), LokiBin: abs(loki), PrometheusBin: abs(prom),
		Out: out, BaselineDir: base, CacheMaxFlows: maxFlows, Log: os.Stdout,
	})
	if err != nil {
		return 0, err
	}
	fmt.Printf("\ncaptured live by NetObserv eBPF agent %s and flowlogs-pipeline %s: %d records in the window, %d connections, lab %s\n",
		res.AgentVersion, res.FLPVersion, res.Records, res.Connections, res.Prefix)
	fmt.Printf("\nOBSERVED EGRESS MATRIX\n")
	if err := report.WriteMatrix(os.Stdout, res.Outcome.Matrix, report.Markdown); err != nil {
		return 0, err
	}
	fmt.Printf("\nDIFF AGAINST THE %s %s %s BASELINE\n", s.Cluster.Version, s.Cluster.Platform, s.Cluster.Topology)
	if err := report.WriteDiff(os.Stdout, res.Outcome.Diff, report.Text); err != nil {
		return 0, err
	}
	if res.FlowMetrics != nil {
		fmt.Printf("\nFLOWMETRICS PATH (the same window from FLP's counters, scraped by Prometheus)\n")
		if d := matrix.Compare("loki", res.Outcome.Matrix, "flowmetrics", res.FlowMetrics.Matrix); d != nil {
			return 0, d
		}
		fmt.Printf("the FlowMetrics matrix has the Loki matrix's %d entries, exactly (bytes and first/last seen are not in counters)\n", len(res.FlowMetrics.Matrix.Entries))
	}
	fmt.Printf("\nARTIFACTS in %s: records.jsonl (replay: egress-tests-ext matrix build --flows %s), matrix.json, diff.json, diff.txt, names.json",
		out, filepath.Join(out, "records.jsonl"))
	if res.FlowMetrics != nil {
		fmt.Printf(", matrix-flowmetrics.json, diff-flowmetrics.json, diff-flowmetrics.txt")
	}
	fmt.Println()
	n := len(res.Outcome.Diff.Undocumented)
	if demo {
		// The demo scenario makes exactly one undocumented connection: anything else means
		// the capture or the pipeline is broken.
		if n != 1 {
			return 0, fmt.Errorf("the demo scenario makes exactly 1 undocumented connection; the diff found %d", n)
		}
		fmt.Println("\ndemo: as expected, the diff reports the one undocumented connection of the scenario (a CI run would exit 1)")
		return 0, nil
	}
	if n > 0 {
		return 1, nil
	}
	return 0, nil
}
