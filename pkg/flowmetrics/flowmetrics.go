// Package flowmetrics defines the NetObserv FlowMetric resources that give the egress matrix
// from counters, and renders them into flowlogs-pipeline's `encode prom` stage the way the
// NetObserv operator does. The resources are typed here rather than imported from the
// operator module, whose dependency graph would reach the extension binary; tests validate
// them against the real CRD schema.
package flowmetrics

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// APIVersion and Kind of the FlowMetric resources (CRD flowmetrics.flows.netobserv.io).
const (
	APIVersion = "flows.netobserv.io/v1alpha1"
	Kind       = "FlowMetric"
)

// FlowMetric is the subset of the FlowMetric resource we write.
type FlowMetric struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata is the resource's object metadata.
type Metadata struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// Spec is FlowMetricSpec's fields we use, with the CRD's JSON names.
type Spec struct {
	MetricName string            `json:"metricName,omitempty"`
	Type       string            `json:"type"`
	ValueField string            `json:"valueField,omitempty"`
	Filters    []Filter          `json:"filters,omitempty"`
	Labels     []string          `json:"labels,omitempty"`
	Flatten    []string          `json:"flatten,omitempty"`
	Remap      map[string]string `json:"remap,omitempty"`
	Direction  string            `json:"direction,omitempty"`
	Help       string            `json:"help,omitempty"`
}

// Filter is one FlowMetric filter: filters on one field are OR'ed, on different fields AND'ed.
type Filter struct {
	Field     string `json:"field"`
	Value     string `json:"value,omitempty"`
	MatchType string `json:"matchType,omitempty"`
}

// Match types (CRD enum).
const (
	Equal         = "Equal"
	NotEqual      = "NotEqual"
	Presence      = "Presence"
	Absence       = "Absence"
	MatchRegex    = "MatchRegex"
	NotMatchRegex = "NotMatchRegex"
)

// Metric names (without FLP's netobserv_ prefix) of the egress FlowMetrics. Each is a counter
// of flow records; Kinds lists what the source makes of each.
const (
	// TCPSYN: TCP records with a SYN to a port that is not a server port, by destination
	// port: the SYN says which side listens (NetObserv's flow-matrix recipe).
	TCPSYN = "egress_tcp_syn"
	// TCPSYNBoth: TCP records with a SYN between two server ports, by destination port.
	TCPSYNBoth = "egress_tcp_syn_both"
	// TCPServer: TCP records to a server port from a non-server port, whatever their flags:
	// a connection opened before the window is counted by its later records, as the Loki
	// matrix places it by its well-known port.
	TCPServer = "egress_tcp_server"
	// DatagramServer: UDP and SCTP to a server port from a non-server port.
	DatagramServer = "egress_datagram_server"
	// DatagramBoth: UDP and SCTP between two server ports (the lower one serves).
	DatagramBoth = "egress_datagram_both"
	// DatagramResponse: UDP and SCTP from a server port to a non-server port: response legs.
	DatagramResponse = "egress_datagram_response"
	// DatagramUncovered: UDP and SCTP between two non-server ports, which no label may hold
	// (both may be ephemeral): the source fails when it is not zero.
	DatagramUncovered = "egress_datagram_uncovered"
	// ICMP: ICMP and ICMPv6, no ports.
	ICMP = "egress_icmp"
	// OtherProto: any other IP protocol, by protocol number.
	OtherProto = "egress_other_proto"
	// Sampled: egress records with a sampling rate above 1, which cannot prove an absence.
	Sampled = "egress_sampled"
)

// Variant suffixes. The "_pod" variant is for sources whose owner is a node, a pod or none
// (mirror pods, bare pods, nodes, unknown sources): pkg/matrix names them from the pod and
// node names, which the "workload" variant (every other source, by far the most flows)
// leaves out so a Deployment's pods do not multiply its series.
const (
	VariantWorkload = ""
	VariantPod      = "_pod"
)

// Labels common to every egress metric.
var (
	workloadLabels = []string{"SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_OwnerType", "SrcK8S_Type", "SrcSubnetLabel"}
	podLabels      = []string{"SrcK8S_Name", "SrcK8S_HostName", "SrcAddr"}
	// DstAddr, not only DstSubnetLabel: pkg/matrix names a destination by the hostnames the
	// cluster resolved to its address, which a subnet label cannot give; the label is kept
	// for EXT: subnet names (it adds no series: one address has one label).
	dstLabels = []string{"DstAddr", "DstSubnetLabel"}
)

// podOwnerTypes matches the owner types pkg/matrix names from pod or node names (Node, Pod,
// empty); otherOwnerTypes matches any other non-empty one. Filters on one field are OR'ed and
// a missing field fails match_regex, so the pod variant adds an absence filter, and the
// workload variant needs one positive regex: Go's regexps have no negative lookahead, hence
// the spelled-out complement of Node and Pod.
const (
	podOwnerTypes   = "^(Node|Pod|)$"
	otherOwnerTypes = "^([^NP].*|N([^o].*)?|No([^d].*)?|Nod([^e].*)?|Node.+|P([^o].*)?|Po([^d].*)?|Pod.+)$"
)

// Options shape the FlowMetrics.
type Options struct {
	// Namespace of the resources (NetObserv's, usually "netobserv").
	Namespace string
	// Ports says which ports are server ports beyond the well-known ones: they become label
	// values of the datagram metrics. It must be the PortPolicy the matrix is built with.
	Ports matrix.PortPolicy
}

// serverPortRegex matches a well-known port (1-1023) or one of the extra server ports,
// anchored: FLP's regex filters are unanchored Go regexps.
func serverPortRegex(p matrix.PortPolicy) string {
	alts := []string{"[1-9]", "[1-9][0-9]", "[1-9][0-9][0-9]", "10[01][0-9]", "102[0-3]"}
	var extra []int
	for port, ok := range p.Extra {
		if ok && port >= 1024 && port <= 65535 {
			extra = append(extra, port)
		}
	}
	sort.Ints(extra)
	for _, port := range extra {
		alts = append(alts, strconv.Itoa(port))
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}

// Egress selection, the same as pkg/lokiquery's EgressPipeline: no destination K8S type and
// no Pods/Services/Machines subnet label (FLP's not_match_regex keeps records without the
// field). Direction Egress (not the receiving node's copy) is added by the operator.
func egressFilters() []Filter {
	return []Filter{
		{Field: "DstK8S_Type", MatchType: Absence},
		{Field: "DstSubnetLabel", MatchType: NotMatchRegex, Value: "^(Pods|Services|Machines)$"},
	}
}

// Resources returns the egress FlowMetrics, sorted by name.
func Resources(o Options) []FlowMetric {
	sp := serverPortRegex(o.Ports)
	dgram := Filter{Field: "Proto", MatchType: MatchRegex, Value: "^(17|132)$"}
	type def struct {
		name    string
		help    string
		filters []Filter
		labels  []string
		flatten []string
		split   bool // workload and pod variants
	}
	defs := []def{
		{TCPSYN, "TCP egress connections (records with a SYN) to a port that is not a server port", []Filter{
			{Field: "Proto", MatchType: Equal, Value: "6"},
			{Field: "Flags", MatchType: Equal, Value: "SYN"},
			{Field: "DstPort", MatchType: NotMatchRegex, Value: sp},
		}, append(slices.Clone(dstLabels), "DstPort", "Flags"), []string{"Flags"}, true},
		{TCPSYNBoth, "TCP egress connections (records with a SYN) between two server ports", []Filter{
			{Field: "Proto", MatchType: Equal, Value: "6"},
			{Field: "Flags", MatchType: Equal, Value: "SYN"},
			{Field: "DstPort", MatchType: MatchRegex, Value: sp},
			{Field: "SrcPort", MatchType: MatchRegex, Value: sp},
		}, append(slices.Clone(dstLabels), "DstPort", "Flags"), []string{"Flags"}, true},
		{TCPServer, "TCP egress records to a server port from a non-server port", []Filter{
			{Field: "Proto", MatchType: Equal, Value: "6"},
			{Field: "DstPort", MatchType: MatchRegex, Value: sp},
			{Field: "SrcPort", MatchType: NotMatchRegex, Value: sp},
		}, append(slices.Clone(dstLabels), "DstPort"), nil, true},
		{DatagramServer, "UDP/SCTP egress records to a server port", []Filter{
			dgram,
			{Field: "DstPort", MatchType: MatchRegex, Value: sp},
			{Field: "SrcPort", MatchType: NotMatchRegex, Value: sp},
		}, append(slices.Clone(dstLabels), "Proto", "DstPort"), nil, true},
		{DatagramBoth, "UDP/SCTP egress records between two server ports", []Filter{
			dgram,
			{Field: "DstPort", MatchType: MatchRegex, Value: sp},
			{Field: "SrcPort", MatchType: MatchRegex, Value: sp},
		}, append(slices.Clone(dstLabels), "Proto", "SrcPort", "DstPort"), nil, true},
		{DatagramResponse, "UDP/SCTP egress records from a server port to a non-server port", []Filter{
			dgram,
			{Field: "DstPort", MatchType: NotMatchRegex, Value: sp},
			{Field: "SrcPort", MatchType: MatchRegex, Value: sp},
		}, []string{"SrcK8S_Namespace", "Proto", "SrcPort"}, nil, false},
		{DatagramUncovered, "UDP/SCTP egress records between two non-server ports", []Filter{
			dgram,
			{Field: "DstPort", MatchType: NotMatchRegex, Value: sp},
			{Field: "SrcPort", MatchType: NotMatchRegex, Value: sp},
		}, []string{"SrcK8S_Namespace", "Proto"}, nil, false},
		{ICMP, "ICMP egress records", []Filter{
			{Field: "Proto", MatchType: MatchRegex, Value: "^(1|58)$"},
		}, append(slices.Clone(dstLabels), "Proto"), nil, true},
		{OtherProto, "egress records of other IP protocols", []Filter{
			{Field: "Proto", MatchType: NotMatchRegex, Value: "^(1|6|17|58|132)$"},
		}, append(slices.Clone(dstLabels), "Proto"), nil, true},
		{Sampled, "egress records sampled at a rate above 1", []Filter{
			{Field: "Sampling", MatchType: MatchRegex, Value: "^([2-9]|[1-9][0-9]+)$"},
		}, []string{"Sampling"}, nil, false},
	}
	var out []FlowMetric
	for _, d := range defs {
		variants := []string{""}
		if d.split {
			variants = []string{VariantWorkload, VariantPod}
		}
		for _, v := range variants {
			labels := slices.Clone(workloadLabels)
			filters := append(egressFilters(), d.filters...)
			switch {
			case !d.split:
			case v == VariantPod:
				labels = append(labels, podLabels...)
				filters = append(filters, Filter{Field: "SrcK8S_OwnerType", MatchType: MatchRegex, Value: podOwnerTypes},
					Filter{Field: "SrcK8S_OwnerType", MatchType: Absence})
			default:
				filters = append(filters, Filter{Field: "SrcK8S_OwnerType", MatchType: MatchRegex, Value: otherOwnerTypes})
			}
			if !d.split {
				labels = nil
			}
			labels = append(labels, d.labels...)
			name := d.name + v
			out = append(out, FlowMetric{
				APIVersion: APIVersion, Kind: Kind,
				Metadata: Metadata{Name: strings.ReplaceAll(name, "_", "-"), Namespace: o.Namespace,
					Labels: map[string]string{"app.kubernetes.io/part-of": "egress-tests-ext"}},
				Spec: Spec{MetricName: name, Type: "Counter", Filters: filters, Labels: labels,
					Flatten: d.flatten, Direction: "Egress", Help: d.help},
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.MetricName < out[j].Spec.MetricName })
	return out
}

// Names returns the metric names Prometheus holds for the resources (with the prefix).
func Names(fms []FlowMetric) []string {
	out := make([]string, 0, len(fms))
	for i := range fms {
		out = append(out, Prefix+metricName(&fms[i]))
	}
	return out
}

// Prefix is the prefix the operator gives every FlowMetric in FLP.
const Prefix = "netobserv_"

var invalidMetricChars = regexp.MustCompile(`[^a-zA-Z0-9:_]`)

func metricName(fm *FlowMetric) string {
	if fm.Spec.MetricName != "" {
		return fm.Spec.MetricName
	}
	return invalidMetricChars.ReplaceAllString(fm.Metadata.Name, "_")
}

// PromEncode is FLP's `encode: {type: prom, prom: ...}` stage configuration (FLP api
// PromEncode): the value of netobserv.FLPConfig.Prom.
type PromEncode struct {
	Prefix     string        `json:"prefix,omitempty"`
	Metrics    []MetricsItem `json:"metrics"`
	ExpiryTime string        `json:"expiryTime,omitempty"`
	MaxMetrics int           `json:"maxMetrics,omitempty"`
}

// MetricsItem is one FLP prom metric (FLP api MetricsItem).
type MetricsItem struct {
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Help       string            `json:"help,omitempty"`
	Filters    []MetricsFilter   `json:"filters"`
	ValueKey   string            `json:"valueKey,omitempty"`
	Labels     []string          `json:"labels"`
	Remap      map[string]string `json:"remap,omitempty"`
	Flatten    []string          `json:"flatten,omitempty"`
	Buckets    []float64         `json:"buckets,omitempty"`
	ValueScale float64           `json:"valueScale,omitempty"`
}

// MetricsFilter is one FLP prom filter (FLP api MetricsFilter).
type MetricsFilter struct {
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	Type  string `json:"type,omitempty"`
}

// filterTypes maps a FlowMetric matchType to FLP's filter type, as the operator's
// conversion.PascalToLower(matchType, '_') does; an empty matchType is the CRD's default, Equal.
var filterTypes = map[string]string{
	"": "equal", Equal: "equal", NotEqual: "not_equal", Presence: "presence", Absence: "absence",
	MatchRegex: "match_regex", NotMatchRegex: "not_match_regex",
}

// Render renders FlowMetrics into FLP's prom stage as the NetObserv operator does
// (network-observability-operator internal/controller/flp/flp_pipeline_builder.go,
// addPrometheusStage and flowMetricToFLP; internal/pkg/metrics/helper.go GetFilters): prefix
// netobserv_; the name is spec.metricName or the resource name with [^a-zA-Z0-9:_] replaced
// by _; type lowercased; labels, remap and flatten as they are; valueField as valueKey; each
// filter's matchType in snake case; and after the resource's filters, direction Egress adds
// FlowDirection not_equal "0", Ingress FlowDirection not_equal "1". Only what our resources
// use is supported (no buckets, no divider): anything else is an error.
func Render(fms []FlowMetric) (PromEncode, error) {
	out := PromEncode{Prefix: Prefix}
	seen := map[string]string{}
	for i := range fms {
		fm := &fms[i]
		name := metricName(fm)
		if prev, dup := seen[name]; dup {
			return PromEncode{}, fmt.Errorf("FlowMetrics %q and %q both give metric %q; fix: give each its own metricName", prev, fm.Metadata.Name, name)
		}
		seen[name] = fm.Metadata.Name
		m := MetricsItem{Name: name, Type: strings.ToLower(fm.Spec.Type), Help: fm.Spec.Help,
			Filters: []MetricsFilter{}, ValueKey: fm.Spec.ValueField, Labels: fm.Spec.Labels,
			Remap: fm.Spec.Remap, Flatten: fm.Spec.Flatten}
		filters := slices.Clone(fm.Spec.Filters)
		switch fm.Spec.Direction {
		case "Egress":
			filters = append(filters, Filter{Field: "FlowDirection", MatchType: NotEqual, Value: "0"})
		case "Ingress":
			filters = append(filters, Filter{Field: "FlowDirection", MatchType: NotEqual, Value: "1"})
		case "", "Any":
		default:
			return PromEncode{}, fmt.Errorf("FlowMetric %q: direction %q is not Any, Egress or Ingress; fix: use one of those", fm.Metadata.Name, fm.Spec.Direction)
		}
		for _, f := range filters {
			t, ok := filterTypes[f.MatchType]
			if !ok {
				return PromEncode{}, fmt.Errorf("FlowMetric %q: filter on %s has matchType %q; fix: use Equal, NotEqual, Presence, Absence, MatchRegex or NotMatchRegex", fm.Metadata.Name, f.Field, f.MatchType)
			}
			m.Filters = append(m.Filters, MetricsFilter{Key: f.Field, Value: f.Value, Type: t})
		}
		out.Metrics = append(out.Metrics, m)
	}
	return out, nil
}

// ForFLP is the value of the lab's netobserv.FLPConfig.Prom: the egress FlowMetrics for the
// port policy, rendered as the operator would (FLP's expiryTime and maxMetrics left at
// FLP's defaults, as the operator leaves them).
func ForFLP(o Options) (PromEncode, error) { return Render(Resources(o)) }
