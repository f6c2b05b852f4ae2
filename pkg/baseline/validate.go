package baseline

import (
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// Protocols a baseline entry may name. ICMPv6 is written ICMP, as in the matrix.
var Protocols = []string{matrix.TCP, matrix.UDP, matrix.SCTP, matrix.ICMP}

// In-cluster NetObserv subnet labels: a connection to them is not egress, so an entry naming
// one could never match anything.
var inClusterLabels = map[string]bool{"Pods": true, "Services": true}

// ParsePort parses a port ("443") or an inclusive range ("30000-32767") for protocol. ICMP
// takes no port and gets {0, 0}. Only the canonical spelling is accepted, so that two entries
// for the same ports are spelled the same and duplicates are found.
func ParsePort(protocol, s string) (PortRange, error) {
	if protocol == matrix.ICMP {
		if s != "" {
			return PortRange{}, fmt.Errorf("ICMP has no port")
		}
		return PortRange{}, nil
	}
	if s == "" {
		return PortRange{}, fmt.Errorf("port is missing")
	}
	if strings.HasPrefix(s, "-") {
		return PortRange{}, fmt.Errorf("port %q is negative: ports are 1-65535, ranges are written LOW-HIGH", s)
	}
	lo, hi, isRange := strings.Cut(s, "-")
	min, err := parsePortNumber(lo)
	if err != nil {
		return PortRange{}, err
	}
	if !isRange {
		return PortRange{min, min}, nil
	}
	max, err := parsePortNumber(hi)
	if err != nil {
		return PortRange{}, err
	}
	if min > max {
		return PortRange{}, fmt.Errorf("range %q is reversed (write %d-%d)", s, max, min)
	}
	if min == max {
		return PortRange{}, fmt.Errorf("range %q has one port (write %d)", s, min)
	}
	return PortRange{min, max}, nil
}

func parsePortNumber(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("a port number is missing (a negative port, or a range with no start or end?)")
	}
	n, err := strconv.Atoi(s)
	if err != nil || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d is outside 1-65535", n)
	}
	return n, nil
}

// Contains reports whether port is in the range.
func (r PortRange) Contains(port int) bool { return port >= r.Min && port <= r.Max }

// Overlaps reports whether two ranges share a port.
func (r PortRange) Overlaps(o PortRange) bool { return r.Min <= o.Max && o.Min <= r.Max }

func (r PortRange) String() string {
	switch {
	case r.Min == 0 && r.Max == 0:
		return ""
	case r.Min == r.Max:
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// Ports returns the entry's port range; the entry must have passed validation.
func (e Entry) Ports() (PortRange, error) { return ParsePort(e.Protocol, e.Port) }

// IsNodeSource reports whether the entry's source is a node role rather than pods.
func (s Source) IsNodeSource() bool { return s.NodeRole != "" }

// String is the source as written in reports: "node role worker" or "ns/workload (Kind)".
func (s Source) String() string {
	if s.NodeRole != "" {
		return "node role " + s.NodeRole
	}
	out := s.Namespace
	if s.Workload != "" {
		out += "/" + s.Workload
	}
	if s.Kind != "" {
		out += " (" + s.Kind + ")"
	}
	return out
}

// String is the destination as written in reports.
func (d Destination) String() string {
	switch {
	case d.Host != "":
		return d.Host
	case d.CIDR != "":
		return d.CIDR
	case d.SubnetLabel != "":
		return "subnet label " + d.SubnetLabel
	}
	return ""
}

func validateEntry(e *Entry, n *yaml.Node) []error {
	var errs []error
	add := func(line int, msg, fix string) {
		errs = append(errs, &Error{File: e.File, Line: line, Index: e.Index, Msg: msg, Fix: fix})
	}
	if strings.TrimSpace(e.Component) == "" {
		add(lineOf(n, "component"), "component is empty",
			"name the OpenShift component that owns the connection (its Jira component, e.g. \"Image Registry\")")
	} else if e.Component != strings.TrimSpace(e.Component) {
		add(lineOf(n, "component"), fmt.Sprintf("component %q has leading or trailing spaces", e.Component), "remove them")
	}
	if strings.TrimSpace(e.Reason) == "" {
		add(lineOf(n, "reason"), "reason is empty",
			"say why the component needs this connection and where that is documented")
	}

	// Source.
	s := e.Source
	sl := lineOf(n, "source")
	switch {
	case s == Source{}:
		add(sl, "source is empty",
			"set source.namespace (pods; workload and kind optional) or source.nodeRole (nodes and host-network pods)")
	case s.NodeRole != "" && (s.Namespace != "" || s.Workload != "" || s.Kind != ""):
		add(sl, "source has both nodeRole and namespace/workload/kind",
			"a node source has only nodeRole (host-network pods show as their node); write one entry per source")
	case s.NodeRole == "" && s.Namespace == "":
		add(sl, "source has workload or kind but no namespace", "set source.namespace (a glob such as \"openshift-*\" is allowed)")
	}
	for _, f := range []struct{ key, val string }{
		{"namespace", s.Namespace}, {"workload", s.Workload}, {"kind", s.Kind}, {"nodeRole", s.NodeRole},
	} {
		if f.val == "" {
			continue
		}
		if err := checkGlob(f.val); err != nil {
			add(lineOf(n, "source", f.key), fmt.Sprintf("source.%s %q: %v", f.key, f.val, err),
				"use a shell glob: * matches any run of characters, ? one, [a-z] a class; brackets must be closed")
		}
	}

	// Destination.
	d := e.Destination
	dl := lineOf(n, "destination")
	var set []string
	if d.Host != "" {
		set = append(set, "host")
	}
	if d.CIDR != "" {
		set = append(set, "cidr")
	}
	if d.SubnetLabel != "" {
		set = append(set, "subnetLabel")
	}
	switch len(set) {
	case 0:
		add(dl, "destination is empty", "set exactly one of destination.host, destination.cidr, destination.subnetLabel")
	case 1:
	default:
		add(dl, "destination sets "+strings.Join(set, " and "),
			"keep exactly one of host, cidr, subnetLabel; write one entry per destination")
	}
	if d.Host != "" {
		if msg, fix := checkHost(d.Host); msg != "" {
			add(lineOf(n, "destination", "host"), msg, fix)
		}
	}
	if d.CIDR != "" {
		if msg, fix := checkCIDR(d.CIDR); msg != "" {
			add(lineOf(n, "destination", "cidr"), msg, fix)
		}
	}
	if d.SubnetLabel != "" {
		switch {
		case strings.ContainsAny(d.SubnetLabel, " \t\n"):
			add(lineOf(n, "destination", "subnetLabel"), fmt.Sprintf("subnetLabel %q contains spaces", d.SubnetLabel),
				"write the label as the FlowCollector's subnetLabels.customLabels name, e.g. EXT:aws-s3")
		case inClusterLabels[d.SubnetLabel]:
			add(lineOf(n, "destination", "subnetLabel"), fmt.Sprintf("subnetLabel %q is inside the cluster, so never egress", d.SubnetLabel),
				"name an external destination: a custom label (EXT:...), a host or a CIDR")
		}
	}

	// Protocol and port.
	pl := lineOf(n, "protocol")
	protoOK := false
	switch e.Protocol {
	case matrix.TCP, matrix.UDP, matrix.SCTP, matrix.ICMP:
		protoOK = true
	case "":
		add(pl, "protocol is empty", "set one of "+strings.Join(Protocols, ", "))
	default:
		up := strings.ToUpper(e.Protocol)
		switch {
		case up == "ICMPV6":
			add(pl, fmt.Sprintf("unknown protocol %q", e.Protocol), "write ICMP: the matrix folds ICMPv6 into ICMP")
		case up != e.Protocol && (up == matrix.TCP || up == matrix.UDP || up == matrix.SCTP || up == matrix.ICMP):
			add(pl, fmt.Sprintf("protocol %q is not upper case", e.Protocol), "write "+up)
		default:
			add(pl, fmt.Sprintf("unknown protocol %q", e.Protocol), "use one of "+strings.Join(Protocols, ", "))
		}
	}
	if protoOK {
		if _, err := ParsePort(e.Protocol, e.Port); err != nil {
			fix := `write one port ("443") or an inclusive range ("30000-32767") within 1-65535`
			if e.Protocol == matrix.ICMP {
				fix = "remove port: ICMP has none"
			}
			add(lineOf(n, "port"), fmt.Sprintf("%s port %q: %v", e.Protocol, e.Port, err), fix)
		}
	}
	return errs
}

// checkGlob validates a path.Match pattern (path.Match checks the whole pattern).
func checkGlob(p string) error {
	if strings.ContainsAny(p, " \t\n/") {
		return fmt.Errorf("contains a space or a slash")
	}
	_, err := path.Match(p, "")
	return err
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// checkHost validates a hostname or a leading-label wildcard ("*.quay.io"), which may hold
// placeholders ("*.{appsDomain}", "ec2.{region}.amazonaws.com"; see placeholders.go).
func checkHost(h string) (msg, fix string) {
	if !HasPlaceholder(h) {
		return checkHostName(h)
	}
	sample, msg, fix := checkPlaceholders("host", h)
	if msg != "" {
		return msg, fix
	}
	if msg, fix := checkHostName(sample); msg != "" {
		return fmt.Sprintf("host %q with sample values for its placeholders (%q): %s", h, sample, msg), fix
	}
	return "", ""
}

func checkHostName(h string) (msg, fix string) {
	if a, err := netip.ParseAddr(h); err == nil {
		return fmt.Sprintf("host %q is an IP address", h), fmt.Sprintf("write it as destination.cidr: %s/%d", a.Unmap(), a.Unmap().BitLen())
	}
	if strings.ContainsAny(h, "/:") {
		return fmt.Sprintf("host %q is not a hostname (it has a path, scheme or port)", h),
			"write the bare hostname (e.g. storage.googleapis.com) and put the port in port; mention a URL path in reason"
	}
	if h != strings.ToLower(h) {
		return fmt.Sprintf("host %q has upper-case letters", h), "write " + strings.ToLower(h)
	}
	if strings.HasSuffix(h, ".") {
		return fmt.Sprintf("host %q ends with a dot", h), "write " + strings.TrimSuffix(h, ".")
	}
	name := h
	if strings.HasPrefix(h, "*.") {
		name = h[2:]
		if !strings.Contains(name, ".") {
			return fmt.Sprintf("wildcard %q covers a whole top-level domain", h), "name at least the registered domain, e.g. *.quay.io"
		}
	}
	if strings.Contains(name, "*") {
		return fmt.Sprintf("host %q has a wildcard that is not a leading \"*.\"", h),
			"only a leading *. label is supported (e.g. *.quay.io); list other names one by one"
	}
	if len(name) > 253 {
		return fmt.Sprintf("host %q is longer than 253 characters", h), "correct the hostname"
	}
	for _, label := range strings.Split(name, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("host %q has an invalid label %q", h, label), "each dot-separated label is 1-63 letters, digits or hyphens, not starting or ending with a hyphen"
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Sprintf("host %q has the character %q", h, c), "a hostname has only letters, digits, hyphens and dots"
			}
		}
	}
	return "", ""
}

// ParseCIDR parses an address block by the rule baseline files follow: a prefix length, no
// host bits, no IPv4-mapped IPv6 block. Command-line CIDRs (--pod-cidr, --cluster-network)
// use it too, so that what a file refuses is not masked silently on the command line.
func ParseCIDR(s string) (netip.Prefix, error) {
	if msg, fix := checkCIDR(s); msg != "" {
		return netip.Prefix{}, fmt.Errorf("%s; fix: %s", msg, fix)
	}
	return netip.MustParsePrefix(s), nil
}

func checkCIDR(s string) (msg, fix string) {
	if HasPlaceholder(s) {
		_, msg, fix := checkPlaceholders("cidr", s)
		return msg, fix
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			return fmt.Sprintf("cidr %q has no prefix length", s), fmt.Sprintf("write %s/%d for one address", a, a.BitLen())
		}
		return fmt.Sprintf("cidr %q is not a CIDR: %v", s, err), "write an address block such as 10.0.0.0/8 or 2001:db8::/32"
	}
	if p.Addr().Is4In6() {
		return fmt.Sprintf("cidr %q is an IPv4-mapped IPv6 block", s), "write the IPv4 block, e.g. 192.0.2.0/24"
	}
	if m := p.Masked(); m != p {
		return fmt.Sprintf("cidr %q has host bits set", s),
			fmt.Sprintf("write %s (the block), or %s/%d for that one address", m, p.Addr(), p.Addr().BitLen())
	}
	return "", ""
}

// identity is what makes two entries the same connection.
type identity struct {
	src   Source
	proto string
}

// checkDuplicates reports entries that document the same connection twice: same source and
// protocol, overlapping ports, and the same host, overlapping CIDRs or the same subnet label.
// A wildcard host and a host it covers may both be written: the more specific one wins.
func checkDuplicates(entries []Entry) []error {
	type item struct {
		e     *Entry
		ports PortRange
	}
	groups := map[identity][]item{}
	var order []identity
	for i := range entries {
		e := &entries[i]
		ports, err := e.Ports()
		if err != nil || !validDestination(e.Destination) {
			continue // reported by validation
		}
		id := identity{e.Source, e.Protocol}
		if _, ok := groups[id]; !ok {
			order = append(order, id)
		}
		groups[id] = append(groups[id], item{e, ports})
	}
	var errs []error
	for _, id := range order {
		g := groups[id]
		for j := 1; j < len(g); j++ {
			for i := 0; i < j; i++ {
				a, b := g[i], g[j]
				if !a.ports.Overlaps(b.ports) || !destinationsOverlap(a.e.Destination, b.e.Destination) {
					continue
				}
				where := fmt.Sprintf("%s:%d entries[%d]", a.e.File, a.e.Line, a.e.Index)
				if a.e.Destination == b.e.Destination && a.ports == b.ports {
					errs = append(errs, &Error{File: b.e.File, Line: b.e.Line, Index: b.e.Index,
						Msg: fmt.Sprintf("duplicate of %s (%s to %s %s %s)", where, b.e.Source, b.e.Destination, b.e.Protocol, b.ports),
						Fix: "delete one of them; an entry is written once, in the most general file that applies (common, then platform, then topology)"})
					continue
				}
				errs = append(errs, &Error{File: b.e.File, Line: b.e.Line, Index: b.e.Index,
					Msg: fmt.Sprintf("overlaps %s: same source (%s) and protocol %s, destinations %s and %s, ports %s and %s",
						where, b.e.Source, b.e.Protocol, a.e.Destination, b.e.Destination, a.ports, b.ports),
					Fix: "merge them into one entry, or make the destinations or the port ranges disjoint"})
			}
		}
	}
	return errs
}

func validDestination(d Destination) bool {
	n := 0
	if d.Host != "" {
		n++
		if msg, _ := checkHost(d.Host); msg != "" {
			return false
		}
	}
	if d.CIDR != "" {
		n++
		if msg, _ := checkCIDR(d.CIDR); msg != "" {
			return false
		}
	}
	if d.SubnetLabel != "" {
		n++
	}
	return n == 1
}

func destinationsOverlap(a, b Destination) bool {
	switch {
	case a.Host != "" && b.Host != "":
		return a.Host == b.Host
	case a.SubnetLabel != "" && b.SubnetLabel != "":
		return a.SubnetLabel == b.SubnetLabel
	case a.CIDR != "" && b.CIDR != "":
		if a.CIDR == b.CIDR {
			return true // also two "{bmcNetwork}"
		}
		pa, _ := a.Prefix()
		pb, _ := b.Prefix()
		return pa.Overlaps(pb)
	}
	return false
}
