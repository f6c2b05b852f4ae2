package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// What one process installed is cleaned up by another from the stored refs alone.
func TestRestoreTrackerCleansUpAcrossProcesses(t *testing.T) {
	ctx := context.Background()
	f := newFakes(t, []runtime.Object{defaultStorageClass("gp3")}, nil)
	readyOnCreate(f)
	cfg, _ := FromEnv(env(nil))
	cfg.InstallTimeout = time.Second
	store, _ := PlanStore(cfg, nil)
	first := &Tracker{}
	if err := InstallMonolithicLoki(ctx, f.Clients, first, cfg, store); err != nil {
		t.Fatal(err)
	}
	fc := flowCollector(map[string]any{})
	if err := create(ctx, f.Clients, first, GVRFlowCollector, fc, true); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(first.Refs())
	if err != nil {
		t.Fatal(err)
	}
	var refs []CreatedRef
	if err := json.Unmarshal(data, &refs); err != nil {
		t.Fatal(err)
	}
	second, err := RestoreTracker(f.Clients, refs)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(createdNames(second), " "), strings.Join(createdNames(first), " "); got != want {
		t.Errorf("restored %s, want %s", got, want)
	}
	if err := second.Cleanup(ctx, f.Clients, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.kube.CoreV1().Namespaces().Get(ctx, SuiteNamespace, metav1.GetOptions{}); err == nil {
		t.Error("namespace left")
	}
	if _, err := f.kube.AppsV1().Deployments(SuiteNamespace).Get(ctx, "loki", metav1.GetOptions{}); err == nil {
		t.Error("Loki deployment left")
	}
	if _, err := f.dyn.Resource(GVRFlowCollector).Get(ctx, FlowCollectorName, metav1.GetOptions{}); err == nil {
		t.Error("FlowCollector left")
	}
}

func TestRestoreTrackerRefusesUnknownEntries(t *testing.T) {
	f := newFakes(t, nil, nil)
	_, err := RestoreTracker(f.Clients, []CreatedRef{{Kind: "Namespace", Name: "ok"}, {Kind: "Pod", Namespace: "x", Name: "p"}, {Name: "n"}, {Kind: "ConfigMap"}})
	if err == nil || !strings.Contains(err.Error(), `entry 1: no typed client for kind "Pod" (x/p)`) ||
		!strings.Contains(err.Error(), "entry 2") || !strings.Contains(err.Error(), "entry 3") {
		t.Errorf("got %v", err)
	}
}
