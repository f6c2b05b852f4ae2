// Command egress-tests-ext is the openshift-tests extension that proves which network
// connections leave an OpenShift cluster, plus offline tools for the egress matrix.
package main

import (
	"fmt"
	"os"

	"github.com/openshift-eng/openshift-tests-extension/pkg/cmd"
	e "github.com/openshift-eng/openshift-tests-extension/pkg/extension"
	g "github.com/openshift-eng/openshift-tests-extension/pkg/ginkgo"
	"github.com/spf13/cobra"

	"github.com/openshift/egress-tests-ext/internal/cli"

	// The Ginkgo specs register themselves on import.
	_ "github.com/openshift/egress-tests-ext/test/e2e"
)

// SuiteName is the suite openshift-tests runs; the specs install operators, so they run on
// their own rather than as part of conformance.
const SuiteName = "openshift/network/egress-flows"

func main() {
	registry := e.NewRegistry()
	ext := e.NewExtension("openshift", "payload", "egress-tests-ext")
	ext.AddSuite(e.Suite{
		Name:        SuiteName,
		Description: "Serial specs that record the cluster's egress flows with NetObserv and diff them against baseline/.",
		Qualifiers:  []string{`name.contains("[Feature:EgressFlowMatrix]")`},
	})

	specs, err := g.BuildExtensionTestSpecsFromOpenShiftGinkgoSuite()
	if err != nil {
		fmt.Fprintf(os.Stderr, "egress-tests-ext: cannot build specs from the Ginkgo suite: %v\n", err)
		os.Exit(2)
	}
	ext.AddSpecs(specs)
	registry.Register(ext)

	root := &cobra.Command{
		Use:          "egress-tests-ext",
		Short:        "OpenShift egress flow matrix: openshift-tests extension and offline tools",
		SilenceUsage: true,
	}
	root.AddCommand(cmd.DefaultExtensionCommands(registry)...)
	// Our own tools sit beside OTE's commands: `matrix ...` and `baseline ...`.
	root.AddCommand(cli.Commands()...)
	if err := root.Execute(); err != nil {
		// matrix diff: 1 means undocumented flows, 2 any error; OTE's commands exit 2 on error
		// too (openshift-tests only reads their output).
		os.Exit(cli.ExitCode(err))
	}
}
