package netlab

import (
	"strings"
	"testing"
)

func TestParseScenarioGood(t *testing.T) {
	s, err := LoadScenario("testdata/lab.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 3 || len(s.Workloads) != 6 || len(s.Traffic) != 8 {
		t.Errorf("parsed %d nodes, %d workloads, %d traffic", len(s.Nodes), len(s.Workloads), len(s.Traffic))
	}
	if !s.Nodes[2].SNAT || s.Nodes[0].SNAT {
		t.Error("snat not parsed")
	}
	if _, err := LoadScenario("../../testdata/demo/scenario.yaml"); err != nil {
		t.Errorf("the demo scenario: %v", err)
	}
}

const head = `cluster: {version: "4.21", platform: aws, topology: HighlyAvailable}
nodes:
  - {name: worker-0, role: worker}
workloads:
  - {namespace: ns-a, name: app, kind: Deployment, node: worker-0}
external:
  - {host: quay.io, tcp: [443], udp: [123]}
`

func TestParseScenarioErrors(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // substrings of the error, the first one "file:line"
	}{
		{"unknown key", head + "traffic:\n  - {from: ns-a/app, to: quay.io, protocol: TCP, port: 443, connections: 1, color: red}\n",
			[]string{"s.yaml:9", "color", "unknown keys are refused"}},
		{"unknown top key", head + "extra: 1\n", []string{"s.yaml:8", "extra"}},
		{"bad from", head + "traffic:\n  - {from: ns-a/nope, to: quay.io, protocol: TCP, port: 443, connections: 1}\n",
			[]string{"s.yaml:9", `from "ns-a/nope" is not a workload`, "fix:"}},
		{"bad node source", head + "traffic:\n  - {from: node/w9, to: quay.io, protocol: TCP, port: 443, connections: 1}\n",
			[]string{"s.yaml:9", "not a node", "worker-0"}},
		{"bad to", head + "traffic:\n  - {from: ns-a/app, to: example.com, protocol: TCP, port: 443, connections: 1}\n",
			[]string{"s.yaml:9", "not an external host"}},
		{"port not listened", head + "traffic:\n  - {from: ns-a/app, to: quay.io, protocol: TCP, port: 80, connections: 1}\n",
			[]string{"s.yaml:9", "no TCP listener on port 80", "[443]"}},
		{"udp port", head + "traffic:\n  - {from: ns-a/app, to: quay.io, protocol: UDP, port: 443, connections: 1}\n",
			[]string{"s.yaml:9", "no UDP listener on port 443"}},
		{"protocol", head + "traffic:\n  - {from: ns-a/app, to: quay.io, protocol: SCTP, port: 443, connections: 1}\n",
			[]string{"s.yaml:9", `protocol "SCTP"`}},
		{"connections", head + "traffic:\n  - {from: ns-a/app, to: quay.io, protocol: TCP, port: 443, connections: 0}\n",
			[]string{"s.yaml:9", "connections 0"}},
		{"long-lived udp", head + "traffic:\n  - {from: ns-a/app, to: quay.io, protocol: UDP, port: 123, connections: 1, longLived: true}\n",
			[]string{"s.yaml:9", "longLived UDP"}},
		{"duplicate node", strings.Replace(head, "  - {name: worker-0, role: worker}\n", "  - {name: worker-0, role: worker}\n  - {name: worker-0, role: infra}\n", 1),
			[]string{"s.yaml:4", `node "worker-0" is already nodes[0]`}},
		{"duplicate workload", strings.Replace(head, "external:", "  - {namespace: ns-a, name: app, kind: Deployment, node: worker-0}\nexternal:", 1),
			[]string{"s.yaml:6", "ns-a/app is already workloads[0]"}},
		{"workload node", strings.Replace(head, "node: worker-0}\nexternal", "node: worker-9}\nexternal", 1),
			[]string{"s.yaml:5", `node "worker-9" is not a node`}},
		{"duplicate host", head + "  - {host: Quay.io, tcp: [80]}\n", []string{"s.yaml:8", "already external[0]"}},
		{"no listener", head + "  - {host: x.example.com}\n", []string{"s.yaml:8", "no tcp or udp port"}},
		{"bad version", strings.Replace(head, `"4.21"`, `"four"`, 1), []string{"s.yaml:1", "not an OpenShift version"}},
		{"bad platform", strings.Replace(head, "aws", "mars", 1), []string{"s.yaml:1", "unknown platform"}},
		{"type", head + "traffic:\n  - {from: ns-a/app, to: quay.io, protocol: TCP, port: many, connections: 1}\n",
			[]string{"s.yaml:9", "cannot unmarshal"}},
		{"syntax", "nodes: [\n", []string{"s.yaml", "YAML"}},
		{"empty", "", []string{"s.yaml", "empty"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseScenario("s.yaml", []byte(tc.doc))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tc.want[0]) {
				t.Errorf("error does not start with %q:\n%s", tc.want[0], msg)
			}
			for _, w := range tc.want[1:] {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
		})
	}
}
