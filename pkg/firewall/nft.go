package firewall

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strings"
)

// A small typed syntax tree of the nftables ruleset language, enough for an egress filter.
// The writer validates every identifier and quoted string, so no value from a baseline can
// change the structure of the ruleset.

// Ruleset is a complete nftables file.
type Ruleset struct {
	Comments []string // written as "# ..." lines at the top
	Tables   []*Table
}

// Table is one nftables table.
type Table struct {
	Family string // "inet", "ip", "ip6"
	Name   string
	Sets   []*Set
	Chains []*Chain
}

// Set is a named set of addresses.
type Set struct {
	Name     string
	Type     string // "ipv4_addr" or "ipv6_addr"
	Interval bool   // elements are prefixes
	Comment  string
	Elements []SetElement
}

// SetElement is one prefix (a host address is a full-length prefix) with an optional comment.
type SetElement struct {
	Prefix  netip.Prefix
	Comment string
}

// Chain is a base chain when Hook is set.
type Chain struct {
	Name     string
	Type     string // "filter"
	Hook     string // "output", "input", ...
	Priority int
	Policy   string // "accept" or "drop"
	Rules    []Rule
}

// Rule is a sequence of statements; each Stmt renders itself.
type Rule struct {
	Stmts   []Stmt
	Comment string
}

// Stmt is one match or statement of a rule.
type Stmt interface {
	render() (string, error)
}

// CTState matches conntrack states.
type CTState struct{ States []string }

// OIFName matches the output interface name.
type OIFName struct{ Name string }

// DAddrSet matches the destination address against a named set.
type DAddrSet struct {
	IPv6 bool
	Set  string
}

// L4Proto matches the layer 4 protocol ("tcp", "udp", "sctp", "icmp", "ipv6-icmp").
type L4Proto struct{ Proto string }

// DPort matches a destination port or inclusive range of a TCP, UDP or SCTP packet.
type DPort struct {
	Proto    string // "tcp", "udp", "sctp"
	Min, Max int
}

// ICMPv6Type matches ICMPv6 message types by name.
type ICMPv6Type struct{ Types []string }

// Limit lets the rest of the rule apply at most Rate packets per second (with Burst).
type Limit struct{ Rate, Burst int }

// Log logs the packet with a prefix.
type Log struct {
	Prefix string
	Level  string // "warn", "info", ...
}

// Counter counts packets and bytes.
type Counter struct{}

// Verdict ends the rule: "accept" or "drop".
type Verdict string

var (
	identRE     = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	families    = map[string]bool{"inet": true, "ip": true, "ip6": true}
	hooks       = map[string]bool{"output": true, "input": true, "forward": true, "prerouting": true, "postrouting": true}
	chainTypes  = map[string]bool{"filter": true}
	verdicts    = map[string]bool{"accept": true, "drop": true}
	ctStates    = map[string]bool{"established": true, "related": true, "new": true, "invalid": true, "untracked": true}
	l4protos    = map[string]bool{"tcp": true, "udp": true, "sctp": true, "icmp": true, "ipv6-icmp": true}
	portProtos  = map[string]bool{"tcp": true, "udp": true, "sctp": true}
	logLevels   = map[string]bool{"emerg": true, "alert": true, "crit": true, "err": true, "warn": true, "notice": true, "info": true, "debug": true}
	icmpv6Types = map[string]bool{"nd-router-solicit": true, "nd-router-advert": true, "nd-neighbor-solicit": true, "nd-neighbor-advert": true, "mld2-listener-report": true, "mld-listener-report": true}
)

// Limits of the kernel and nft: names (NFT_NAME_MAXLEN-1), comments (NFT_USERDATA), log prefixes (NF_LOG_PREFIXLEN-1).
const (
	maxIdent     = 255
	maxComment   = 128
	maxLogPrefix = 127
)

func ident(kind, s string) (string, error) {
	if !identRE.MatchString(s) || len(s) > maxIdent {
		return "", fmt.Errorf("nftables %s name %q: want a letter then letters, digits or _ (at most %d)", kind, s, maxIdent)
	}
	return s, nil
}

// quote renders s as an nft double-quoted string. nft has no escape sequences inside quotes,
// so anything but printable ASCII without '"' is refused rather than escaped.
func quote(kind, s string, max int) (string, error) {
	if len(s) > max {
		return "", fmt.Errorf("nftables %s %q longer than %d bytes", kind, s, max)
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' {
			return "", fmt.Errorf("nftables %s %q: only printable ASCII without '\"' can be quoted", kind, s)
		}
	}
	return `"` + s + `"`, nil
}

// SafeComment makes free text (component names, hostnames) acceptable to quote: other
// characters become '_' and the text is cut to the comment limit.
func SafeComment(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' {
			b[i] = '_'
		}
	}
	if len(b) > maxComment {
		b = append(b[:maxComment-3], "..."...)
	}
	return string(b)
}

func (s CTState) render() (string, error) {
	if len(s.States) == 0 {
		return "", errors.New("ct state with no states")
	}
	for _, st := range s.States {
		if !ctStates[st] {
			return "", fmt.Errorf("unknown ct state %q", st)
		}
	}
	return "ct state " + strings.Join(s.States, ","), nil
}

func (s OIFName) render() (string, error) {
	q, err := quote("interface", s.Name, 15) // IFNAMSIZ-1
	if err != nil || s.Name == "" {
		return "", fmt.Errorf("oifname: %w", errors.Join(err, errors.New("interface name must not be empty")))
	}
	return "oifname " + q, nil
}

func (s DAddrSet) render() (string, error) {
	name, err := ident("set", s.Set)
	if err != nil {
		return "", err
	}
	if s.IPv6 {
		return "ip6 daddr @" + name, nil
	}
	return "ip daddr @" + name, nil
}

func (s L4Proto) render() (string, error) {
	if !l4protos[s.Proto] {
		return "", fmt.Errorf("unknown layer 4 protocol %q", s.Proto)
	}
	return "meta l4proto " + s.Proto, nil
}

func (s DPort) render() (string, error) {
	if !portProtos[s.Proto] {
		return "", fmt.Errorf("protocol %q has no ports", s.Proto)
	}
	if s.Min < 1 || s.Max > 65535 || s.Max < s.Min {
		return "", fmt.Errorf("port range %d-%d invalid", s.Min, s.Max)
	}
	if s.Min == s.Max {
		return fmt.Sprintf("%s dport %d", s.Proto, s.Min), nil
	}
	return fmt.Sprintf("%s dport %d-%d", s.Proto, s.Min, s.Max), nil
}

func (s ICMPv6Type) render() (string, error) {
	if len(s.Types) == 0 {
		return "", errors.New("icmpv6 type with no types")
	}
	for _, t := range s.Types {
		if !icmpv6Types[t] {
			return "", fmt.Errorf("unsupported icmpv6 type %q", t)
		}
	}
	return "icmpv6 type { " + strings.Join(s.Types, ", ") + " }", nil
}

func (s Limit) render() (string, error) {
	if s.Rate < 1 || s.Burst < 0 {
		return "", fmt.Errorf("limit rate %d burst %d invalid", s.Rate, s.Burst)
	}
	if s.Burst == 0 {
		return fmt.Sprintf("limit rate %d/second", s.Rate), nil
	}
	return fmt.Sprintf("limit rate %d/second burst %d packets", s.Rate, s.Burst), nil
}

func (s Log) render() (string, error) {
	q, err := quote("log prefix", s.Prefix, maxLogPrefix)
	if err != nil {
		return "", err
	}
	out := "log prefix " + q
	if s.Level != "" {
		if !logLevels[s.Level] {
			return "", fmt.Errorf("unknown log level %q", s.Level)
		}
		out += " level " + s.Level
	}
	return out, nil
}

func (Counter) render() (string, error) { return "counter", nil }

func (v Verdict) render() (string, error) {
	if !verdicts[string(v)] {
		return "", fmt.Errorf("unknown verdict %q", string(v))
	}
	return string(v), nil
}

// WriteTo writes the ruleset in nft's file syntax. Each table is first created and deleted so
// that loading the file again (nft -f) replaces the table atomically instead of adding to it.
func (r *Ruleset) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: bufio.NewWriter(w)}
	if err := r.write(cw); err != nil {
		return cw.n, err
	}
	return cw.n, cw.w.(*bufio.Writer).Flush()
}

// String renders the ruleset, or an error message for an invalid one.
func (r *Ruleset) String() string {
	var b strings.Builder
	if _, err := r.WriteTo(&b); err != nil {
		return "invalid ruleset: " + err.Error()
	}
	return b.String()
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) printf(format string, args ...any) {
	if c.err != nil {
		return
	}
	n, err := fmt.Fprintf(c.w, format, args...)
	c.n += int64(n)
	c.err = err
}

func (r *Ruleset) write(w *countWriter) error {
	for _, c := range r.Comments {
		for _, line := range strings.Split(c, "\n") {
			// '#' comments run to the end of the line, so any printable text is safe here.
			if strings.ContainsFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' }) {
				return fmt.Errorf("header comment %q has control characters", line)
			}
			w.printf("# %s\n", line)
		}
	}
	for _, t := range r.Tables {
		if !families[t.Family] {
			return fmt.Errorf("table %q: unknown family %q", t.Name, t.Family)
		}
		name, err := ident("table", t.Name)
		if err != nil {
			return err
		}
		w.printf("\ntable %s %s\ndelete table %s %s\n\ntable %s %s {\n", t.Family, name, t.Family, name, t.Family, name)
		for _, s := range t.Sets {
			if err := s.write(w); err != nil {
				return fmt.Errorf("table %s: %w", name, err)
			}
		}
		for _, c := range t.Chains {
			if err := c.write(w); err != nil {
				return fmt.Errorf("table %s: %w", name, err)
			}
		}
		w.printf("}\n")
	}
	return w.err
}

func (s *Set) write(w *countWriter) error {
	name, err := ident("set", s.Name)
	if err != nil {
		return err
	}
	var bits int
	switch s.Type {
	case "ipv4_addr":
		bits = 32
	case "ipv6_addr":
		bits = 128
	default:
		return fmt.Errorf("set %s: unsupported type %q", name, s.Type)
	}
	w.printf("\tset %s {\n\t\ttype %s\n", name, s.Type)
	if s.Interval {
		w.printf("\t\tflags interval\n")
	}
	if s.Comment != "" {
		q, err := quote("comment", s.Comment, maxComment)
		if err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		w.printf("\t\tcomment %s\n", q)
	}
	if len(s.Elements) > 0 {
		w.printf("\t\telements = {\n")
		for i, e := range s.Elements {
			if !e.Prefix.IsValid() || e.Prefix.Addr().BitLen() != bits || e.Prefix.Addr().Is4In6() {
				return fmt.Errorf("set %s: element %v is not a %s", name, e.Prefix, s.Type)
			}
			if e.Prefix.Masked() != e.Prefix {
				return fmt.Errorf("set %s: element %v has host bits set", name, e.Prefix)
			}
			if !s.Interval && e.Prefix.Bits() != bits {
				return fmt.Errorf("set %s: element %v is a network but the set has no interval flag", name, e.Prefix)
			}
			elem := e.Prefix.Addr().String()
			if e.Prefix.Bits() != bits {
				elem = e.Prefix.String()
			}
			if e.Comment != "" {
				q, err := quote("comment", e.Comment, maxComment)
				if err != nil {
					return fmt.Errorf("set %s: %w", name, err)
				}
				elem += " comment " + q
			}
			sep := ","
			if i == len(s.Elements)-1 {
				sep = ""
			}
			w.printf("\t\t\t%s%s\n", elem, sep)
		}
		w.printf("\t\t}\n")
	}
	w.printf("\t}\n\n")
	return nil
}

func (c *Chain) write(w *countWriter) error {
	name, err := ident("chain", c.Name)
	if err != nil {
		return err
	}
	w.printf("\tchain %s {\n", name)
	if c.Hook != "" {
		if !hooks[c.Hook] || !chainTypes[c.Type] || !verdicts[c.Policy] {
			return fmt.Errorf("chain %s: invalid base chain (type %q hook %q policy %q)", name, c.Type, c.Hook, c.Policy)
		}
		w.printf("\t\ttype %s hook %s priority %d; policy %s;\n", c.Type, c.Hook, c.Priority, c.Policy)
	}
	for i, r := range c.Rules {
		if len(r.Stmts) == 0 {
			return fmt.Errorf("chain %s: rule %d is empty", name, i)
		}
		parts := make([]string, 0, len(r.Stmts)+1)
		for _, s := range r.Stmts {
			p, err := s.render()
			if err != nil {
				return fmt.Errorf("chain %s rule %d: %w", name, i, err)
			}
			parts = append(parts, p)
		}
		if r.Comment != "" {
			q, err := quote("comment", r.Comment, maxComment)
			if err != nil {
				return fmt.Errorf("chain %s rule %d: %w", name, i, err)
			}
			parts = append(parts, "comment "+q)
		}
		w.printf("\t\t%s\n", strings.Join(parts, " "))
	}
	w.printf("\t}\n")
	return nil
}
