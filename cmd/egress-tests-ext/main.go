// Command egress-tests-ext is the openshift-tests extension that proves which network
// connections leave an OpenShift cluster, plus the capture lifecycle and offline tools for
// the egress matrix.
package main

import (
	"fmt"
	"os"

	"github.com/openshift-eng/openshift-tests-extension/pkg/cmd"
	"github.com/spf13/cobra"

	"github.com/openshift/egress-tests-ext/internal/cli"
	"github.com/openshift/egress-tests-ext/internal/extension"
)

func main() {
	registry, err := extension.Registry()
	if err != nil {
		fmt.Fprintf(os.Stderr, "egress-tests-ext: %v\n", err)
		os.Exit(2)
	}
	root := &cobra.Command{
		Use:          "egress-tests-ext",
		Short:        "OpenShift egress flow matrix: openshift-tests extension, capture lifecycle and offline tools",
		SilenceUsage: true,
	}
	root.AddCommand(cmd.DefaultExtensionCommands(registry)...)
	// Our own commands sit beside OTE's: `capture ...`, `matrix ...` and `baseline ...`.
	root.AddCommand(cli.Commands()...)
	if err := root.Execute(); err != nil {
		// matrix diff: 1 means undocumented flows, 2 any error; OTE's commands exit 2 on error
		// too (openshift-tests only reads their output).
		os.Exit(cli.ExitCode(err))
	}
}
