package baseline

import (
	"fmt"
	"net/netip"
	"path"
	"sort"
	"strings"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// Result is the observed matrix compared with the baseline.
type Result struct {
	// Undocumented are observed entries no baseline entry covers: the failures.
	Undocumented []matrix.Entry `json:"undocumented"`
	// Unobserved are baseline entries no observed entry matched, optional ones excluded.
	Unobserved []Entry `json:"unobserved"`
	// Matched pairs each covered observed entry with the most specific baseline entry.
	Matched []Match `json:"matched"`
	// Stats of the observed matrix, so that a report shows what did not become an entry.
	Stats matrix.Stats `json:"stats"`
	// Undecided are the matrix's egress flows whose server port could not be decided: they
	// are in no entry, so no baseline entry can document them; a caller must not call a run
	// with undecided flows clean without saying so.
	Undecided         []matrix.Undecided `json:"undecided,omitempty"`
	UndecidedDistinct int                `json:"undecidedDistinct,omitempty"`
	// DecodeErrors are the first records the decoder could not read.
	DecodeErrors []string `json:"decodeErrors,omitempty"`
}

// Match is an observed entry and the baseline entry that documents it.
type Match struct {
	Observed matrix.Entry `json:"observed"`
	By       Entry        `json:"by"`
	// How says how the destination, source and port matched, e.g.
	// `host *.quay.io covers cdn01.quay.io (named by hostname); node role * covers worker; TCP 443`.
	How string `json:"how"`
}

// DNSNameMax is the length NetObserv truncates DnsName to: a name of exactly this length from
// a DNS flow may be the start of a longer hostname.
const DNSNameMax = 32

// compiled is a baseline entry prepared for matching.
type compiled struct {
	e      *Entry
	order  int
	ports  PortRange
	host   string // exact host
	suffix string // ".quay.io" for *.quay.io
	prefix netip.Prefix
	label  string
	src    int // source specificity
}

// score orders the candidate matches of one observed entry: most specific destination
// (exact host > wildcard host, longer suffix first > CIDR, longer prefix first > subnet
// label), then most specific source (exact > glob > absent), then narrowest port range,
// then the earliest entry.
type score struct {
	dst, src, portWidth, order int
}

func (a score) better(b score) bool {
	if a.dst != b.dst {
		return a.dst > b.dst
	}
	if a.src != b.src {
		return a.src > b.src
	}
	if a.portWidth != b.portWidth {
		return a.portWidth < b.portWidth
	}
	return a.order < b.order
}

func compile(b *Baseline) map[string][]compiled {
	out := map[string][]compiled{}
	for i := range b.Entries {
		e := &b.Entries[i]
		ports, err := e.Ports()
		if err != nil || !validDestination(e.Destination) {
			continue // Load rejects these; a hand-built Baseline's invalid entries match nothing
		}
		c := compiled{e: e, order: i, ports: ports, label: e.Destination.SubnetLabel}
		switch {
		case strings.HasPrefix(e.Destination.Host, "*."):
			c.suffix = e.Destination.Host[1:]
		case e.Destination.Host != "":
			c.host = e.Destination.Host
		case e.Destination.CIDR != "":
			c.prefix, _ = e.Destination.Prefix()
		}
		c.src = sourceSpecificity(e.Source)
		out[e.Protocol] = append(out[e.Protocol], c)
	}
	return out
}

func globScore(p string) int {
	switch {
	case p == "" || p == "*":
		return 0
	case isGlob(p):
		return 1
	}
	return 2
}

func sourceSpecificity(s Source) int {
	if s.NodeRole != "" {
		return globScore(s.NodeRole) * 100
	}
	return globScore(s.Namespace)*100 + globScore(s.Workload)*10 + globScore(s.Kind)
}

func globMatch(pattern, s string) bool {
	if !isGlob(pattern) {
		return pattern == s
	}
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// matchSource reports whether a baseline source covers an observed one.
func matchSource(s Source, o *matrix.Entry) bool {
	if s.NodeRole != "" {
		return o.SrcKind == matrix.KindNode && globMatch(s.NodeRole, o.SrcWorkload)
	}
	return o.SrcKind != matrix.KindNode && globMatch(s.Namespace, o.SrcNamespace) &&
		(s.Workload == "" || globMatch(s.Workload, o.SrcWorkload)) &&
		(s.Kind == "" || globMatch(s.Kind, o.SrcKind))
}

// describeSource says how a matching baseline source covers an observed one.
func describeSource(s Source, o *matrix.Entry) string {
	if s.NodeRole != "" {
		if s.NodeRole == o.SrcWorkload {
			return "node role " + s.NodeRole
		}
		return fmt.Sprintf("node role %s covers %s", s.NodeRole, o.SrcWorkload)
	}
	if !isGlob(s.Namespace) && !isGlob(s.Workload) && !isGlob(s.Kind) && s.Workload != "" {
		// Every field given is literal and equal: say so once rather than repeat it.
		return "source " + s.String()
	}
	return fmt.Sprintf("source %s covers %s/%s (%s)", s, o.SrcNamespace, o.SrcWorkload, o.SrcKind)
}

// observedHost is the hostname of an observed entry, if it has one.
func observedHost(o *matrix.Entry) string {
	if o.DstNamedBy != matrix.NamedByHostname && o.DstNamedBy != matrix.NamedByDNSFlow {
		return ""
	}
	return normalizeHost(o.DstName)
}

// observedHosts are all the hostnames of an observed entry: DstName and, when several names
// resolved to its addresses, every one of them (matrix.Entry.DstNames).
func observedHosts(o *matrix.Entry) []string {
	h := observedHost(o)
	if h == "" {
		return nil
	}
	out := []string{h}
	for _, n := range o.DstNames {
		if n = normalizeHost(n); n != h && n != "" {
			out = append(out, n)
		}
	}
	return out
}

func normalizeHost(h string) string { return strings.TrimSuffix(strings.ToLower(h), ".") }

// addresses returns the observed destination addresses.
func addresses(o *matrix.Entry) []netip.Addr {
	list := o.DstAddresses
	if len(list) == 0 && o.DstAddress != "" {
		list = []string{o.DstAddress}
	}
	out := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil // an address we cannot read is covered by no CIDR
		}
		out = append(out, a.Unmap())
	}
	return out
}

// matchDestination returns the destination score, or ok false.
func (c *compiled) matchDestination(o *matrix.Entry, host string, addrs []netip.Addr) (int, bool) {
	switch {
	case c.host != "":
		if host != "" && (host == c.host || truncatedDNSName(o, host, c.host)) {
			return 4 << 16, true
		}
	case c.suffix != "":
		if host != "" && strings.HasSuffix(host, c.suffix) && len(host) > len(c.suffix) {
			return 3<<16 + len(c.suffix), true
		}
	case c.prefix.IsValid():
		if len(addrs) == 0 {
			return 0, false
		}
		for _, a := range addrs {
			if !c.prefix.Contains(a) {
				return 0, false
			}
		}
		return 2<<16 + c.prefix.Bits(), true
	case c.label != "":
		if o.DstSubnetLabel == c.label || (o.DstNamedBy == matrix.NamedBySubnetLabel && o.DstName == c.label) {
			return 1 << 16, true
		}
	}
	return 0, false
}

// alsoNamed says which other names shared the destination's addresses, so that a report shows
// that one address served several hosts (e.g. every *.apps route behind the ingress load
// balancer).
func alsoNamed(o *matrix.Entry, host string) string {
	var others []string
	for _, h := range observedHosts(o) {
		if h != host {
			others = append(others, h)
		}
	}
	if len(others) == 0 {
		return ""
	}
	return "; the address also resolved for " + strings.Join(others, ", ")
}

// truncatedDNSName: NetObserv truncates DnsName, so a full-length DNS-flow name may be the
// start of the host.
func truncatedDNSName(o *matrix.Entry, host, want string) bool {
	return o.DstNamedBy == matrix.NamedByDNSFlow && len(host) == DNSNameMax && strings.HasPrefix(want, host)
}

// describeDestination says how a matching destination covers the observed one.
func (c *compiled) describeDestination(o *matrix.Entry, host string, addrs []netip.Addr) string {
	switch {
	case c.host != "" && host != c.host:
		return fmt.Sprintf("host %s starts with %s (named by dns-flow, truncated to %d bytes)", c.host, host, DNSNameMax)
	case c.host != "":
		return fmt.Sprintf("host %s (named by %s%s)", c.host, o.DstNamedBy, alsoNamed(o, host))
	case c.suffix != "":
		return fmt.Sprintf("host *%s covers %s (named by %s%s)", c.suffix, host, o.DstNamedBy, alsoNamed(o, host))
	case c.prefix.IsValid():
		if len(addrs) > 1 {
			return fmt.Sprintf("cidr %s contains all %d addresses of %s", c.prefix, len(addrs), o.DstName)
		}
		return fmt.Sprintf("cidr %s contains %s", c.prefix, addrs[0])
	}
	return "subnet label " + c.label
}

// Diff compares an observed matrix with a baseline. Each observed entry is matched by the most
// specific baseline entry that covers its source, destination, protocol and port; a baseline
// entry that is nobody's most specific match counts as unobserved (unless optional).
func Diff(m *matrix.Matrix, b *Baseline) *Result {
	r := &Result{Undocumented: []matrix.Entry{}, Unobserved: []Entry{}, Matched: []Match{}}
	if m != nil {
		r.Stats = m.Stats
		r.Undecided, r.UndecidedDistinct, r.DecodeErrors = m.Undecided, m.UndecidedDistinct, m.DecodeErrors
	}
	if b == nil {
		b = &Baseline{}
	}
	byProto := compile(b)
	used := make([]bool, len(b.Entries))
	if m != nil {
		for i := range m.Entries {
			o := &m.Entries[i]
			best, how, ok := bestMatch(byProto[o.Protocol], o)
			if !ok {
				r.Undocumented = append(r.Undocumented, *o)
				continue
			}
			used[best.order] = true
			r.Matched = append(r.Matched, Match{Observed: *o, By: *best.e, How: how})
		}
	}
	for i, e := range b.Entries {
		if !used[i] && !e.Optional {
			r.Unobserved = append(r.Unobserved, e)
		}
	}
	sort.SliceStable(r.Undocumented, func(i, j int) bool { return ObservedLess(&r.Undocumented[i], &r.Undocumented[j]) })
	sort.SliceStable(r.Matched, func(i, j int) bool { return ObservedLess(&r.Matched[i].Observed, &r.Matched[j].Observed) })
	return r
}

func bestMatch(cands []compiled, o *matrix.Entry) (*compiled, string, bool) {
	hosts := observedHosts(o)
	var addrs []netip.Addr
	addrsDone := false
	var best *compiled
	var bestScore score
	var bestHost string
	for i := range cands {
		c := &cands[i]
		if !c.ports.Contains(o.Port) || !matchSource(c.e.Source, o) { // ICMP: {0, 0} contains port 0
			continue
		}
		if c.prefix.IsValid() && !addrsDone {
			addrs, addrsDone = addresses(o), true
		}
		// Any of the names resolved to the destination may match; the best one counts.
		d, host, ok := 0, "", false
		if c.host != "" || c.suffix != "" {
			for _, h := range hosts {
				if hd, hok := c.matchDestination(o, h, addrs); hok && (!ok || hd > d) {
					d, host, ok = hd, h, true
				}
			}
		} else {
			d, ok = c.matchDestination(o, "", addrs)
		}
		if !ok {
			continue
		}
		s := score{dst: d, src: c.src, portWidth: c.ports.Max - c.ports.Min, order: c.order}
		if best == nil || s.better(bestScore) {
			best, bestScore, bestHost = c, s, host
		}
	}
	if best == nil {
		return nil, "", false
	}
	port := best.e.Protocol
	if best.e.Protocol != matrix.ICMP {
		port = fmt.Sprintf("%s %d", best.e.Protocol, o.Port)
		if best.ports.Min != best.ports.Max {
			port += " in " + best.ports.String()
		}
	}
	return best, best.describeDestination(o, bestHost, addrs) + "; " + describeSource(best.e.Source, o) + "; " + port, true
}

// ObservedLess orders observed entries as the matrix does (matrix.EntryLess), so that
// reports are deterministic and read like the matrix.
func ObservedLess(a, b *matrix.Entry) bool { return matrix.EntryLess(a, b) }
