package netobserv

import (
	"bytes"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

func labCfg() FLPConfig {
	return FLPConfig{GRPCPort: 9999, MetricsPort: 9401, LokiURL: "http://127.0.0.1:3100",
		Endpoints: []Endpoint{
			{Addr: "10.0.0.1", Name: "worker-0", OwnerName: "worker-0", OwnerType: "Node", Type: "Node", HostIP: "10.0.0.1", HostName: "worker-0"},
			{Addr: "10.128.0.2", Namespace: "openshift-image-registry", Name: "image-registry-x", OwnerName: "image-registry", OwnerType: "Deployment", Type: "Pod", HostIP: "10.0.0.1", HostName: "worker-0"},
			{Addr: "10.128.0.3", Namespace: "tenant-a", Name: "web-y", OwnerName: "web", OwnerType: "Deployment", Type: "Pod", HostIP: "10.0.0.1", HostName: "worker-0"},
			{Addr: "172.30.0.10", Namespace: "openshift-dns", Name: "dns-default", OwnerName: "dns-default", OwnerType: "Service", Type: "Service"},
		},
		SubnetLabels: []SubnetLabel{{Name: "Pods", CIDRs: []string{"10.128.0.0/14"}}, {Name: "Machines", CIDRs: []string{"10.0.0.0/16"}}},
	}
}

func TestRenderFLPConfig(t *testing.T) {
	out, err := RenderFLPConfig(labCfg())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := RenderFLPConfig(labCfg())
	if !bytes.Equal(out, again) {
		t.Fatal("the same configuration renders differently")
	}
	var root struct {
		MetricsSettings struct {
			Address string `json:"address"`
		} `json:"metricsSettings"`
		Pipeline []struct {
			Name, Follows string
		} `json:"pipeline"`
		Parameters []map[string]any `json:"parameters"`
	}
	if err := yaml.Unmarshal(out, &root); err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	var names []string
	for _, s := range root.Pipeline {
		names = append(names, s.Name+"<"+s.Follows)
	}
	if got := strings.Join(names, " "); got != "ingest< k8s<ingest enrich<k8s subnets<enrich loki<subnets" {
		t.Errorf("pipeline %s", got)
	}
	if root.MetricsSettings.Address != "127.0.0.1" {
		t.Errorf("FLP's own metrics must stay on loopback, got %q", root.MetricsSettings.Address)
	}
	s := string(out)
	for _, want := range []string{
		"reinterpret_direction", "decode_tcp_flags", "add_subnet_label", "timestampLabel: TimeFlowEndMs", "tenantID: netobserv",
		"app: netobserv-flowcollector", "DstK8S_OwnerName", "K8S_FlowLayer", "FlowDirection",
		"== '172.30.0.10'", "assignee: dns-default", "assignee: app", // tenant-a is an app namespace
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered configuration lacks %q", want)
		}
	}
	if strings.Count(s, "assignee: app\n") != 2 { // src and dst side of tenant-a only
		t.Errorf("K8S_FlowLayer app set %d times, want 2 (tenant-a as source and as destination)", strings.Count(s, "assignee: app\n"))
	}
}

func TestRenderFLPConfigRefuses(t *testing.T) {
	for name, mod := range map[string]func(*FLPConfig){
		"duplicate address": func(c *FLPConfig) { c.Endpoints[2].Addr = c.Endpoints[1].Addr },
		"unknown type":      func(c *FLPConfig) { c.Endpoints[1].Type = "Deployment" },
		"pod without host":  func(c *FLPConfig) { c.Endpoints[1].HostIP = "" },
		"service with host": func(c *FLPConfig) { c.Endpoints[3].HostIP = "10.0.0.1" },
		"pod without ns":    func(c *FLPConfig) { c.Endpoints[1].Namespace = "" },
		"label twice":       func(c *FLPConfig) { c.SubnetLabels[1].Name = "Pods" },
		"address not an IP": func(c *FLPConfig) { c.Endpoints[0].Addr = "worker-0" },
	} {
		t.Run(name, func(t *testing.T) {
			c := labCfg()
			mod(&c)
			if _, err := RenderFLPConfig(c); err == nil || !strings.Contains(err.Error(), "FLPConfig.") {
				t.Fatalf("RenderFLPConfig = %v, want an error naming the field", err)
			}
		})
	}
}
