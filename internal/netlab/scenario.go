// Package netlab is the live-capture lab: from a scenario file it builds a small emulated
// cluster in network namespaces (nodes, pods, an "internet", a cluster DNS), captures it
// with the real NetObserv eBPF agent and flowlogs-pipeline into a real Loki, runs the
// scenario's traffic and folds the window through observe.Run, as `matrix collect` and
// `matrix diff` do on a cluster.
package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// Scenario is the contract other tools write: a small cluster, its workloads, the external
// hosts it reaches and the traffic it makes. Unknown keys are refused.
//
//	cluster: {version: "4.21", platform: aws, topology: HighlyAvailable}   # picks the baseline files
//	nodes:
//	  - {name: master-0, role: control-plane}
//	  - {name: worker-0, role: worker, snat: true}        # snat: pod egress masqueraded to the node address
//	workloads:
//	  - {namespace: openshift-image-registry, name: image-registry, kind: Deployment, node: worker-0}
//	  - {namespace: openshift-monitoring, name: node-exporter, kind: DaemonSet, node: worker-0, hostNetwork: true}
//	external:
//	  - {host: quay.io, tcp: [443]}
//	  - {host: 2.rhel.pool.ntp.org, udp: [123]}
//	traffic:   # from: NAMESPACE/NAME of a workload, or node/NODE
//	  - {from: openshift-image-registry/image-registry, to: quay.io, protocol: TCP, port: 443, connections: 3}
//	  - {from: node/master-0, to: 2.rhel.pool.ntp.org, protocol: UDP, port: 123, connections: 2}
//
// Optional traffic fields: `longLived: true` (TCP only) opens one connection before the
// window and only exchanges data inside it, so the window holds no SYN of it; `noLookup:
// true` connects by address without asking the lab DNS (a destination nobody resolved);
// `burst: true` keeps 32 connections in flight at once instead of one after the other, each
// from its own client port counted from 10000, so that each is a distinct flow (the
// capture-loss test; at most 50,000 connections).
type Scenario struct {
	Cluster   Cluster    `yaml:"cluster"`
	Nodes     []Node     `yaml:"nodes"`
	Workloads []Workload `yaml:"workloads"`
	External  []External `yaml:"external"`
	Traffic   []Traffic  `yaml:"traffic"`

	// File is where the scenario was read from (messages).
	File string `yaml:"-"`
}

// Cluster selects the baseline files the capture is diffed against.
type Cluster struct {
	Version  string `yaml:"version"`
	Platform string `yaml:"platform"`
	Topology string `yaml:"topology"`
	// Domain (the part after api.) and Region resolve the baseline's {appsDomain},
	// {apiHost} and {region}, as a cluster's Ingress and Infrastructure configs do; a
	// baseline that uses one the scenario lacks is refused.
	Domain string `yaml:"domain"`
	Region string `yaml:"region"`
}

// Node is one emulated node.
type Node struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	// SNAT masquerades the node's pods' egress to the node address, as OVN-Kubernetes does.
	SNAT bool `yaml:"snat"`
}

// Workload is one pod (one replica is enough for a matrix).
type Workload struct {
	Namespace   string `yaml:"namespace"`
	Name        string `yaml:"name"`
	Kind        string `yaml:"kind"`
	Node        string `yaml:"node"`
	HostNetwork bool   `yaml:"hostNetwork"`
}

// External is one host of the fake internet with its listeners.
type External struct {
	Host string `yaml:"host"`
	TCP  []int  `yaml:"tcp"`
	UDP  []int  `yaml:"udp"`
}

// Traffic is a number of connections from a source to an external host.
type Traffic struct {
	From        string `yaml:"from"`
	To          string `yaml:"to"`
	Protocol    string `yaml:"protocol"`
	Port        int    `yaml:"port"`
	Connections int    `yaml:"connections"`
	LongLived   bool   `yaml:"longLived"`
	NoLookup    bool   `yaml:"noLookup"`
	Burst       bool   `yaml:"burst"`

	line int
}

// Limits that keep a lab run bounded.
const (
	MaxConnections = 100000
	maxNodes       = 20
	maxWorkloads   = 200
	maxExternal    = 200
	maxBurst       = 50000
)

// ScenarioError is one problem of a scenario file: where and how to fix it.
type ScenarioError struct {
	File string
	Line int
	Msg  string
	Fix  string
}

func (e *ScenarioError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.Fix != "" {
		b.WriteString("; fix: ")
		b.WriteString(e.Fix)
	}
	return b.String()
}

// LoadScenario reads and validates a scenario file.
func LoadScenario(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w; fix: give an existing scenario file (see internal/netlab/scenario.go)", err)
	}
	return ParseScenario(path, data)
}

var (
	dnsLabel   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	k8sName    = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	kindRegexp = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

// ParseScenario decodes and validates a scenario; name is used in messages. All problems
// are returned together.
func ParseScenario(name string, data []byte) (*Scenario, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, &ScenarioError{File: name, Msg: err.Error(), Fix: "correct the YAML syntax at that line"}
	}
	if len(root.Content) == 0 {
		return nil, &ScenarioError{File: name, Msg: "the file is empty", Fix: "write cluster, nodes, workloads, external and traffic (see internal/netlab/scenario.go)"}
	}
	s := &Scenario{File: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(s); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			var errs []error
			for _, m := range te.Errors {
				errs = append(errs, typeError(name, m))
			}
			return nil, errors.Join(errs...)
		}
		return nil, &ScenarioError{File: name, Msg: err.Error(), Fix: "correct the YAML at that line"}
	}
	s.File = name
	lines := itemLines(root.Content[0])
	if err := s.validate(lines); err != nil {
		return nil, err
	}
	return s, nil
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

func typeError(file, msg string) error {
	e := &ScenarioError{File: file, Msg: msg, Fix: "use the keys and types of the scenario format (internal/netlab/scenario.go)"}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &e.Line)
		e.Msg = m[2]
		if strings.Contains(m[2], "not found in type") {
			e.Fix = "remove or rename the key: unknown keys are refused (valid: cluster{version,platform,topology,domain,region}, nodes{name,role,snat}, workloads{namespace,name,kind,node,hostNetwork}, external{host,tcp,udp}, traffic{from,to,protocol,port,connections,longLived,noLookup,burst})"
		}
	}
	return e
}

// itemLines maps "nodes", "workloads", ... to the line of each list item.
func itemLines(doc *yaml.Node) map[string][]int {
	out := map[string][]int{}
	if doc.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		out[k.Value+".key"] = []int{k.Line}
		if v.Kind == yaml.SequenceNode {
			for _, it := range v.Content {
				out[k.Value] = append(out[k.Value], it.Line)
			}
		}
	}
	return out
}

func lineOf(lines map[string][]int, key string, i int) int {
	if l := lines[key]; i >= 0 && i < len(l) {
		return l[i]
	}
	if l := lines[key+".key"]; len(l) > 0 {
		return l[0]
	}
	return 0
}

// NodeSource is the `from` prefix of traffic sent by a node itself.
const NodeSource = "node/"

func (s *Scenario) validate(lines map[string][]int) error {
	var errs []error
	add := func(key string, i int, fix, format string, a ...any) {
		errs = append(errs, &ScenarioError{File: s.File, Line: lineOf(lines, key, i), Msg: fmt.Sprintf(format, a...), Fix: fix})
	}
	c := s.Cluster
	if c.Version == "" {
		add("cluster", -1, `give the OpenShift version the baseline is selected by, e.g. cluster: {version: "4.21", platform: aws, topology: HighlyAvailable}`, "cluster.version is missing")
	} else if _, err := baseline.MinorVersion(c.Version); err != nil {
		add("cluster", -1, "write major.minor, e.g. \"4.21\"", "cluster.version: %v", err)
	}
	if c.Platform == "" {
		add("cluster", -1, "give the platform, e.g. aws, baremetal, none", "cluster.platform is missing")
	} else if _, err := baseline.PlatformFileName(c.Platform); err != nil {
		add("cluster", -1, "use a platform of Infrastructure.status.platformStatus.type", "cluster.platform: %v", err)
	}
	if c.Topology == "" {
		add("cluster", -1, "give the control-plane topology, e.g. HighlyAvailable or SingleReplica", "cluster.topology is missing")
	} else if _, err := baseline.TopologyFileName(c.Topology); err != nil {
		add("cluster", -1, "use a topology of Infrastructure.status.controlPlaneTopology", "cluster.topology: %v", err)
	}

	if len(s.Nodes) == 0 {
		add("nodes", -1, "list at least one node: nodes: [{name: worker-0, role: worker}]", "no nodes")
	}
	if len(s.Nodes) > maxNodes {
		add("nodes", -1, fmt.Sprintf("use at most %d nodes", maxNodes), "%d nodes", len(s.Nodes))
	}
	nodes := map[string]int{}
	for i, n := range s.Nodes {
		switch {
		case n.Name == "":
			add("nodes", i, "give the node a name, e.g. worker-0", "nodes[%d] has no name", i)
		case !k8sName.MatchString(n.Name):
			add("nodes", i, "use a lowercase DNS name, e.g. worker-0", "nodes[%d]: name %q is not a node name", i, n.Name)
		}
		if j, ok := nodes[n.Name]; ok && n.Name != "" {
			add("nodes", i, "give each node its own name", "nodes[%d]: node %q is already nodes[%d]", i, n.Name, j)
		}
		nodes[n.Name] = i
		if n.Role == "" {
			add("nodes", i, "give the role the baseline knows the node by: control-plane, worker, infra...", "nodes[%d] %q has no role", i, n.Name)
		} else if !dnsLabel.MatchString(n.Role) {
			add("nodes", i, "write a role such as control-plane or worker", "nodes[%d]: role %q is not a role name", i, n.Role)
		}
	}

	if len(s.Workloads) > maxWorkloads {
		add("workloads", -1, fmt.Sprintf("use at most %d workloads", maxWorkloads), "%d workloads", len(s.Workloads))
	}
	workloads := map[string]int{}
	for i, w := range s.Workloads {
		id := w.Namespace + "/" + w.Name
		if !dnsLabel.MatchString(w.Namespace) {
			add("workloads", i, "give the namespace, e.g. openshift-image-registry", "workloads[%d]: namespace %q is not a namespace name", i, w.Namespace)
		}
		if !k8sName.MatchString(w.Name) {
			add("workloads", i, "give the workload (owner) name, e.g. image-registry", "workloads[%d]: name %q is not a workload name", i, w.Name)
		}
		if !kindRegexp.MatchString(w.Kind) {
			add("workloads", i, "give the owner kind: Deployment, DaemonSet, StatefulSet, ...", "workloads[%d] %s: kind %q is not an owner kind", i, id, w.Kind)
		}
		if _, ok := nodes[w.Node]; !ok {
			add("workloads", i, "name one of the scenario's nodes: "+strings.Join(s.nodeNames(), ", "), "workloads[%d] %s: node %q is not a node of the scenario", i, id, w.Node)
		}
		if j, ok := workloads[id]; ok {
			add("workloads", i, "give each workload its own namespace/name", "workloads[%d]: %s is already workloads[%d]", i, id, j)
		}
		workloads[id] = i
	}

	if len(s.External) > maxExternal {
		add("external", -1, fmt.Sprintf("use at most %d external hosts", maxExternal), "%d external hosts", len(s.External))
	}
	ext := map[string]int{}
	for i, e := range s.External {
		h := strings.ToLower(strings.TrimSuffix(e.Host, "."))
		if !isHostname(h) {
			add("external", i, "give a DNS name, e.g. quay.io", "external[%d]: host %q is not a host name", i, e.Host)
		}
		if j, ok := ext[h]; ok {
			add("external", i, "list each host once, with all its ports", "external[%d]: host %q is already external[%d]", i, e.Host, j)
		}
		ext[h] = i
		if len(e.TCP)+len(e.UDP) == 0 {
			add("external", i, "give the host's listeners, e.g. tcp: [443] or udp: [123]", "external[%d] %s has no tcp or udp port", i, e.Host)
		}
		for _, ps := range []struct {
			proto string
			ports []int
		}{{"tcp", e.TCP}, {"udp", e.UDP}} {
			seen := map[int]bool{}
			for _, p := range ps.ports {
				if p < 1 || p > 65535 {
					add("external", i, "give ports within 1-65535", "external[%d] %s: %s port %d", i, e.Host, ps.proto, p)
				}
				if seen[p] {
					add("external", i, "list each port once", "external[%d] %s: %s port %d twice", i, e.Host, ps.proto, p)
				}
				seen[p] = true
			}
		}
	}

	total := 0
	for i, t := range s.Traffic {
		switch {
		case strings.HasPrefix(t.From, NodeSource):
			if _, ok := nodes[strings.TrimPrefix(t.From, NodeSource)]; !ok {
				add("traffic", i, "name a node of the scenario: "+strings.Join(s.nodeNames(), ", "), "traffic[%d]: from %q is not a node of the scenario", i, t.From)
			}
		default:
			if _, ok := workloads[t.From]; !ok {
				add("traffic", i, "write NAMESPACE/NAME of a workload of the scenario, or node/NODE", "traffic[%d]: from %q is not a workload of the scenario", i, t.From)
			}
		}
		j, ok := ext[strings.ToLower(strings.TrimSuffix(t.To, "."))]
		if !ok {
			add("traffic", i, "name a host listed under external", "traffic[%d]: to %q is not an external host of the scenario", i, t.To)
		}
		var listeners []int
		switch t.Protocol {
		case "TCP":
			if ok {
				listeners = s.External[j].TCP
			}
		case "UDP":
			if ok {
				listeners = s.External[j].UDP
			}
			if t.LongLived {
				add("traffic", i, "use longLived with TCP only", "traffic[%d]: longLived UDP", i)
			}
		default:
			add("traffic", i, "write protocol: TCP or protocol: UDP", "traffic[%d]: protocol %q", i, t.Protocol)
		}
		if ok && (t.Protocol == "TCP" || t.Protocol == "UDP") && !containsInt(listeners, t.Port) {
			add("traffic", i, fmt.Sprintf("use a %s port %s listens on (%v), or add the port to its external entry", t.Protocol, t.To, listeners), "traffic[%d]: %s has no %s listener on port %d", i, t.To, t.Protocol, t.Port)
		}
		if t.Connections < 1 {
			add("traffic", i, "give connections: 1 or more", "traffic[%d]: connections %d", i, t.Connections)
		}
		if t.LongLived && t.Connections != 1 {
			add("traffic", i, "a longLived traffic entry is one connection: connections: 1", "traffic[%d]: longLived with connections %d", i, t.Connections)
		}
		if t.Burst && t.Connections > maxBurst {
			add("traffic", i, fmt.Sprintf("use at most %d connections in a burst (one client port each)", maxBurst), "traffic[%d]: burst of %d connections", i, t.Connections)
		}
		total += t.Connections
		s.Traffic[i].line = lineOf(lines, "traffic", i)
	}
	if total > MaxConnections {
		add("traffic", -1, fmt.Sprintf("keep the scenario's connections at most %d", MaxConnections), "%d connections in all", total)
	}
	if len(errs) > 0 {
		sort.SliceStable(errs, func(a, b int) bool {
			ea, eb := errs[a].(*ScenarioError), errs[b].(*ScenarioError)
			return ea.Line < eb.Line
		})
		return errors.Join(errs...)
	}
	return nil
}

func (s *Scenario) nodeNames() []string {
	var out []string
	for _, n := range s.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func isHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// node returns the node named n.
func (s *Scenario) node(n string) (Node, int) {
	for i, x := range s.Nodes {
		if x.Name == n {
			return x, i
		}
	}
	return Node{}, -1
}
