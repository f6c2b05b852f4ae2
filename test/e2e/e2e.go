// Package e2e holds the Serial Ginkgo specs that record a cluster's egress flows and diff
// them against baseline/. They are linked into the extension binary by a blank import.
//
// The spec is configured by environment variables, documented in pkg/cluster.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	g "github.com/onsi/ginkgo/v2"
	o "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/cluster"
	"github.com/openshift/egress-tests-ext/pkg/lokiquery"
)

// restConfig finds the cluster the way openshift-tests does: KUBECONFIG, else in-cluster.
func restConfig() (*rest.Config, error) {
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			return nil, fmt.Errorf("KUBECONFIG=%s cannot be loaded: %w", kc, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster: KUBECONFIG is not set and this is not a pod in a cluster (%w); set KUBECONFIG to the cluster's kubeconfig", err)
	}
	return cfg, nil
}

// flowingTimeout bounds the wait for the first flow in Loki after the FlowCollector is ready.
const flowingTimeout = 5 * time.Minute

var _ = g.Describe("[sig-network][Feature:EgressFlowMatrix][Serial]", func() {
	g.It("egress flows leaving the cluster are all documented in the baseline", func() {
		rc, err := restConfig()
		if err != nil {
			g.Skip(err.Error())
		}
		ctx := context.Background()
		cfg, err := cluster.FromEnv(nil)
		must(err)
		c, err := cluster.NewClients(rc, g.GinkgoWriter)
		must(err)
		dir, err := cluster.ArtifactDir(nil)
		must(err)
		fmt.Fprintf(g.GinkgoWriter, "artifacts: %s\n", dir)

		g.By("reading the cluster and picking the baseline")
		facts, err := cluster.ReadFacts(ctx, c.Config, c.Kube)
		must(err)
		fmt.Fprintf(g.GinkgoWriter, "%s\n", facts)
		root, cleanupBaseline, err := baselineDir(cfg)
		must(err)
		g.DeferCleanup(cleanupBaseline)
		sel, err := baseline.SelectFiles(root, facts.Version, facts.Platform, facts.ControlPlaneTopology)
		must(err)
		facts.BaselineFiles = sel.Files
		fmt.Fprintf(g.GinkgoWriter, "baseline files: %v\n", relFiles(sel.Files))
		for _, n := range sel.Notes {
			fmt.Fprintf(g.GinkgoWriter, "  %s\n", n)
		}
		must(cluster.WriteJSONArtifact(dir, "cluster-facts.json", facts))
		// A malformed baseline fails now, not after an hour of observation.
		bl, err := baseline.Load(sel.Files...)
		must(err)

		g.By("installing what is missing: NetObserv, a Loki store, the FlowCollector")
		tracker := &cluster.Tracker{}
		g.DeferCleanup(func(ctx context.Context) {
			if cfg.KeepInstall {
				fmt.Fprintf(g.GinkgoWriter, "EGRESS_KEEP_INSTALL=true: keeping %v\n", tracker.Created())
				return
			}
			if err := tracker.Cleanup(ctx, c, 5*time.Minute); err != nil {
				fmt.Fprintf(g.GinkgoWriter, "cleanup incomplete: %v\n", err)
			}
		})
		setup, err := cluster.Install(ctx, c, cfg, tracker)
		_ = cluster.WriteJSONArtifact(dir, "install.json", map[string]any{"setup": setup, "created": tracker.Created()})
		if err != nil {
			if errors.Is(err, cluster.ErrNotReady) {
				if derr := cluster.CollectDiagnostics(ctx, c, dir, cluster.DiagnosticNamespaces(setup)); derr != nil {
					fmt.Fprintf(g.GinkgoWriter, "diagnostics incomplete: %v\n", derr)
				}
				g.Fail(fmt.Sprintf("%v\nOperator status, events and pod logs are in %s/diagnostics.", err, dir))
			}
			g.Fail(err.Error())
		}
		for _, w := range setup.Warnings {
			fmt.Fprintf(g.GinkgoWriter, "WARNING: %s\n", w)
		}
		fmt.Fprintf(g.GinkgoWriter, "flows are stored in %s\n", setup.Store)

		g.By("starting the in-cluster resolver of the baseline's hostnames")
		image, err := cluster.ToolsImage(ctx, c, cfg)
		must(err)
		hosts := cluster.ResolvableHosts(append(baselineHosts(bl), cfg.CanaryHost))
		must(cluster.StartResolver(ctx, c, tracker, cluster.ResolverDeployment(cluster.SuiteNamespace, image, hosts, cfg.ResolveInterval), cfg.InstallTimeout))

		win := Window{Start: cfg.WindowStart, StartSource: "EGRESS_WINDOW_START"}
		if win.Start.IsZero() {
			g.By("waiting for flows to reach Loki")
			win.Start, err = waitFlowing(ctx, c, setup.Store)
			must(err)
			win.StartSource = "first flow ingested after the FlowCollector was ready"
		}
		fmt.Fprintf(g.GinkgoWriter, "window starts %s (%s)\n", win.Start.Format(time.RFC3339), win.StartSource)

		g.By(fmt.Sprintf("running the canary: a known connection to %s:%d", cfg.CanaryHost, cfg.CanaryPort))
		win.Canary, err = cluster.RunCanary(ctx, c, tracker, cluster.CanaryJob(cluster.SuiteNamespace, image, cfg.CanaryHost, cfg.CanaryPort), cfg.InstallTimeout)
		must(err)

		if cfg.Observe > 0 {
			g.By(fmt.Sprintf("observing for %s more", cfg.Observe))
			time.Sleep(cfg.Observe)
		}
		win.End = time.Now()

		g.By("collecting the hostnames resolved during the window")
		logs, err := cluster.ResolverLogs(ctx, c)
		must(err)
		must(cluster.WriteArtifact(dir, "resolver.log", []byte(logs)))
		win.Resolutions, win.Unresolved, err = cluster.ParseResolverLog(strings.NewReader(logs), cfg.ResolveInterval)
		must(err)
		must(cluster.WriteJSONArtifact(dir, "window.json", win))

		g.By("retrieving the window's egress flows and diffing them against the baseline")
		conn, err := cluster.ConnectLoki(ctx, c, setup.Store)
		must(err)
		defer conn.Close()
		fmt.Fprintf(g.GinkgoWriter, "Loki: %s\n", conn.Describe)
		outcome, err := runPipeline(ctx, facts, conn, win)
		if outcome != nil {
			if aerr := writeArtifacts(dir, root, outcome); aerr != nil {
				fmt.Fprintf(g.GinkgoWriter, "%v\n", aerr)
			}
		}
		must(err)
		fmt.Fprintf(g.GinkgoWriter, "%d egress records, %d matrix entries\n", outcome.Query.Retrieved, len(outcome.Matrix.Entries))
		// The count, not the slice: failureMessage already shows the entries as a table.
		o.Expect(len(outcome.Diff.Undocumented)).To(o.BeZero(), failureMessage(outcome, dir))
	})
})

// waitFlowing returns once Loki holds a flow stamped after the call: from then on the
// window's flows are being recorded.
func waitFlowing(ctx context.Context, c *cluster.Clients, store *cluster.LokiStore) (time.Time, error) {
	conn, err := cluster.ConnectLoki(ctx, c, store)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	client, err := lokiquery.New(lokiquery.Config{URL: conn.URL, Tenant: conn.Tenant, Token: conn.Token, TLS: conn.TLS})
	if err != nil {
		return time.Time{}, err
	}
	start := time.Now()
	err = client.WaitIngested(ctx, start, lokiquery.Barrier{Timeout: flowingTimeout, Canary: `{app="` + lokiquery.App + `"}`})
	if err != nil {
		return time.Time{}, fmt.Errorf("no NetObserv flow reached %s within %s of the FlowCollector being ready: %w", conn.Describe, flowingTimeout, err)
	}
	return start, nil
}

// must fails the spec with err's message, which says what to do.
func must(err error) {
	g.GinkgoHelper()
	o.Expect(err).NotTo(o.HaveOccurred())
}
