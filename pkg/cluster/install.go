package cluster

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Setup is what Install found or created.
type Setup struct {
	Store            *LokiStore     `json:"store"`
	NetObserv        *installResult `json:"netObserv"`
	CollectorCreated bool           `json:"collectorCreated"`
	Collector        *Collector     `json:"-"`
	Warnings         []string       `json:"warnings,omitempty"`
}

// Install brings up, idempotently and only where missing: the suite's namespace and reader
// identity, the NetObserv operator, a Loki store, and the FlowCollector, then waits for all
// to be ready. An existing FlowCollector is checked first, so that one sampling above 1 is
// refused before anything is installed. Everything created is recorded in t.
func Install(ctx context.Context, c *Clients, cfg *Config, t *Tracker) (*Setup, error) {
	s := &Setup{}
	existing, err := existingCollector(ctx, c)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		s.Warnings = append(s.Warnings, existing.Warnings...)
	}
	if s.Store, err = PlanStore(cfg, existing); err != nil {
		return nil, err
	}
	if err := EnsureReader(ctx, c, t); err != nil {
		return nil, err
	}
	if s.NetObserv, err = ensureOperator(ctx, c, t, netObservOperator, cfg.InstallTimeout); err != nil {
		return s, err
	}
	if existing == nil {
		switch s.Store.Mode {
		case ModeMonolithic:
			err = InstallMonolithicLoki(ctx, c, t, cfg, s.Store)
		case ModeLokiStack:
			err = installLokiStack(ctx, c, t, cfg, s.Store)
		}
		if err != nil {
			return s, err
		}
	}
	if s.Store.Mode == ModeLokiStack && !s.Store.Installed {
		if err := checkLokiStackAdmin(ctx, c, s.Store); err != nil {
			return s, err
		}
	}
	s.Collector, s.CollectorCreated, err = EnsureFlowCollector(ctx, c, t, s.Store)
	if err != nil {
		return s, err
	}
	if err := waitFlowCollectorReady(ctx, c, cfg.InstallTimeout); err != nil {
		return s, err
	}
	return s, nil
}

// existingCollector returns the FlowCollector already on the cluster, checked, or nil.
func existingCollector(ctx context.Context, c *Clients) (*Collector, error) {
	served, _, err := crdsServed(ctx, c, netObservOperator.CRDs)
	if err != nil || !served {
		return nil, err
	}
	fc, err := c.Dynamic.Resource(GVRFlowCollector).Get(ctx, FlowCollectorName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read FlowCollector %s: %w", FlowCollectorName, err)
	}
	return inspectFlowCollector(fc)
}

// checkLokiStackAdmin fails when a LokiStack the suite did not create would filter the
// suite's view by namespace: its gateway shows all namespaces only to admin groups.
func checkLokiStackAdmin(ctx context.Context, c *Clients, store *LokiStore) error {
	ls, err := c.Dynamic.Resource(gvrLokiStack).Namespace(store.Namespace).Get(ctx, store.LokiStackName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read LokiStack %s/%s the FlowCollector writes to: %w", store.Namespace, store.LokiStackName, err)
	}
	groups, found, _ := unstructured.NestedStringSlice(ls.Object, "spec", "tenants", "openshift", "adminGroups")
	want := "system:serviceaccounts:" + SuiteNamespace
	if found && (slices.Contains(groups, want) || slices.Contains(groups, "system:serviceaccounts")) {
		return nil
	}
	return fmt.Errorf("LokiStack %s/%s shows the suite's service account only the namespaces it may list, so flows would be missed: add %q to its spec.tenants.openshift.adminGroups (keeping the defaults system:cluster-admins, cluster-admin, dedicated-admin), or set EGRESS_LOKI_URL with an admin token",
		store.Namespace, store.LokiStackName, want)
}

// DiagnosticNamespaces are the namespaces whose state explains a failed install.
func DiagnosticNamespaces(s *Setup) []string {
	ns := []string{netObservOperator.Namespace, netObservNamespace, SuiteNamespace}
	if s != nil && s.Store != nil && s.Store.Mode == ModeLokiStack {
		ns = append(ns, lokiOperator.Namespace)
		if s.Store.Namespace != netObservNamespace {
			ns = append(ns, s.Store.Namespace)
		}
	}
	if s != nil && s.Collector != nil && s.Collector.Namespace != netObservNamespace {
		ns = append(ns, s.Collector.Namespace)
	}
	return ns
}
