// Package report renders the egress matrix, the diff against the baseline and the baseline
// itself for people (text, Markdown, AsciiDoc tables) and for tools (CSV, JSON, YAML). Output is
// deterministic: the same input always gives the same bytes.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// Formats.
const (
	CSV      = "csv"
	JSON     = "json"
	YAML     = "yaml"
	Markdown = "markdown"
	AsciiDoc = "asciidoc"
	Text     = "text"
)

// MatrixFormats, DiffFormats and BaselineFormats list what each writer accepts.
var (
	MatrixFormats   = []string{JSON, YAML, CSV, Markdown, AsciiDoc}
	DiffFormats     = []string{Text, JSON}
	BaselineFormats = []string{CSV, Markdown, AsciiDoc}
)

func unknownFormat(what, format string, valid []string) error {
	return fmt.Errorf("unknown %s format %q; fix: use one of %s", what, format, strings.Join(valid, ", "))
}

// table is a rectangular table rendered by the CSV, Markdown and AsciiDoc writers.
type table struct {
	header []string
	rows   [][]string
	// cols is the AsciiDoc relative column widths, e.g. "2,1,1,3".
	cols string
	// note follows the table in Markdown and AsciiDoc (CSV has no place for it).
	note string
}

func (t *table) write(w io.Writer, format string) error {
	switch format {
	case CSV:
		cw := csv.NewWriter(w)
		if err := cw.Write(t.header); err != nil {
			return err
		}
		if err := cw.WriteAll(t.rows); err != nil {
			return err
		}
		return cw.Error()
	case Markdown:
		var b strings.Builder
		mdRow(&b, t.header)
		b.WriteString("|")
		for range t.header {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		for _, r := range t.rows {
			mdRow(&b, r)
		}
		if t.note != "" {
			b.WriteString("\n" + t.note + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	case AsciiDoc:
		var b strings.Builder
		fmt.Fprintf(&b, "[cols=\"%s\",options=\"header\"]\n|===\n", t.cols)
		for i, h := range t.header {
			if i > 0 {
				b.WriteString(" ")
			}
			b.WriteString("|" + adocCell(h))
		}
		b.WriteString("\n")
		for _, r := range t.rows {
			b.WriteString("\n")
			for _, c := range r {
				b.WriteString("|" + adocCell(c) + "\n")
			}
		}
		b.WriteString("|===\n")
		if t.note != "" {
			b.WriteString("\nNOTE: " + t.note + "\n")
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	return fmt.Errorf("table format %q is not supported", format)
}

// mdCell escapes a Markdown table cell: a pipe would end the cell, a newline the row.
func mdCell(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "|", `\|`)
	s = strings.ReplaceAll(s, "\r\n", "<br>")
	return strings.ReplaceAll(s, "\n", "<br>")
}

func mdRow(b *strings.Builder, cells []string) {
	b.WriteString("|")
	for _, c := range cells {
		b.WriteString(" " + mdCell(c) + " |")
	}
	b.WriteString("\n")
}

// adocCell escapes an AsciiDoc table cell: `|` starts a new cell unless escaped; a line
// holding only `|===` would close the table, which the escaping also prevents.
func adocCell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " +\n")
}

// ---- matrix ----

// sortedEntries is the matrix in the order matrix.WriteJSON writes it.
func sortedEntries(m *matrix.Matrix) []matrix.Entry {
	out := append([]matrix.Entry(nil), m.Entries...)
	matrix.SortEntries(out)
	return out
}

// SourceString is an observed source for people: "node worker" or "ns/workload (Kind)".
func SourceString(e *matrix.Entry) string {
	if e.SrcKind == matrix.KindNode {
		return "node " + e.SrcWorkload
	}
	s := e.SrcNamespace + "/" + e.SrcWorkload
	if e.SrcKind != "" {
		s += " (" + e.SrcKind + ")"
	}
	return s
}

// DestinationString is an observed destination for people: its name, and the address it was
// seen at when the name is not the address.
func DestinationString(e *matrix.Entry) string {
	if e.DstAddress == "" || e.DstName == e.DstAddress {
		return e.DstName
	}
	if n := len(e.DstAddresses); n > 1 {
		return fmt.Sprintf("%s (%s +%d)", e.DstName, e.DstAddress, n-1)
	}
	return fmt.Sprintf("%s (%s)", e.DstName, e.DstAddress)
}

// PortString is "TCP/443", or "ICMP".
func PortString(protocol string, port int) string {
	if protocol == matrix.ICMP {
		return protocol
	}
	return protocol + "/" + strconv.Itoa(port)
}

func timeString(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func matrixTable(m *matrix.Matrix, machine bool) *table {
	t := &table{cols: "2,2,1,3,1,2,1,1,1,1,1,1,2,2"}
	if machine {
		t.header = []string{"srcNamespace", "srcWorkload", "srcKind", "dstName", "dstNamedBy", "dstAddresses", "dstSubnetLabel",
			"protocol", "port", "portEvidence", "flows", "bytes", "firstSeen", "lastSeen"}
	} else {
		t.header = []string{"Source namespace", "Source workload", "Source kind", "Destination", "Named by", "Addresses", "Subnet label",
			"Protocol", "Port", "Port evidence", "Flows", "Bytes", "First seen", "Last seen"}
	}
	// A column the flow source could not give is left empty rather than shown as 0.
	bytes := func(e *matrix.Entry) string {
		if m.Lacking("bytes") {
			return ""
		}
		return strconv.FormatInt(e.Bytes, 10)
	}
	if len(m.Lacks) > 0 && !machine {
		t.note = "The flow source could not give: " + strings.Join(m.Lacks, ", ") + " (left empty)."
	}
	for _, e := range sortedEntries(m) {
		addrs := e.DstAddresses
		if len(addrs) == 0 && e.DstAddress != "" {
			addrs = []string{e.DstAddress}
		}
		port := strconv.Itoa(e.Port)
		if e.Protocol == matrix.ICMP {
			port = ""
		}
		t.rows = append(t.rows, []string{e.SrcNamespace, e.SrcWorkload, e.SrcKind, e.DstName, e.DstNamedBy, strings.Join(addrs, " "),
			e.DstSubnetLabel, e.Protocol, port, e.PortEvidence, strconv.FormatInt(e.Flows, 10), bytes(&e),
			timeString(e.FirstSeen), timeString(e.LastSeen)})
	}
	return t
}

// WriteMatrix renders the observed matrix. JSON is the matrix file format that `matrix diff
// --matrix` reads back (matrix.WriteJSON); YAML has the same fields.
func WriteMatrix(w io.Writer, m *matrix.Matrix, format string) error {
	if m == nil {
		m = &matrix.Matrix{}
	}
	switch format {
	case JSON:
		return matrix.WriteJSON(w, m)
	case YAML:
		sorted := *m
		sorted.Entries = sortedEntries(m)
		if sorted.Entries == nil {
			sorted.Entries = []matrix.Entry{}
		}
		out, err := yaml.Marshal(&sorted)
		if err != nil {
			return fmt.Errorf("render matrix as YAML: %w", err)
		}
		_, err = w.Write(out)
		return err
	case CSV:
		return matrixTable(m, true).write(w, format)
	case Markdown, AsciiDoc:
		return matrixTable(m, false).write(w, format)
	}
	return unknownFormat("matrix", format, MatrixFormats)
}

// ---- diff ----

// WriteDiff renders a diff: text for people (undocumented first, then unobserved, then a
// one-line summary) or JSON {"undocumented":[...],"unobserved":[...],"matched":[...],"stats":{...}}.
func WriteDiff(w io.Writer, r *baseline.Result, format string) error {
	if r == nil {
		r = &baseline.Result{}
	}
	switch format {
	case JSON:
		out := *r
		if out.Undocumented == nil {
			out.Undocumented = []matrix.Entry{}
		}
		if out.Unobserved == nil {
			out.Unobserved = []baseline.Entry{}
		}
		if out.Matched == nil {
			out.Matched = []baseline.Match{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(&out)
	case Text:
		return writeDiffText(w, r)
	}
	return unknownFormat("diff", format, DiffFormats)
}

func writeDiffText(w io.Writer, r *baseline.Result) error {
	var b strings.Builder
	if len(r.Undocumented) > 0 {
		fmt.Fprintf(&b, "UNDOCUMENTED EGRESS (%d): add them to the baseline (egress-tests-ext baseline update) or find out why they happen\n", len(r.Undocumented))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tDESTINATION\tPROTOCOL/PORT\tNAMED BY\tPORT BY\tFLOWS\tFIRST SEEN")
		for i := range r.Undocumented {
			e := &r.Undocumented[i]
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", oneLine(SourceString(e)), oneLine(DestinationString(e)),
				PortString(e.Protocol, e.Port), e.DstNamedBy, e.PortEvidence, e.Flows, timeString(e.FirstSeen))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		b.WriteString("\n")
	}
	if len(r.Unobserved) > 0 {
		fmt.Fprintf(&b, "UNOBSERVED BASELINE ENTRIES (%d): documented but not seen in this run (not a failure)\n", len(r.Unobserved))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ENTRY\tCOMPONENT\tSOURCE\tDESTINATION\tPROTOCOL/PORT")
		for _, e := range r.Unobserved {
			pp := e.Protocol
			if e.Port != "" {
				pp += "/" + e.Port
			}
			fmt.Fprintf(tw, "%s:%d entries[%d]\t%s\t%s\t%s\t%s\n", e.File, e.Line, e.Index, oneLine(e.Component),
				oneLine(e.Source.String()), oneLine(e.Destination.String()), pp)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		b.WriteString("\n")
	}
	if len(r.Undecided) > 0 {
		fmt.Fprintf(&b, "UNDECIDED EGRESS (%d distinct, %d flows; first %d shown): the server port could not be told from the client's, so no baseline entry can cover them\n",
			r.UndecidedDistinct, r.Stats.Undecided, len(r.Undecided))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SOURCE\tDESTINATION\tPROTOCOL\tPORTS\tFLOWS\tWHY")
		for _, u := range r.Undecided {
			src := matrix.Entry{SrcNamespace: u.SrcNamespace, SrcWorkload: u.SrcWorkload, SrcKind: u.SrcKind}
			dst := matrix.Entry{DstName: u.DstName, DstAddress: u.DstAddress}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d -> %d\t%d\t%s\n", oneLine(SourceString(&src)), oneLine(DestinationString(&dst)),
				u.Protocol, u.SrcPort, u.DstPort, u.Flows, oneLine(u.Reason))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		b.WriteString("\n")
	}
	if len(r.DecodeErrors) > 0 {
		fmt.Fprintf(&b, "UNDECODABLE RECORDS (%d; first %d shown)\n", r.Stats.Undecodable, len(r.DecodeErrors))
		for _, e := range r.DecodeErrors {
			b.WriteString("  " + oneLine(e) + "\n")
		}
		b.WriteString("\n")
	}
	b.WriteString(Summary(r) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary is the one-line account of a diff.
func Summary(r *baseline.Result) string {
	verdict := "PASS"
	switch {
	case len(r.Undocumented) > 0:
		verdict = "FAIL"
	case r.Stats.Undecided > 0 || r.Stats.Undecodable > 0 || r.Stats.Sampled > 0:
		verdict = "INCOMPLETE" // flows that no entry can hold: not a clean run
	}
	s := r.Stats
	return fmt.Sprintf("%s: %d undocumented, %d unobserved, %d matched; records %d: egress %d, not egress %d, responses %d, undecided %d, undecodable %d, DNS only %d, duplicates %d, sampled %d",
		verdict, len(r.Undocumented), len(r.Unobserved), len(r.Matched),
		s.Records, s.Egress, s.NotEgress, s.Responses, s.Undecided, s.Undecodable, s.DNSNamedOnly, s.Duplicates, s.Sampled)
}

// oneLine keeps a table row on one line whatever a name holds.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ---- baseline ----

func baselineTable(b *baseline.Baseline) *table {
	t := &table{
		header: []string{"Destination", "Protocol", "Port", "Source", "Component", "Optional", "Reason"},
		cols:   "3,1,1,3,2,1,5",
	}
	for _, e := range b.Entries {
		opt := "no"
		if e.Optional {
			opt = "yes"
		}
		t.rows = append(t.rows, []string{e.Destination.String(), e.Protocol, e.Port, e.Source.String(), e.Component, opt, strings.TrimSpace(e.Reason)})
	}
	return t
}

// WriteBaseline renders the baseline as the published table, in file order (common, then
// platform, then topology; entries as written).
func WriteBaseline(w io.Writer, b *baseline.Baseline, format string) error {
	if b == nil {
		b = &baseline.Baseline{}
	}
	switch format {
	case CSV, Markdown, AsciiDoc:
		return baselineTable(b).write(w, format)
	}
	return unknownFormat("baseline", format, BaselineFormats)
}
