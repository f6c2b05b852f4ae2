// Package netobserv runs the producer side of NetObserv on this machine for the live-capture
// lab: the real flowlogs-pipeline (FLP) and eBPF agent built by `make netobserv`, configured
// as the NetObserv operator configures them on a cluster, except where the lab has no
// Kubernetes API (see RenderFLPConfig).
//
// API, for the lab and the tests:
//   - Binaries finds bin/netobserv-ebpf-agent and bin/flowlogs-pipeline (AGENT_BIN, FLP_BIN);
//   - Versions names the pinned versions (hack/tools/netobserv/go.mod);
//   - CheckCapabilities says which capability the real agent lacks here, if any;
//   - RenderFLPConfig writes FLP's config; StartFLP and StartAgent run the programs;
//   - every Process is in a registry: StopAll stops what is left (on SIGINT/SIGTERM, say).
package netobserv

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"sigs.k8s.io/yaml"
)

// Endpoint is one address FLP enriches as Kubernetes would (add_kubernetes cannot run
// without an API).
type Endpoint struct {
	Addr      string // IP
	Namespace string // empty for a node
	Name      string // pod or node name
	OwnerName string
	OwnerType string // e.g. Deployment, DaemonSet, Node
	Type      string // "Pod", "Node" or "Service" (K8S *_Type)
	HostIP    string // the node hosting it (for a node: itself)
	HostName  string
}

// SubnetLabel names CIDRs, as FlowCollector spec.processor.subnetLabels does: Pods,
// Services, Machines (what the operator detects on OpenShift) and custom ones (EXT:...).
type SubnetLabel struct {
	Name  string
	CIDRs []string
}

// FLPConfig is what the lab decides about FLP; the rest is NetObserv's pipeline.
type FLPConfig struct {
	GRPCPort     int    // ingest grpc port (FLP binds all addresses; traffic stays on loopback)
	MetricsPort  int    // FLP's own metrics/prom port, bound to 127.0.0.1
	LokiURL      string // e.g. http://127.0.0.1:3100; tenant netobserv
	Endpoints    []Endpoint
	SubnetLabels []SubnetLabel
	// Prom, when not nil, is written as the `prom` of an `encode: {type: prom}` stage fed by
	// the same records as Loki (FlowMetrics), e.g. {prefix: netobserv_, metrics: [...]}.
	Prom any
}

// The stream labels NetObserv's operator gives Loki (internal/pkg/helper/loki GetLabels of
// network-observability-operator, without zones or multi-cluster).
var LokiLabels = []string{
	"SrcK8S_Namespace", "SrcK8S_OwnerName", "SrcK8S_Type",
	"DstK8S_Namespace", "DstK8S_OwnerName", "DstK8S_Type",
	"K8S_FlowLayer", "FlowDirection",
}

const (
	// LokiTenant is the tenant FLP writes to, as on a cluster with LokiStack.
	LokiTenant = "netobserv"
	// LokiApp is the static app label of every stream.
	LokiApp = "netobserv-flowcollector"
	// operatorNamespace is the FlowCollector namespace: with "openshift" it is an infra
	// prefix of K8S_FlowLayer.
	operatorNamespace = "netobserv"
)

// endpointFields are the K8S fields add_kubernetes sets per side, and the Endpoint value each
// takes. SrcK8S_Zone is left out: the operator adds it only with zones enabled.
var endpointFields = []struct {
	suffix string
	value  func(Endpoint) string
}{
	{"Namespace", func(e Endpoint) string { return e.Namespace }},
	{"Name", func(e Endpoint) string { return e.Name }},
	{"OwnerName", func(e Endpoint) string { return e.OwnerName }},
	{"OwnerType", func(e Endpoint) string { return e.OwnerType }},
	{"Type", func(e Endpoint) string { return e.Type }},
	{"HostIP", func(e Endpoint) string { return e.HostIP }},
	{"HostName", func(e Endpoint) string { return e.HostName }},
}

// isApp is FLP's add_kubernetes_infra rule (pkg/pipeline/transform/kubernetes/enrich.go,
// objectIsApp) with the operator's parameters (flp_pipeline_builder.go, addEnrichStage):
// infra prefixes the FlowCollector namespace and "openshift", infra refs default/kubernetes
// and default/openshift. An object without namespace (a node) never makes a flow "app".
func isApp(e Endpoint) bool {
	if e.Namespace == "" {
		return false
	}
	for _, p := range []string{operatorNamespace, "openshift"} {
		if strings.HasPrefix(e.Namespace, p) {
			return false
		}
	}
	if e.Namespace == "default" && (e.Name == "kubernetes" || e.Name == "openshift") {
		return false
	}
	return true
}

func (cfg FLPConfig) validate() error {
	if cfg.GRPCPort <= 0 || cfg.GRPCPort > 65535 {
		return fmt.Errorf("FLPConfig.GRPCPort %d: want a TCP port; fix: pick a free port", cfg.GRPCPort)
	}
	if cfg.MetricsPort <= 0 || cfg.MetricsPort > 65535 || cfg.MetricsPort == cfg.GRPCPort {
		return fmt.Errorf("FLPConfig.MetricsPort %d: want a free TCP port other than GRPCPort", cfg.MetricsPort)
	}
	if !strings.HasPrefix(cfg.LokiURL, "http://127.0.0.1:") && !strings.HasPrefix(cfg.LokiURL, "http://[::1]:") {
		return fmt.Errorf("FLPConfig.LokiURL %q: the lab writes to a Loki on loopback only; fix: http://127.0.0.1:PORT", cfg.LokiURL)
	}
	seen := map[netip.Addr]int{}
	for i, e := range cfg.Endpoints {
		a, err := netip.ParseAddr(e.Addr)
		if err != nil {
			return fmt.Errorf("FLPConfig.Endpoints[%d] (%s/%s): address %q: %w", i, e.Namespace, e.Name, e.Addr, err)
		}
		if j, dup := seen[a]; dup {
			return fmt.Errorf("FLPConfig.Endpoints[%d] (%s/%s) and [%d] (%s/%s) share address %s: a flow could not be placed; fix: one endpoint per address",
				j, cfg.Endpoints[j].Namespace, cfg.Endpoints[j].Name, i, e.Namespace, e.Name, a)
		}
		seen[a] = i
		switch e.Type {
		case "Pod", "Node":
			if e.Name == "" || e.HostIP == "" || e.HostName == "" {
				return fmt.Errorf("FLPConfig.Endpoints[%d] (%s): Name, HostIP and HostName are required (for a node: itself)", i, e.Addr)
			}
			if _, err := netip.ParseAddr(e.HostIP); err != nil {
				return fmt.Errorf("FLPConfig.Endpoints[%d] (%s): HostIP %q: %w", i, e.Addr, e.HostIP, err)
			}
		case "Service":
			// A ClusterIP lives on no host: add_kubernetes gives it no HostIP or HostName.
			if e.Name == "" || e.HostIP != "" || e.HostName != "" {
				return fmt.Errorf("FLPConfig.Endpoints[%d] (%s): a Service needs a Name and has no HostIP or HostName", i, e.Addr)
			}
		default:
			return fmt.Errorf("FLPConfig.Endpoints[%d] (%s): Type %q, want Pod, Node or Service", i, e.Addr, e.Type)
		}
		if (e.Type == "Pod" || e.Type == "Service") && e.Namespace == "" {
			return fmt.Errorf("FLPConfig.Endpoints[%d] (%s): a %s needs a Namespace", i, e.Addr, e.Type)
		}
	}
	names := map[string]bool{}
	for i, l := range cfg.SubnetLabels {
		if l.Name == "" || len(l.CIDRs) == 0 {
			return fmt.Errorf("FLPConfig.SubnetLabels[%d]: name and CIDRs are required", i)
		}
		if names[l.Name] {
			return fmt.Errorf("FLPConfig.SubnetLabels[%d]: label %q twice; fix: one entry per label", i, l.Name)
		}
		names[l.Name] = true
		for _, c := range l.CIDRs {
			if _, err := netip.ParsePrefix(c); err != nil {
				return fmt.Errorf("FLPConfig.SubnetLabels[%d] (%s): CIDR %q: %w", i, l.Name, c, err)
			}
		}
	}
	return nil
}

// rule and stage are the parts of FLP's config (pkg/api, pkg/config of flowlogs-pipeline)
// written here; field order is the order of the YAML keys.
type rule map[string]any

type stage struct {
	Name    string `json:"name"`
	Follows string `json:"follows,omitempty"`
}

// RenderFLPConfig returns FLP's config file (YAML), deterministic for a given cfg.
//
// Its stages follow the operator's pipeline (network-observability-operator
// internal/controller/flp/flp_pipeline_builder.go, createPipeline): ingest, the "enrich"
// network transform, the "subnets" network transform, then write loki (and encode prom,
// as addPrometheusStage, from the same stage). Without a Kubernetes API, add_kubernetes and
// add_kubernetes_infra cannot run (FLP starts informers for both), so a "k8s" filter
// transform before "enrich" sets what they would: the K8S fields of each Endpoint by
// address (add_field_if, then remove_field of the *_Evaluate marks it adds), and
// K8S_FlowLayer as add_kubernetes_infra decides it (isApp). "enrich" keeps the operator's
// reinterpret_direction (its directionInfo) and decode_tcp_flags: the agent sends Flags as
// an integer over grpc (netobserv-ebpf-agent pkg/decode RecordToMap).
func RenderFLPConfig(cfg FLPConfig) ([]byte, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var k8s []rule
	// Infra unless one side is an app object, as EnrichLayer starts from "infra".
	k8s = append(k8s, rule{"type": "add_field", "addField": rule{"input": "K8S_FlowLayer", "value": "infra"}})
	var evaluate []string
	for _, side := range []string{"Src", "Dst"} {
		for _, e := range cfg.Endpoints {
			cond := fmt.Sprintf("== '%s'", e.Addr)
			for _, f := range endpointFields {
				v := f.value(e)
				if v == "" {
					continue // add_kubernetes leaves out empty fields (no namespace on a node)
				}
				k8s = append(k8s, rule{"type": "add_field_if", "addFieldIf": rule{
					"input": side + "Addr", "parameters": cond, "output": side + "K8S_" + f.suffix, "assignee": v,
				}})
			}
			if isApp(e) {
				k8s = append(k8s, rule{"type": "add_field_if", "addFieldIf": rule{
					"input": side + "Addr", "parameters": cond, "output": "K8S_FlowLayer", "assignee": "app",
				}})
			}
		}
		for _, f := range endpointFields {
			evaluate = append(evaluate, side+"K8S_"+f.suffix+"_Evaluate")
		}
	}
	evaluate = append(evaluate, "K8S_FlowLayer_Evaluate")
	for _, f := range evaluate {
		k8s = append(k8s, rule{"type": "remove_field", "removeField": rule{"input": f}})
	}

	enrich := rule{
		"rules": []rule{
			{"type": "reinterpret_direction"},
			{"type": "decode_tcp_flags", "decode_tcp_flags": rule{"input": "Flags", "output": "Flags"}},
		},
		// The operator's directionInfo, field for field (no ifDirectionField).
		"directionInfo": rule{
			"reporterIPField":    "AgentIP",
			"srcHostField":       "SrcK8S_HostIP",
			"dstHostField":       "DstK8S_HostIP",
			"flowDirectionField": "FlowDirection",
		},
	}

	pipeline := []stage{{Name: "ingest"}, {Name: "k8s", Follows: "ingest"}, {Name: "enrich", Follows: "k8s"}}
	last := "enrich"
	params := []rule{
		{"name": "ingest", "ingest": rule{"type": "grpc", "grpc": rule{"port": cfg.GRPCPort}}},
		{"name": "k8s", "transform": rule{"type": "filter", "filter": rule{"rules": k8s}}},
		{"name": "enrich", "transform": rule{"type": "network", "network": enrich}},
	}
	if len(cfg.SubnetLabels) > 0 {
		var labels []rule
		for _, l := range cfg.SubnetLabels {
			labels = append(labels, rule{"name": l.Name, "cidrs": l.CIDRs})
		}
		pipeline = append(pipeline, stage{Name: "subnets", Follows: last})
		last = "subnets"
		params = append(params, rule{"name": "subnets", "transform": rule{"type": "network", "network": rule{
			"rules": []rule{
				{"type": "add_subnet_label", "add_subnet_label": rule{"input": "SrcAddr", "output": "SrcSubnetLabel"}},
				{"type": "add_subnet_label", "add_subnet_label": rule{"input": "DstAddr", "output": "DstSubnetLabel"}},
			},
			"subnetLabels": labels,
		}}})
	}
	pipeline = append(pipeline, stage{Name: "loki", Follows: last})
	params = append(params, rule{"name": "loki", "write": rule{"type": "loki", "loki": rule{
		"url":            cfg.LokiURL,
		"tenantID":       LokiTenant,
		"batchWait":      "1s",
		"timestampLabel": "TimeFlowEndMs",
		"timestampScale": "1ms",
		"staticLabels":   rule{"app": LokiApp},
		"labels":         LokiLabels,
	}}})
	if cfg.Prom != nil {
		pipeline = append(pipeline, stage{Name: "prometheus", Follows: last})
		params = append(params, rule{"name": "prometheus", "encode": rule{"type": "prom", "prom": cfg.Prom}})
	}
	root := rule{
		"log-level": "info",
		"metricsSettings": rule{
			"address": "127.0.0.1",
			"port":    cfg.MetricsPort,
		},
		"pipeline":   pipeline,
		"parameters": params,
	}
	// JSON first: map keys sorted, so the same cfg always gives the same bytes.
	j, err := json.Marshal(root)
	if err != nil {
		return nil, fmt.Errorf("FLPConfig.Prom cannot be written: %w", err)
	}
	return yaml.JSONToYAML(j)
}
