package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// Names in the generated ruleset.
const (
	NFTTable    = "egress_tests_ext"
	nftChain    = "output"
	nftLogLabel = "egress-tests-ext drop: "
)

// Node roles as MachineConfigPools name them.
const (
	RoleMaster = "master"
	RoleWorker = "worker"
)

// baseline node roles -> MachineConfigPool roles.
var poolRoles = map[string][]string{
	"control-plane": {RoleMaster},
	"master":        {RoleMaster},
	"worker":        {RoleWorker},
	"node":          {RoleMaster, RoleWorker},
	"*":             {RoleMaster, RoleWorker},
}

// RoleRuleset is the nftables ruleset for the nodes of one MachineConfigPool role.
type RoleRuleset struct {
	Role    string
	Ruleset *Ruleset
}

type nftKey struct {
	svc  service
	ipv6 bool
}

type nftElem struct {
	prefix  netip.Prefix
	comment map[string]bool
}

// NFTables builds, per node role, an output-hook ruleset for node and host-network egress:
// accept established/related and loopback, accept the cluster networks, accept each
// documented destination (one named set per protocol, port and address family), log and
// drop the rest. Hostnames are matched only when opts.Resolve is set, as the addresses they
// resolved to at generation time (marked in the element comments).
func NFTables(b *baseline.Baseline, opts Options) ([]RoleRuleset, []Unexpressed, error) {
	if err := opts.Networks.validate(); err != nil {
		return nil, nil, err
	}
	un := &collector{format: FormatNFTables}
	skip := func(e baseline.Entry, reason string) { un.add(NotExpressed, e, "%s", reason) }
	perRole := map[string]map[nftKey]map[netip.Prefix]*nftElem{}
	resolved := map[string][]netip.Addr{}
	for _, e := range b.Entries {
		if e.Source.NodeRole == "" {
			un.add(OutOfScope, e, "pod source: pod egress does not pass the node's output hook on OVN-Kubernetes; see the EgressFirewall or AdminNetworkPolicy output")
			continue
		}
		roles, ok := poolRoles[e.Source.NodeRole]
		if !ok {
			skip(e, fmt.Sprintf("node role %q has no MachineConfigPool mapping (want control-plane, worker, node or *)", e.Source.NodeRole))
			continue
		}
		svc, err := parseService(e)
		if err != nil {
			skip(e, err.Error())
			continue
		}
		type addr struct {
			p       netip.Prefix
			comment string
		}
		var addrs []addr
		kind, cidr, why := classifyDestination(e.Destination)
		switch kind {
		case destCovered:
			continue // accepted by the cluster-network rules
		case destNone:
			skip(e, why)
			continue
		case destCIDR:
			if cidr.Addr().Is4In6() {
				skip(e, "IPv4-mapped IPv6 CIDRs never match on the wire: document the IPv4 CIDR")
				continue
			}
			addrs = append(addrs, addr{cidr, e.Component})
		case destHost:
			host := e.Destination.Host
			if a, err := netip.ParseAddr(host); err == nil {
				a = a.Unmap()
				addrs = append(addrs, addr{netip.PrefixFrom(a, a.BitLen()), e.Component})
				break
			}
			if strings.ContainsAny(host, "*?[") {
				skip(e, fmt.Sprintf("wildcard hostname %q cannot be resolved to addresses: document its CIDRs, or filter by name in a proxy", host))
				continue
			}
			if opts.Resolve == nil {
				skip(e, fmt.Sprintf("hostname %q: nftables matches addresses; render with hostname resolution (addresses resolved at generation time can change), or document the CIDRs", host))
				continue
			}
			ips, seen := resolved[host]
			if !seen {
				ips, err = opts.Resolve(host)
				if err != nil {
					return nil, un.list, fmt.Errorf("resolve %s for the nftables output: %w", host, err)
				}
				if len(ips) == 0 {
					return nil, un.list, fmt.Errorf("resolve %s for the nftables output: no addresses", host)
				}
				resolved[host] = ips
			}
			for _, a := range ips {
				a = a.Unmap()
				addrs = append(addrs, addr{netip.PrefixFrom(a, a.BitLen()), "resolved from " + host + " at generation time"})
			}
		}
		for _, role := range roles {
			if perRole[role] == nil {
				perRole[role] = map[nftKey]map[netip.Prefix]*nftElem{}
			}
			for _, a := range addrs {
				p := a.p.Masked()
				k := nftKey{svc: svc, ipv6: p.Addr().Is6()}
				if perRole[role][k] == nil {
					perRole[role][k] = map[netip.Prefix]*nftElem{}
				}
				el := perRole[role][k][p]
				if el == nil {
					el = &nftElem{prefix: p, comment: map[string]bool{}}
					perRole[role][k][p] = el
				}
				el.comment[a.comment] = true
			}
		}
	}

	roles := make([]string, 0, len(perRole))
	for r := range perRole {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	var out []RoleRuleset
	for _, role := range roles {
		rs := &Ruleset{Comments: append(header(FormatNFTables, opts.Meta, b, notExpressedForRole(un.list, role)),
			fmt.Sprintf("Node role %s: node and host-network egress, output hook. Load with: nft -f FILE", role))}
		out = append(out, RoleRuleset{Role: role, Ruleset: rs})
		table := &Table{Family: "inet", Name: NFTTable}
		rs.Tables = []*Table{table}
		chain := &Chain{Name: nftChain, Type: "filter", Hook: "output", Priority: 0, Policy: "accept"}
		chain.Rules = append(chain.Rules,
			Rule{Stmts: []Stmt{CTState{States: []string{"established", "related"}}, Verdict("accept")}},
			Rule{Stmts: []Stmt{OIFName{Name: "lo"}, Verdict("accept")}},
			// IPv6 does not work without neighbour discovery, which is not egress.
			Rule{Stmts: []Stmt{ICMPv6Type{Types: []string{"nd-router-solicit", "nd-neighbor-solicit", "nd-neighbor-advert", "mld2-listener-report"}}, Verdict("accept")}},
		)
		var v4, v6 []SetElement
		for _, p := range opts.Networks.All() {
			if p.Addr().Is4() {
				v4 = append(v4, SetElement{Prefix: p})
			} else {
				v6 = append(v6, SetElement{Prefix: p})
			}
		}
		addSet := func(name string, ipv6 bool, comment string, elems []SetElement) {
			typ := "ipv4_addr"
			if ipv6 {
				typ = "ipv6_addr"
			}
			table.Sets = append(table.Sets, &Set{Name: name, Type: typ, Interval: true, Comment: comment, Elements: removeCovered(elems)})
		}
		if len(v4) > 0 {
			addSet("cluster_v4", false, "cluster pod, service, machine and internal networks", v4)
			chain.Rules = append(chain.Rules, Rule{Stmts: []Stmt{DAddrSet{Set: "cluster_v4"}, Verdict("accept")}})
		}
		if len(v6) > 0 {
			addSet("cluster_v6", true, "cluster pod, service, machine and internal networks", v6)
			chain.Rules = append(chain.Rules, Rule{Stmts: []Stmt{DAddrSet{IPv6: true, Set: "cluster_v6"}, Verdict("accept")}})
		}

		keys := make([]nftKey, 0, len(perRole[role]))
		for k := range perRole[role] {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i].svc != keys[j].svc {
				return keys[i].svc.less(keys[j].svc)
			}
			return !keys[i].ipv6 && keys[j].ipv6
		})
		for _, k := range keys {
			elems := make([]SetElement, 0, len(perRole[role][k]))
			for _, el := range perRole[role][k] {
				cs := make([]string, 0, len(el.comment))
				for c := range el.comment {
					cs = append(cs, c)
				}
				sort.Strings(cs)
				elems = append(elems, SetElement{Prefix: el.prefix, Comment: SafeComment(strings.Join(cs, "; "))})
			}
			sort.Slice(elems, func(i, j int) bool { return prefixLess(elems[i].Prefix, elems[j].Prefix) })
			name := setName(k)
			addSet(name, k.ipv6, "documented "+k.svc.String()+" destinations", elems)
			stmts := []Stmt{DAddrSet{IPv6: k.ipv6, Set: name}}
			switch {
			case k.svc.proto == protoICMP && k.ipv6:
				stmts = append(stmts, L4Proto{Proto: "ipv6-icmp"})
			case k.svc.proto == protoICMP:
				stmts = append(stmts, L4Proto{Proto: "icmp"})
			default:
				stmts = append(stmts, DPort{Proto: strings.ToLower(k.svc.proto), Min: k.svc.ports.min, Max: k.svc.ports.max})
			}
			chain.Rules = append(chain.Rules, Rule{Stmts: append(stmts, Verdict("accept"))})
		}
		chain.Rules = append(chain.Rules,
			// Rate-limited so a blocked retry loop cannot flood the journal; the drop below is not limited.
			Rule{Stmts: []Stmt{Limit{Rate: 10, Burst: 20}, Log{Prefix: nftLogLabel, Level: "warn"}}},
			Rule{Stmts: []Stmt{Counter{}, Verdict("drop")}, Comment: "undocumented egress"},
		)
		table.Chains = []*Chain{chain}
	}
	return out, un.list, nil
}

func setName(k nftKey) string {
	fam := "v4"
	if k.ipv6 {
		fam = "v6"
	}
	if k.svc.proto == protoICMP {
		return "icmp_" + fam
	}
	ports := fmt.Sprint(k.svc.ports.min)
	if k.svc.ports.max != k.svc.ports.min {
		ports += fmt.Sprintf("_%d", k.svc.ports.max)
	}
	return strings.ToLower(k.svc.proto) + "_" + ports + "_" + fam
}

// removeCovered drops elements inside another element of the same set: nft refuses
// overlapping intervals in a set without auto-merge, and they add nothing.
func removeCovered(elems []SetElement) []SetElement {
	byLen := append([]SetElement{}, elems...)
	sort.SliceStable(byLen, func(i, j int) bool { return byLen[i].Prefix.Bits() < byLen[j].Prefix.Bits() })
	var kept []SetElement
	for _, e := range byLen {
		covered := false
		for _, k := range kept {
			if k.Prefix.Bits() <= e.Prefix.Bits() && k.Prefix.Contains(e.Prefix.Addr()) {
				covered = true
				break
			}
		}
		if !covered {
			kept = append(kept, e)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return prefixLess(kept[i].Prefix, kept[j].Prefix) })
	return kept
}

// notExpressedForRole counts the node entries of a role (or of an unknown role, which may be
// any) that its ruleset leaves out.
func notExpressedForRole(list []Unexpressed, role string) int {
	n := 0
	for _, u := range list {
		if u.Kind != NotExpressed || u.Entry.Source.NodeRole == "" {
			continue
		}
		roles, known := poolRoles[u.Entry.Source.NodeRole]
		if !known || slices.Contains(roles, role) {
			n++
		}
	}
	return n
}
