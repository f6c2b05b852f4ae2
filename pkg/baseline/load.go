package baseline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// EntriesKey is the only top-level key of a baseline file. The OpenShift version, platform and
// topology a file applies to come from where it sits in the tree (see Select), not from a
// header, so that a file cannot claim one version while sitting in another's directory.
const EntriesKey = "entries"

// Error is one problem found in a baseline file: where it is and how to fix it.
type Error struct {
	File  string
	Line  int // 1-based; 0 when unknown
	Index int // entry index (0-based, as in entries[N]); -1 when the problem is not in an entry
	Msg   string
	Fix   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Index >= 0 {
		fmt.Fprintf(&b, ": entries[%d]", e.Index)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// Load reads and validates baseline files. Every path must be a file: to pick the files of one
// cluster from a baseline/ tree, use Select first. All problems of all files are returned
// together (errors.Join of *Error), duplicates and overlaps across files included, since an
// entry must be written once, in the most general file that applies.
func Load(paths ...string) (*Baseline, error) { return load(osFS{}, paths) }

// LoadFS is Load reading from fsys (e.g. the baseline tree embedded in the binary); paths
// are slash-separated, as SelectFS returns them.
func LoadFS(fsys fs.FS, paths ...string) (*Baseline, error) { return load(ioFS{fsys}, paths) }

func load(fsys fileSystem, paths []string) (*Baseline, error) {
	if len(paths) == 0 {
		return nil, errors.New("baseline: no file given; fix: pass a baseline file, or use Select(dir, version, platform, topology) to pick the files of a baseline/ tree")
	}
	b := &Baseline{}
	var errs []error
	for _, p := range paths {
		fi, err := fsys.stat(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("baseline: cannot read %s: %w", p, err))
			continue
		}
		if fi.IsDir() {
			errs = append(errs, &Error{File: p, Index: -1,
				Msg: "is a directory, not a baseline file",
				Fix: "pass the files themselves, or give the OpenShift version (and platform, topology) so that the files of that directory are selected (baseline.Select, or --version/--platform/--topology on the command line)"})
			continue
		}
		data, err := fsys.readFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("baseline: cannot read %s: %w", p, err))
			continue
		}
		entries, ferrs := Parse(p, data)
		errs = append(errs, ferrs...)
		if len(entries) == 0 && len(ferrs) == 0 && !saysNoEntries(data) {
			errs = append(errs, &Error{File: p, Index: -1,
				Msg: "the file has no entries and does not say so (it is empty, comments only, or `entries:` with nothing under it, as a truncated file is)",
				Fix: "restore its entries, or write `entries: []` if it has none on purpose"})
		}
		b.Files = append(b.Files, p)
		b.Entries = append(b.Entries, entries...)
	}
	errs = append(errs, checkDuplicates(b.Entries)...)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errors.Join(errs...)
	}
	return b, nil
}

// Parse decodes and validates the entries of one file (name is used in messages and in
// Entry.File). It does not check duplicates across files; Load does. Entries that fail
// validation are still returned, so that callers can report on them.
func Parse(name string, data []byte) ([]Entry, []error) {
	if i := bytes.IndexByte(data, '\r'); i >= 0 {
		return nil, []error{&Error{File: name, Line: 1 + bytes.Count(data[:i], []byte("\n")), Index: -1,
			Msg: "the file has carriage returns (CRLF or CR line endings)", Fix: "convert it to LF line endings (dos2unix)"}}
	}
	_, seq, err := parseDoc(data)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			pe.File = name
			return nil, []error{pe}
		}
		return nil, []error{&Error{File: name, Index: -1, Msg: err.Error(),
			Fix: "correct the YAML syntax at that line (a file is `entries:` followed by a list of entries; see baseline/README.md)"}}
	}
	if seq == nil {
		return nil, nil
	}
	var errs []error

	// Types and unknown keys: the yaml.v3 decoder with KnownFields reports every problem with
	// its line and keeps decoding, so that all of them are reported together.
	var typed struct {
		Entries []Entry `yaml:"entries"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&typed); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, []error{&Error{File: name, Index: -1, Msg: err.Error(), Fix: "correct the YAML at that line"}}
		}
		for _, msg := range te.Errors {
			errs = append(errs, typeError(name, seq, msg))
		}
	}
	// An empty item (a lone `-`) decodes to nothing at all: report it where it is.
	empty := 0
	for i, n := range seq.Content {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			empty++
			errs = append(errs, &Error{File: name, Line: n.Line, Index: i, Msg: "empty entry (a lone `-`)",
				Fix: "remove the `-`, or write the entry's keys under it"})
		}
	}
	if empty > 0 {
		return nil, errs
	}
	if len(typed.Entries) != len(seq.Content) {
		// The list itself did not decode (e.g. a tag on it); the decoder may not say why.
		if len(errs) == 0 {
			errs = append(errs, &Error{File: name, Line: seq.Line, Index: -1,
				Msg: fmt.Sprintf("`entries` decoded to %d entries from %d list items", len(typed.Entries), len(seq.Content)),
				Fix: "write `entries:` as a plain list, without tags or anchors"})
		}
		return nil, errs
	}
	entries := typed.Entries
	for i := range entries {
		entries[i].File = name
		entries[i].Line = seq.Content[i].Line
		entries[i].Index = i
		if seq.Content[i].Kind != yaml.MappingNode {
			continue // reported by the decoder
		}
		errs = append(errs, validateEntry(&entries[i], seq.Content[i])...)
	}
	return entries, errs
}

// parseDoc checks the document layout and returns the entries sequence (nil when the file has
// no entries yet: empty, comments only, `entries:` or `entries: []`).
func parseDoc(data []byte) (*yaml.Node, *yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, nil, &Error{Line: extra.Line, Index: -1, Msg: "a second YAML document (---) in the file",
			Fix: "keep one document per file: move its entries under the first `entries:`"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return &doc, nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return &doc, nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, &Error{Line: root.Line, Index: -1, Msg: "the file is not a mapping",
			Fix: "start the file with `entries:` followed by a list of entries (see baseline/README.md)"}
	}
	var seq *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != EntriesKey {
			return nil, nil, &Error{Line: k.Line, Index: -1, Msg: fmt.Sprintf("unknown top-level key %q", k.Value),
				Fix: "a baseline file has only `entries:`; version, platform and topology come from the file's place under baseline/ (see baseline/README.md)"}
		}
		switch {
		case v.Kind == yaml.SequenceNode:
			seq = v
		case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		default:
			return nil, nil, &Error{Line: v.Line, Index: -1, Msg: "`entries` is not a list",
				Fix: "write each entry as a list item starting with `- component: ...`"}
		}
	}
	if seq != nil && len(seq.Content) == 0 {
		seq = nil
	}
	return &doc, seq, nil
}

// saysNoEntries reports whether a file states that it has no entries: `entries: []`. Update
// still accepts an empty file (it creates one), Load does not.
func saysNoEntries(data []byte) bool {
	doc, _, err := parseDoc(data)
	if err != nil || doc == nil || len(doc.Content) == 0 {
		return false
	}
	v := child(doc.Content[0], EntriesKey)
	return v != nil && v.Kind == yaml.SequenceNode && len(v.Content) == 0
}

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)
var notFoundRE = regexp.MustCompile(`^field (\S+) not found in type baseline\.(\w+)$`)

// typeError turns one yaml.v3 decoder message into an *Error pointing at its entry.
func typeError(file string, seq *yaml.Node, msg string) error {
	e := &Error{File: file, Index: -1, Msg: msg, Fix: "correct the value at that line"}
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2]
		e.Index = entryAt(seq, e.Line)
	}
	if m := notFoundRE.FindStringSubmatch(e.Msg); m != nil {
		where, keys := "an entry", "component, source, destination, protocol, port, optional, observed, reason"
		switch m[2] {
		case "Source":
			where, keys = "source", "namespace, workload, kind (a pod source) or nodeRole (a node source)"
		case "Destination":
			where, keys = "destination", "host, cidr or subnetLabel (exactly one)"
		}
		e.Msg = fmt.Sprintf("unknown key %q in %s", m[1], where)
		e.Fix = "remove it or correct its spelling; valid keys: " + keys
	} else if strings.Contains(e.Msg, "cannot unmarshal") {
		e.Fix = "write a value of the expected type (text for component, port and reason; true/false for optional and observed; a mapping for source and destination)"
	}
	return e
}

// entryAt returns the index of the entry whose text holds line, or -1.
func entryAt(seq *yaml.Node, line int) int {
	idx := -1
	for i, n := range seq.Content {
		if n.Line <= line {
			idx = i
		}
	}
	return idx
}

// child returns the value node of key in a mapping node, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// lineOf returns the line of the key at path under an entry node, or of the deepest part of
// the path that exists (the entry itself when none does).
func lineOf(n *yaml.Node, path ...string) int {
	line := n.Line
	cur := n
	for _, k := range path {
		kn := keyNode(cur, k)
		if kn == nil {
			break
		}
		line = kn.Line
		cur = child(cur, k)
	}
	return line
}

func sortErrors(errs []error) {
	key := func(err error) (string, int, int) {
		var e *Error
		if errors.As(err, &e) {
			return e.File, e.Line, e.Index
		}
		return "", 0, 0
	}
	sort.SliceStable(errs, func(i, j int) bool {
		fi, li, _ := key(errs[i])
		fj, lj, _ := key(errs[j])
		if fi != fj {
			return fi < fj
		}
		return li < lj
	})
}
