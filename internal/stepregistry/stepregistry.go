// Package stepregistry checks the ci-operator step registry files under ci/step-registry
// against the shape openshift/release's registry requires, so they can be upstreamed as they
// are: a ref names itself after its directory, runs from an image, names a commands file
// beside it that bash can parse, declares resources and documentation; every directory has
// OWNERS and every ref, chain and workflow its metadata.json.
package stepregistry

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Ref is a step reference, with the fields of the registry's refs this repository uses.
type Ref struct {
	As                    string    `json:"as"`
	From                  string    `json:"from,omitempty"`
	FromImage             *ImageRef `json:"from_image,omitempty"`
	Commands              string    `json:"commands"`
	Timeout               string    `json:"timeout,omitempty"`
	GracePeriod           string    `json:"grace_period,omitempty"`
	ActiveDeadlineSeconds int       `json:"active_deadline_seconds,omitempty"`
	BestEffort            bool      `json:"best_effort,omitempty"`
	OptionalOnSuccess     bool      `json:"optional_on_success,omitempty"`
	Env                   []Env     `json:"env,omitempty"`
	Resources             Resources `json:"resources"`
	Documentation         string    `json:"documentation"`
}

// ImageRef is from_image: an image stream tag.
type ImageRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Tag       string `json:"tag"`
}

// Env is one parameter of a step.
type Env struct {
	Name          string  `json:"name"`
	Default       *string `json:"default,omitempty"`
	Documentation string  `json:"documentation"`
}

// Resources are the step pod's requests and limits.
type Resources struct {
	Requests map[string]string `json:"requests"`
	Limits   map[string]string `json:"limits,omitempty"`
}

// Step is one entry of a chain or a workflow phase.
type Step struct {
	Ref   string `json:"ref,omitempty"`
	Chain string `json:"chain,omitempty"`
}

// Chain is a named list of steps.
type Chain struct {
	As            string `json:"as"`
	Steps         []Step `json:"steps"`
	Documentation string `json:"documentation"`
}

// Workflow is pre, test and post phases.
type Workflow struct {
	As    string `json:"as"`
	Steps struct {
		AllowSkipOnSuccess       bool              `json:"allow_skip_on_success,omitempty"`
		AllowBestEffortPostSteps bool              `json:"allow_best_effort_post_steps,omitempty"`
		Pre                      []Step            `json:"pre,omitempty"`
		Test                     []Step            `json:"test"`
		Post                     []Step            `json:"post,omitempty"`
		Env                      map[string]string `json:"env,omitempty"`
	} `json:"steps"`
	Documentation string `json:"documentation"`
}

// Check checks every file under root. external names the steps referenced from elsewhere in
// the registry (e.g. openshift-e2e-test); a step that is neither ours nor external is an error.
func Check(root string, external map[string]bool) error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	type use struct{ file, name string }
	var uses []use
	ours := map[string]bool{}
	found := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == "." { // the registry's own root, not ours
				return nil
			}
			if _, err := os.Stat(filepath.Join(p, "OWNERS")); err != nil {
				bad(rel, "no OWNERS file; fix: add one (the registry requires it in every directory)")
			}
			return nil
		}
		base := filepath.Base(p)
		kind := ""
		for _, k := range []string{"ref", "chain", "workflow"} {
			if strings.HasSuffix(base, "-"+k+".yaml") {
				kind = k
			}
		}
		if kind == "" {
			return nil
		}
		found++
		// The registry names a component after its directory: a/b-c/a-b-c-ref.yaml is a-b-c.
		want := strings.ReplaceAll(filepath.ToSlash(filepath.Dir(rel)), "/", "-")
		if strings.TrimSuffix(base, "-"+kind+".yaml") != want {
			bad(rel, "file name does not match its directory; fix: name it %s-%s.yaml", want, kind)
		}
		if _, err := os.Stat(strings.TrimSuffix(p, ".yaml") + ".metadata.json"); err != nil {
			bad(rel, "no %s; fix: add it (the registry's `make update` writes it)", strings.TrimSuffix(base, ".yaml")+".metadata.json")
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var as, doc string
		var steps []Step
		switch kind {
		case "ref":
			var doc0 struct {
				Ref *Ref `json:"ref"`
			}
			if err := yaml.UnmarshalStrict(data, &doc0); err != nil || doc0.Ref == nil {
				bad(rel, "not a ref: %v", err)
				return nil
			}
			r := doc0.Ref
			as, doc = r.As, r.Documentation
			checkRef(rel, filepath.Dir(p), r, bad)
		case "chain":
			var doc0 struct {
				Chain *Chain `json:"chain"`
			}
			if err := yaml.UnmarshalStrict(data, &doc0); err != nil || doc0.Chain == nil {
				bad(rel, "not a chain: %v", err)
				return nil
			}
			as, doc, steps = doc0.Chain.As, doc0.Chain.Documentation, doc0.Chain.Steps
		case "workflow":
			var doc0 struct {
				Workflow *Workflow `json:"workflow"`
			}
			if err := yaml.UnmarshalStrict(data, &doc0); err != nil || doc0.Workflow == nil {
				bad(rel, "not a workflow: %v", err)
				return nil
			}
			w := doc0.Workflow
			as, doc = w.As, w.Documentation
			if len(w.Steps.Test) == 0 {
				bad(rel, "workflow without test steps")
			}
			steps = append(append(append(steps, w.Steps.Pre...), w.Steps.Test...), w.Steps.Post...)
		}
		if as != want {
			bad(rel, "as: %q; fix: as: %s (the name its path gives)", as, want)
		}
		if strings.TrimSpace(doc) == "" {
			bad(rel, "no documentation")
		}
		ours[as] = true
		for _, s := range steps {
			switch {
			case (s.Ref == "") == (s.Chain == ""):
				bad(rel, "a step names exactly one of ref or chain")
			case s.Ref != "":
				uses = append(uses, use{rel, s.Ref})
			default:
				uses = append(uses, use{rel, s.Chain})
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	if found == 0 {
		errs = append(errs, fmt.Errorf("%s: no ref, chain or workflow found", root))
	}
	for _, u := range uses {
		if !ours[u.name] && !external[u.name] {
			bad(u.file, "step %q is neither in %s nor a known registry step", u.name, root)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errors.Join(errs...)
}

func checkRef(rel, dir string, r *Ref, bad func(string, string, ...any)) {
	switch {
	case r.From == "" && r.FromImage == nil:
		bad(rel, "neither from nor from_image: the step has no image to run in")
	case r.From != "" && r.FromImage != nil:
		bad(rel, "both from and from_image; fix: keep one")
	case r.FromImage != nil && (r.FromImage.Namespace == "" || r.FromImage.Name == "" || r.FromImage.Tag == ""):
		bad(rel, "from_image needs namespace, name and tag")
	}
	if len(r.Resources.Requests) == 0 {
		bad(rel, "no resources.requests; fix: request cpu and memory")
	}
	for _, e := range r.Env {
		if e.Name == "" || strings.TrimSpace(e.Documentation) == "" {
			bad(rel, "env %q without a name or documentation", e.Name)
		}
	}
	if want := r.As + "-commands.sh"; r.Commands != want {
		bad(rel, "commands: %q; fix: commands: %s", r.Commands, want)
	}
	if r.Commands == "" || strings.Contains(r.Commands, "/") {
		return
	}
	script := filepath.Join(dir, r.Commands)
	fi, err := os.Stat(script)
	if err != nil {
		bad(rel, "commands file %s: %v", r.Commands, err)
		return
	}
	if fi.Mode()&0o111 == 0 {
		bad(rel, "commands file %s is not executable; fix: chmod +x", r.Commands)
	}
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		bad(rel, "commands file %s does not parse (bash -n): %s", r.Commands, strings.TrimSpace(string(out)))
	}
}
