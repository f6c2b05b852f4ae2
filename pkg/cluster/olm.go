package cluster

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Operator says how to install one operator through OLM.
type Operator struct {
	Package          string
	Catalog          string
	CatalogNamespace string
	Namespace        string
	NamespaceLabels  map[string]string
	// CRDs must be established and serve Version before the operator counts as installed.
	CRDs []ServedCRD
}

// ServedCRD is a CRD name and the version the suite uses.
type ServedCRD struct{ Name, Version string }

// The two operators the suite installs, from the catalog OpenShift ships.
var (
	netObservOperator = Operator{
		Package: "netobserv-operator", Catalog: "redhat-operators", CatalogNamespace: "openshift-marketplace",
		Namespace: "openshift-netobserv-operator",
		// NetObserv's own metrics and alerts are scraped by the platform Prometheus only with it.
		NamespaceLabels: map[string]string{"openshift.io/cluster-monitoring": "true"},
		CRDs:            []ServedCRD{{"flowcollectors.flows.netobserv.io", "v1beta2"}},
	}
	lokiOperator = Operator{
		Package: "loki-operator", Catalog: "redhat-operators", CatalogNamespace: "openshift-marketplace",
		Namespace:       "openshift-operators-redhat",
		NamespaceLabels: map[string]string{"openshift.io/cluster-monitoring": "true"},
		CRDs:            []ServedCRD{{"lokistacks.loki.grafana.com", "v1"}},
	}
)

// OperatorGroupObject is an OperatorGroup with no target namespaces: AllNamespaces install
// mode, the only one NetObserv and the Loki Operator support.
func (o Operator) OperatorGroupObject() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operators.coreos.com/v1",
		"kind":       "OperatorGroup",
		"metadata":   map[string]any{"name": o.Namespace, "namespace": o.Namespace},
		"spec":       map[string]any{},
	}}
}

// SubscriptionObject subscribes to channel of the operator's package with automatic approval.
func (o Operator) SubscriptionObject(channel string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operators.coreos.com/v1alpha1",
		"kind":       "Subscription",
		"metadata":   map[string]any{"name": o.Package, "namespace": o.Namespace},
		"spec": map[string]any{
			"channel":             channel,
			"name":                o.Package,
			"source":              o.Catalog,
			"sourceNamespace":     o.CatalogNamespace,
			"installPlanApproval": "Automatic",
		},
	}}
}

// DefaultChannel reads the package manifest's default channel from the catalog.
func (o Operator) DefaultChannel(ctx context.Context, c *Clients) (string, error) {
	list, err := c.Dynamic.Resource(gvrPackageMan).Namespace(o.CatalogNamespace).List(ctx, metav1.ListOptions{LabelSelector: "catalog=" + o.Catalog})
	if err != nil {
		return "", fmt.Errorf("list package manifests of catalog %s: %w", o.Catalog, err)
	}
	for _, pm := range list.Items {
		if pm.GetName() != o.Package {
			continue
		}
		ch, _, _ := unstructured.NestedString(pm.Object, "status", "defaultChannel")
		if ch == "" {
			return "", fmt.Errorf("package manifest %s of catalog %s has no status.defaultChannel", o.Package, o.Catalog)
		}
		return ch, nil
	}
	return "", fmt.Errorf("catalog %s in %s has no package %s: is the catalog source healthy (oc get catalogsource -n %s) and the cluster connected or mirrored?",
		o.Catalog, o.CatalogNamespace, o.Package, o.CatalogNamespace)
}

// installResult says what ensureOperator found or did.
type installResult struct {
	Installed bool   // the suite created the Subscription
	Namespace string // where the operator's CSV lives
	CSV       string
	Channel   string
}

// ensureOperator installs the operator unless it is there already (a Subscription to its
// package anywhere, or its CRDs served), then waits for its CSV to succeed and its CRDs to be
// served. Only what is missing is created, and recorded in t for cleanup.
func ensureOperator(ctx context.Context, c *Clients, t *Tracker, o Operator, timeout time.Duration) (*installResult, error) {
	res := &installResult{}
	subs, err := c.Dynamic.Resource(gvrSubscription).Namespace("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list OLM Subscriptions (is OLM installed?): %w", err)
	}
	var sub *unstructured.Unstructured
	for i := range subs.Items {
		if name, _, _ := unstructured.NestedString(subs.Items[i].Object, "spec", "name"); name == o.Package {
			sub = &subs.Items[i]
			break
		}
	}
	if sub == nil {
		served, _, err := crdsServed(ctx, c, o.CRDs)
		if err != nil {
			return nil, err
		}
		if served {
			c.progress("%s: no Subscription, but its CRDs are served: using the operator installed outside OLM", o.Package)
			return res, nil
		}
		if sub, err = subscribe(ctx, c, t, o, res); err != nil {
			return nil, err
		}
	} else {
		res.Channel, _, _ = unstructured.NestedString(sub.Object, "spec", "channel")
		c.progress("%s: already subscribed in %s (channel %s)", o.Package, sub.GetNamespace(), res.Channel)
	}
	res.Namespace = sub.GetNamespace()

	err = waitFor(ctx, c, fmt.Sprintf("%s CSV in %s", o.Package, res.Namespace), 5*time.Second, timeout, func(ctx context.Context) (bool, string, error) {
		s, err := c.Dynamic.Resource(gvrSubscription).Namespace(res.Namespace).Get(ctx, sub.GetName(), metav1.GetOptions{})
		if err != nil {
			return false, "reading Subscription: " + err.Error(), nil
		}
		csvName, _, _ := unstructured.NestedString(s.Object, "status", "installedCSV")
		if csvName == "" {
			csvName, _, _ = unstructured.NestedString(s.Object, "status", "currentCSV")
		}
		state, _, _ := unstructured.NestedString(s.Object, "status", "state")
		if csvName == "" {
			return false, "Subscription state " + orNone(state) + ", no CSV yet", nil
		}
		res.CSV = csvName
		csv, err := c.Dynamic.Resource(gvrCSV).Namespace(res.Namespace).Get(ctx, csvName, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Sprintf("CSV %s: %v", csvName, err), nil
		}
		phase, _, _ := unstructured.NestedString(csv.Object, "status", "phase")
		reason, _, _ := unstructured.NestedString(csv.Object, "status", "reason")
		return phase == "Succeeded", fmt.Sprintf("CSV %s phase %s %s", csvName, orNone(phase), reason), nil
	})
	if err != nil {
		return res, err
	}
	err = waitFor(ctx, c, fmt.Sprintf("%s CRDs", o.Package), 2*time.Second, timeout, func(ctx context.Context) (bool, string, error) {
		ok, status, err := crdsServed(ctx, c, o.CRDs)
		return ok, status, err
	})
	return res, err
}

func subscribe(ctx context.Context, c *Clients, t *Tracker, o Operator, res *installResult) (*unstructured.Unstructured, error) {
	channel, err := o.DefaultChannel(ctx, c)
	if err != nil {
		return nil, err
	}
	res.Channel = channel
	c.progress("%s: installing from %s, channel %s, into %s", o.Package, o.Catalog, channel, o.Namespace)

	if err := ensureNamespace(ctx, c, t, o.Namespace, o.NamespaceLabels); err != nil {
		return nil, err
	}

	ogs, err := c.Dynamic.Resource(gvrOperatorGroup).Namespace(o.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list OperatorGroups in %s: %w", o.Namespace, err)
	}
	switch len(ogs.Items) {
	case 0:
		if err := create(ctx, c, t, gvrOperatorGroup, o.OperatorGroupObject(), false); err != nil {
			return nil, err
		}
	case 1:
		targets, _, _ := unstructured.NestedStringSlice(ogs.Items[0].Object, "spec", "targetNamespaces")
		if len(targets) > 0 {
			return nil, fmt.Errorf("OperatorGroup %s/%s targets namespaces %v, but %s supports only AllNamespaces: remove spec.targetNamespaces or the OperatorGroup",
				o.Namespace, ogs.Items[0].GetName(), targets, o.Package)
		}
	default:
		return nil, fmt.Errorf("namespace %s has %d OperatorGroups; OLM installs nothing there until only one is left", o.Namespace, len(ogs.Items))
	}

	sub := o.SubscriptionObject(channel)
	if err := create(ctx, c, t, gvrSubscription, sub, false); err != nil {
		return nil, err
	}
	return sub, nil
}

// create creates u and records it; AlreadyExists is not an error (someone raced us) and is
// then not recorded, since it is not ours to delete.
func create(ctx context.Context, c *Clients, t *Tracker, gvr schema.GroupVersionResource, u *unstructured.Unstructured, waitGone bool) error {
	err := onTransient(func() error {
		_, err := c.Dynamic.Resource(gvr).Namespace(u.GetNamespace()).Create(ctx, u, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		c.progress("  %s %s/%s exists already: left as it is", u.GetKind(), u.GetNamespace(), u.GetName())
		return nil
	}
	if err != nil {
		return fmt.Errorf("create %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	t.Add(gvr, u.GetNamespace(), u.GetName(), waitGone)
	c.progress("  created %s %s", u.GetKind(), strings.TrimPrefix(u.GetNamespace()+"/"+u.GetName(), "/"))
	return nil
}

// crdsServed reports whether every CRD is established and serves its version.
func crdsServed(ctx context.Context, c *Clients, crds []ServedCRD) (bool, string, error) {
	for _, want := range crds {
		crd, err := c.Dynamic.Resource(GVRCRD).Get(ctx, want.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "CRD " + want.Name + " absent", nil
		}
		if err != nil {
			return false, "", fmt.Errorf("read CRD %s: %w", want.Name, err)
		}
		if st, _, _, _ := condition(crd, "Established"); st != "True" {
			return false, "CRD " + want.Name + " not established", nil
		}
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		served := false
		for _, v := range versions {
			m, _ := v.(map[string]any)
			if m["name"] == want.Version && m["served"] == true {
				served = true
			}
		}
		if !served {
			return false, fmt.Sprintf("CRD %s does not serve %s", want.Name, want.Version), nil
		}
	}
	return true, "CRDs served", nil
}

// deleteSubscriptionAndCSV removes a Subscription and the CSV it installed: deleting only the
// Subscription leaves the operator running.
func deleteSubscriptionAndCSV(ctx context.Context, c *Clients, ns, name string) error {
	sub, err := c.Dynamic.Resource(gvrSubscription).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	csv, _, _ := unstructured.NestedString(sub.Object, "status", "installedCSV")
	if err := c.Dynamic.Resource(gvrSubscription).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if csv != "" {
		if err := c.Dynamic.Resource(gvrCSV).Namespace(ns).Delete(ctx, csv, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete CSV %s/%s: %w", ns, csv, err)
		}
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
