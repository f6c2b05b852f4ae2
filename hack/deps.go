//go:build tools

// Package hack pins the libraries of the design while the packages that use them are
// being written in parallel, so that `go mod tidy` in one package does not drop another's.
package hack

import (
	_ "github.com/grafana/loki/v3/pkg/logcli/client"
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "github.com/openshift/client-go/config/clientset/versioned"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/client-go/dynamic/fake"
	_ "k8s.io/client-go/kubernetes/fake"
	_ "k8s.io/client-go/tools/portforward"
	_ "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	_ "sigs.k8s.io/yaml"
	_ "gopkg.in/yaml.v3"
	_ "github.com/spf13/cobra"
)
