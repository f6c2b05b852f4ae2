// Package baselinefs embeds the baseline tree in the extension binary: openshift-tests runs
// the binary without the repository, so the baseline it diffs against must travel inside it.
package baselinefs

import "embed"

// FS holds <major.minor>/common.yaml, <major.minor>/platform/*.yaml and
// <major.minor>/topology/*.yaml, at the paths pkg/baseline.Select expects.
//
//go:embed */*.yaml */*/*.yaml
var FS embed.FS
