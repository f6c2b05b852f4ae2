package cluster

import (
	"testing"
	"time"

	configfake "github.com/openshift/client-go/config/clientset/versioned/fake"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
)

func init() {
	// The fakes answer at once: poll fast so the wait logic runs in milliseconds.
	pollInterval = func(time.Duration) time.Duration { return 5 * time.Millisecond }
}

type fakes struct {
	*Clients
	kube *kubefake.Clientset
	conf *configfake.Clientset
	dyn  *dynamicfake.FakeDynamicClient
	out  *syncBuilder
}

var listKinds = map[GVR]string{
	gvrSubscription:   "SubscriptionList",
	gvrOperatorGroup:  "OperatorGroupList",
	gvrCSV:            "ClusterServiceVersionList",
	gvrInstallPlan:    "InstallPlanList",
	gvrPackageMan:     "PackageManifestList",
	GVRCRD:            "CustomResourceDefinitionList",
	GVRFlowCollector:  "FlowCollectorList",
	gvrLokiStack:      "LokiStackList",
	gvrImageStream:    "ImageStreamList",
	gvrNamespace:      "NamespaceList",
	gvrClusterRole:    "ClusterRoleList",
	gvrClusterRoleBnd: "ClusterRoleBindingList",
	gvrSecret:         "SecretList",
	GVRFlowMetric:     "FlowMetricList",
	GVRBareMetalHost:  "BareMetalHostList",
}

func newFakes(t *testing.T, kubeObjs []runtime.Object, confObjs []runtime.Object, dynObjs ...runtime.Object) *fakes {
	t.Helper()
	f := &fakes{
		kube: kubefake.NewClientset(kubeObjs...),
		conf: configfake.NewClientset(confObjs...),
		dyn:  dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds, dynObjs...),
		out:  &syncBuilder{},
	}
	f.Clients = &Clients{Kube: f.kube, Config: f.conf, Dynamic: f.dyn, Out: f.out}
	return f
}

func u(apiVersion, kind, namespace, name string, fields map[string]any) *unstructured.Unstructured {
	obj := map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}
	if namespace != "" {
		obj["metadata"].(map[string]any)["namespace"] = namespace
	}
	for k, v := range fields {
		obj[k] = v
	}
	return &unstructured.Unstructured{Object: obj}
}

// servedCRD is a CRD object as the API server reports it once established.
func servedCRD(name, version string) *unstructured.Unstructured {
	return u("apiextensions.k8s.io/v1", "CustomResourceDefinition", "", name, map[string]any{
		"spec":   map[string]any{"versions": []any{map[string]any{"name": version, "served": true, "storage": true}}},
		"status": map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": "True"}}},
	})
}

func packageManifest(pkg, catalog, channel string) *unstructured.Unstructured {
	pm := u("packages.operators.coreos.com/v1", "PackageManifest", "openshift-marketplace", pkg, map[string]any{
		"status": map[string]any{"defaultChannel": channel, "catalogSource": catalog},
	})
	pm.SetLabels(map[string]string{"catalog": catalog})
	return pm
}

func createdNames(tr *Tracker) []string {
	var out []string
	for _, c := range tr.Created() {
		out = append(out, c.String())
	}
	return out
}
