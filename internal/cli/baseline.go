package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

func newBaselineCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "baseline",
		Short: "Update and validate the baseline files",
	}
	cmd.AddCommand(newBaselineUpdateCmd(), newBaselineValidateCmd())
	return cmd
}

func newBaselineUpdateCmd() *cobra.Command {
	var naming namingFlags
	var ph placeholderFlags
	var file string
	var with []string
	sources := newSources()
	cmd := &cobra.Command{
		Use:   "update --baseline FILE [--with FILE...] (--flows FILE... | --matrix FILE)",
		Short: "Merge observed connections into a baseline file, keeping its comments",
		Long: `Merge an observed matrix into one baseline file, edited in place with its comments and
formatting kept: entries the run confirms get observed: true, undocumented connections are
appended with component "unknown" and a placeholder reason that must be filled in before the
change merges (baseline validate --reviewed rejects them). --with names the other files the
cluster uses (e.g. common.yaml when FILE is platform/aws.yaml): what they document is not added.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return fmt.Errorf("--baseline FILE is required")
			}
			if fi, err := os.Stat(file); err == nil && fi.IsDir() {
				return fmt.Errorf("--baseline %s is a directory; fix: name the file to update, e.g. %s/4.21/common.yaml, and the cluster's other files with --with", file, strings.TrimSuffix(file, "/"))
			}
			src, err := pickSource(cmd.Flags(), sources, &naming)
			if err != nil {
				return err
			}
			vals, err := ph.values()
			if err != nil {
				return err
			}
			var others *baseline.Baseline
			if len(with) > 0 {
				if others, err = baseline.Load(with...); err != nil {
					return err
				}
			}
			opts, err := naming.options()
			if err != nil {
				return err
			}
			res, err := src.outcome(cmd.Context(), opts, nil, cmd.ErrOrStderr())
			if err != nil {
				// Sampled, undecodable or egress-free records would mark entries observed
				// that the window cannot vouch for.
				return &ExitError{Code: CodeError, Err: fmt.Errorf("not updating %s: %w", file, err)}
			}
			m := res.Matrix
			warnIncomplete(cmd.ErrOrStderr(), m)
			added, err := baseline.UpdateResolved(file, m, others, vals)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s: %d entries added\n", file, len(added))
			for _, e := range added {
				pp := e.Protocol
				if e.Port != "" {
					pp += "/" + e.Port
				}
				fmt.Fprintf(out, "  + %s -> %s %s\n", e.Source, e.Destination, pp)
			}
			if len(added) > 0 {
				fmt.Fprintf(out, "set component and reason of the added entries (component %q) before committing\n", baseline.PlaceholderComponent)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "baseline", "", "the baseline file to update (created if missing)")
	cmd.Flags().StringArrayVar(&with, "with", nil, "another baseline file of the same cluster, whose entries count as documented; repeat")
	naming.add(cmd.Flags())
	ph.add(cmd.Flags())
	for _, s := range sources {
		s.addFlags(cmd.Flags())
	}
	return cmd
}

func newBaselineValidateCmd() *cobra.Command {
	var bl baselineFlags
	var reviewed bool
	cmd := &cobra.Command{
		Use:   "validate --baseline PATH [--version V [--platform P] [--topology T]] [--reviewed]",
		Short: "Load and check baseline files; a directory without --version checks every file of the tree",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var files []string
			var err error
			if fi, serr := os.Stat(bl.path); serr == nil && fi.IsDir() && bl.version == "" {
				files, err = baseline.TreeFiles(bl.path)
				if err == nil && len(files) == 0 {
					err = fmt.Errorf("no baseline file under %s; fix: point --baseline at the baseline/ tree", bl.path)
				}
			} else {
				files, err = bl.files(cmd.ErrOrStderr())
			}
			if err != nil {
				return err
			}
			var errs []error
			n := 0
			if bl.version == "" && len(files) > 1 {
				// A whole tree: each file alone (platform files of one version are never loaded together).
				for _, f := range files {
					b, err := baseline.Load(f)
					if err != nil {
						errs = append(errs, err)
						continue
					}
					n += len(b.Entries)
					if reviewed {
						if err := baseline.CheckReviewed(b); err != nil {
							errs = append(errs, err)
						}
					}
				}
			} else {
				b, err := baseline.Load(files...)
				if err != nil {
					return err
				}
				n = len(b.Entries)
				if reviewed {
					if err := baseline.CheckReviewed(b); err != nil {
						errs = append(errs, err)
					}
				}
			}
			if len(errs) > 0 {
				return errors.Join(errs...)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d files, %d entries: valid\n", len(files), n)
			return nil
		},
	}
	bl.add(cmd.Flags())
	cmd.Flags().BoolVar(&reviewed, "reviewed", false, "also reject entries added by `baseline update` whose component and reason were not filled in")
	return cmd
}
