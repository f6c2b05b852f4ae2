package firewall

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// AdminNetworkPolicy is policy.networking.k8s.io/v1alpha1 AdminNetworkPolicy (egress part),
// the version OpenShift ships: egress peers are namespaces, pods, nodes and networks (no
// domainNames), at most 100 rules, 100 peers per rule, 25 networks per peer, 100 ports.
type AdminNetworkPolicy struct {
	APIVersion string                 `json:"apiVersion"`
	Kind       string                 `json:"kind"`
	Metadata   ObjectMeta             `json:"metadata"`
	Spec       AdminNetworkPolicySpec `json:"spec"`
}

// AdminNetworkPolicySpec selects the subject and lists its egress rules in order.
type AdminNetworkPolicySpec struct {
	Priority int32       `json:"priority"`
	Subject  ANPSubject  `json:"subject"`
	Egress   []ANPEgress `json:"egress,omitempty"`
}

// ANPSubject selects the pods the policy applies to.
type ANPSubject struct {
	Namespaces *LabelSelector `json:"namespaces,omitempty"`
}

// LabelSelector is metav1.LabelSelector's wire form; empty selects everything.
type LabelSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// ANPEgress is one ordered egress rule.
type ANPEgress struct {
	Name   string    `json:"name,omitempty"`
	Action string    `json:"action"` // Allow, Deny, Pass
	To     []ANPPeer `json:"to"`
	Ports  []ANPPort `json:"ports,omitempty"`
}

// ANPPeer is exactly one kind of peer (the generator uses namespaces and networks, which
// both the OpenShift and the upstream standard CRDs have).
type ANPPeer struct {
	Namespaces *LabelSelector `json:"namespaces,omitempty"`
	Networks   []string       `json:"networks,omitempty"`
}

// ANPPort is exactly one of a port number or a port range.
type ANPPort struct {
	PortNumber *ANPPortNumber `json:"portNumber,omitempty"`
	PortRange  *ANPPortRange  `json:"portRange,omitempty"`
}

// ANPPortNumber is one protocol + port.
type ANPPortNumber struct {
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
}

// ANPPortRange is an inclusive range on one protocol.
type ANPPortRange struct {
	Protocol string `json:"protocol"`
	Start    int32  `json:"start"`
	End      int32  `json:"end"`
}

// Limits of the AdminNetworkPolicy API (maxItems in its CRD).
const (
	anpMaxRules    = 100
	anpMaxPeers    = 100
	anpMaxNetworks = 25
	anpMaxPorts    = 100
	anpMaxName     = 100
)

// namespaceNameLabel is set by Kubernetes on every namespace to its name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// AdminNetworkPolicies builds one AdminNetworkPolicy per namespace with pod-source entries.
// Rules, in order: Pass to the cluster's own pods and networks (in-cluster traffic
// stays under the namespace's NetworkPolicies rather than being force-allowed), Allow each
// documented CIDR on its ports (CIDRs with the same ports share a rule), Deny 0.0.0.0/0 and
// ::/0. Hostnames cannot be expressed: OpenShift's v1alpha1 has no domainNames peer.
func AdminNetworkPolicies(b *baseline.Baseline, opts Options) ([]AdminNetworkPolicy, []Unexpressed, error) {
	if err := opts.Networks.validate(); err != nil {
		return nil, nil, err
	}
	priority := opts.ANPPriority
	if priority == 0 {
		priority = DefaultANPPriority
	}
	if priority < 0 || priority > 1000 {
		return nil, nil, fmt.Errorf("AdminNetworkPolicy priority %d out of range 0-1000 (OVN-Kubernetes supports 0-99)", priority)
	}
	un := &collector{format: FormatAdminNetworkPolicy}
	skip := func(e baseline.Entry, reason string) { un.add(NotExpressed, e, "%s", reason) }
	perNS := map[string]map[netip.Prefix]map[service]bool{}
	for _, e := range b.Entries {
		if e.Source.NodeRole != "" || e.Source.Namespace == "" {
			un.add(OutOfScope, e, "node or host-network source: AdminNetworkPolicy subjects are pods; see the nftables output")
			continue
		}
		namespaces, why := namespaceTargets(e.Source.Namespace, opts.Namespaces, "each generated AdminNetworkPolicy selects exactly one namespace")
		if why != "" {
			skip(e, why)
			continue
		}
		svc, err := parseService(e)
		if err != nil {
			skip(e, err.Error())
			continue
		}
		var p netip.Prefix
		kind, cidr, why := classifyDestination(e.Destination)
		switch kind {
		case destCovered:
			continue // passed by the cluster-network rule
		case destNone:
			skip(e, why)
			continue
		case destCIDR:
			p = cidr
		case destHost:
			a, err := netip.ParseAddr(e.Destination.Host)
			if err != nil {
				skip(e, fmt.Sprintf("hostname %q: OpenShift's AdminNetworkPolicy (v1alpha1) has no domainNames peer; use the EgressFirewall output for this namespace, or document the CIDR", e.Destination.Host))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() {
			skip(e, "IPv4-mapped IPv6 networks are rejected by the AdminNetworkPolicy CRD: document the IPv4 CIDR")
			continue
		}
		if svc.proto == protoICMP {
			skip(e, "AdminNetworkPolicy ports name TCP, UDP or SCTP only; a rule without ports would allow every protocol to the destination")
			continue
		}
		for _, ns := range namespaces {
			if perNS[ns] == nil {
				perNS[ns] = map[netip.Prefix]map[service]bool{}
			}
			if perNS[ns][p] == nil {
				perNS[ns][p] = map[service]bool{}
			}
			perNS[ns][p][svc] = true
		}
	}

	clusterRule := ANPEgress{Name: "pass-cluster-networks", Action: "Pass",
		// No nodes peer: the machine network already holds the node IPs, and the upstream
		// standard channel CRD has no nodes peer, so the policy stays valid on both.
		To: append([]ANPPeer{{Namespaces: &LabelSelector{}}}, networkPeers(opts.Networks.All())...)}
	denyRule := ANPEgress{Name: "deny-undocumented-egress", Action: "Deny", To: []ANPPeer{{Networks: []string{"0.0.0.0/0", "::/0"}}}}
	if len(clusterRule.To) > anpMaxPeers {
		return nil, un.list, fmt.Errorf("%d cluster networks exceed what one AdminNetworkPolicy rule holds (%d peers of %d networks)", len(opts.Networks.All()), anpMaxPeers-1, anpMaxNetworks)
	}

	namespaces := make([]string, 0, len(perNS))
	for ns := range perNS {
		namespaces = append(namespaces, ns)
	}
	sort.Strings(namespaces)
	var out []AdminNetworkPolicy
	for _, ns := range namespaces {
		// Group destinations by their exact service set, so one rule carries every CIDR
		// allowed on the same ports.
		groups := map[string][]netip.Prefix{}
		groupSvcs := map[string][]service{}
		for p, set := range perNS[ns] {
			svcs := make([]service, 0, len(set))
			for s := range set {
				svcs = append(svcs, s)
			}
			sort.Slice(svcs, func(i, j int) bool { return svcs[i].less(svcs[j]) })
			key := serviceKey(svcs)
			groups[key] = append(groups[key], p)
			groupSvcs[key] = svcs
		}
		keys := make([]string, 0, len(groups))
		for k := range groups {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		rules := []ANPEgress{clusterRule}
		for _, k := range keys {
			svcs := groupSvcs[k]
			peers := networkPeers(sortPrefixes(groups[k]))
			ports := make([]ANPPort, 0, len(svcs))
			for _, s := range svcs {
				if s.ports.min == s.ports.max {
					ports = append(ports, ANPPort{PortNumber: &ANPPortNumber{Protocol: s.proto, Port: int32(s.ports.min)}})
				} else {
					ports = append(ports, ANPPort{PortRange: &ANPPortRange{Protocol: s.proto, Start: int32(s.ports.min), End: int32(s.ports.max)}})
				}
			}
			if len(ports) > anpMaxPorts {
				return nil, un.list, fmt.Errorf("namespace %s: %d ports on one destination group exceed the AdminNetworkPolicy limit of %d: use port ranges in the baseline", ns, len(ports), anpMaxPorts)
			}
			name := "allow " + k
			if len(name) > anpMaxName {
				name = fmt.Sprintf("allow-group-%d", len(rules))
			}
			// Over 100 peers (2,500 CIDRs) the group continues in another rule with the same ports.
			for len(peers) > 0 {
				n := min(len(peers), anpMaxPeers)
				rules = append(rules, ANPEgress{Name: name, Action: "Allow", To: peers[:n], Ports: ports})
				peers = peers[n:]
			}
		}
		rules = append(rules, denyRule)
		if len(rules) > anpMaxRules {
			return nil, un.list, fmt.Errorf("namespace %s needs %d AdminNetworkPolicy egress rules, over the API limit of %d: give destinations common ports or merge CIDRs in the baseline", ns, len(rules), anpMaxRules)
		}
		out = append(out, AdminNetworkPolicy{
			APIVersion: "policy.networking.k8s.io/v1alpha1",
			Kind:       "AdminNetworkPolicy",
			Metadata:   ObjectMeta{Name: anpName(ns), Annotations: annotations(opts.Meta, b)},
			Spec: AdminNetworkPolicySpec{
				Priority: int32(priority),
				Subject:  ANPSubject{Namespaces: &LabelSelector{MatchLabels: map[string]string{namespaceNameLabel: ns}}},
				Egress:   rules,
			},
		})
	}
	return out, un.list, nil
}

// anpName is a DNS-subdomain name unique per namespace (namespace names are DNS labels).
func anpName(ns string) string { return "egress-" + ns }

func serviceKey(svcs []service) string {
	parts := make([]string, len(svcs))
	for i, s := range svcs {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

// networkPeers splits prefixes into peers of at most 25 networks each (the CRD's maxItems).
func networkPeers(ps []netip.Prefix) []ANPPeer {
	var peers []ANPPeer
	for len(ps) > 0 {
		n := min(len(ps), anpMaxNetworks)
		nets := make([]string, n)
		for i, p := range ps[:n] {
			nets[i] = p.String()
		}
		peers = append(peers, ANPPeer{Networks: nets})
		ps = ps[n:]
	}
	return peers
}
