package cluster

import (
	"fmt"
	"io"
	"os"

	configclient "github.com/openshift/client-go/config/clientset/versioned"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Clients bundles what the suite talks to the cluster with. Tests fill it with fakes; REST is
// only needed for port-forwarding.
type Clients struct {
	Kube    kubernetes.Interface
	Config  configclient.Interface
	Dynamic dynamic.Interface
	REST    *rest.Config
	// Out receives progress lines (GinkgoWriter in the specs).
	Out io.Writer
}

// NewClients builds the clients from a rest config.
func NewClients(cfg *rest.Config, out io.Writer) (*Clients, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	conf, err := configclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("openshift config client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	if out == nil {
		out = io.Discard
	}
	return &Clients{Kube: kube, Config: conf, Dynamic: dyn, REST: cfg, Out: out}, nil
}

func (c *Clients) progress(format string, args ...any) {
	if c.Out != nil {
		fmt.Fprintf(c.Out, format+"\n", args...)
	}
}

// Resources the suite reads or writes without importing their operators' Go modules.
var (
	gvrSubscription   = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "subscriptions"}
	gvrOperatorGroup  = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1", Resource: "operatorgroups"}
	gvrCSV            = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "clusterserviceversions"}
	gvrInstallPlan    = schema.GroupVersionResource{Group: "operators.coreos.com", Version: "v1alpha1", Resource: "installplans"}
	gvrPackageMan     = schema.GroupVersionResource{Group: "packages.operators.coreos.com", Version: "v1", Resource: "packagemanifests"}
	GVRCRD            = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	GVRFlowCollector  = schema.GroupVersionResource{Group: "flows.netobserv.io", Version: "v1beta2", Resource: "flowcollectors"}
	gvrLokiStack      = schema.GroupVersionResource{Group: "loki.grafana.com", Version: "v1", Resource: "lokistacks"}
	gvrImageStream    = schema.GroupVersionResource{Group: "image.openshift.io", Version: "v1", Resource: "imagestreams"}
	gvrNamespace      = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	gvrClusterRole    = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"}
	gvrClusterRoleBnd = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"}
	gvrSecret         = schema.GroupVersionResource{Version: "v1", Resource: "secrets"}
)

// GVR is short for the resource coordinates the dynamic client takes.
type GVR = schema.GroupVersionResource

// RestConfig finds the cluster the way openshift-tests does: KUBECONFIG, else in-cluster.
// getenv is os.Getenv in production.
func RestConfig(getenv func(string) string) (*rest.Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if kc := getenv("KUBECONFIG"); kc != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kc)
		if err != nil {
			return nil, fmt.Errorf("KUBECONFIG=%s cannot be loaded: %w", kc, err)
		}
		return cfg, nil
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster: KUBECONFIG is not set and this is not a pod in a cluster (%w); set KUBECONFIG to the cluster's kubeconfig", err)
	}
	return cfg, nil
}
