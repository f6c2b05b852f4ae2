package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clienttesting "k8s.io/client-go/testing"
)

func flowCollector(spec map[string]any) *unstructured.Unstructured {
	return u("flows.netobserv.io/v1beta2", "FlowCollector", "", FlowCollectorName, map[string]any{"spec": spec})
}

func ebpf(sampling any, features ...any) map[string]any {
	e := map[string]any{"features": features}
	if sampling != nil {
		e["sampling"] = sampling
	}
	return map[string]any{"type": "eBPF", "ebpf": e}
}

func TestInspectFlowCollector(t *testing.T) {
	cases := []struct {
		name     string
		spec     map[string]any
		inErr    string
		store    string
		warnings int
	}{
		{"sampling absent defaults to 50", map[string]any{"agent": ebpf(nil, "DNSTracking", "PacketTranslation")}, "1 packet in 50", "", 0},
		{"sampling 10", map[string]any{"agent": ebpf(int64(10))}, "1 packet in 10", "", 0},
		{"IPFIX", map[string]any{"agent": map[string]any{"type": "IPFIX"}}, "eBPF agent", "", 0},
		{"no loki", map[string]any{"agent": ebpf(int64(1)), "loki": map[string]any{"enable": false}}, "spec.loki.enable", "", 0},
		{"auto-detect off", map[string]any{"agent": ebpf(int64(1)), "processor": map[string]any{"subnetLabels": map[string]any{"openShiftAutoDetect": false}}}, "openShiftAutoDetect", "", 0},
		{"monolithic default URL", map[string]any{"agent": ebpf(int64(1), "DNSTracking", "PacketTranslation")}, "", "monolithic Loki service netobserv/loki:3100 (tenant netobserv)", 0},
		{"sampling 0 samples all", map[string]any{"agent": ebpf(int64(0), "DNSTracking"), "namespace": "nobs",
			"loki": map[string]any{"mode": "Monolithic", "monolithic": map[string]any{"url": "http://my-loki.logs.svc.cluster.local:3101/", "tenantID": "t1"}}},
			"", "monolithic Loki service logs/my-loki:3101 (tenant t1)", 1},
		{"lokistack", map[string]any{"agent": ebpf(int64(1)), "namespace": "nobs", "loki": map[string]any{"mode": "LokiStack", "lokiStack": map[string]any{"name": "ls"}}},
			"", "LokiStack nobs/ls (tenant network)", 2},
		// Settings that keep flows out of Loki.
		{"conversations only", map[string]any{"agent": ebpf(int64(1)), "processor": map[string]any{"logTypes": "EndedConversations"}}, "spec.processor.logTypes to Flows or All", "", 0},
		{"flows and conversations", map[string]any{"agent": ebpf(int64(1)), "processor": map[string]any{"logTypes": "All"}}, "", "monolithic Loki service netobserv/loki:3100 (tenant netobserv)", 2},
		{"agent flow filter", map[string]any{"agent": map[string]any{"type": "eBPF", "ebpf": map[string]any{"sampling": int64(1),
			"flowFilter": map[string]any{"enable": true, "action": "Accept", "cidr": "0.0.0.0/0"}}}}, "spec.agent.ebpf.flowFilter.enable: true", "", 0},
		{"processor filter", map[string]any{"agent": ebpf(int64(1)), "processor": map[string]any{"filters": []any{
			map[string]any{"query": `SrcK8S_Namespace="app"`, "outputTarget": "Metrics"},
			map[string]any{"query": `DstPort=443`}}}}, `matching "DstPort=443" in Loki (spec.processor.filters[1])`, "", 0},
		{"slices allow list", map[string]any{"agent": ebpf(int64(1)), "processor": map[string]any{"slicesConfig": map[string]any{"enable": true, "collectionMode": "AllowList"}}}, "collectionMode to AlwaysCollect", "", 0},
		{"slices always", map[string]any{"agent": ebpf(int64(1), "DNSTracking", "PacketTranslation"), "processor": map[string]any{"slicesConfig": map[string]any{"enable": true, "collectionMode": "AlwaysCollect"}}}, "", "monolithic Loki service netobserv/loki:3100 (tenant netobserv)", 0},
		// Lokis the suite cannot reach itself are for EGRESS_LOKI_URL (PlanStore), not errors.
		{"manual", map[string]any{"agent": ebpf(int64(1), "DNSTracking", "PacketTranslation"), "loki": map[string]any{"mode": "Manual"}}, "", "", 0},
		{"https monolithic", map[string]any{"agent": ebpf(int64(1), "DNSTracking", "PacketTranslation"), "loki": map[string]any{"monolithic": map[string]any{"url": "https://loki:3100/"}}}, "", "", 0},
		{"TLS monolithic", map[string]any{"agent": ebpf(int64(1), "DNSTracking", "PacketTranslation"), "loki": map[string]any{"monolithic": map[string]any{"url": "http://loki:3100/", "tls": map[string]any{"enable": true}}}}, "", "", 0},
	}
	unreachable := map[string]string{"manual": "Loki mode Manual", "https monolithic": `"https://loki:3100/" is not http://`, "TLS monolithic": "with TLS is not reachable"}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := inspectFlowCollector(flowCollector(tc.spec))
			if tc.inErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.inErr) {
					t.Fatalf("want an error with %q, got %v", tc.inErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			store := ""
			if c.Store != nil {
				store = c.Store.String()
			}
			if store != tc.store || len(c.Warnings) != tc.warnings {
				t.Errorf("store %q warnings %v", store, c.Warnings)
			}
			if want := unreachable[tc.name]; (want == "") != (c.Unreachable == "") || !strings.Contains(c.Unreachable, want) {
				t.Errorf("unreachable %q, want %q", c.Unreachable, want)
			}
		})
	}
}

func TestEnsureFlowCollector(t *testing.T) {
	ctx := context.Background()
	store, _ := PlanStore(&Config{}, nil)

	f := newFakes(t, nil, nil, flowCollector(map[string]any{"agent": ebpf(int64(50))}))
	if _, _, err := EnsureFlowCollector(ctx, f.Clients, &Tracker{}, store); err == nil || !strings.Contains(err.Error(), "sampling") {
		t.Fatalf("an existing FlowCollector sampling 50 must be refused, got %v", err)
	}

	f = newFakes(t, nil, nil)
	tr := &Tracker{}
	col, created, err := EnsureFlowCollector(ctx, f.Clients, tr, store)
	if err != nil || !created || col.Store.InClusterURL != store.InClusterURL {
		t.Fatalf("create: %v %v %+v", err, created, col)
	}
	if got := tr.Created(); len(got) != 1 || !got[0].WaitGone || got[0].GVR != GVRFlowCollector {
		t.Errorf("tracked %+v", got)
	}
	fc, _ := f.dyn.Resource(GVRFlowCollector).Get(ctx, FlowCollectorName, metav1.GetOptions{})
	if url, _, _ := unstructured.NestedString(fc.Object, "spec", "loki", "monolithic", "url"); url != "http://loki.egress-flow-matrix.svc:3100/" {
		t.Errorf("loki url %q", url)
	}
}

func TestWaitFlowCollectorReady(t *testing.T) {
	ready := func(status string) runtime.Object {
		fc := flowCollector(map[string]any{})
		_ = unstructured.SetNestedSlice(fc.Object, []any{map[string]any{"type": "Ready", "status": status, "reason": "Pending", "message": "agent not ready"}}, "status", "conditions")
		return fc
	}
	f := newFakes(t, nil, nil, ready("False"))
	calls := 0
	f.dyn.PrependReactor("get", "flowcollectors", func(clienttesting.Action) (bool, runtime.Object, error) {
		calls++
		if calls < 3 {
			return true, ready("False"), nil
		}
		return true, ready("True"), nil
	})
	if err := waitFlowCollectorReady(context.Background(), f.Clients, time.Second); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(f.out.String(), "Ready=False Pending agent not ready") || !strings.Contains(f.out.String(), "Ready=True") {
		t.Errorf("progress:\n%s", f.out)
	}
	f = newFakes(t, nil, nil, ready("False"))
	err := waitFlowCollectorReady(context.Background(), f.Clients, 50*time.Millisecond)
	if !errors.Is(err, errNotReady) || !strings.Contains(err.Error(), "agent not ready") {
		t.Errorf("timeout error %v", err)
	}
}
