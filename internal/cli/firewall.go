package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/openshift-eng/openshift-tests-extension/pkg/version"
	"github.com/spf13/pflag"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/firewall"
)

// firewallFlags are the inputs of the firewall formats of `matrix render`: the cluster's own
// networks (always allowed first) and how far hostnames may be turned into addresses.
type firewallFlags struct {
	pod, service, machine []string
	ovnInternal           bool
	resolve               bool
	namespaces            []string
	anpPriority           int
	out                   string
}

func (f *firewallFlags) add(fs *pflag.FlagSet) {
	fs.StringSliceVar(&f.pod, "pod-cidr", nil, "firewall formats: the cluster network CIDR(s) (Network.spec.clusterNetwork); repeat or comma-separate")
	fs.StringSliceVar(&f.service, "service-cidr", nil, "firewall formats: the service network CIDR(s) (Network.spec.serviceNetwork)")
	fs.StringSliceVar(&f.machine, "machine-cidr", nil, "firewall formats: the machine network CIDR(s) (install-config networking.machineNetwork)")
	fs.BoolVar(&f.ovnInternal, "ovn-internal", false, "firewall formats: also allow OVN-Kubernetes' internal ranges (100.64.0.0/16, 100.88.0.0/16, fd98::/64, ...)")
	fs.BoolVar(&f.resolve, "resolve-hostnames", false, "nftables/machineconfig: resolve hostnames now and allow their current addresses (marked as such; addresses of CDNs change)")
	fs.StringSliceVar(&f.namespaces, "namespaces", nil, "firewall formats: the cluster's namespaces, to expand globbed baseline namespaces (openshift-*) into objects")
	fs.IntVar(&f.anpPriority, "anp-priority", 0, "adminnetworkpolicy: priority of the generated policies (0: the package default)")
	fs.StringVar(&f.out, "out", "", "firewall formats: write one file per object or node role into this directory instead of stdout")
}

func (f *firewallFlags) options(baselineName string) (firewall.Options, error) {
	nets, err := firewall.ParseNetworks(f.pod, f.service, f.machine)
	if err != nil {
		return firewall.Options{}, fmt.Errorf("--pod-cidr/--service-cidr/--machine-cidr: %w", err)
	}
	if f.ovnInternal {
		nets.Internal = firewall.OVNInternalDefaults()
	}
	o := firewall.Options{
		Networks:    nets,
		Meta:        firewall.Meta{Baseline: baselineName, Version: buildVersion()},
		Namespaces:  f.namespaces,
		ANPPriority: f.anpPriority,
	}
	if f.resolve {
		o.Resolve = firewall.Resolver(nil, 5*time.Second)
	}
	return o, nil
}

// buildVersion is the commit the binary was built from (OTE's ldflags), so that generated
// rules say which egress-tests-ext made them.
func buildVersion() string {
	if version.CommitFromGit == "" {
		return "unknown version"
	}
	v := version.CommitFromGit
	if version.GitTreeState == "dirty" {
		v += "-dirty"
	}
	return v
}

// renderFirewall writes one firewall format; entries the format cannot express go to stderr,
// because a reader of the rules must know what they do not allow.
func renderFirewall(stdout, stderr io.Writer, b *baseline.Baseline, format, baselineName string, f *firewallFlags) error {
	opts, err := f.options(baselineName)
	if err != nil {
		return err
	}
	r, err := firewall.Render(format, b, opts)
	if err != nil {
		return fmt.Errorf("rendering %s: %w", format, err)
	}
	if len(r.Unexpressed) > 0 {
		fmt.Fprintf(stderr, "%d baseline entries are not (fully) expressed by %s; they are listed in the output\n", len(r.Unexpressed), format)
	}
	if f.out == "" {
		_, err = r.WriteTo(stdout)
		return err
	}
	if err := r.WriteDir(f.out); err != nil {
		return err
	}
	names := make([]string, 0, len(r.Files))
	for _, file := range r.Files {
		names = append(names, file.Name)
	}
	fmt.Fprintf(stderr, "wrote %d file(s) to %s: %s\n", len(names), f.out, strings.Join(names, ", "))
	return nil
}
