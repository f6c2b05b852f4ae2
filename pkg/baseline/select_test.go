package baseline

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMinorVersion(t *testing.T) {
	for in, want := range map[string]string{
		"4.21": "4.21", "4.21.3": "4.21", "4.21.0-rc.1": "4.21", "4.21.0-0.nightly-2026-01-01-000000": "4.21", "4.22.10": "4.22",
	} {
		got, err := MinorVersion(in)
		if err != nil || got != want {
			t.Errorf("MinorVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Only 4.21 and 4.21.N (with a pre-release): 4.21.x, v4.21 or 4.21.3.4 were read as 4.21.
	for _, bad := range []string{"", "4", "four.21", "latest", "4.21.x", "v4.21", "v4.22.1", "4.21.3.4", "4.21-rc", "4.21.", "4.21.3-", "04.21", " 4.21"} {
		if _, err := MinorVersion(bad); err == nil || !strings.Contains(err.Error(), "fix:") {
			t.Errorf("MinorVersion(%q) = %v, want an error with a fix", bad, err)
		}
	}
}

func TestSelect(t *testing.T) {
	dir := t.TempDir()
	common := writeFile(t, dir, "4.21/common.yaml", "entries: []\n")
	aws := writeFile(t, dir, "4.21/platform/aws.yaml", "entries: []\n")
	bm := writeFile(t, dir, "4.21/platform/baremetal.yaml", "entries: []\n")
	sno := writeFile(t, dir, "4.21/topology/SingleReplica.yaml", "entries: []\n")
	writeFile(t, dir, "4.20/common.yaml", "entries: []\n")
	writeFile(t, dir, "4.9/common.yaml", "entries: []\n")

	cases := []struct {
		version, platform, topology string
		want                        []string
		notes                       []string
	}{
		{"4.21.3", "AWS", "HighlyAvailable", []string{common, aws}, []string{"topology/HighlyAvailable.yaml: nothing documented"}},
		{"4.21", "BareMetal", "SingleReplica", []string{common, bm, sno}, nil},
		{"4.21", "none", "singlereplica", []string{common, sno}, []string{"platform/none.yaml: nothing documented for platform none"}},
		{"4.21", "", "", []string{common}, []string{"no platform given", "no topology given"}},
	}
	for _, c := range cases {
		s, err := SelectFiles(dir, c.version, c.platform, c.topology)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if !reflect.DeepEqual(s.Files, c.want) {
			t.Errorf("%+v: files %v, want %v", c, s.Files, c.want)
		}
		notes := strings.Join(s.Notes, "\n")
		for _, n := range c.notes {
			if !strings.Contains(notes, n) {
				t.Errorf("%+v: notes %q lack %q", c, notes, n)
			}
		}
		files, err := Select(dir, c.version, c.platform, c.topology)
		if err != nil || !reflect.DeepEqual(files, c.want) {
			t.Errorf("Select: %v, %v", files, err)
		}
	}

	_, err := Select(dir, "4.22.0", "AWS", "")
	if err == nil {
		t.Fatal("missing version accepted")
	}
	for _, w := range []string{"no baseline for OpenShift 4.22", "versions present: 4.9, 4.20, 4.21", "cp -r " + filepath.Join(dir, "4.21") + " " + filepath.Join(dir, "4.22")} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if _, err := Select(dir, "4.21", "Amazon", ""); err == nil || !strings.Contains(err.Error(), "one of AWS, Azure, BareMetal") {
		t.Errorf("unknown platform: %v", err)
	}
	if _, err := Select(dir, "4.21", "", "Tiny"); err == nil || !strings.Contains(err.Error(), "HighlyAvailable") {
		t.Errorf("unknown topology: %v", err)
	}
	if _, err := Select(dir, "4.9", "", ""); err != nil {
		t.Errorf("4.9: %v", err)
	}
	writeFile(t, dir, "4.23/platform/aws.yaml", "entries: []\n")
	if _, err := Select(dir, "4.23", "", ""); err == nil || !strings.Contains(err.Error(), "common.yaml is missing") {
		t.Errorf("no common.yaml: %v", err)
	}
	if _, err := Select(filepath.Join(dir, "nope"), "4.21", "", ""); err == nil || !strings.Contains(err.Error(), "fix: point --baseline") {
		t.Errorf("missing tree: %v", err)
	}
}

func TestTreeFilesRejectsMisnamedFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "4.21/common.yaml", "entries: []\n")
	writeFile(t, dir, "4.21/platform/AWS.yaml", "entries: []\n")
	writeFile(t, dir, "4.21/platform/gcp.yaml", "entries: []\n")
	files, err := TreeFiles(dir)
	if err == nil || !strings.Contains(err.Error(), "AWS.yaml: not a baseline file name") {
		t.Errorf("want an error for AWS.yaml, got %v", err)
	}
	if len(files) != 2 {
		t.Errorf("files = %v", files)
	}
}
