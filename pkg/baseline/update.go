package baseline

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// PlaceholderComponent is the component of entries added by Update. The loader accepts it, so
// that a freshly updated file diffs clean, but CheckReviewed rejects it: the repository's tests
// run CheckReviewed on baseline/, so an entry cannot land before someone names its owner.
const PlaceholderComponent = "unknown"

// PlaceholderReasonSuffix ends the reason of entries added by Update.
const PlaceholderReasonSuffix = "say why the component needs this connection"

// CheckReviewed reports entries that still carry Update's placeholders.
func CheckReviewed(b *Baseline) error {
	var errs []error
	for _, e := range b.Entries {
		if e.Component == PlaceholderComponent || strings.HasSuffix(e.Reason, PlaceholderReasonSuffix) {
			errs = append(errs, &Error{File: e.File, Line: e.Line, Index: e.Index,
				Msg: fmt.Sprintf("entry added by `baseline update` not reviewed (component %q, reason %q)", e.Component, e.Reason),
				Fix: "set component to the owning OpenShift component and reason to why it needs the connection, then drop the `# added by` comment"})
		}
	}
	return errors.Join(errs...)
}

// EntriesFor returns the baseline entries that document one observed entry, with Update's
// placeholders for component and reason. The destination is the hostname when the matrix
// named it by hostname or DNS flow, the subnet label when it has one, else one /32 (/128) per
// address. A DNS-flow name of NetObserv's full 32 bytes may be truncated, so it is not used.
func EntriesFor(o matrix.Entry) []Entry {
	base := Entry{
		Component: PlaceholderComponent,
		Protocol:  o.Protocol,
		Observed:  true,
		Reason:    fmt.Sprintf("observed %s; %s", dateOf(o), PlaceholderReasonSuffix),
	}
	if o.Protocol != matrix.ICMP {
		base.Port = strconv.Itoa(o.Port)
	}
	switch {
	case o.SrcKind == matrix.KindNode:
		base.Source = Source{NodeRole: o.SrcWorkload}
	case o.SrcKind == matrix.KindUnknown || o.SrcNamespace == "":
		// NetObserv could not attribute the source (its workload is only an address): the
		// entry can only say "some pod"; the reviewer narrows it if they find the owner.
		base.Source = Source{Namespace: "*", Kind: matrix.KindUnknown}
	default:
		base.Source = Source{Namespace: o.SrcNamespace, Workload: o.SrcWorkload, Kind: o.SrcKind}
	}
	host := observedHost(&o)
	switch {
	case host != "" && !(o.DstNamedBy == matrix.NamedByDNSFlow && len(host) >= DNSNameMax):
		if msg, _ := checkHost(host); msg == "" {
			base.Destination = Destination{Host: host}
			return []Entry{base}
		}
	case o.DstNamedBy == matrix.NamedBySubnetLabel && o.DstName != "":
		base.Destination = Destination{SubnetLabel: o.DstName}
		return []Entry{base}
	case o.DstSubnetLabel != "" && !inClusterLabels[o.DstSubnetLabel]:
		base.Destination = Destination{SubnetLabel: o.DstSubnetLabel}
		return []Entry{base}
	}
	var out []Entry
	for _, a := range addresses(&o) {
		e := base
		e.Destination = Destination{CIDR: netip.PrefixFrom(a, a.BitLen()).String()}
		out = append(out, e)
	}
	return out
}

func dateOf(o matrix.Entry) string {
	if o.FirstSeen.IsZero() {
		return "in a test run"
	}
	return o.FirstSeen.UTC().Format("2006-01-02")
}

// Update merges an observed matrix into one baseline file: entries the matrix now confirms get
// `observed: true`, and observed entries no entry covers are appended with placeholders for
// component and reason. The file is edited as text, so its comments, order and formatting stay
// as they are. A missing or empty file is created. It returns the entries added.
func Update(path string, m *matrix.Matrix) (added []Entry, err error) {
	return UpdateWith(path, m, nil)
}

// UpdateWith is Update where others holds the other files selected for the cluster (e.g.
// common.yaml when path is a platform file): what they document is not added to path.
func UpdateWith(path string, m *matrix.Matrix, others *Baseline) (added []Entry, err error) {
	return UpdateResolved(path, m, others, Values{})
}

// UpdateResolved is UpdateWith for files with placeholders ("*.{appsDomain}"): vals resolves
// them for the comparison (an unresolved one is an error), while the file keeps them.
func UpdateResolved(path string, m *matrix.Matrix, others *Baseline, vals Values) (added []Entry, err error) {
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("baseline update: cannot read %s: %w", path, err)
	}
	mode := os.FileMode(0o644)
	if fi, serr := os.Stat(path); serr == nil {
		mode = fi.Mode().Perm()
	}
	own, errs := Parse(path, data)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, fmt.Errorf("baseline update: %s is invalid, fix it first: %w", path, errors.Join(errs...))
	}
	all := &Baseline{Files: []string{path}, Entries: append([]Entry(nil), own...)}
	if others != nil {
		for _, e := range others.Entries {
			if e.File != path {
				all.Entries = append(all.Entries, e)
			}
		}
	}
	if err := errors.Join(checkDuplicates(all.Entries)...); err != nil {
		return nil, fmt.Errorf("baseline update: %w", err)
	}
	resolved, err := Resolve(all, vals)
	if err != nil {
		return nil, fmt.Errorf("baseline update: %w", err)
	}
	r := Diff(m, resolved)

	flip := map[int]bool{}
	for _, mt := range r.Matched {
		if mt.By.File == path && !mt.By.Observed {
			flip[mt.By.Index] = true
		}
	}
	seen := map[string]bool{}
	for _, o := range r.Undocumented {
		for _, e := range EntriesFor(o) {
			k := fmt.Sprintf("%+v|%+v|%s|%s", e.Source, e.Destination, e.Protocol, e.Port)
			if !seen[k] {
				seen[k] = true
				added = append(added, e)
			}
		}
	}
	if len(flip) == 0 && len(added) == 0 {
		return nil, nil
	}
	out, err := edit(data, flip, added, r.Undocumented)
	if err != nil {
		return nil, fmt.Errorf("baseline update: cannot edit %s: %w", path, err)
	}
	// Fail closed: never write a file the loader would reject.
	if _, errs := Parse(path, out); len(errs) > 0 {
		return nil, fmt.Errorf("baseline update: the edited %s would not load (not written): %w", path, errors.Join(errs...))
	}
	if err := writeAtomic(path, out, mode); err != nil {
		return nil, err
	}
	for i := range added {
		added[i].File = path
	}
	return added, nil
}

// lineEdit replaces text on one line (0-based), or inserts a line after it (insert true).
type lineEdit struct {
	line, col int // 0-based
	old, new  string
	insert    bool
}

func edit(data []byte, flip map[int]bool, added []Entry, observed []matrix.Entry) ([]byte, error) {
	doc, seq, err := parseDoc(data)
	if err != nil {
		return nil, err
	}
	text := string(data)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	lines := strings.SplitAfter(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}

	var edits []lineEdit
	idxs := make([]int, 0, len(flip))
	for i := range flip {
		idxs = append(idxs, i)
	}
	sort.Ints(idxs)
	for _, i := range idxs {
		n := seq.Content[i]
		if n.Style&yaml.FlowStyle != 0 {
			return nil, fmt.Errorf("entries[%d] (line %d) is written in flow style {...}; write it in block style so that it can be edited", i, n.Line)
		}
		if v := child(n, "observed"); v != nil {
			edits = append(edits, lineEdit{line: v.Line - 1, col: v.Column - 1, old: v.Value, new: "true"})
			continue
		}
		// No observed key: add one under protocol, a required one-line key.
		k := keyNode(n, "protocol")
		if k == nil {
			return nil, fmt.Errorf("entries[%d] (line %d) has no protocol", i, n.Line)
		}
		edits = append(edits, lineEdit{line: k.Line - 1, insert: true, new: strings.Repeat(" ", k.Column-1) + "observed: true\n"})
	}
	sort.SliceStable(edits, func(a, b int) bool { return edits[a].line > edits[b].line })
	for _, e := range edits {
		if e.insert {
			lines = append(lines[:e.line+1], append([]string{e.new}, lines[e.line+1:]...)...)
			continue
		}
		l := lines[e.line]
		if e.col+len(e.old) > len(l) || l[e.col:e.col+len(e.old)] != e.old {
			return nil, fmt.Errorf("line %d: expected %q at column %d", e.line+1, e.old, e.col+1)
		}
		lines[e.line] = l[:e.col] + e.new + l[e.col+len(e.old):]
	}

	if len(added) == 0 {
		return []byte(strings.Join(lines, "")), nil
	}
	indent, at, sep := 0, 0, ""
	if seq != nil {
		if seq.Style&yaml.FlowStyle != 0 {
			return nil, fmt.Errorf("line %d: `entries` is a flow-style list [...]; write it as a block list (one `- component:` item per entry) so that entries can be appended", seq.Line)
		}
		indent = seq.Column - 1
		// Append right after the last entry, before any comment that closes the file, and
		// separate entries by a blank line if the file does.
		last := seq.Content[len(seq.Content)-1].Line - 1 + insertedBefore(edits, seq.Content[len(seq.Content)-1].Line-1)
		at = last + 1
		for i := last + 1; i < len(lines); i++ {
			if isBlank(lines[i]) {
				continue
			}
			if indentOf(lines[i]) > indent {
				at = i + 1 // inside the item: content, or a comment indented like it
				continue
			}
			if strings.HasPrefix(strings.TrimSpace(lines[i]), "#") {
				continue // a comment at the list's level: keep looking for more of the item
			}
			break
		}
		if blankBefore(lines, last) {
			sep = "\n"
		}
	} else {
		// No entries yet: the file holds only comments and an empty `entries` (or nothing).
		// Keep the comments where they are and write `entries:` where the key was.
		lines, at = emptyEntries(lines, doc)
	}
	block, err := encodeEntries(added, observed, indent, sep)
	if err != nil {
		return nil, err
	}
	return []byte(strings.Join(lines[:at], "") + block + strings.Join(lines[at:], "")), nil
}

// insertedBefore counts the lines edits inserted above line (0-based, before the edits).
func insertedBefore(edits []lineEdit, line int) int {
	n := 0
	for _, e := range edits {
		if e.insert && e.line < line {
			n++
		}
	}
	return n
}

func isBlank(l string) bool { return strings.TrimSpace(l) == "" }

func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " ")) }

// blankBefore reports whether a blank line precedes the item at line, above its comments.
func blankBefore(lines []string, line int) bool {
	for i := line - 1; i >= 0; i-- {
		t := strings.TrimSpace(lines[i])
		switch {
		case t == "":
			return true
		case strings.HasPrefix(t, "#"):
			continue
		default:
			return false
		}
	}
	return false
}

// keyNode returns the key node of key in a mapping node.
func keyNode(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return nil
}

// emptyEntries rewrites a file without entries so that a block list can be appended at the
// returned line: comment and blank lines stay, the `entries` key (with its empty value and
// its line comment) is written again as `entries:`, at its place or at the end.
func emptyEntries(lines []string, doc *yaml.Node) ([]string, int) {
	keyLine, comment := -1, ""
	if doc != nil && len(doc.Content) > 0 {
		if k := keyNode(doc.Content[0], EntriesKey); k != nil {
			keyLine = k.Line - 1
			comment = k.LineComment
			if v := child(doc.Content[0], EntriesKey); comment == "" && v != nil {
				comment = v.LineComment
			}
		}
	}
	head := EntriesKey + ":"
	if comment != "" {
		head += " " + comment
	}
	head += "\n"
	var out []string
	at := -1
	for i, l := range lines {
		if i == keyLine {
			out = append(out, head)
			at = len(out)
			continue
		}
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "#") {
			out = append(out, l)
		}
	}
	if at < 0 {
		out = append(out, head)
		at = len(out)
	}
	return out, at
}

// encodeEntries writes new entries as block list items at indent, each after a comment that
// asks the reviewer to fill in the placeholders.
func encodeEntries(added []Entry, observed []matrix.Entry, indent int, sep string) (string, error) {
	evidence := map[string]string{}
	for _, o := range observed {
		for _, e := range EntriesFor(o) {
			k := fmt.Sprintf("%+v|%+v|%s|%s", e.Source, e.Destination, e.Protocol, e.Port)
			if _, ok := evidence[k]; !ok {
				evidence[k] = fmt.Sprintf("%d flows, destination %s named by %s, port by %s", o.Flows, o.DstName, o.DstNamedBy, o.PortEvidence)
			}
		}
	}
	pad := strings.Repeat(" ", indent)
	var b strings.Builder
	for _, e := range added {
		var buf bytes.Buffer
		enc := yaml.NewEncoder(&buf)
		enc.SetIndent(2)
		if err := enc.Encode([]Entry{e}); err != nil {
			return "", err
		}
		if err := enc.Close(); err != nil {
			return "", err
		}
		k := fmt.Sprintf("%+v|%+v|%s|%s", e.Source, e.Destination, e.Protocol, e.Port)
		b.WriteString(sep)
		fmt.Fprintf(&b, "%s# Added by `egress-tests-ext baseline update` (%s):\n", pad, evidence[k])
		fmt.Fprintf(&b, "%s# set component to the owning component and reason to why it is needed.\n", pad)
		for _, l := range strings.SplitAfter(buf.String(), "\n") {
			if l != "" {
				b.WriteString(pad + l)
			}
		}
	}
	return b.String(), nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".baseline-update-*")
	if err != nil {
		return fmt.Errorf("baseline update: cannot write next to %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("baseline update: cannot write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("baseline update: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("baseline update: cannot write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("baseline update: cannot replace %s: %w", path, err)
	}
	return nil
}
