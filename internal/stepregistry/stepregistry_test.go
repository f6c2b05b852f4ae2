package stepregistry

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Steps of openshift/release's registry that ours use.
var external = map[string]bool{"openshift-e2e-test": true, "ipi-aws-pre": true, "ipi-aws-post": true}

func TestRepositoryStepRegistry(t *testing.T) {
	if err := Check(filepath.Join("..", "..", "ci", "step-registry"), external); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, root, rel, body string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFindsEveryFault(t *testing.T) {
	root := t.TempDir()
	write(t, root, "OWNERS", "approvers: [a]\n", 0o644)
	write(t, root, "x/OWNERS", "approvers: [a]\n", 0o644)
	// A ref missing its image, resources and documentation, naming a script that does not parse.
	write(t, root, "x/a/x-a-ref.yaml", "ref:\n  as: x-b\n  commands: x-a-commands.sh\n", 0o644)
	write(t, root, "x/a/x-a-commands.sh", "#!/bin/bash\nif then\n", 0o755)
	// A ref naming a commands file that is not there, with a field the registry does not have.
	write(t, root, "x/c/OWNERS", "approvers: [a]\n", 0o644)
	write(t, root, "x/c/x-c-ref.yaml", "ref:\n  as: x-c\n  from: tests\n  commands: x-c-commands.sh\n  resources:\n    requests:\n      cpu: 10m\n  documentation: d\n  colour: red\n", 0o644)
	write(t, root, "x/c/x-c-ref.metadata.json", "{}", 0o644)
	write(t, root, "x/d/OWNERS", "approvers: [a]\n", 0o644)
	write(t, root, "x/d/x-d-chain.yaml", "chain:\n  as: x-d\n  steps:\n  - ref: nowhere\n  documentation: d\n", 0o644)
	write(t, root, "x/d/x-d-chain.metadata.json", "{}", 0o644)
	err := Check(root, external)
	if err == nil {
		t.Fatal("faults accepted")
	}
	for _, want := range []string{
		"x/a: no OWNERS file",
		`x/a/x-a-ref.yaml: as: "x-b"; fix: as: x-a`,
		"x/a/x-a-ref.yaml: neither from nor from_image",
		"x/a/x-a-ref.yaml: no resources.requests",
		"x/a/x-a-ref.yaml: no documentation",
		"x/a/x-a-ref.yaml: no x-a-ref.metadata.json",
		"x-a-commands.sh does not parse (bash -n)",
		`x/c/x-c-ref.yaml: not a ref: error unmarshaling JSON: while decoding JSON: json: unknown field "colour"`,
		`x/d/x-d-chain.yaml: step "nowhere" is neither`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
	// Once the unknown field is gone, the missing commands file is what is left of x-c.
	write(t, root, "x/c/x-c-ref.yaml", "ref:\n  as: x-c\n  from: tests\n  commands: x-c-commands.sh\n  resources:\n    requests:\n      cpu: 10m\n  documentation: d\n", 0o644)
	if err := Check(root, external); err == nil || !strings.Contains(err.Error(), "commands file x-c-commands.sh: stat") {
		t.Errorf("missing commands file: %v", err)
	}
}
