// Package testfix holds the fixtures tests of several packages share: golden files, the
// real CRD schemas of ../shared/crds beside the repository, and modules of the module
// cache. Only tests import it.
package testfix

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// Golden compares got with testdata/name, or rewrites it under `go test -update`.
func Golden(t testing.TB, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; review the change and run go test -update to rewrite it:\n--- got\n%s\n--- want\n%s", p, got, want)
	}
}

// RepoRoot is the directory of the repository's go.mod, found upwards from the test's
// working directory (its package directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if data, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && bytes.Contains(data, []byte("module github.com/openshift/egress-tests-ext\n")) {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod of github.com/openshift/egress-tests-ext above %s", dir)
		}
	}
}

// SharedCRD is the path of a real CRD schema in ../shared/crds beside the repository.
func SharedCRD(t testing.TB, file string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "..", "shared", "crds", file)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("real CRD %s is missing (%v): manifests cannot be validated without it; put shared/ (the steering repository's) beside the repository", p, err)
	}
	return p
}

// ModuleDir is a module's directory in the module cache, downloaded if needed: modules
// whose files tests read (CRDs) but the build does not need.
func ModuleDir(t testing.TB, modVersion string) string {
	t.Helper()
	out, err := exec.Command("go", "mod", "download", "-json", modVersion).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", modVersion, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		t.Fatalf("go mod download %s: no directory (%v %s)", modVersion, err, info.Error)
	}
	return info.Dir
}

// SharedCRDDir is ../shared/crds beside the repository.
func SharedCRDDir(t testing.TB) string {
	t.Helper()
	return filepath.Dir(SharedCRD(t, "README.md"))
}

// Shared is a path under ../shared beside the repository (samples, CRDs), which CI lays
// there and tests may rely on.
func Shared(t testing.TB, elem ...string) string {
	t.Helper()
	return filepath.Join(append([]string{RepoRoot(t), "..", "shared"}, elem...)...)
}

// Samples is ../shared/netobserv-samples, the real NetObserv records; the test fails when it
// is missing: CI always provides it.
func Samples(t testing.TB) string {
	t.Helper()
	dir := Shared(t, "netobserv-samples")
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		t.Fatalf("real NetObserv samples not found at %s (%v): they live in ../shared/netobserv-samples beside the repository checkout; CI provides them", dir, err)
	}
	return dir
}
