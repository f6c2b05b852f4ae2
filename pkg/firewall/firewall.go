// Package firewall turns the documented egress baseline into enforceable rules: OVN-Kubernetes
// EgressFirewall and AdminNetworkPolicy objects for pod egress, and an nftables ruleset (plain
// and wrapped in a MachineConfig per node role) for node and host-network egress.
//
// Every output allows the cluster's own networks, then each documented destination with its
// protocol and port, then denies the rest. What an API cannot express is never dropped
// silently: each generator returns the entries it could not express and why.
package firewall

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// Networks are the cluster's own address ranges, always allowed before the documented
// destinations (in-cluster traffic is not egress).
type Networks struct {
	Pod, Service, Machine []netip.Prefix
	// Internal are OVN-Kubernetes' own ranges (join, transit, masquerade), optional: on a
	// node, traffic to them is the network plugin's, never egress. See OVNInternalDefaults.
	Internal []netip.Prefix
}

// OVNInternalDefaults are OVN-Kubernetes' default internal ranges on OpenShift 4.14 and
// later: join (100.64.0.0/16, fd98::/64), transit (100.88.0.0/16, fd97::/64) and masquerade
// (169.254.0.0/17, fd69::/112). Clusters installed with other values must pass theirs
// (Network.operator.openshift.io spec.defaultNetwork.ovnKubernetesConfig).
func OVNInternalDefaults() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{"100.64.0.0/16", "100.88.0.0/16", "169.254.0.0/17", "fd98::/64", "fd97::/64", "fd69::/112"} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// All returns the cluster networks, masked, deduplicated and sorted.
func (n Networks) All() []netip.Prefix {
	var all []netip.Prefix
	for _, l := range [][]netip.Prefix{n.Pod, n.Service, n.Machine, n.Internal} {
		for _, p := range l {
			all = append(all, p.Masked())
		}
	}
	return sortPrefixes(all)
}

func (n Networks) validate() error {
	var missing []string
	if len(n.Pod) == 0 {
		missing = append(missing, "pod (--pod-cidr)")
	}
	if len(n.Service) == 0 {
		missing = append(missing, "service (--service-cidr)")
	}
	if len(n.Machine) == 0 {
		missing = append(missing, "machine (--machine-cidr)")
	}
	if len(missing) > 0 {
		// Without them the final deny would cut the cluster off from itself.
		return fmt.Errorf("cluster networks missing: %s; pass them or read them from the cluster (Network config)", strings.Join(missing, ", "))
	}
	for _, p := range slices.Concat(n.Pod, n.Service, n.Machine, n.Internal) {
		if !p.IsValid() {
			return fmt.Errorf("invalid cluster network prefix %v", p)
		}
	}
	return nil
}

// Meta says what made an output; it goes into every header so a rendered firewall can be
// traced back to its baseline.
type Meta struct {
	// Baseline names the baseline (e.g. "baseline/4.21" or its files); defaults to the
	// baseline's file list.
	Baseline string
	// Version is the egress-tests-ext version that rendered the output.
	Version string
}

// Options configure the generators.
type Options struct {
	Networks Networks
	Meta     Meta
	// Namespaces, when set, are the cluster's namespaces: a globbed source namespace
	// ("openshift-*") expands to the matching ones. Without it, globbed sources cannot be
	// expressed as per-namespace objects and are reported.
	Namespaces []string
	// ANPPriority is the priority of the generated AdminNetworkPolicies (0-99 on
	// OVN-Kubernetes; the API allows 0-1000). Their subjects are disjoint namespaces, so one
	// priority serves them all. Zero means DefaultANPPriority.
	ANPPriority int
	// Resolve, when set, resolves documented hostnames at generation time for the nftables
	// output (which matches addresses only). Resolved elements are marked as such. Nil means
	// hostnames are reported as not expressed. Tests inject a fake: never real DNS.
	Resolve func(host string) ([]netip.Addr, error)
}

// DefaultANPPriority sits in the middle of the range OVN-Kubernetes supports (0-99), leaving
// room for cluster-admin policies before and after.
const DefaultANPPriority = 50

// Output formats.
const (
	FormatEgressFirewall     = "egressfirewall"
	FormatAdminNetworkPolicy = "adminnetworkpolicy"
	FormatNFTables           = "nftables"
	FormatMachineConfig      = "machineconfig"
)

// Formats lists the output formats Render accepts.
var Formats = []string{FormatEgressFirewall, FormatAdminNetworkPolicy, FormatNFTables, FormatMachineConfig}

// Unexpressed is a baseline entry (or part of one) an output could not express.
type Unexpressed struct {
	Format string
	Kind   string // NotExpressed, OutOfScope or Partial
	Entry  baseline.Entry
	Reason string
}

// Kinds of Unexpressed.
const (
	// NotExpressed: in the format's scope but not allowed by the output (it gets denied).
	NotExpressed = "not-expressed"
	// OutOfScope: another output covers this source (pods vs nodes).
	OutOfScope = "out-of-scope"
	// Partial: allowed, but narrower than documented.
	Partial = "partial"
)

func (u Unexpressed) String() string {
	return fmt.Sprintf("%s: %s: %s: %s", u.Format, u.Kind, entryRef(u.Entry), u.Reason)
}

// collector gathers the Unexpressed of one format.
type collector struct {
	format string
	list   []Unexpressed
}

func (c *collector) add(kind string, e baseline.Entry, format string, args ...any) {
	c.list = append(c.list, Unexpressed{Format: c.format, Kind: kind, Entry: e, Reason: fmt.Sprintf(format, args...)})
}

func (c *collector) notExpressed() int {
	n := 0
	for _, u := range c.list {
		if u.Kind == NotExpressed {
			n++
		}
	}
	return n
}

func entryRef(e baseline.Entry) string {
	src := e.Source.NodeRole
	if src == "" {
		src = e.Source.Namespace
		if e.Source.Workload != "" {
			src += "/" + e.Source.Workload
		}
	} else {
		src = "node role " + src
	}
	dst := e.Destination.Host + e.Destination.CIDR + e.Destination.SubnetLabel
	port := e.Protocol
	if e.Port != "" {
		port += "/" + e.Port
	}
	where := ""
	if e.File != "" {
		where = e.File
		if e.Line > 0 {
			where += ":" + strconv.Itoa(e.Line)
		}
		where += " "
	}
	return fmt.Sprintf("%sentry %d (%s: %s -> %s %s)", where, e.Index, e.Component, src, dst, port)
}

// portRange is an inclusive port range; {0,0} for ICMP.
type portRange struct{ min, max int }

func (p portRange) String() string {
	if p.min == p.max {
		return strconv.Itoa(p.min)
	}
	return fmt.Sprintf("%d-%d", p.min, p.max)
}

// Protocols as the baseline spells them.
const (
	protoTCP  = "TCP"
	protoUDP  = "UDP"
	protoSCTP = "SCTP"
	protoICMP = "ICMP"
)

// service is one protocol + port range of a destination.
type service struct {
	proto string
	ports portRange
}

func (s service) String() string {
	if s.proto == protoICMP {
		return s.proto
	}
	return s.proto + "/" + s.ports.String()
}

func (s service) less(o service) bool {
	if s.proto != o.proto {
		return s.proto < o.proto
	}
	if s.ports.min != o.ports.min {
		return s.ports.min < o.ports.min
	}
	return s.ports.max < o.ports.max
}

// parseService reads an entry's protocol and port with the baseline's own parser. The
// baseline package validates files on load; this re-checks what the generators rely on so a
// bad entry can never widen a rule.
func parseService(e baseline.Entry) (service, error) {
	switch e.Protocol {
	case protoTCP, protoUDP, protoSCTP, protoICMP:
	default:
		return service{}, fmt.Errorf("protocol %q is not TCP, UDP, SCTP or ICMP", e.Protocol)
	}
	r, err := e.Ports()
	if err != nil {
		return service{}, fmt.Errorf("port %q: %w", e.Port, err)
	}
	return service{proto: e.Protocol, ports: portRange{r.Min, r.Max}}, nil
}

// isGlob reports whether a baseline namespace is a pattern rather than one namespace.
func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// Subnet labels NetObserv gives the cluster's own networks; entries to them are covered by
// the cluster-network allow rules every output starts with.
var clusterSubnetLabels = map[string]bool{"Pods": true, "Services": true, "Machines": true}

// destinationKind is how a renderer must treat a baseline destination.
type destinationKind int

const (
	destCovered destinationKind = iota // a cluster subnet label: the cluster-network rules allow it
	destCIDR                           // a parsed CIDR
	destHost                           // a hostname or address, which each format expresses its own way
	destNone                           // no format can express it; the reason says why
)

// classifyDestination sorts a baseline destination the same way for every format, so the
// formats agree on what the cluster rules cover and on what no rule can express.
func classifyDestination(d baseline.Destination) (kind destinationKind, cidr netip.Prefix, reason string) {
	switch {
	case clusterSubnetLabels[d.SubnetLabel]:
		return destCovered, netip.Prefix{}, ""
	case d.SubnetLabel != "":
		return destNone, netip.Prefix{}, fmt.Sprintf("subnet label %q stands for CIDRs configured in NetObserv, not in the baseline: document the CIDR instead", d.SubnetLabel)
	case d.CIDR != "":
		p, ok := d.Prefix()
		if !ok {
			return destNone, netip.Prefix{}, fmt.Sprintf("CIDR %q does not parse", d.CIDR)
		}
		return destCIDR, p, ""
	case d.Host != "":
		return destHost, netip.Prefix{}, ""
	}
	return destNone, netip.Prefix{}, "entry has no destination"
}

func sortPrefixes(ps []netip.Prefix) []netip.Prefix {
	sort.Slice(ps, func(i, j int) bool { return prefixLess(ps[i], ps[j]) })
	out := ps[:0]
	for i, p := range ps {
		if i == 0 || p != ps[i-1] {
			out = append(out, p)
		}
	}
	return out
}

func prefixLess(a, b netip.Prefix) bool {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c < 0
	}
	return a.Bits() < b.Bits()
}

// namespaceTargets returns the namespaces a pod-source entry applies to, or a reason it
// cannot be bound to namespaces.
func namespaceTargets(ns string, known []string, what string) ([]string, string) {
	if !isGlob(ns) {
		return []string{ns}, ""
	}
	if len(known) == 0 {
		return nil, fmt.Sprintf("source namespace %q is a pattern, but %s: pass the cluster's namespaces to expand it, or list the namespaces in the baseline", ns, what)
	}
	var out []string
	for _, k := range known {
		if globMatch(ns, k) {
			out = append(out, k)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Sprintf("source namespace pattern %q matches none of the %d namespaces given", ns, len(known))
	}
	return out, ""
}

func header(format string, meta Meta, b *baseline.Baseline, unexpressed int) []string {
	src := meta.Baseline
	if src == "" {
		src = strings.Join(b.Files, ", ")
	}
	version := meta.Version
	if version == "" {
		version = "(unknown version)"
	}
	lines := []string{
		fmt.Sprintf("%s generated by egress-tests-ext %s from baseline %s.", format, version, src),
		"Do not edit: change the baseline and render again (egress-tests-ext matrix render).",
	}
	if unexpressed > 0 {
		lines = append(lines, fmt.Sprintf("%d baseline entries could not be expressed in this format and are NOT allowed here: see the render report.", unexpressed))
	}
	return lines
}

// ParseNetworks builds Networks from command-line CIDR lists (e.g. repeated --pod-cidr flags,
// or the values of the cluster's Network config), naming the bad value on error.
func ParseNetworks(pod, service, machine []string) (Networks, error) {
	var n Networks
	for _, l := range []struct {
		name string
		in   []string
		out  *[]netip.Prefix
	}{{"pod", pod, &n.Pod}, {"service", service, &n.Service}, {"machine", machine, &n.Machine}} {
		for _, s := range l.in {
			// The rule of baseline files: a block with host bits set is refused, not masked.
			p, err := baseline.ParseCIDR(strings.TrimSpace(s))
			if err != nil {
				return Networks{}, fmt.Errorf("%s network: %w", l.name, err)
			}
			*l.out = append(*l.out, p)
		}
	}
	return n, n.validate()
}

// Resolver returns an Options.Resolve function backed by r (nil: the system resolver), each
// lookup bounded by timeout. Use it only when the user asks for hostname resolution: the
// addresses are those of the moment and place of rendering.
func Resolver(r *net.Resolver, timeout time.Duration) func(host string) ([]netip.Addr, error) {
	if r == nil {
		r = net.DefaultResolver
	}
	return func(host string) ([]netip.Addr, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		addrs, err := r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("look up %s: %w", host, err)
		}
		out := make([]netip.Addr, 0, len(addrs))
		for _, a := range addrs {
			out = append(out, a.Unmap())
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
		return out, nil
	}
}
