// Package extension builds the openshift-tests extension: its suite, the Ginkgo specs of
// test/e2e with the metadata openshift-tests plans by (lifecycle, environment selector,
// timeout), and the images the specs pull. cmd/egress-tests-ext serves it with OTE's commands.
package extension

import (
	"fmt"
	"io/fs"
	"strings"
	"time"

	e "github.com/openshift-eng/openshift-tests-extension/pkg/extension"
	et "github.com/openshift-eng/openshift-tests-extension/pkg/extension/extensiontests"
	g "github.com/openshift-eng/openshift-tests-extension/pkg/ginkgo"

	baselinefs "github.com/openshift/egress-tests-ext/baseline"
	"github.com/openshift/egress-tests-ext/pkg/baseline"
	"github.com/openshift/egress-tests-ext/pkg/capture"
	"github.com/openshift/egress-tests-ext/pkg/cluster"

	// The Ginkgo specs register themselves on import.
	_ "github.com/openshift/egress-tests-ext/test/e2e"
)

// The extension's identity: openshift-tests names its metadata and artifacts after it.
const (
	Product = "openshift"
	Kind    = "payload"
	Name    = "egress-tests-ext"
)

// SuiteName is the suite openshift-tests runs; the specs install operators, so they run on
// their own rather than as part of conformance.
const SuiteName = "openshift/network/egress-flows"

// The spec's time budget, part by part; SpecTimeout is their sum. Origin's default
// per-test timeout (15 min) is shorter than the install alone may take.
const (
	budgetInstall   = 15 * time.Minute       // cluster.Config.InstallTimeout default: operator, Loki, FlowCollector
	budgetFirstFlow = capture.FlowingTimeout // first flow in Loki
	budgetObserve   = 2 * time.Minute        // EGRESS_OBSERVE default
	budgetWorkloads = 5 * time.Minute        // resolver and canary running (image pulls)
	budgetCollect   = 10 * time.Minute       // ingestion barrier (3 min) and the window's queries
	budgetCleanup   = 5 * time.Minute        // tracker cleanup, waiting for the FlowCollector to go
	budgetSlack     = 3 * time.Minute
)

// SpecTimeout is the timeout the spec declares (resources.timeout, and the suite's testTimeout).
const SpecTimeout = budgetInstall + budgetFirstFlow + budgetObserve + budgetWorkloads + budgetCollect + budgetCleanup + budgetSlack

// InformingLabel is OTE's label for an informing spec (what g.Informing() puts on a Ginkgo
// spec); it is set here because the decision depends on the baseline, not on the spec's code.
const InformingLabel = "Lifecycle:informing"

// Exclusion is the environment selector's exclude expression: where the spec cannot work.
// Disconnected clusters cannot reach the canary's destination nor the catalogs' operators,
// and the egress they make is not the connected baseline's; MicroShift has no OLM and no
// NetObserv. A proxied cluster is included: its egress goes to the proxy, and the matrix
// shows that (see cluster.Facts.ProxyNote).
var Exclusion = et.Or(et.ExternalConnectivityEquals("Disconnected"), et.TopologyEquals("microshift"))

// Images are what the spec pulls from outside the payload, in `images` order.
var Images = []string{cluster.DefaultLokiImage, cluster.DefaultToolsImage}

// Registry builds the registry holding the extension.
func Registry() (*e.Registry, error) {
	ext := e.NewExtension(Product, Kind, Name)
	timeout := SpecTimeout
	ext.AddSuite(e.Suite{
		Name:        SuiteName,
		Description: "Serial specs that record the cluster's egress flows with NetObserv and diff them against baseline/.",
		Qualifiers:  []string{`name.contains("[Feature:EgressFlowMatrix]")`},
		TestTimeout: &timeout,
	})
	for i, ref := range Images {
		img, err := parseImage(i, ref)
		if err != nil {
			return nil, err
		}
		ext.RegisterImage(img)
	}

	specs, err := g.BuildExtensionTestSpecsFromOpenShiftGinkgoSuite()
	if err != nil {
		return nil, fmt.Errorf("cannot build specs from the Ginkgo suite: %w", err)
	}
	informing, _, err := Informing(baselinefs.FS)
	if err != nil {
		return nil, err
	}
	specs.Walk(func(s *et.ExtensionTestSpec) {
		if informing {
			s.Lifecycle = et.LifecycleInforming
			s.Labels.Insert(InformingLabel)
		}
		s.Exclude(Exclusion)
		s.Resources.Timeout = SpecTimeout.String()
	})
	ext.AddSpecs(specs)

	registry := e.NewRegistry()
	registry.Register(ext)
	return registry, nil
}

// Informing reports whether the specs are informing: while the newest baseline version in
// fsys (the release this binary is built for) has no entry observed by a CI run, a failure
// says more about the baseline than about the cluster, so it must not block a release. The
// string says why, for humans.
func Informing(fsys fs.FS) (bool, string, error) {
	versions, err := baseline.VersionsFS(fsys, ".")
	if err != nil {
		return false, "", fmt.Errorf("embedded baseline: %w", err)
	}
	if len(versions) == 0 {
		return false, "", fmt.Errorf("embedded baseline holds no <major.minor> directory; fix: build from a tree with baseline/<version>/common.yaml")
	}
	v := versions[len(versions)-1]
	files, err := baseline.TreeFilesFS(fsys, ".")
	if err != nil {
		return false, "", fmt.Errorf("embedded baseline: %w", err)
	}
	// Each file on its own: platform files are alternatives, never loaded together.
	entries, observed := 0, 0
	for _, f := range files {
		if !strings.HasPrefix(f, v+"/") {
			continue
		}
		bl, err := baseline.LoadFS(fsys, f)
		if err != nil {
			return false, "", fmt.Errorf("embedded baseline: %w", err)
		}
		for _, en := range bl.Entries {
			entries++
			if en.Observed {
				observed++
			}
		}
	}
	if observed == 0 {
		return true, fmt.Sprintf("baseline %s: none of its %d entries is observed yet", v, entries), nil
	}
	return false, fmt.Sprintf("baseline %s: %d of %d entries observed", v, observed, entries), nil
}

// parseImage splits registry/name:version as OTE's Image wants it.
func parseImage(index int, ref string) (e.Image, error) {
	reg, rest, ok := strings.Cut(ref, "/")
	name, version, vok := strings.Cut(rest, ":")
	if !ok || !vok || !strings.Contains(reg, ".") || name == "" || version == "" || strings.Contains(ref, "@") {
		return e.Image{}, fmt.Errorf("image %q is not registry/name:tag (internal error: fix the constant in pkg/cluster)", ref)
	}
	return e.Image{Index: index, Registry: reg, Name: name, Version: version}, nil
}
