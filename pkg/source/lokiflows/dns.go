package lokiflows

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/grafana/loki/v3/pkg/loghttp"
	"golang.org/x/sync/errgroup"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

// dnsKeyLabels are what one DNS aggregate is kept per: both sides as pkg/matrix names them
// (pod owner, or the pod and node names of mirror pods and nodes), the direction (pkg/matrix
// counts a name on the sending node only), the destination kind, the server port of a query
// or of an answer (the client's port is blanked: it would make one key per lookup), and the
// name. The NetObserv agent puts DnsName on the answer (source port 53), whose destination
// is the querier: pkg/matrix credits the name to it.
var dnsKeyLabels = []string{
	"SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_Type", "SrcK8S_OwnerType",
	"SrcK8S_Name", "SrcK8S_HostName", "SrcSubnetLabel", "FlowDirection",
	"DstK8S_Namespace", "DstK8S_OwnerName", "DstK8S_OwnerType", "DstK8S_Name", "DstK8S_HostName",
	"DstK8S_Type", "DstSubnetLabel", "Proto", "SrcPort", "DstPort", "DnsName",
}

// DNSPipeline selects the DNS records (DnsName set: queries, and the answers the agent
// names) sent to a known cluster object, in practice the cluster DNS and its clients: exactly the DNS flows the
// egress selection (EgressPipeline) leaves out, so that a caller feeding both to pkg/matrix
// counts no record twice (a resolver's upstream queries leave the cluster and come with the
// egress records, DnsName included). Duplicate copies (NetObserv 1.6-1.7) are left out, as
// pkg/matrix counts them nowhere. SrcK8S_Type and DstK8S_Type are stream labels since
// NetObserv 1.6 and JSON fields before: `| json` extracts them, and a stream label of the
// same name wins over the extracted value, so both formats group and filter alike.
func DNSPipeline(extra []lokiquery.Matcher) lokiquery.Pipeline {
	p := dnsSelection(extra)
	// pkg/matrix names a mirror pod or a node by its pod and host names, any other pod by
	// its owner: keep the names only where they are read (as Project does), so that the
	// pods of one workload make one aggregate. The answer's destination is its querier, so
	// its names are kept by the same rule; the client's port is blanked on either side.
	// DstPort comes before SrcPort: it reads the original SrcPort.
	p.Stages = append(p.Stages, "label_format "+
		"SrcK8S_Name=`{{if "+keepNames("Src")+"}}{{.SrcK8S_Name}}{{end}}`"+
		", SrcK8S_HostName=`{{if "+keepNames("Src")+"}}{{.SrcK8S_HostName}}{{end}}`"+
		", DstK8S_Name=`{{if and "+dnsAnswer+" "+keepNames("Dst")+"}}{{.DstK8S_Name}}{{end}}`"+
		", DstK8S_HostName=`{{if and "+dnsAnswer+" "+keepNames("Dst")+"}}{{.DstK8S_HostName}}{{end}}`"+
		", DstPort=`{{if "+dnsAnswer+"}}{{else}}{{.DstPort}}{{end}}`"+
		", SrcPort=`{{if "+dnsAnswer+"}}{{.SrcPort}}{{end}}`")
	return p
}

// dnsSelection is DNSPipeline without its label rewrite: the same lines, for counting
// them without paying for a template per line.
func dnsSelection(extra []lokiquery.Matcher) lokiquery.Pipeline {
	sel := []lokiquery.Matcher{
		{Name: "app", Op: lokiquery.OpEq, Value: App},
		{Name: "_RecordType", Op: lokiquery.OpRe, Value: "|flowLog"},
	}
	sel = append(sel, extra...)
	return lokiquery.Pipeline{
		Selector: sel,
		// The key alone, whatever JSON white space follows it; DnsName != "" below keeps
		// the lines that have a name.
		LineFilters: []lokiquery.LineFilter{{Op: lokiquery.LineContains, Text: `"DnsName"`}},
		JSONFields: []string{"DnsName", "Duplicate", "DstK8S_HostName", "DstK8S_Name", "DstK8S_OwnerType", "DstK8S_Type", "DstPort", "DstSubnetLabel", "Proto",
			"SrcK8S_HostName", "SrcK8S_Name", "SrcK8S_OwnerType", "SrcK8S_Type", "SrcPort", "SrcSubnetLabel"},
		LabelFilters: []lokiquery.Matcher{
			{Name: "DnsName", Op: lokiquery.OpNeq, Value: ""},
			{Name: "Duplicate", Op: lokiquery.OpNeq, Value: "true"},
		},
		Stages: []string{
			// The complement of EgressPipeline's destination test, in one `or` filter.
			anyOf(atom("DstK8S_Type", lokiquery.OpNeq, ""), atom("DstSubnetLabel", lokiquery.OpRe, lokiquery.RegexAlternatives(internalSubnets))).String(),
		},
	}
}

// keepNames is the template test of the side whose pod and node names pkg/matrix reads.
func keepNames(side string) string {
	return strings.ReplaceAll(`(or (eq .SIDEK8S_Type "") (eq .SIDEK8S_Type "Node") (eq .SIDEK8S_OwnerType "Node") (eq .SIDEK8S_OwnerType "Pod") (eq .SIDEK8S_OwnerType ""))`, "SIDE", side)
}

// dnsAnswer tests for an answer: from the DNS port (equality, not a regexp: 55311 stays a
// client port).
const dnsAnswer = `(or (eq .SrcPort "53") (eq .SrcPort "5353"))`

// DNSQueries returns, for the window of o, one record per DNS query key (source workload,
// direction, destination kind and port, queried name) with Count set to the number of
// query records and SrcPort flow.EphemeralPort. The records carry no address: pkg/matrix
// files them as DNS evidence (Matrix.DNSQueries, Stats.DNSNamedOnly), never as egress.
// o.Mode, o.Ports, o.RawAddrs and o.CountsOnly do not apply. Like Egress it shards on
// max_query_series, splits on Loki's limits, and fails rather than return part of the
// window: the sum of the counts must equal Loki's own count of the selection.
func (c *client) DNSQueries(ctx context.Context, o Options) ([]flow.Record, error) {
	o, err := o.normalized()
	if err != nil {
		return nil, fmt.Errorf("DNS queries: %w", err)
	}
	base := DNSPipeline(o.Matchers)
	if err := base.Validate(); err != nil {
		return nil, fmt.Errorf("DNS queries: %w", err)
	}
	if err := c.CheckWindow(ctx, o.From, o.To); err != nil {
		return nil, fmt.Errorf("DNS queries: %w", err)
	}
	if o.Barrier.Timeout > 0 {
		if err := c.WaitIngested(ctx, o.To, o.Barrier); err != nil {
			return nil, fmt.Errorf("DNS queries: %w", err)
		}
	}
	d := &dnsRun{run: run{c: c, o: o, base: base}, keys: map[string]*flow.Record{}}
	g, gctx := errgroup.WithContext(ctx)
	// Loki's own count, beside the aggregates: it is one long query on one querier.
	var expected int64
	g.Go(func() error {
		counted := dnsSelection(o.Matchers)
		total, err := c.count(gctx, counted, o.From, o.To, o.MinPiece)
		if err != nil {
			return fmt.Errorf("counting the DNS query records of the window: %w", err)
		}
		expected = total
		return nil
	})
	g.Go(func() error {
		// A shard per source namespace and per node, as the raw egress read: the number
		// of DNS keys a namespace holds is not known before its query.
		shards, err := d.streamShards(gctx)
		if err != nil {
			return err
		}
		for _, sh := range shards {
			p := piece{shard: sh, from: o.From, to: o.To}
			g.Go(func() error { return d.runPiece(gctx, g, p) })
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("DNS queries: %w", err)
	}
	out := make([]flow.Record, 0, len(d.keys))
	var retrieved int64
	for _, r := range d.keys {
		out = append(out, *r)
		retrieved += r.Count
	}
	if retrieved != expected {
		return nil, fmt.Errorf("DNS queries: incomplete answer for [%s, %s): the aggregates add up to %d DNS query records but Loki counts %d for %s; records may still be arriving: re-run with the ingestion barrier or a later window end",
			o.From.Format(time.RFC3339Nano), o.To.Format(time.RFC3339Nano), retrieved, expected, base)
	}
	sort.Slice(out, func(i, j int) bool { return dnsLess(&out[i], &out[j]) })
	return out, nil
}

// dnsRun is the state of one DNSQueries call; run brings the sharding and time splitting.
type dnsRun struct {
	run
	mu   sync.Mutex
	keys map[string]*flow.Record
}

func (d *dnsRun) metric(p piece) lokiquery.Metric {
	return lokiquery.Metric{Pipeline: d.base.With(p.shard.matchers(), nil), Agg: lokiquery.AggCount, Range: p.to.Sub(p.from), By: dnsKeyLabels}
}

// runPiece counts the DNS queries of a piece per key, cut further as Loki requires.
func (d *dnsRun) runPiece(ctx context.Context, g *errgroup.Group, p piece) error {
	return d.runCut(ctx, g, p, d.query)
}

// query counts the DNS queries of a piece per key and merges them.
func (d *dnsRun) query(ctx context.Context, p piece) error {
	m := d.metric(p)
	if err := m.Validate(); err != nil {
		return err
	}
	v, err := d.c.Instant(ctx, m.String(), p.to.Add(-time.Nanosecond))
	if err != nil {
		return err
	}
	return d.merge(p, v)
}

// merge adds a piece's counts to the running aggregates.
func (d *dnsRun) merge(p piece, v loghttp.Vector) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range v {
		l := labelsOf(s.Metric)
		f := float64(s.Value)
		if f != math.Trunc(f) || f < 1 || f > 1<<53 {
			return fmt.Errorf("piece %s: count of DNS key %s is %v, not a positive whole number", p, lokiquery.MapKey(l), f)
		}
		key := lokiquery.MapKey(l)
		r := d.keys[key]
		if r == nil {
			rec, err := recordFromLabels(l)
			if err != nil {
				return fmt.Errorf("piece %s: %w", p, err)
			}
			// The client's port is not kept: any port.
			if rec.SrcPort == 53 || rec.SrcPort == 5353 {
				rec.DstPort = flow.EphemeralPort
			} else {
				rec.SrcPort = flow.EphemeralPort
			}
			r = &rec
			d.keys[key] = r
		}
		r.Count += int64(f)
	}
	d.pieces++
	return nil
}

func dnsLess(a, b *flow.Record) bool {
	for _, c := range [][2]string{
		{a.SrcNamespace, b.SrcNamespace}, {a.SrcOwnerName, b.SrcOwnerName}, {a.SrcOwnerType, b.SrcOwnerType},
		{a.SrcType, b.SrcType}, {a.SrcName, b.SrcName}, {a.SrcHostName, b.SrcHostName},
		{a.SrcSubnetLabel, b.SrcSubnetLabel}, {a.DNSName, b.DNSName}, {a.FlowDirection, b.FlowDirection},
		{a.DstNamespace, b.DstNamespace}, {a.DstOwnerName, b.DstOwnerName}, {a.DstOwnerType, b.DstOwnerType},
		{a.DstName, b.DstName}, {a.DstHostName, b.DstHostName},
		{a.DstType, b.DstType}, {a.DstSubnetLabel, b.DstSubnetLabel},
	} {
		if c[0] != c[1] {
			return c[0] < c[1]
		}
	}
	if a.Proto != b.Proto {
		return a.Proto < b.Proto
	}
	if a.SrcPort != b.SrcPort {
		return a.SrcPort < b.SrcPort
	}
	return a.DstPort < b.DstPort
}
