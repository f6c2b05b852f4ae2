package cli

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/report"
	"github.com/openshift/egress-tests-ext/pkg/source/lokiflows"
)

func init() {
	// `matrix diff` and `baseline update` take the Loki flags in place of --flows.
	registerMatrixSource(func() matrixSource { return &lokiSource{} })
}

// newCollectCmd is `matrix collect`: the observed matrix straight out of Loki.
func newCollectCmd() *cobra.Command {
	var (
		loki   lokiFlags
		prom   promFlags
		naming namingFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "collect --loki-url URL (--since DURATION | --from RFC3339 --to RFC3339) [-o json|yaml|csv|markdown|asciidoc]",
		Short: "Pull the egress flows of a time window out of Loki and print the observed matrix",
		Long: `Pull the egress flows of a window out of Loki (monolithic with --tenant, or the LokiStack
gateway URL .../api/logs/v1/network with --token-file and --ca-file), exactly: every egress
line is read once, shard by shard, and folded into one entry per matrix key (--counts-only
lets Loki count per key instead), limits are worked around by splitting, and the answer is
checked against Loki's own count of the window. Any failure exits 2.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !contains(report.MatrixFormats, format) {
				return fmt.Errorf("-o %q: fix: use one of %s", format, strings.Join(report.MatrixFormats, ", "))
			}
			var (
				out *observe.Outcome
				err error
			)
			opts, err := naming.options()
			if err != nil {
				return err
			}
			switch {
			case prom.set(cmd.Flags()):
				out, err = prom.outcome(cmd.Context(), cmd.Flags(), &loki, opts, nil, cmd.ErrOrStderr())
			case loki.set(cmd.Flags()):
				out, err = loki.outcome(cmd.Context(), opts, nil, cmd.ErrOrStderr())
			default:
				return errors.New("--loki-url or --prometheus-url is required; fix: pass the Loki base URL, e.g. http://loki:3100 or https://<stack>-gateway-http.<ns>.svc:8080/api/logs/v1/network, or the Prometheus holding the egress FlowMetrics")
			}
			if err != nil {
				// No matrix on stdout: a window that proves nothing is no result, and a
				// script reading stdout must not take it for one.
				return &ExitError{Code: CodeError, Err: err}
			}
			if err := report.WriteMatrix(cmd.OutOrStdout(), out.Matrix, format); err != nil {
				return err
			}
			warnIncomplete(cmd.ErrOrStderr(), out.Matrix)
			return nil
		},
	}
	loki.bind(cmd.Flags())
	prom.bind(cmd.Flags())
	naming.add(cmd.Flags())
	cmd.Flags().StringVarP(&format, "output", "o", report.JSON, "output format: "+strings.Join(report.MatrixFormats, ", "))
	return cmd
}

// lokiFlags are the flags that say which Loki to read and which window.
type lokiFlags struct {
	url, tenant, tokenFile, caFile string
	insecure                       bool
	since                          time.Duration
	from, to                       string
	saveFlows                      string
	raw, countsOnly                bool
	dns                            bool
	ingestWait                     time.Duration
	timeout                        time.Duration
	concurrency                    int

	now func() time.Time // tests
}

func (f *lokiFlags) bind(fs *pflag.FlagSet) {
	fs.StringVar(&f.url, "loki-url", "", "Loki base URL: http://host:3100 (monolithic) or the LokiStack gateway https://host/api/logs/v1/network")
	fs.StringVar(&f.tenant, "tenant", "netobserv", "X-Scope-OrgID tenant (monolithic Loki); the gateway takes the tenant from the URL")
	fs.StringVar(&f.tokenFile, "token-file", "", "file holding the bearer token (re-read at every request); needs https")
	fs.StringVar(&f.caFile, "ca-file", "", "PEM CA bundle that signs Loki's certificate (LokiStack: configmap <stack>-gateway-ca-bundle, key service-ca.crt)")
	fs.BoolVar(&f.insecure, "insecure-skip-tls-verify", false, "do not verify Loki's certificate (DANGEROUS: the token can be stolen)")
	fs.DurationVar(&f.since, "since", 0, "window: the last DURATION up to now (e.g. 1h)")
	fs.StringVar(&f.from, "from", "", "window start, RFC3339 (with --to)")
	fs.StringVar(&f.to, "to", "", "window end, RFC3339, exclusive (with --from)")
	fs.StringVar(&f.saveFlows, "save-flows", "", "also write the retrieved flow records as JSON lines that `matrix build --flows` replays")
	fs.BoolVar(&f.raw, "raw", false, "pull every raw line instead of letting Loki aggregate (slower; exact ports and times)")
	fs.BoolVar(&f.dns, "dns", true, "also collect each workload's DNS queries to the cluster DNS (names only: the matrix's dnsQueries evidence); --dns=false skips them")
	fs.BoolVar(&f.countsOnly, "counts-only", false, "let Loki count flows per matrix key instead of reading every egress line (about a quarter faster, a little less memory): entries keep exact flows and ports but no bytes, first or last seen")
	fs.DurationVar(&f.ingestWait, "ingest-wait", 2*time.Minute, "wait up to this long for Loki to hold records stamped after the window end (0: do not wait)")
	fs.DurationVar(&f.timeout, "loki-timeout", 2*time.Minute, "timeout of one Loki request")
	fs.IntVar(&f.concurrency, "loki-concurrency", 4, "Loki requests in flight at once")
}

// set reports whether the Loki source was chosen on the command line.
func (f *lokiFlags) set(fs *pflag.FlagSet) bool { return fs.Changed("loki-url") }

// window resolves --since or --from/--to.
func (f *lokiFlags) window() (time.Time, time.Time, error) {
	now := time.Now
	if f.now != nil {
		now = f.now
	}
	switch {
	case f.since > 0 && (f.from != "" || f.to != ""):
		return time.Time{}, time.Time{}, errors.New("--since and --from/--to given together; fix: pass one of them")
	case f.since > 0:
		to := now().UTC()
		return to.Add(-f.since), to, nil
	case f.since < 0:
		return time.Time{}, time.Time{}, fmt.Errorf("--since %s: fix: give a positive duration, e.g. 1h", f.since)
	case f.from == "" || f.to == "":
		return time.Time{}, time.Time{}, errors.New("no window; fix: pass --since DURATION, or --from and --to (RFC3339, e.g. 2026-01-02T15:04:05Z)")
	}
	from, err := time.Parse(time.RFC3339Nano, f.from)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--from %q: fix: write RFC3339, e.g. 2026-01-02T15:04:05Z: %w", f.from, err)
	}
	to, err := time.Parse(time.RFC3339Nano, f.to)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("--to %q: fix: write RFC3339, e.g. 2026-01-02T16:04:05Z: %w", f.to, err)
	}
	if from.Equal(to) {
		return time.Time{}, time.Time{}, fmt.Errorf("--from and --to are both %s: the window is empty (--to is exclusive); fix: set --to after --from, e.g. --from %s --to %s", f.from, f.from, from.Add(time.Hour).Format(time.RFC3339))
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, fmt.Errorf("--from %s is not before --to %s; fix: swap them", f.from, f.to)
	}
	return from, to, nil
}

// source builds the Loki source; warnings (insecure TLS) go to log.
func (f *lokiFlags) source(log io.Writer) (*lokiflows.Source, error) {
	scheme, err := lokiflows.CheckURL(f.url)
	if err != nil {
		return nil, fmt.Errorf("--loki-url: %w", err)
	}
	cfg := lokiflows.Config{URL: f.url, Tenant: f.tenant, RequestTimeout: f.timeout, Concurrency: f.concurrency,
		IngestWait: f.ingestWait, DNS: f.dns, CountsOnly: f.countsOnly}
	if f.raw {
		cfg.Mode = lokiflows.Raw
	}
	if f.tokenFile != "" {
		if scheme != "https" {
			return nil, fmt.Errorf("--token-file with %s: refusing to send a bearer token over plain http; fix: use the https gateway URL", f.url)
		}
		cfg.Token = lokiflows.TokenFile(f.tokenFile)
		if _, err := cfg.Token(context.Background()); err != nil {
			return nil, fmt.Errorf("--token-file: %w; fix: pass a file that holds the token, e.g. written by `oc whoami -t`", err)
		}
	}
	if scheme == "https" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.caFile != "" {
			pem, err := os.ReadFile(f.caFile)
			if err != nil {
				return nil, fmt.Errorf("--ca-file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--ca-file %s holds no PEM certificate; fix: pass the service-ca.crt of the gateway CA bundle", f.caFile)
			}
			tc.RootCAs = pool
		}
		if f.insecure {
			fmt.Fprintln(log, "WARNING: --insecure-skip-tls-verify: Loki's certificate is NOT verified; anyone on the path can read the flows and steal the bearer token. Use --ca-file instead.")
			tc.InsecureSkipVerify = true
		}
		cfg.TLS = tc
	} else if f.caFile != "" || f.insecure {
		return nil, fmt.Errorf("--ca-file and --insecure-skip-tls-verify apply to https, but --loki-url is %s", scheme)
	}
	return lokiflows.New(cfg)
}

// outcome runs the pipeline on the window's flows in Loki, with opts, diffed against b when
// set. What happened (records, pieces, requests, time) is written to log.
func (f *lokiFlags) outcome(ctx context.Context, opts matrix.Options, b *baseline.Baseline, log io.Writer) (*observe.Outcome, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	from, to, err := f.window()
	if err != nil {
		return nil, err
	}
	switch {
	case f.raw && f.countsOnly:
		return nil, errors.New("--raw and --counts-only given together: one reads every line, the other has Loki count them; fix: pass one of them")
	case f.ingestWait < 0:
		return nil, fmt.Errorf("--ingest-wait %s: fix: give 0 (do not wait) or a positive duration, e.g. 2m", f.ingestWait)
	case f.timeout <= 0:
		return nil, fmt.Errorf("--loki-timeout %s: fix: give a positive duration, e.g. 2m", f.timeout)
	case f.concurrency <= 0:
		return nil, fmt.Errorf("--loki-concurrency %d: fix: give 1 or more", f.concurrency)
	}
	src, err := f.source(log)
	if err != nil {
		return nil, err
	}
	out, err := observe.Run(ctx, observe.Config{Source: src, Window: observe.Window{From: from, To: to}, Matrix: opts, Baseline: b, Log: log})
	if err != nil && !errors.Is(err, observe.ErrIncomplete) {
		return nil, err
	}
	if f.saveFlows != "" && out != nil && out.Batch != nil {
		recs := append(append(make([]flow.Record, 0, len(out.Batch.Records)+len(out.Batch.DNS)), out.Batch.Records...), out.Batch.DNS...)
		if serr := saveFlows(f.saveFlows, recs); serr != nil {
			return nil, serr
		}
	}
	return out, err
}

func saveFlows(path string, rs []flow.Record) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--save-flows: %w", err)
	}
	w := bufio.NewWriter(f)
	for _, r := range rs {
		line, err := flow.EncodeJSONLine(r)
		if err != nil {
			f.Close()
			return fmt.Errorf("--save-flows %s: %w", path, err)
		}
		w.Write(line)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("--save-flows %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--save-flows %s: %w", path, err)
	}
	return nil
}

// lokiSource lets `matrix diff` and `baseline update` read the observed matrix from Loki.
type lokiSource struct{ lokiFlags }

func (s *lokiSource) flags() string                { return "--loki-url" }
func (s *lokiSource) addFlags(fs *pflag.FlagSet)   { s.bind(fs) }
func (s *lokiSource) isSet(fs *pflag.FlagSet) bool { return s.set(fs) }
func (s *lokiSource) usesNaming() bool             { return true }

// optionsGiven lists the Loki flags given besides --loki-url (those bind registers).
func (s *lokiSource) optionsGiven(fs *pflag.FlagSet) []string {
	own := pflag.NewFlagSet("loki", pflag.ContinueOnError)
	new(lokiFlags).bind(own)
	var out []string
	own.VisitAll(func(f *pflag.Flag) {
		// The window and the credentials are shared with --prometheus-url.
		shared := sharedWithLoki[f.Name] && fs.Changed("prometheus-url")
		if f.Name != "loki-url" && !shared && fs.Changed(f.Name) {
			out = append(out, "--"+f.Name)
		}
	})
	return out
}
func (s *lokiSource) outcome(ctx context.Context, opts matrix.Options, b *baseline.Baseline, log io.Writer) (*observe.Outcome, error) {
	return s.lokiFlags.outcome(ctx, opts, b, log)
}
