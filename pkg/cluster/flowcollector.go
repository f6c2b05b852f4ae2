package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// FlowCollectorName is the only name NetObserv accepts.
const FlowCollectorName = "cluster"

// netObservNamespace is where the FlowCollector we create deploys its pods (and where a
// LokiStack we create lives, as NetObserv's documentation does).
const netObservNamespace = "netobserv"

// requiredFeatures are the eBPF agent features the matrix relies on: DNS names of queries
// (naming destinations) and packet translation (service NAT).
var requiredFeatures = []string{"DNSTracking", "PacketTranslation"}

// flowCollectorObject is the FlowCollector the suite creates: eBPF agent sampling every
// packet, the features above, subnet labels auto-detected (external = unlabelled) and Loki
// mode matching the store.
func flowCollectorObject(store *LokiStore) (*unstructured.Unstructured, error) {
	loki := map[string]any{"enable": true}
	switch store.Mode {
	case ModeMonolithic:
		loki["mode"] = "Monolithic"
		loki["monolithic"] = map[string]any{"url": store.InClusterURL, "tenantID": store.Tenant}
	case ModeLokiStack:
		loki["mode"] = "LokiStack"
		loki["lokiStack"] = map[string]any{"name": store.LokiStackName, "namespace": store.Namespace}
	default:
		return nil, fmt.Errorf("the suite creates a FlowCollector only for a Loki it installs (Monolithic or LokiStack), not for mode %q", store.Mode)
	}
	features := make([]any, 0, len(requiredFeatures))
	for _, f := range requiredFeatures {
		features = append(features, f)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "flows.netobserv.io/v1beta2",
		"kind":       "FlowCollector",
		"metadata":   map[string]any{"name": FlowCollectorName},
		"spec": map[string]any{
			// deploymentModel is left to the operator's default: its values differ across
			// NetObserv versions (older CRDs have no "Service").
			"namespace": netObservNamespace,
			"agent": map[string]any{
				"type": "eBPF",
				"ebpf": map[string]any{
					"sampling": int64(1),
					"features": features,
					// Flows reach Loki sooner than with the 15s default: shorter end padding.
					"cacheActiveTimeout": "5s",
				},
			},
			"processor": map[string]any{
				"subnetLabels": map[string]any{"openShiftAutoDetect": true},
			},
			"loki": loki,
		},
	}}, nil
}

// Collector is what the suite needs to know about a FlowCollector, ours or one found.
type Collector struct {
	Sampling  int64
	Features  []string
	Namespace string
	Store     *LokiStore // nil when the suite cannot reach the Loki itself: see Unreachable
	// Unreachable says why Store is nil: the Loki must then be given (EGRESS_LOKI_URL).
	Unreachable string
	// Warnings are degradations that do not invalidate the run (e.g. no DNSTracking).
	Warnings []string
}

// inspectFlowCollector checks that a FlowCollector records what the matrix needs, and fails
// with what to change when it cannot: sampling above 1 drops flows, so a run on it would
// report a clean cluster that was never fully observed.
func inspectFlowCollector(u *unstructured.Unstructured) (*Collector, error) {
	c := &Collector{Sampling: 50, Namespace: netObservNamespace}
	name := "FlowCollector " + u.GetName()
	if t, ok, _ := unstructured.NestedString(u.Object, "spec", "agent", "type"); ok && t != "eBPF" {
		return nil, fmt.Errorf("%s uses agent type %s; the suite needs the eBPF agent (spec.agent.type: eBPF)", name, t)
	}
	// The CRD's default for an absent sampling is 50.
	if s, ok, err := unstructured.NestedFieldNoCopy(u.Object, "spec", "agent", "ebpf", "sampling"); ok && err == nil {
		n, isNum := toInt64(s)
		if !isNum {
			return nil, fmt.Errorf("%s spec.agent.ebpf.sampling is %v, not a number", name, s)
		}
		c.Sampling = n
	}
	if c.Sampling > 1 {
		return nil, fmt.Errorf("%s samples 1 packet in %d (spec.agent.ebpf.sampling): flows would be missed and the matrix would look cleaner than the cluster is. Set spec.agent.ebpf.sampling to 1 (oc patch flowcollector %s --type merge -p '{\"spec\":{\"agent\":{\"ebpf\":{\"sampling\":1}}}}') or delete it so the suite creates its own",
			name, c.Sampling, u.GetName())
	}
	c.Features, _, _ = unstructured.NestedStringSlice(u.Object, "spec", "agent", "ebpf", "features")
	for _, f := range requiredFeatures {
		if !slices.Contains(c.Features, f) {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s does not enable eBPF feature %s: destinations are named with less evidence", name, f))
		}
	}
	if auto, ok, _ := unstructured.NestedBool(u.Object, "spec", "processor", "subnetLabels", "openShiftAutoDetect"); ok && !auto {
		return nil, fmt.Errorf("%s sets spec.processor.subnetLabels.openShiftAutoDetect: false: without cluster subnet labels egress cannot be told from internal traffic; set it to true", name)
	}
	if err := checkNothingFiltered(u, name); err != nil {
		return nil, err
	}
	if ns, ok, _ := unstructured.NestedString(u.Object, "spec", "namespace"); ok && ns != "" {
		c.Namespace = ns
	}
	if enabled, ok, _ := unstructured.NestedBool(u.Object, "spec", "loki", "enable"); ok && !enabled {
		return nil, fmt.Errorf("%s does not write to Loki (spec.loki.enable: false); the suite reads flows from Loki", name)
	}
	mode, _, _ := unstructured.NestedString(u.Object, "spec", "loki", "mode")
	if mode == "" {
		mode = "Monolithic" // the CRD's default
	}
	switch mode {
	case "LokiStack":
		lsName, _, _ := unstructured.NestedString(u.Object, "spec", "loki", "lokiStack", "name")
		lsNS, _, _ := unstructured.NestedString(u.Object, "spec", "loki", "lokiStack", "namespace")
		c.Store = &LokiStore{Mode: ModeLokiStack, LokiStackName: valueOr(lsName, "loki"), Namespace: valueOr(lsNS, c.Namespace), Tenant: lokiStackTenant}
	case "Monolithic":
		url, _, _ := unstructured.NestedString(u.Object, "spec", "loki", "monolithic", "url")
		tenant, _, _ := unstructured.NestedString(u.Object, "spec", "loki", "monolithic", "tenantID")
		// A Loki the port-forward cannot reach is not an error yet: EGRESS_LOKI_URL may
		// reach it (PlanStore decides).
		store, err := monolithicFromURL(valueOr(url, "http://loki:3100/"), c.Namespace)
		switch tls, _, _ := unstructured.NestedBool(u.Object, "spec", "loki", "monolithic", "tls", "enable"); {
		case err != nil:
			c.Unreachable = fmt.Sprintf("%s: %v", name, err)
		case tls:
			c.Unreachable = name + ": monolithic Loki with TLS is not reachable by the suite's port-forward"
		default:
			store.Tenant = valueOr(tenant, "netobserv")
			c.Store = store
		}
	default:
		c.Unreachable = fmt.Sprintf("%s uses Loki mode %s, which the suite does not locate", name, mode)
	}
	return c, nil
}

// checkNothingFiltered refuses the settings that keep flows out of Loki: what they drop
// could be the undocumented egress, and the matrix would not show it.
func checkNothingFiltered(u *unstructured.Unstructured, name string) error {
	if lt, _, _ := unstructured.NestedString(u.Object, "spec", "processor", "logTypes"); lt == "Conversations" || lt == "EndedConversations" {
		return fmt.Errorf("%s writes conversation events only (spec.processor.logTypes: %s), and the suite reads flows; set spec.processor.logTypes to Flows or All", name, lt)
	}
	if on, _, _ := unstructured.NestedBool(u.Object, "spec", "agent", "ebpf", "flowFilter", "enable"); on {
		return fmt.Errorf("%s filters flows in the eBPF agent (spec.agent.ebpf.flowFilter.enable: true): the flows it drops are never seen; set it to false for the run", name)
	}
	filters, _, _ := unstructured.NestedSlice(u.Object, "spec", "processor", "filters")
	for i, f := range filters {
		m, _ := f.(map[string]any)
		if target, _ := m["outputTarget"].(string); target == "" || target == "Loki" {
			query, _ := m["query"].(string)
			return fmt.Errorf("%s keeps only the flows matching %q in Loki (spec.processor.filters[%d]): the others are never seen; remove the filter, or give it another outputTarget, for the run", name, query, i)
		}
	}
	if on, _, _ := unstructured.NestedBool(u.Object, "spec", "processor", "slicesConfig", "enable"); on {
		if mode, _, _ := unstructured.NestedString(u.Object, "spec", "processor", "slicesConfig", "collectionMode"); mode == "AllowList" {
			return fmt.Errorf("%s collects the flows of allowed namespaces only (spec.processor.slicesConfig.collectionMode: AllowList): egress from the others is never seen; set collectionMode to AlwaysCollect for the run", name)
		}
	}
	return nil
}

// monolithicFromURL turns "http://<service>[.<namespace>[.svc...]]:<port>/" into a store
// reached by port-forwarding to that service.
func monolithicFromURL(raw, defaultNS string) (*LokiStore, error) {
	rest, ok := strings.CutPrefix(raw, "http://")
	if !ok {
		return nil, fmt.Errorf("monolithic Loki URL %q is not http://<service>[.<namespace>]:<port>, which the suite port-forwards to", raw)
	}
	hostport, _, _ := strings.Cut(rest, "/")
	host, portStr, found := strings.Cut(hostport, ":")
	port := 80
	if found {
		if _, err := fmt.Sscanf(portStr, "%d", &port); err != nil {
			return nil, fmt.Errorf("monolithic Loki URL %q has port %q: %w", raw, portStr, err)
		}
	}
	labels := strings.Split(host, ".")
	svc, ns := labels[0], defaultNS
	if len(labels) > 1 {
		ns = labels[1]
	}
	if svc == "" {
		return nil, fmt.Errorf("monolithic Loki URL %q has no host", raw)
	}
	return &LokiStore{Mode: ModeMonolithic, Namespace: ns, Service: svc, Port: port, InClusterURL: raw}, nil
}

func toInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case float64:
		return int64(n), n == float64(int64(n))
	}
	return 0, false
}

// EnsureFlowCollector uses the FlowCollector "cluster" when there is one (after checking it)
// and otherwise creates ours for store. It returns the collector and whether we created it.
func EnsureFlowCollector(ctx context.Context, c *Clients, t *Tracker, store *LokiStore) (*Collector, bool, error) {
	fc, err := c.Dynamic.Resource(GVRFlowCollector).Get(ctx, FlowCollectorName, metav1.GetOptions{})
	if err == nil {
		col, err := inspectFlowCollector(fc)
		if err != nil {
			return nil, false, err
		}
		c.progress("FlowCollector %s exists: sampling %d, features %v, used as it is", FlowCollectorName, col.Sampling, col.Features)
		for _, w := range col.Warnings {
			c.progress("WARNING: %s", w)
		}
		return col, false, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("read FlowCollector %s: %w", FlowCollectorName, err)
	}
	if store == nil {
		return nil, false, fmt.Errorf("no FlowCollector and no Loki store for one: internal error")
	}
	obj, err := flowCollectorObject(store)
	if err != nil {
		return nil, false, err
	}
	// Deleting the FlowCollector must finish before the operator goes: its finalizer is the
	// operator's to remove.
	if err := create(ctx, c, t, GVRFlowCollector, obj, true); err != nil {
		return nil, false, err
	}
	col, err := inspectFlowCollector(obj)
	return col, true, err
}

// waitFlowCollectorReady waits for the Ready condition of the FlowCollector.
func waitFlowCollectorReady(ctx context.Context, c *Clients, timeout time.Duration) error {
	return waitFor(ctx, c, "FlowCollector "+FlowCollectorName, 5*time.Second, timeout, func(ctx context.Context) (bool, string, error) {
		fc, err := c.Dynamic.Resource(GVRFlowCollector).Get(ctx, FlowCollectorName, metav1.GetOptions{})
		if err != nil {
			return false, "reading: " + err.Error(), nil
		}
		st, reason, msg, found := condition(fc, "Ready")
		if !found {
			return false, "no Ready condition yet", nil
		}
		return st == "True", fmt.Sprintf("Ready=%s %s %s", st, reason, msg), nil
	})
}
