package firewall

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// EgressFirewall is k8s.ovn.org/v1 EgressFirewall, as OpenShift's CRD defines it.
type EgressFirewall struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   ObjectMeta         `json:"metadata"`
	Spec       EgressFirewallSpec `json:"spec"`
}

// ObjectMeta is the part of Kubernetes object metadata generated objects set.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// EgressFirewallSpec holds the ordered rules: the first match decides.
type EgressFirewallSpec struct {
	Egress []EgressFirewallRule `json:"egress"`
}

// EgressFirewallRule allows or denies traffic to one peer, optionally on some ports only.
type EgressFirewallRule struct {
	Type  string               `json:"type"` // Allow or Deny
	To    EgressFirewallPeer   `json:"to"`
	Ports []EgressFirewallPort `json:"ports,omitempty"`
}

// EgressFirewallPeer is exactly one of a CIDR or a DNS name (a leading "*." matches one label).
type EgressFirewallPeer struct {
	CIDRSelector string `json:"cidrSelector,omitempty"`
	DNSName      string `json:"dnsName,omitempty"`
}

// EgressFirewallPort is one protocol + port (no ranges in this API).
type EgressFirewallPort struct {
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
}

// MaxEgressFirewallRules is the rule limit OpenShift documents for one EgressFirewall
// ("a maximum of 8,000 rules can be defined per project"). The shipped CRD sets no maxItems,
// so an oversized object would be accepted and then fail in OVN: check it here.
const MaxEgressFirewallRules = 8000

// dnsNamePattern is the dnsName pattern of OpenShift's EgressFirewall CRD: a name, or "*."
// followed by a name, where "*" matches exactly one label.
var dnsNamePattern = regexp.MustCompile(`^(\*\.)?([A-Za-z0-9-]+\.)*[A-Za-z0-9-]+\.?$`)

// Annotation keys on generated objects.
const (
	AnnotationBaseline = "egress-tests-ext.openshift.io/baseline"
	AnnotationVersion  = "egress-tests-ext.openshift.io/version"
)

// EgressFirewalls builds one EgressFirewall named "default" (OVN allows one per namespace and
// requires that name) for every namespace with pod-source entries: allow the cluster networks,
// allow each documented destination on its ports, deny 0.0.0.0/0 and ::/0. An EgressFirewall
// applies to the whole namespace, so a workload's entry allows every pod of its namespace.
func EgressFirewalls(b *baseline.Baseline, opts Options) ([]EgressFirewall, []Unexpressed, error) {
	if err := opts.Networks.validate(); err != nil {
		return nil, nil, err
	}
	un := &collector{format: FormatEgressFirewall}
	skip := func(e baseline.Entry, reason string) { un.add(NotExpressed, e, "%s", reason) }
	type dest struct {
		cidr netip.Prefix // valid when the destination is a CIDR
		dns  string
	}
	perNS := map[string]map[dest]map[EgressFirewallPort]bool{}
	for _, e := range b.Entries {
		if e.Source.NodeRole != "" || e.Source.Namespace == "" {
			un.add(OutOfScope, e, "node or host-network source: EgressFirewall applies to pods only; see the nftables output")
			continue
		}
		namespaces, why := namespaceTargets(e.Source.Namespace, opts.Namespaces, "an EgressFirewall belongs to exactly one namespace")
		if why != "" {
			skip(e, why)
			continue
		}
		svc, err := parseService(e)
		if err != nil {
			skip(e, err.Error())
			continue
		}
		var d dest
		kind, cidr, why := classifyDestination(e.Destination)
		switch kind {
		case destCovered:
			continue // allowed by the cluster-network rules
		case destNone:
			skip(e, why)
			continue
		case destCIDR:
			d.cidr = cidr
		case destHost:
			if a, err := netip.ParseAddr(e.Destination.Host); err == nil {
				d.cidr = netip.PrefixFrom(a, a.BitLen())
			} else if !dnsNamePattern.MatchString(e.Destination.Host) {
				skip(e, fmt.Sprintf("hostname %q is not a dnsName EgressFirewall accepts (a name, or \"*.\" followed by a name)", e.Destination.Host))
				continue
			} else {
				d.dns = e.Destination.Host
			}
		}
		if svc.proto == protoICMP {
			skip(e, "EgressFirewall ports name TCP, UDP or SCTP only; a rule without ports would allow every protocol to the destination")
			continue
		}
		if svc.ports.min != svc.ports.max {
			skip(e, fmt.Sprintf("EgressFirewall ports are single ports; the range %s would need %d port entries: document the ports used, or allow the destination on all ports by hand", svc.ports, svc.ports.max-svc.ports.min+1))
			continue
		}
		if d.dns != "" && strings.HasPrefix(d.dns, "*.") {
			// Still emitted: the baseline glob may cover deeper names than OVN's one-label "*".
			un.add(Partial, e, "%q matches only one label in OVN (a.%s, not a.b.%s); deeper names are denied", d.dns, d.dns[2:], d.dns[2:])
		}
		port := EgressFirewallPort{Protocol: svc.proto, Port: int32(svc.ports.min)}
		for _, ns := range namespaces {
			if perNS[ns] == nil {
				perNS[ns] = map[dest]map[EgressFirewallPort]bool{}
			}
			if perNS[ns][d] == nil {
				perNS[ns][d] = map[EgressFirewallPort]bool{}
			}
			perNS[ns][d][port] = true
		}
	}

	var cluster []EgressFirewallRule
	for _, p := range opts.Networks.All() {
		cluster = append(cluster, EgressFirewallRule{Type: "Allow", To: EgressFirewallPeer{CIDRSelector: p.String()}})
	}
	deny := []EgressFirewallRule{
		{Type: "Deny", To: EgressFirewallPeer{CIDRSelector: "0.0.0.0/0"}},
		{Type: "Deny", To: EgressFirewallPeer{CIDRSelector: "::/0"}},
	}
	namespaces := make([]string, 0, len(perNS))
	for ns := range perNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	var out []EgressFirewall
	for _, ns := range namespaces {
		dests := make([]dest, 0, len(perNS[ns]))
		for d := range perNS[ns] {
			dests = append(dests, d)
		}
		sort.Slice(dests, func(i, j int) bool {
			a, b := dests[i], dests[j]
			if a.cidr.IsValid() != b.cidr.IsValid() {
				return a.cidr.IsValid() // CIDRs first
			}
			if a.cidr.IsValid() {
				return prefixLess(a.cidr, b.cidr)
			}
			return a.dns < b.dns
		})
		rules := append([]EgressFirewallRule{}, cluster...)
		for _, d := range dests {
			ports := make([]EgressFirewallPort, 0, len(perNS[ns][d]))
			for p := range perNS[ns][d] {
				ports = append(ports, p)
			}
			sort.Slice(ports, func(i, j int) bool {
				if ports[i].Protocol != ports[j].Protocol {
					return ports[i].Protocol < ports[j].Protocol
				}
				return ports[i].Port < ports[j].Port
			})
			to := EgressFirewallPeer{DNSName: d.dns}
			if d.cidr.IsValid() {
				to = EgressFirewallPeer{CIDRSelector: d.cidr.String()}
			}
			rules = append(rules, EgressFirewallRule{Type: "Allow", To: to, Ports: ports})
		}
		rules = append(rules, deny...)
		if len(rules) > MaxEgressFirewallRules {
			return nil, un.list, fmt.Errorf("namespace %s needs %d EgressFirewall rules, over OVN's limit of %d per namespace: merge destinations into CIDRs in the baseline", ns, len(rules), MaxEgressFirewallRules)
		}
		out = append(out, EgressFirewall{
			APIVersion: "k8s.ovn.org/v1",
			Kind:       "EgressFirewall",
			Metadata:   ObjectMeta{Name: "default", Namespace: ns, Annotations: annotations(opts.Meta, b)},
			Spec:       EgressFirewallSpec{Egress: rules},
		})
	}
	return out, un.list, nil
}

func annotations(meta Meta, b *baseline.Baseline) map[string]string {
	src := meta.Baseline
	if src == "" {
		src = strings.Join(b.Files, ",")
	}
	a := map[string]string{AnnotationBaseline: src}
	if meta.Version != "" {
		a[AnnotationVersion] = meta.Version
	}
	return a
}

func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}
