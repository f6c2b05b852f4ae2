// Package e2e holds the Serial Ginkgo specs that record a cluster's egress flows and diff
// them against baseline/. They are linked into the extension binary by a blank import; what
// they run lives in pkg/clustercheck (the pipeline against a cluster) and pkg/cluster (the
// installs), so the specs stay small.
//
// The spec is configured by environment variables, documented in pkg/cluster.
package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	g "github.com/onsi/ginkgo/v2"
	o "github.com/onsi/gomega"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/capture"
	"github.com/openshift/egress-tests-ext/pkg/cluster"
	"github.com/openshift/egress-tests-ext/pkg/clustercheck"
)

// Phases of the spec: a failure message starts with the phase it happened in.
const (
	phaseSetup   = "setup"
	phaseInstall = "install"
	phaseFlowing = "flows reaching Loki"
	phaseCanary  = "canary"
	phaseCollect = "collect"
	phaseAgree   = "loki and flowmetrics agree"
	phaseDiff    = "diff"
)

var _ = g.Describe("[sig-network][Feature:EgressFlowMatrix][Serial]", func() {
	var (
		ctx     = context.Background()
		c       *cluster.Clients
		dir     string
		setup   *cluster.Setup
		current string // the phase running
	)

	// Diagnostics the OTE way: gathered once, after a failure, whatever phase it was in.
	g.AfterEach(func() {
		if !g.CurrentSpecReport().Failed() || c == nil || dir == "" {
			return
		}
		fmt.Fprintf(g.GinkgoWriter, "failed in phase %q: collecting diagnostics\n", current)
		if err := cluster.CollectDiagnostics(ctx, c, dir, cluster.DiagnosticNamespaces(setup)); err != nil {
			fmt.Fprintf(g.GinkgoWriter, "diagnostics incomplete: %v\n", err)
		} else {
			fmt.Fprintf(g.GinkgoWriter, "operator status, events and pod logs are in %s/diagnostics\n", dir)
		}
	})

	g.It("egress flows leaving the cluster are all documented in the baseline", func() {
		rc, err := cluster.RestConfig(nil)
		if err != nil {
			g.Skip(err.Error())
		}
		// phase runs one step; its failure names the phase.
		phase := func(name, what string, fn func() error) {
			g.GinkgoHelper()
			current = name
			g.By(what)
			if err := fn(); err != nil {
				g.Fail(fmt.Sprintf("[%s] %v", name, err))
			}
		}

		var (
			cfg   *cluster.Config
			facts *cluster.Facts
			root  string
			bl    *baseline.Baseline
		)
		phase(phaseSetup, "reading the cluster and picking the baseline", func() error {
			if cfg, err = cluster.FromEnv(nil); err != nil {
				return err
			}
			if c, err = cluster.NewClients(rc, g.GinkgoWriter); err != nil {
				return err
			}
			if dir, err = cluster.ArtifactDir(nil); err != nil {
				return err
			}
			fmt.Fprintf(g.GinkgoWriter, "artifacts: %s\n", dir)
			if facts, err = cluster.ReadFacts(ctx, c.Config, c.Kube); err != nil {
				return err
			}
			if facts.MasqueradeNetworks, facts.MasqueradeSource, err = cluster.ReadMasqueradeNetworks(ctx, c.Dynamic, c.Kube, facts.NetworkType); err != nil {
				return err
			}
			if cfg.BMCNetwork != "" {
				facts.BMCNetworks, facts.BMCSource = strings.Split(cfg.BMCNetwork, ","), "EGRESS_BMC_NETWORK"
			} else if facts.BMCNetworks, err = cluster.ReadBMCNetworks(ctx, c.Dynamic, facts.Platform); err != nil {
				return err
			} else if facts.BMCNetworks != nil {
				facts.BMCSource = cluster.BMCFromHosts
			}
			if cfg.PlatformAPI != "" {
				facts.PlatformAPI = cfg.PlatformAPI
			}
			fmt.Fprintf(g.GinkgoWriter, "%s\n", facts)
			if note := facts.ProxyNote(); note != "" {
				fmt.Fprintf(g.GinkgoWriter, "%s\n", note)
			}
			var cleanup func()
			if root, cleanup, err = clustercheck.BaselineDir(cfg); err != nil {
				return err
			}
			g.DeferCleanup(cleanup)
			sel, err := baseline.SelectFiles(root, facts.Version, facts.Platform, facts.ControlPlaneTopology)
			if err != nil {
				return err
			}
			facts.BaselineFiles = sel.Files
			fmt.Fprintf(g.GinkgoWriter, "baseline files: %v\n", clustercheck.RelFiles(sel.Files))
			for _, n := range sel.Notes {
				fmt.Fprintf(g.GinkgoWriter, "  %s\n", n)
			}
			if err := cluster.WriteJSONArtifact(dir, "cluster-facts.json", facts); err != nil {
				return err
			}
			// A malformed baseline, or a placeholder the facts cannot resolve, fails now, not
			// after an hour of observation.
			if bl, err = clustercheck.LoadBaseline(facts); err != nil {
				return err
			}
			for _, e := range bl.Omitted {
				fmt.Fprintf(g.GinkgoWriter, "baseline entry left out once resolved (no BMC on this cluster, %s: %s; or the same connection as an earlier entry): %s:%d entries[%d] %s\n",
					facts.BMCSource, strings.Join(facts.BMCNetworks, ","), clustercheck.RelFiles([]string{e.File})[0], e.Line, e.Index, e.Destination)
			}
			return nil
		})

		// A capture record (`egress-tests-ext capture start`) gives the window start, so that the
		// window covers the whole run; its cleanup is registered before the tracker's, to run last.
		var rec *capture.Record
		phase(phaseSetup, "reading the capture record, if any", func() error {
			if rec, err = capture.Load(ctx, c); err != nil || rec == nil {
				return err
			}
			if cfg.CaptureCleanup {
				g.DeferCleanup(func(ctx context.Context) error {
					_, err := capture.Stop(ctx, c, 5*time.Minute)
					return err
				})
			}
			return cluster.WriteJSONArtifact(dir, "capture-record.json", rec)
		})

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
		var image string
		phase(phaseInstall, "installing what is missing: NetObserv, a Loki store, the FlowCollector, the resolver", func() error {
			setup, err = cluster.Install(ctx, c, cfg, tracker)
			_ = cluster.WriteJSONArtifact(dir, "install.json", map[string]any{"setup": setup, "created": tracker.Created()})
			if err != nil {
				return err
			}
			for _, w := range setup.Warnings {
				fmt.Fprintf(g.GinkgoWriter, "WARNING: %s\n", w)
			}
			fmt.Fprintf(g.GinkgoWriter, "flows are stored in %s\n", setup.Store)
			if image, err = cluster.ToolsImage(ctx, c, cfg); err != nil {
				return err
			}
			if cfg.UsesFlowMetrics() {
				// Before the window starts, so that its counters cover it.
				if err := cluster.EnsureFlowMetrics(ctx, c, tracker, clustercheck.FlowMetrics(setup.Collector.Namespace)); err != nil {
					return err
				}
			}
			hosts := cluster.ResolvableHosts(append(clustercheck.BaselineHosts(bl), cfg.CanaryHost))
			return cluster.StartResolver(ctx, c, tracker, cluster.ResolverDeployment(cluster.SuiteNamespace, image, hosts, cfg.ResolveInterval), cfg.InstallTimeout)
		})

		var win clustercheck.Window
		phase(phaseFlowing, "waiting for flows to reach Loki", func() error {
			win.Start, win.StartSource, err = capture.WindowStart(rec, cfg.WindowStart)
			if err != nil || !win.Start.IsZero() {
				return err
			}
			conn, err := cluster.ConnectLoki(ctx, c, setup.Store)
			if err != nil {
				return err
			}
			defer conn.Close()
			win.Start, err = clustercheck.WaitFlowing(ctx, conn, capture.FlowingTimeout)
			win.StartSource = "first flow ingested after the FlowCollector was ready"
			return err
		})
		fmt.Fprintf(g.GinkgoWriter, "window starts %s (%s)\n", win.Start.Format(time.RFC3339), win.StartSource)

		phase(phaseCanary, fmt.Sprintf("running the canary: a known connection to %s:%d", cfg.CanaryHost, cfg.CanaryPort), func() error {
			win.Canary, err = cluster.RunCanary(ctx, c, tracker, cluster.CanaryJob(cluster.SuiteNamespace, image, cfg.CanaryHost, cfg.CanaryPort), cfg.InstallTimeout)
			return err
		})

		if cfg.Observe > 0 {
			g.By(fmt.Sprintf("observing for %s more", cfg.Observe))
			time.Sleep(cfg.Observe)
		}
		win.End = time.Now()

		var outcome, lokiOutcome, fmOutcome *clustercheck.Outcome
		phase(phaseCollect, fmt.Sprintf("collecting the window's name resolutions and egress flows (EGRESS_SOURCE=%s)", cfg.Source), func() error {
			logs, err := cluster.ResolverLogs(ctx, c)
			if err != nil {
				return err
			}
			if err := cluster.WriteArtifact(dir, "resolver.log", []byte(logs)); err != nil {
				return err
			}
			if win.Resolutions, win.Unresolved, err = cluster.ParseResolverLog(strings.NewReader(logs), cfg.ResolveInterval); err != nil {
				return err
			}
			if err := cluster.WriteJSONArtifact(dir, "window.json", win); err != nil {
				return err
			}
			if cfg.UsesLoki() {
				conn, err := cluster.ConnectLoki(ctx, c, setup.Store)
				if err != nil {
					return err
				}
				defer conn.Close()
				fmt.Fprintf(g.GinkgoWriter, "Loki: %s\n", conn.Describe)
				lokiOutcome, err = clustercheck.Run(ctx, facts, conn, win, g.GinkgoWriter)
				if lokiOutcome != nil {
					if aerr := clustercheck.WriteArtifacts(dir, root, lokiOutcome); aerr != nil {
						fmt.Fprintf(g.GinkgoWriter, "%v\n", aerr)
					}
				}
				if err != nil {
					return err
				}
			}
			if cfg.UsesFlowMetrics() {
				pc, err := cluster.ConnectThanos(ctx, c, tracker)
				if err != nil {
					return err
				}
				defer pc.Close()
				fmt.Fprintf(g.GinkgoWriter, "FlowMetrics: %s\n", pc.Describe)
				fmOutcome, err = clustercheck.RunFlowMetrics(ctx, facts, pc, win, g.GinkgoWriter)
				if fmOutcome != nil {
					// Beside the Loki run's, in their own directory.
					if aerr := clustercheck.WriteArtifacts(filepath.Join(dir, "flowmetrics"), root, fmOutcome); aerr != nil {
						fmt.Fprintf(g.GinkgoWriter, "%v\n", aerr)
					}
				}
				if err != nil {
					return err
				}
			}
			outcome = lokiOutcome
			if outcome == nil {
				outcome = fmOutcome
			}
			return nil
		})

		if lokiOutcome != nil && fmOutcome != nil {
			phase(phaseAgree, "checking that the Loki and FlowMetrics matrices hold the same entries", func() error {
				conn, err := cluster.ConnectLoki(ctx, c, setup.Store)
				if err != nil {
					return err
				}
				defer conn.Close()
				explained, err := clustercheck.Agree(ctx, facts, conn, win, lokiOutcome, fmOutcome, g.GinkgoWriter)
				for _, k := range explained {
					fmt.Fprintf(g.GinkgoWriter, "only in the FlowMetrics, and in Loki within %s of the window: %s\n", clustercheck.FlowMetricsLag, k)
				}
				return err
			})
		}

		current = phaseDiff
		g.By("diffing the observed matrix against the baseline")
		fmt.Fprintf(g.GinkgoWriter, "%d egress records, %d matrix entries\n", outcome.Batch.Evidence.Retrieved, len(outcome.Matrix.Entries))
		// The count, not the slice: the message already shows the entries as a table.
		o.Expect(len(outcome.Diff.Undocumented)).To(o.BeZero(), "[%s] %s", phaseDiff, clustercheck.FailureMessage(outcome, dir))
	})
})
