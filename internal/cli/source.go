package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	baselinefs "github.com/openshift/egress-tests-ext/baseline"
	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/source/flowfile"
)

// namingFlags are the flags that shape how flow records become matrix entries.
type namingFlags struct {
	names           string
	clusterNetworks []string
	nodeRoles       []string
	serverPorts     []int
	udpManySources  int
	masquerade      []string
	fs              *pflag.FlagSet
}

func (f *namingFlags) add(fs *pflag.FlagSet) {
	f.fs = fs
	fs.StringVar(&f.names, "names", "", "names file: IP to hostname resolutions seen in the cluster ({\"resolutions\":[{\"address\",\"host\",\"from\",\"to\"}]})")
	fs.StringSliceVar(&f.clusterNetworks, "cluster-network", nil, "CIDR inside the cluster (pod, service, machine networks); repeat or comma-separate")
	fs.StringArrayVar(&f.nodeRoles, "node-role", nil, "NODE=ROLE: the role of a node (control-plane, worker, infra, ...); repeat")
	fs.IntSliceVar(&f.serverPorts, "server-port", nil, "port at or above 1024 that is a server port (e.g. 6443); repeat or comma-separate")
	fs.IntVar(&f.udpManySources, "udp-many-sources", 0, "a UDP port reached from at least this many source ports is a server port (0: the matrix default)")
	fs.StringSliceVar(&f.masquerade, "masquerade-cidr", nil, "OVN-Kubernetes' masquerade subnet(s), the only cluster-internal link-local destinations (network.operator cluster gatewayConfig.ipv4/ipv6.internalMasqueradeSubnet); repeat or comma-separate; \"none\" for no such range; default 169.254.0.0/17, 169.254.169.0/29 and fd69::/112")
}

// changed reports whether any naming flag was given.
func (f *namingFlags) changed() []string {
	var out []string
	for _, n := range []string{"names", "cluster-network", "node-role", "server-port", "udp-many-sources", "masquerade-cidr"} {
		if f.fs != nil && f.fs.Changed(n) {
			out = append(out, "--"+n)
		}
	}
	return out
}

func (f *namingFlags) options() (matrix.Options, error) {
	opts := matrix.Options{UDPManySources: f.udpManySources}
	if f.udpManySources < 0 {
		return opts, fmt.Errorf("--udp-many-sources %d: must be 0 or more", f.udpManySources)
	}
	for _, c := range f.clusterNetworks {
		// The rule of baseline files: a block with host bits set is refused, not masked.
		p, err := baseline.ParseCIDR(strings.TrimSpace(c))
		if err != nil {
			return opts, fmt.Errorf("--cluster-network: %w", err)
		}
		opts.ClusterNetworks = append(opts.ClusterNetworks, p)
	}
	if f.fs != nil && f.fs.Changed("masquerade-cidr") {
		opts.MasqueradeNetworks = []netip.Prefix{}
		for _, c := range f.masquerade {
			if c = strings.TrimSpace(c); c == "none" && len(f.masquerade) == 1 {
				break
			}
			p, err := netip.ParsePrefix(c)
			if err != nil || !p.Addr().IsLinkLocalUnicast() && !(p.Addr().Is6() && strings.HasPrefix(p.Masked().String(), "fd")) {
				return opts, fmt.Errorf("--masquerade-cidr %q is not a link-local (or fd00::/8) CIDR; fix: write the cluster's internalMasqueradeSubnet, e.g. 169.254.0.0/17 or fd69::/112, or none", c)
			}
			opts.MasqueradeNetworks = append(opts.MasqueradeNetworks, p.Masked())
		}
	}
	if len(f.nodeRoles) > 0 {
		opts.NodeRoles = map[string]string{}
	}
	for _, nr := range f.nodeRoles {
		node, role, ok := strings.Cut(nr, "=")
		if !ok || node == "" || role == "" {
			return opts, fmt.Errorf("--node-role %q: fix: write NODE=ROLE, e.g. ip-10-0-1-2.ec2.internal=worker", nr)
		}
		opts.NodeRoles[node] = role
	}
	if len(f.serverPorts) > 0 {
		opts.Ports.Extra = map[int]bool{}
	}
	for _, p := range f.serverPorts {
		if p < 1 || p > 65535 {
			return opts, fmt.Errorf("--server-port %d: fix: give a port within 1-65535", p)
		}
		opts.Ports.Extra[p] = true
	}
	if f.names != "" {
		n, err := matrix.LoadNamesFile(f.names)
		if err != nil {
			return opts, fmt.Errorf("--names: %w", err)
		}
		opts.Names = n
	}
	return opts, nil
}

// matrixSource is where a command gets the observed matrix from. `matrix diff` and
// `baseline update` take exactly one: --flows, --matrix, or one added by
// registerMatrixSource (e.g. a Loki query).
type matrixSource interface {
	// flags names the source's flags, for messages ("--flows").
	flags() string
	addFlags(fs *pflag.FlagSet)
	// isSet reports whether the source's flags were given on the command line.
	isSet(fs *pflag.FlagSet) bool
	// usesNaming reports whether the naming flags apply to it.
	usesNaming() bool
	// outcome builds the observed matrix (diffed against b when b is set) through the
	// pipeline, or reads a prebuilt one. An error wrapping observe.ErrIncomplete comes with
	// the whole outcome, for commands that only inspect.
	outcome(ctx context.Context, opts matrix.Options, b *baseline.Baseline, log io.Writer) (*observe.Outcome, error)
}

// withOptions is a matrixSource with flags of its own beside the one that chooses it: given
// while another source is chosen, they would be ignored without a word.
type withOptions interface {
	optionsGiven(fs *pflag.FlagSet) []string
}

// extraSources are the matrix sources other files of the package register (in init).
var extraSources []func() matrixSource

// registerMatrixSource adds a matrix source to `matrix diff` and `baseline update`.
func registerMatrixSource(newSource func() matrixSource) {
	extraSources = append(extraSources, newSource)
}

func newSources() []matrixSource {
	out := []matrixSource{&flowsSource{}, &matrixFileSource{}}
	for _, f := range extraSources {
		out = append(out, f())
	}
	return out
}

// pickSource returns the one source whose flags were given.
func pickSource(fs *pflag.FlagSet, sources []matrixSource, naming *namingFlags) (matrixSource, error) {
	var set []matrixSource
	var all []string
	for _, s := range sources {
		all = append(all, s.flags())
		if s.isSet(fs) {
			set = append(set, s)
		}
	}
	switch len(set) {
	case 0:
		return nil, fmt.Errorf("no observed flows given; fix: pass one of %s", strings.Join(all, ", "))
	case 1:
	default:
		var names []string
		for _, s := range set {
			names = append(names, s.flags())
		}
		return nil, fmt.Errorf("%s given together; fix: pass only one source of observed flows", strings.Join(names, " and "))
	}
	for _, s := range sources {
		if o, ok := s.(withOptions); ok && s != set[0] {
			if c := o.optionsGiven(fs); len(c) > 0 {
				return nil, fmt.Errorf("%s apply to %s, but the flows come from %s; fix: drop them, or read the flows with %s", strings.Join(c, ", "), s.flags(), set[0].flags(), s.flags())
			}
		}
	}
	if c := naming.changed(); len(c) > 0 && !set[0].usesNaming() {
		return nil, fmt.Errorf("%s apply when building a matrix from flow records, not to %s; fix: drop them (the matrix file is already built)", strings.Join(c, ", "), set[0].flags())
	}
	return set[0], nil
}

// flowsSource builds the matrix from NetObserv flow record files.
type flowsSource struct{ paths []string }

func (s *flowsSource) flags() string { return "--flows" }
func (s *flowsSource) addFlags(fs *pflag.FlagSet) {
	fs.StringArrayVar(&s.paths, "flows", nil, "file of NetObserv flow records: a Loki query_range answer, JSON lines or logcli jsonl; repeat")
}
func (s *flowsSource) isSet(fs *pflag.FlagSet) bool { return fs.Changed("flows") }
func (s *flowsSource) usesNaming() bool             { return true }
func (s *flowsSource) outcome(ctx context.Context, opts matrix.Options, b *baseline.Baseline, log io.Writer) (*observe.Outcome, error) {
	src, err := flowfile.New(s.paths...)
	if err != nil {
		return nil, err
	}
	return observe.Run(ctx, observe.Config{Source: src, Matrix: opts, Baseline: b, Log: log})
}

// matrixFileSource reads a matrix written by `matrix build -o json`.
type matrixFileSource struct{ path string }

func (s *matrixFileSource) flags() string { return "--matrix" }
func (s *matrixFileSource) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.path, "matrix", "", "matrix file written by `matrix build -o json`")
}
func (s *matrixFileSource) isSet(fs *pflag.FlagSet) bool { return fs.Changed("matrix") }
func (s *matrixFileSource) usesNaming() bool             { return false }

// outcome reads the prebuilt matrix: no source, so no pipeline, but the same rules on what
// a matrix that proves nothing is.
func (s *matrixFileSource) outcome(_ context.Context, _ matrix.Options, b *baseline.Baseline, _ io.Writer) (*observe.Outcome, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return nil, fmt.Errorf("--matrix: %w", err)
	}
	defer f.Close()
	m, err := matrix.ReadJSON(f, s.path)
	if err != nil {
		return nil, err
	}
	out := &observe.Outcome{Matrix: m, Baseline: b}
	if b != nil {
		out.Diff = baseline.Diff(m, b)
	}
	if err := m.Check(); err != nil {
		return out, fmt.Errorf("%w: %w", observe.ErrIncomplete, err)
	}
	// observe.Run's rule for a window without a canary: no egress record, no pass.
	if st := m.Stats; st.Egress+st.Undecided+st.Translated == 0 {
		return out, fmt.Errorf("%w: %w: no egress flow record in %s (%d records, none of them egress): this cannot be told from a collector that labels every destination as in-cluster, or a selection that matched nothing; fix: check the FlowCollector's subnet labels and flow filters, or build the matrix from a window with traffic that leaves the cluster",
			observe.ErrIncomplete, matrix.ErrEmpty, s.path, st.Records)
	}
	return out, nil
}

// baselineFlags pick the baseline: a file, or a baseline/ tree plus the cluster's version,
// platform and topology.
type baselineFlags struct {
	path, version, platform, topology string
}

func (f *baselineFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.path, "baseline", "", "baseline file, or baseline/ directory (then --version is required); omitted: the tree embedded in the binary (--version required)")
	fs.StringVar(&f.version, "version", "", "OpenShift version of the cluster (4.21 or 4.21.3), to pick files from a baseline/ directory")
	fs.StringVar(&f.platform, "platform", "", "Infrastructure platform type (AWS, GCP, Azure, BareMetal, None, ...), to pick platform/<platform>.yaml")
	fs.StringVar(&f.topology, "topology", "", "control-plane topology (HighlyAvailable, SingleReplica, ...), to pick topology/<topology>.yaml")
}

// files resolves the flags to baseline files, writing which were picked to log.
func (f *baselineFlags) files(log io.Writer) ([]string, error) {
	if f.path == "" {
		return nil, fmt.Errorf("--baseline or --version is required; fix: pass a baseline file, the baseline/ directory with --version, or only --version for the baseline embedded in the binary")
	}
	fi, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("--baseline: %w", err)
	}
	if !fi.IsDir() {
		if f.version != "" || f.platform != "" || f.topology != "" {
			return nil, fmt.Errorf("--version, --platform and --topology pick files in a baseline/ directory, but --baseline %s is a file; fix: drop them, or pass the directory", f.path)
		}
		return []string{f.path}, nil
	}
	if f.version == "" {
		vs, _ := baseline.Versions(f.path)
		return nil, fmt.Errorf("--baseline %s is a directory: --version is required to pick its files (versions present: %s); fix: add --version 4.21 (and --platform, --topology)", f.path, strings.Join(vs, ", "))
	}
	sel, err := baseline.SelectFiles(f.path, f.version, f.platform, f.topology)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "baseline %s: %s\n", sel.Version, strings.Join(sel.Files, ", "))
	for _, n := range sel.Notes {
		fmt.Fprintf(log, "baseline %s: %s\n", sel.Version, n)
	}
	return sel.Files, nil
}

func (f *baselineFlags) load(log io.Writer) (*baseline.Baseline, error) {
	if f.path == "" && f.version != "" {
		// No tree on disk: the one embedded in the binary, as openshift-tests runs it.
		sel, err := baseline.SelectFS(baselinefs.FS, ".", f.version, f.platform, f.topology)
		if err != nil {
			return nil, fmt.Errorf("embedded baseline: %w", err)
		}
		fmt.Fprintf(log, "baseline %s (embedded in the binary): %s\n", sel.Version, strings.Join(sel.Files, ", "))
		for _, n := range sel.Notes {
			fmt.Fprintf(log, "baseline %s: %s\n", sel.Version, n)
		}
		return baseline.LoadFS(baselinefs.FS, sel.Files...)
	}
	files, err := f.files(log)
	if err != nil {
		return nil, err
	}
	return baseline.Load(files...)
}

// sortedKeys returns the keys of a map in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// placeholderFlags give the values of the baseline's placeholders ({appsDomain}, {apiHost},
// {region}, {bmcNetwork}, {platformAPI}; see baseline/README.md).
type placeholderFlags struct {
	clusterDomain, region, bmcNetwork, platformAPI string
}

func (f *placeholderFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.clusterDomain, "cluster-domain", "", "the cluster's domain, <cluster_name>.<base_domain> (the part after api. of the API URL): resolves the baseline's {appsDomain} (apps.DOMAIN) and {apiHost} (api.DOMAIN)")
	fs.StringVar(&f.region, "region", "", "the cloud region (Infrastructure status.platformStatus.<cloud>.region): resolves the baseline's {region}")
	fs.StringVar(&f.bmcNetwork, "bmc-network", "", "bare metal: the CIDRs of the hosts' BMC addresses, comma-separated, or none: resolves the baseline's {bmcNetwork}")
	fs.StringVar(&f.platformAPI, "platform-api", "", "vSphere, Nutanix, OpenStack: the host (or IP address) of the platform's API (vCenter, Prism Central, the identity endpoint): resolves the baseline's {platformAPI}")
}

func (f *placeholderFlags) values() (baseline.Values, error) {
	var v baseline.Values
	if f.clusterDomain != "" {
		var err error
		if v, err = baseline.ClusterDomainValues(f.clusterDomain); err != nil {
			return v, fmt.Errorf("--cluster-domain: %w", err)
		}
	}
	v.Region, v.BMCNetwork, v.PlatformAPI = f.region, f.bmcNetwork, strings.ToLower(f.platformAPI)
	return v, nil
}

// resolve replaces the baseline's placeholders by the flags' values; one without a value is
// an error naming the file, the entry and the flag.
func (f *placeholderFlags) resolve(b *baseline.Baseline) (*baseline.Baseline, error) {
	v, err := f.values()
	if err != nil {
		return nil, err
	}
	return baseline.Resolve(b, v)
}
