package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/firewall"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/report"
)

func newMatrixCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "Build the egress matrix (from flow records or Loki), diff it against the baseline, render the baseline",
	}
	// collect (collect.go) reads the matrix straight out of Loki.
	cmd.AddCommand(newMatrixBuildCmd(), newMatrixDiffCmd(), newMatrixRenderCmd(), newCollectCmd())
	return cmd
}

func newMatrixBuildCmd() *cobra.Command {
	var naming namingFlags
	var flows []string
	var format string
	cmd := &cobra.Command{
		Use:   "build --flows FILE... [-o json|yaml|csv|markdown|asciidoc]",
		Short: "Fold NetObserv flow records into the egress matrix",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !contains(report.MatrixFormats, format) {
				return fmt.Errorf("-o %q: fix: use one of %s", format, strings.Join(report.MatrixFormats, ", "))
			}
			opts, err := naming.options()
			if err != nil {
				return err
			}
			src := &flowsSource{paths: flows}
			out, err := src.outcome(cmd.Context(), opts, nil, io.Discard)
			if err != nil && !errors.Is(err, observe.ErrIncomplete) {
				return err
			}
			// build inspects: a matrix that proves nothing is printed with warnings; diff
			// and collect are the commands that judge.
			m := out.Matrix
			if err != nil && m.Stats.Sampled == 0 && m.Stats.Undecodable == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			if err := report.WriteMatrix(cmd.OutOrStdout(), m, format); err != nil {
				return err
			}
			warnIncomplete(cmd.ErrOrStderr(), m)
			return nil
		},
	}
	naming.add(cmd.Flags())
	cmd.Flags().StringArrayVar(&flows, "flows", nil, "file of NetObserv flow records: a Loki query_range answer, JSON lines or logcli jsonl; repeat")
	cmd.Flags().StringVarP(&format, "output", "o", report.JSON, "output format: "+strings.Join(report.MatrixFormats, ", "))
	_ = cmd.MarkFlagRequired("flows")
	return cmd
}

// warnIncomplete says on stderr what part of the records did not become entries.
// incomplete is matrix.Check as the command's exit code 2.
func incomplete(m *matrix.Matrix) error {
	if err := m.Check(); err != nil {
		return &ExitError{Code: CodeError, Err: fmt.Errorf("incomplete observation: %w", err)}
	}
	return nil
}

func warnIncomplete(w io.Writer, m *matrix.Matrix) {
	warnLabels(w, m)
	s := m.Stats
	if s.Sampled > 0 {
		fmt.Fprintf(w, "warning: %d records were taken with sampling > 1: flows may be missing; set FlowCollector spec.agent.ebpf.sampling: 1\n", s.Sampled)
	}
	if s.Undecodable > 0 {
		fmt.Fprintf(w, "warning: %d records could not be decoded (see decodeErrors)\n", s.Undecodable)
	}
	if s.Masquerade > 0 || s.LinkLocalV6 > 0 {
		fmt.Fprintf(w, "note: %d records to OVN-Kubernetes' masquerade range and %d to IPv6 link-local (fe80::/10) are not egress (stats masquerade, linkLocalV6); every other IPv4 link-local destination counts as egress\n", s.Masquerade, s.LinkLocalV6)
	}
	if s.Undecided > 0 {
		fmt.Fprintf(w, "warning: %d egress records (%d distinct) have no decidable server port and are in no entry (see undecided)\n", s.Undecided, m.UndecidedDistinct)
	}
}

// warnLabels reports the custom subnet labels without EXT: (a configuration warning: their
// flows are egress in the matrix, but NetObserv's own filters take them for in-cluster).
func warnLabels(w io.Writer, m *matrix.Matrix) {
	if len(m.UnprefixedLabels) > 0 {
		fmt.Fprintf(w, "warning: subnet label(s) %s lack the EXT: prefix the FlowCollector asks for external subnets: their flows are counted as egress, named by the label; fix: rename them EXT:<name> in spec.processor.subnetLabels.customLabels\n", strings.Join(m.UnprefixedLabels, ", "))
	}
}

func newMatrixDiffCmd() *cobra.Command {
	var naming namingFlags
	var bl baselineFlags
	var ph placeholderFlags
	var format string
	var allowUndecided bool
	sources := newSources()
	cmd := &cobra.Command{
		Use:   "diff --baseline PATH (--flows FILE... | --matrix FILE) [-o text|json]",
		Short: "Diff the observed egress matrix against the baseline; exit 1 on undocumented connections",
		Long: `Diff the observed egress matrix against the baseline.

Exit codes: 0 every observed connection is documented; 1 undocumented connections (or egress
flows whose server port could not be decided, unless --allow-undecided); 2 any error, including
an observation that cannot prove anything: no records, sampled records (sampling > 1) or
undecodable records.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !contains(report.DiffFormats, format) {
				return fmt.Errorf("-o %q: fix: use one of %s", format, strings.Join(report.DiffFormats, ", "))
			}
			src, err := pickSource(cmd.Flags(), sources, &naming)
			if err != nil {
				return err
			}
			b, err := bl.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if b, err = ph.resolve(b); err != nil {
				return err
			}
			opts, err := naming.options()
			if err != nil {
				return err
			}
			out, err := src.outcome(cmd.Context(), opts, b, cmd.ErrOrStderr())
			if err != nil {
				// Nothing on stdout: a diff of a window that proves nothing is no result.
				return &ExitError{Code: CodeError, Err: err}
			}
			if err := report.WriteDiff(cmd.OutOrStdout(), out.Diff, format); err != nil {
				return err
			}
			warnLabels(cmd.ErrOrStderr(), out.Matrix)
			return verdict(out.Matrix, out.Diff, allowUndecided)
		},
	}
	bl.add(cmd.Flags())
	ph.add(cmd.Flags())
	naming.add(cmd.Flags())
	for _, s := range sources {
		s.addFlags(cmd.Flags())
	}
	cmd.Flags().StringVarP(&format, "output", "o", report.Text, "output format: "+strings.Join(report.DiffFormats, ", "))
	cmd.Flags().BoolVar(&allowUndecided, "allow-undecided", false, "do not fail on egress flows whose server port could not be decided (they are still listed)")
	return cmd
}

// verdict turns a diff into the command's error and exit code. Observations that cannot prove
// anything (matrix.Check: no records, sampled or undecodable records) are errors (2) before
// undocumented connections (1).
func verdict(m *matrix.Matrix, r *baseline.Result, allowUndecided bool) error {
	if err := incomplete(m); err != nil {
		return err
	}
	s := r.Stats
	var fails []string
	if n := len(r.Undocumented); n > 0 {
		fails = append(fails, fmt.Sprintf("%d undocumented egress connection(s) (listed above); fix: document them in the baseline (egress-tests-ext baseline update) or stop them", n))
	}
	if s.Undecided > 0 && !allowUndecided {
		fails = append(fails, fmt.Sprintf("%d egress flow record(s) whose server port could not be decided (listed above); fix: add the server port with --server-port, or pass --allow-undecided", s.Undecided))
	}
	if len(fails) > 0 {
		return &ExitError{Code: CodeUndocumented, Err: errors.New(strings.Join(fails, "; "))}
	}
	return nil
}

// BaselineRenderer writes the baseline in one output format of `matrix render`.
type BaselineRenderer func(w io.Writer, b *baseline.Baseline) error

// baselineRenderers are the formats of `matrix render`. A new format (e.g. a firewall policy
// generated from the baseline) is one more entry, added with RegisterBaselineRenderer.
var baselineRenderers = map[string]BaselineRenderer{}

// RegisterBaselineRenderer adds an output format to `matrix render`; call it from an init
// function. Registering a name twice panics: it is a programming error.
func RegisterBaselineRenderer(name string, r BaselineRenderer) {
	if _, dup := baselineRenderers[name]; dup {
		panic("cli: baseline renderer " + name + " registered twice")
	}
	baselineRenderers[name] = r
}

func init() {
	for _, f := range report.BaselineFormats {
		format := f
		RegisterBaselineRenderer(format, func(w io.Writer, b *baseline.Baseline) error {
			return report.WriteBaseline(w, b, format)
		})
	}
}

func newMatrixRenderCmd() *cobra.Command {
	var bl baselineFlags
	var ph placeholderFlags
	var fw firewallFlags
	var format string
	cmd := &cobra.Command{
		Use:   "render --baseline PATH -o FORMAT",
		Short: "Render the baseline as the published table, or as firewall rules (EgressFirewall, AdminNetworkPolicy, nftables, MachineConfig)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, table := baselineRenderers[format]
			if !table && !contains(firewall.Formats, format) {
				return fmt.Errorf("-o %q: fix: use one of %s", format, strings.Join(append(sortedKeys(baselineRenderers), firewall.Formats...), ", "))
			}
			b, err := bl.load(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			if len(b.Entries) == 0 {
				// A table without rows or a firewall without rules says nothing true.
				return fmt.Errorf("%s: no entry to render (the files say `entries: []`); fix: select the baseline of a cluster (--version, --platform, --topology) or a file that documents connections", strings.Join(b.Files, ", "))
			}
			if table {
				// The published table: placeholders without a value read as the docs write them.
				v, err := ph.values()
				if err != nil {
					return err
				}
				return r(cmd.OutOrStdout(), baseline.Display(b, v))
			}
			if b, err = ph.resolve(b); err != nil {
				return err
			}
			return renderFirewall(cmd.OutOrStdout(), cmd.ErrOrStderr(), b, format, strings.Join(b.Files, ","), &fw)
		},
	}
	bl.add(cmd.Flags())
	ph.add(cmd.Flags())
	fw.add(cmd.Flags())
	cmd.Flags().StringVarP(&format, "output", "o", report.AsciiDoc, "output format: csv, markdown, asciidoc (the published table), or "+strings.Join(firewall.Formats, ", "))
	return cmd
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
