package baseline

import (
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	baselinefs "github.com/openshift/egress-tests-ext/baseline"
)

// repoBaseline is the repository's baseline/ tree.
var repoBaseline = filepath.Join("..", "..", "baseline")

// TestRepositoryBaseline loads every file of baseline/, alone and in every combination a
// cluster can select, and rejects entries still carrying `baseline update` placeholders.
func TestRepositoryBaseline(t *testing.T) {
	files, err := TreeFiles(repoBaseline)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no baseline files found")
	}
	for _, f := range files {
		b, err := Load(f)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if err := CheckReviewed(b); err != nil {
			t.Errorf("%v", err)
		}
	}
	versions, err := Versions(repoBaseline)
	if err != nil {
		t.Fatal(err)
	}
	combos := 0
	for _, v := range versions {
		for _, p := range append(Platforms, "") {
			for _, top := range append(Topologies, "") {
				sel, err := Select(repoBaseline, v, string(p), string(top))
				if err != nil {
					t.Fatalf("%s/%s/%s: %v", v, p, top, err)
				}
				if _, err := Load(sel...); err != nil {
					t.Errorf("%s %s %s: %v", v, p, top, err)
				}
				combos++
			}
		}
	}
	t.Logf("%d files, %d combinations", len(files), combos)
}

func TestCheckReviewed(t *testing.T) {
	b := &Baseline{Entries: []Entry{{File: "f.yaml", Line: 3, Index: 0, Component: PlaceholderComponent, Reason: "x; " + PlaceholderReasonSuffix}}}
	err := CheckReviewed(b)
	if err == nil || !strings.Contains(err.Error(), "f.yaml:3: entries[0]") || !strings.Contains(err.Error(), "fix: set component") {
		t.Fatalf("got %v", err)
	}
	b.Entries[0].Component, b.Entries[0].Reason = "Monitoring", "telemetry"
	if err := CheckReviewed(b); err != nil {
		t.Fatal(err)
	}
}

// TestEmbeddedBaseline checks that the tree embedded in the binary is the repository's tree
// and loads through SelectFS/LoadFS like it does from disk.
func TestEmbeddedBaseline(t *testing.T) {
	onDisk, err := TreeFiles(repoBaseline)
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := TreeFilesFS(baselinefs.FS, ".")
	if err != nil {
		t.Fatal(err)
	}
	if len(embedded) != len(onDisk) {
		t.Fatalf("embedded %v, on disk %v", embedded, onDisk)
	}
	for i := range onDisk {
		rel, _ := filepath.Rel(repoBaseline, onDisk[i])
		if filepath.ToSlash(rel) != embedded[i] {
			t.Errorf("embedded file %s, on disk %s", embedded[i], rel)
		}
	}
	sel, err := SelectFS(baselinefs.FS, ".", "4.21.3", "AWS", "SingleReplica")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"4.21/common.yaml", "4.21/platform/aws.yaml", "4.21/topology/SingleReplica.yaml"}
	if strings.Join(sel.Files, ",") != strings.Join(want, ",") {
		t.Fatalf("SelectFS = %v, want %v", sel.Files, want)
	}
	fromFS, err := LoadFS(baselinefs.FS, sel.Files...)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := Select(repoBaseline, "4.21.3", "AWS", "SingleReplica")
	if err != nil {
		t.Fatal(err)
	}
	fromDisk, err := Load(disk...)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromFS.Entries) != len(fromDisk.Entries) || len(fromFS.Entries) == 0 {
		t.Errorf("embedded %d entries, on disk %d", len(fromFS.Entries), len(fromDisk.Entries))
	}
}

func TestSelectFSErrors(t *testing.T) {
	fsys := fstest.MapFS{
		"4.20/common.yaml":           {Data: []byte("entries: []\n")},
		"4.20/platform/gcp.yaml":     {Data: []byte("entries:\n  - component: x\n")},
		"4.20/platform/Unknown.yaml": {Data: []byte("entries: []\n")},
	}
	if _, err := SelectFS(fsys, ".", "4.21", "", ""); err == nil || !strings.Contains(err.Error(), "versions present: 4.20") {
		t.Errorf("missing version: %v", err)
	}
	sel, err := SelectFS(fsys, ".", "4.20", "GCP", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFS(fsys, sel.Files...); err == nil || !strings.Contains(err.Error(), "4.20/platform/gcp.yaml:2: entries[0]") {
		t.Errorf("LoadFS error must name the file and line: %v", err)
	}
	if _, err := TreeFilesFS(fsys, "."); err == nil || !strings.Contains(err.Error(), "Unknown.yaml: not a baseline file name") {
		t.Errorf("TreeFilesFS: %v", err)
	}
}
