package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	baselinefs "github.com/openshift/egress-tests-ext/baseline"
	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/capture"
	"github.com/openshift/egress-tests-ext/pkg/cluster"
)

// clientsFunc connects to the cluster; tests replace it with fakes.
type clientsFunc func() (*cluster.Clients, error)

func realClients() (*cluster.Clients, error) {
	rc, err := cluster.RestConfig(nil)
	if err != nil {
		return nil, err
	}
	return cluster.NewClients(rc, os.Stderr)
}

func newCaptureCmd(connect clientsFunc) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Keep NetObserv recording across a whole test run: start before it, the spec diffs it after",
		Long: `capture start installs what is missing (NetObserv, a Loki store, the FlowCollector, the
resolver), waits until flows reach Loki, records the window start and what it installed in the
ConfigMap ` + cluster.SuiteNamespace + `/` + capture.RecordName + `, and exits. The spec
(run-suite ` + "openshift/network/egress-flows" + `) then takes its window from that record up
to now; with EGRESS_CAPTURE_CLEANUP=true it also removes what start installed. capture stop
removes it otherwise; capture status prints the record.

The cluster is KUBECONFIG's, else the in-cluster one; configuration is the spec's EGRESS_*
environment (see pkg/cluster). Exit 2 on any failure or without a cluster.`,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "start",
		Short: "install what is missing, wait for flows, record the window start, exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := connect()
			if err != nil {
				return fmt.Errorf("capture start: %w", err)
			}
			cfg, err := cluster.FromEnv(nil)
			if err != nil {
				return fmt.Errorf("capture start: %w", err)
			}
			hosts, err := resolverHosts(ctx, c, cfg)
			if err != nil {
				return fmt.Errorf("capture start: %w", err)
			}
			rec, err := capture.Start(ctx, c, capture.Options{Config: cfg, Hosts: hosts})
			if err != nil {
				return err
			}
			return rec.WriteText(cmd.OutOrStdout(), time.Now())
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "status",
		Short: "print the capture record (exit 2 when there is none)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := connect()
			if err != nil {
				return fmt.Errorf("capture status: %w", err)
			}
			rec, err := capture.Load(cmd.Context(), c)
			if err != nil {
				return fmt.Errorf("capture status: %w", err)
			}
			if rec == nil {
				return fmt.Errorf("capture status: %w in %s/%s: no capture is running; fix: run `egress-tests-ext capture start`", capture.ErrNoRecord, cluster.SuiteNamespace, capture.RecordName)
			}
			return rec.WriteText(cmd.OutOrStdout(), time.Now())
		},
	})
	var timeout time.Duration
	stopCmd := &cobra.Command{
		Use:   "stop",
		Short: "remove what capture start installed, then its record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			c, err := connect()
			if err != nil {
				return fmt.Errorf("capture stop: %w", err)
			}
			rec, err := capture.Stop(ctx, c, timeout)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "capture stopped: removed %d objects installed at %s\n", len(rec.Created), rec.StartedAt.Format(time.RFC3339))
			return nil
		},
	}
	stopCmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long each deletion may take to finish")
	cmd.AddCommand(stopCmd)
	return cmd
}

// resolverHosts are the hostnames of the cluster's baseline (EGRESS_BASELINE_DIR, else the
// embedded one) plus the canary's, for the resolver start runs across the window.
func resolverHosts(ctx context.Context, c *cluster.Clients, cfg *cluster.Config) ([]string, error) {
	facts, err := cluster.ReadFacts(ctx, c.Config, c.Kube)
	if err != nil {
		return nil, err
	}
	var bl *baseline.Baseline
	if cfg.BaselineDir != "" {
		sel, err := baseline.SelectFiles(cfg.BaselineDir, facts.Version, facts.Platform, facts.ControlPlaneTopology)
		if err != nil {
			return nil, err
		}
		if bl, err = baseline.Load(sel.Files...); err != nil {
			return nil, err
		}
	} else {
		sel, err := baseline.SelectFS(baselinefs.FS, ".", facts.Version, facts.Platform, facts.ControlPlaneTopology)
		if err != nil {
			return nil, err
		}
		if bl, err = baseline.LoadFS(baselinefs.FS, sel.Files...); err != nil {
			return nil, err
		}
	}
	hosts := []string{cfg.CanaryHost}
	for _, e := range bl.Entries {
		if e.Destination.Host != "" {
			hosts = append(hosts, e.Destination.Host)
		}
	}
	return cluster.ResolvableHosts(hosts), nil
}
