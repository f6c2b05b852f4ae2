package lokiflows

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// Aggregation is planned so that Loki does only cheap work per line. Go text/template
// stages (label_format) cost Loki more per line than the whole scan (docs/performance.md),
// so the aggregate path uses none. Instead:
//
//   - `| json` extracts the key fields (parser hints make Loki read only those), and two
//     `| regexp` stages read SYN and SYN_ACK in Flags, a JSON list that `| json` skips.
//   - `| drop` removes, unconditionally, every dynamic port, the flag bitfields without SYN
//     or SYN_ACK, and directions other than "0", so that client ports and flag
//     combinations do not multiply the aggregates.
//   - A label filter (hardLines) keeps apart the lines whose Project needs a port the drops
//     remove (a SYN or a UDP datagram to a dynamic port, a translated port Project keeps
//     while the source port is dynamic, ...): their query drops nothing, and Project is
//     applied here. For the other lines a port missing on TCP, UDP or SCTP can only be a
//     dropped dynamic one, which keyRecord turns into what Project makes of it.
//   - The bulk (pods of workloads, whose names and addresses Project drops) is grouped
//     without pod names and addresses, so that the pods of a workload make one key. The
//     sources Project names (nodes, mirror and bare pods) have their own queries.
//
// The queries (aggregateQueries) select every egress line exactly once, and Egress
// compares the sum of their counts with Loki's own count of the selection.

// cond is a LogQL label filter expression: an atom (a matcher) or an and/or of conditions.
type cond struct {
	m    lokiquery.Matcher
	op   string // "and", "or"; "" for an atom
	kids []cond
}

func atom(name, op, value string) cond {
	return cond{m: lokiquery.Matcher{Name: name, Op: op, Value: value}}
}
func allOf(cs ...cond) cond { return cond{op: "and", kids: cs} }
func anyOf(cs ...cond) cond { return cond{op: "or", kids: cs} }

// not is the negation, pushed down to the matchers (De Morgan).
func (c cond) not() cond {
	if c.op == "" {
		m := c.m
		m.Op = map[string]string{lokiquery.OpEq: lokiquery.OpNeq, lokiquery.OpNeq: lokiquery.OpEq, lokiquery.OpRe: lokiquery.OpNotRe, lokiquery.OpNotRe: lokiquery.OpRe}[m.Op]
		return cond{m: m}
	}
	out := cond{op: map[string]string{"and": "or", "or": "and"}[c.op]}
	for _, k := range c.kids {
		out.kids = append(out.kids, k.not())
	}
	return out
}

func (c cond) String() string {
	if c.op == "" {
		return lokiquery.LabelFilterString(c.m)
	}
	parts := make([]string, len(c.kids))
	for i, k := range c.kids {
		parts[i] = k.String()
	}
	return "(" + strings.Join(parts, " "+c.op+" ") + ")"
}

func (c cond) validate() error {
	if c.op == "" {
		return c.m.Validate()
	}
	for _, k := range c.kids {
		if err := k.validate(); err != nil {
			return err
		}
	}
	return nil
}

// intRangeRegex is a regular expression matching exactly the decimal numerals, without
// leading zeros, of the integers in [lo, hi] (0 <= lo <= hi).
func intRangeRegex(lo, hi int) string {
	var alts []string
	if lo == 0 {
		alts, lo = append(alts, "0"), 1
	}
	for lo <= hi {
		// The largest block [lo, lo+10^k-1] aligned on 10^k that fits, and no wider than
		// lo's numeral (10^k <= lo keeps leading digits non-zero).
		k, size := 0, 1
		for lo%(size*10) == 0 && lo+size*10-1 <= hi {
			k, size = k+1, size*10
		}
		// As many such blocks as fit under the same leading digits: one character class.
		first := strconv.Itoa(lo / size)
		digit := first[len(first)-1]
		n := 1
		for int(digit-'0')+n <= 9 && lo+(n+1)*size-1 <= hi {
			n++
		}
		var b strings.Builder
		b.WriteString(first[:len(first)-1])
		if n == 1 {
			b.WriteByte(digit)
		} else {
			fmt.Fprintf(&b, "[%c-%c]", digit, digit+byte(n-1))
		}
		if k > 0 {
			fmt.Fprintf(&b, "[0-9]{%d}", k)
		}
		alts = append(alts, b.String())
		lo += n * size
	}
	return strings.Join(alts, "|")
}

// intSetRegex matches the numerals of the integers in [lo, hi] except those in skip.
func intSetRegex(lo, hi int, skip map[int]bool) string {
	var cut []int
	for p, ok := range skip {
		if ok && p >= lo && p <= hi {
			cut = append(cut, p)
		}
	}
	sort.Ints(cut)
	var alts []string
	from := lo
	for _, p := range append(cut, hi+1) {
		if p > from {
			alts = append(alts, intRangeRegex(from, p-1))
		}
		from = p + 1
	}
	return strings.Join(alts, "|")
}

// portRegexes are the dynamic (client) and server port sets of a PortPolicy, the way
// Project and matrix.PortPolicy define them.
func portRegexes(p matrix.PortPolicy) (dynamic, server string) {
	dynamic = intSetRegex(matrix.DynamicPortMin, 65535, p.Extra)
	server = intRangeRegex(1, 1023)
	var extra []string
	for port, ok := range p.Extra {
		if ok && port >= 1024 && port <= 65535 {
			extra = append(extra, strconv.Itoa(port))
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		server += "|" + strings.Join(extra, "|")
	}
	return dynamic, server
}

// The flags pkg/matrix reads are SYN and SYN_ACK. NetObserv 1.8+ writes Flags as a JSON
// list of names, which `| json` skips: two regexp stages set FlagSYN and FlagSYNACK when
// the name is in the list, so the many flag combinations make no more than four keys.
// Older records hold an integer bitfield, which `| json` extracts as Flags.
//
// The stages read every spelling of the list but one: JSON white space around the colon,
// the brackets and the commas (`"Flags": ["SYN", "ACK"]`) is matched; a \u escape (in the
// key or a name) is not, so the third stage marks any line with one, and keyRecord fails
// the pull on it rather than lose a flag the line holds (the raw read decodes it).
var flagStages = []string{
	"regexp " + strconv.Quote(`"Flags"`+jsonSpace+`:`+jsonSpace+`\[[^\]]*"(?P<FlagSYN>SYN)"`),
	"regexp " + strconv.Quote(`"Flags"`+jsonSpace+`:`+jsonSpace+`\[[^\]]*"(?P<FlagSYNACK>SYN_ACK)"`),
	"regexp " + strconv.Quote(`(?P<`+escapeLabel+`>\\u)`),
}

// jsonSpace is JSON's insignificant white space.
const jsonSpace = `[ \t\n\r]*`

// escapeLabel marks the lines the flag stages may misread.
const escapeLabel = "JSONEscape"

// synBitfield matches an integer bitfield with bit 0x02 (SYN) set: the number modulo 4
// is 2 or 3, which its last two digits tell.
const synBitfield = `[0-9]*(?:[02468][2367]|[13579][014589])|[2367]`

// noEvidenceBitfields matches the bitfields below 256 without SYN (so without SYN_ACK,
// 0x100): dropped, as Project drops the other bits. Bitfields it misses stay in the key
// and are reduced here; the set only saves aggregates.
func noEvidenceBitfields() string {
	var ints []string
	for n := range 256 {
		if n&int(flow.FlagSYN) == 0 {
			ints = append(ints, strconv.Itoa(n))
		}
	}
	return strings.Join(ints, "|")
}

// hardLines is the condition on a line (after `| json` and flagsStage) under which Project
// needs a port the aggregate queries drop.
func hardLines(p matrix.PortPolicy) cond {
	dyn, srv := portRegexes(p)
	isDyn := func(l string) cond { return atom(l, lokiquery.OpRe, dyn) }
	ported := atom("Proto", lokiquery.OpRe, "6|17|132")
	udp := atom("Proto", lokiquery.OpEq, "17")
	syn := anyOf(atom("FlagSYN", lokiquery.OpNeq, ""), atom("Flags", lokiquery.OpRe, synBitfield))
	// A response leg: Project makes its destination port flow.EphemeralPort.
	response := allOf(isDyn("DstPort"), ported, syn.not(), atom("SrcPort", lokiquery.OpRe, srv))
	// UDP to a non-server port: Project keeps the source port (and a translated one).
	exactUDP := allOf(udp, atom("DstPort", lokiquery.OpRe, srv).not())
	return anyOf(
		// A dynamic destination port that is not a response's.
		allOf(isDyn("DstPort"), response.not()),
		allOf(isDyn("XlatDstPort"), response.not()),
		// A dynamic source port Project keeps.
		allOf(isDyn("SrcPort"), exactUDP),
		allOf(isDyn("XlatSrcPort"), exactUDP),
		allOf(isDyn("SrcPort"), atom("XlatSrcPort", lokiquery.OpNeq, ""), atom("XlatSrcPort", lokiquery.OpNeq, "0"), isDyn("XlatSrcPort").not()),
		// Ports the drops would blur: dynamic ones outside TCP, UDP and SCTP, and missing
		// ones inside (a dropped port is read as a dynamic one).
		allOf(ported.not(), anyOf(isDyn("SrcPort"), isDyn("DstPort"), isDyn("XlatSrcPort"), isDyn("XlatDstPort"))),
		allOf(ported, anyOf(atom("SrcPort", lokiquery.OpEq, ""), atom("DstPort", lokiquery.OpEq, ""))),
	)
}

// groupLabels are the labels the aggregate queries group by: every field Project keeps.
// The source's pod name, host name and address are left out of the sharded query, which
// holds only the sources Project drops them for (the pods of one workload make one key).
var (
	groupLabels = []string{
		"SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_OwnerType", "SrcK8S_Type", "SrcK8S_Name", "SrcK8S_HostName",
		"SrcAddr", "SrcPort", "SrcSubnetLabel",
		"DstAddr", "DstPort", "DstSubnetLabel", "DstK8S_Type",
		"Proto", "Flags", "FlagSYN", "FlagSYNACK", "FlowDirection", "DnsName", "Sampling", "Duplicate", "Etype",
		"XlatSrcAddr", "XlatDstAddr", "XlatSrcPort", "XlatDstPort", escapeLabel,
	}
	sourceNameLabels = []string{"SrcK8S_Name", "SrcK8S_HostName", "SrcAddr"}
)

// aggregateFilters are the conditions that route a line among the aggregate queries:
// hard lines (qHard), and, among the others with a namespace, those of mirror and bare
// pods (qNamed).
func aggregateFilters(p matrix.PortPolicy) (hard, named cond) {
	const ns, ownerType, srcType = "SrcK8S_Namespace", "SrcK8S_OwnerType", "SrcK8S_Type"
	hard = anyOf(hardLines(p), allOf(atom(ns, lokiquery.OpNeq, ""), anyOf(atom(srcType, lokiquery.OpRe, "|Node"), atom(ownerType, lokiquery.OpEq, ""))))
	return hard, atom(ownerType, lokiquery.OpRe, "Node|Pod")
}

// aggQuery is one of the aggregate queries of Egress.
type aggQuery struct {
	pipeline lokiquery.Pipeline
	by       []string
	// shard is where its pieces start; plan says how the window is cut before the first
	// query (any piece is cut further when Loki refuses it).
	shard shard
	plan  planKind
}

// planKind is how an aggregate query is cut before it runs.
type planKind int

const (
	planNone   planKind = iota // one piece: the query selects few keys
	planPilots                 // namespace shards sized by pilots (planAggregate)
	planRaw                    // not aggregated: its lines are read whole (run.rawLines)
	planRead                   // not aggregated: its lines are read shard by shard (run.rawLines)
)

// The aggregate queries, indexes in the slice aggregateQueries returns.
const (
	qPlain = iota // pods whose names Project drops: sharded by namespace
	qHard         // lines that need exact ports
	qNodes        // no source namespace: nodes, host-network pods, unknown sources
	qNamed        // pods whose names Project keeps: mirror pods, bare pods
	nQueries
)

// aggregateQueries splits the egress lines of base into the queries of the aggregate
// path, which together select every line once:
//
//   - qHard: the lines whose Project needs a port the others drop (hardLines), and
//     namespaced lines of a kind no line filter can pick (no owner type, no source type
//     or a node type): read as raw lines, since their exact ports make about a key per
//     line, and a read of lines costs Loki one scan where each sum of an aggregate costs
//     one.
//   - qNodes: lines without a source namespace, names and addresses kept.
//   - qNamed: namespaced lines owned by a Node (mirror pods) or a Pod (bare pods), picked
//     by a line filter first, names kept.
//   - qPlain: the other namespaced lines, without source names and addresses: the bulk.
func aggregateQueries(base lokiquery.Pipeline, p matrix.PortPolicy) ([]aggQuery, error) {
	const ns = "SrcK8S_Namespace"
	h, named := aggregateFilters(p)
	if err := h.validate(); err != nil {
		return nil, fmt.Errorf("aggregation filter: %w", err)
	}
	dyn, _ := portRegexes(p)
	parsed := base.With(nil, nil)
	parsed.JSONFields, parsed.JSONAll = nil, true
	// The stages run after base's label filters: the egress selection comes first.
	parsed.Stages = append(parsed.Stages, flagStages...)
	drops := "drop " + strings.Join([]string{
		lokiquery.LabelFilterString(lokiquery.Matcher{Name: "SrcPort", Op: lokiquery.OpRe, Value: dyn}),
		lokiquery.LabelFilterString(lokiquery.Matcher{Name: "DstPort", Op: lokiquery.OpRe, Value: dyn}),
		lokiquery.LabelFilterString(lokiquery.Matcher{Name: "XlatSrcPort", Op: lokiquery.OpRe, Value: dyn}),
		lokiquery.LabelFilterString(lokiquery.Matcher{Name: "XlatDstPort", Op: lokiquery.OpRe, Value: dyn}),
		lokiquery.LabelFilterString(lokiquery.Matcher{Name: "Flags", Op: lokiquery.OpRe, Value: noEvidenceBitfields()}),
		// pkg/matrix only asks whether a record is the receiving node's copy ("0").
		lokiquery.LabelFilterString(lokiquery.Matcher{Name: "FlowDirection", Op: lokiquery.OpNotRe, Value: "0"}),
	}, ", ")
	withStages := func(pl lokiquery.Pipeline, stages ...string) lokiquery.Pipeline {
		q := pl.With(nil, nil)
		q.Stages = append(q.Stages, stages...)
		return q
	}
	var plainBy []string
	for _, l := range groupLabels {
		if !slices.Contains(sourceNameLabels, l) {
			plainBy = append(plainBy, l)
		}
	}
	namespaced := parsed.With([]lokiquery.Matcher{{Name: ns, Op: lokiquery.OpNeq, Value: ""}}, nil)
	namedLines := namespaced.With(nil, nil)
	namedLines.LineFilters = append(namedLines.LineFilters, lokiquery.LineFilter{Op: lokiquery.LineMatches, Text: `"SrcK8S_OwnerType"\s*:\s*"(?:Node|Pod)"`})
	return []aggQuery{
		qPlain: {pipeline: withStages(namespaced, allOf(h.not(), named.not()).String(), drops), by: plainBy,
			shard: shard{dim: -1}, plan: planPilots},
		// The parsed labels are dropped again: each distinct set would be a stream of its own
		// in the answer, and the line holds them all.
		qHard: {pipeline: withStages(parsed, h.String(), "keep "+strings.Join(streamLabels, ", ")), shard: shard{dim: -1}, plan: planRaw},
		qNodes: {pipeline: withStages(parsed, h.not().String(), drops), by: groupLabels,
			shard: shard{dim: -1, fixed: []lokiquery.Matcher{{Name: ns, Op: lokiquery.OpEq, Value: ""}}}},
		qNamed: {pipeline: withStages(namedLines, allOf(h.not(), named).String(), drops), by: groupLabels,
			shard: shard{dim: -1}},
	}, nil
}

// errEscaped is the counts-only failure on lines its regexp stages cannot read.
var errEscaped = errors.New(`egress lines of the window spell JSON with \u escapes, which the counts-only stages cannot read (a SYN flag so spelled would be lost, and its flow's server port with it); fix: pull without --counts-only (the default pull decodes every line)`)

// keyRecord is the projected record of an aggregate's labels. A port missing on TCP, UDP
// or SCTP was dropped as dynamic: the filters admit such a destination port only on a
// response leg, and such a source port only where Project makes it flow.EphemeralPort.
func keyRecord(l map[string]string, p matrix.PortPolicy) (flow.Record, error) {
	r, err := recordFromLabels(l)
	if err != nil {
		return r, err
	}
	if l[escapeLabel] != "" {
		return r, fmt.Errorf("aggregate %s: %w", lokiquery.MapKey(l), errEscaped)
	}
	if l["FlagSYN"] != "" {
		r.Flags |= flow.FlagSYN
	}
	if l["FlagSYNACK"] != "" {
		r.Flags |= flow.FlagSYNACK
	}
	switch r.Proto {
	case flow.ProtoTCP, flow.ProtoUDP, flow.ProtoSCTP:
		if l["SrcPort"] == "" {
			r.SrcPort = flow.EphemeralPort
		}
		if l["DstPort"] == "" {
			r.DstPort, r.XlatDstPort = flow.EphemeralPort, 0
		}
	}
	out := matrix.Project(r, p)
	out.Count, out.Bytes = 0, 0
	return out, nil
}
