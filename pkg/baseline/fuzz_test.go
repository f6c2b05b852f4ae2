package baseline

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// FuzzLoad feeds arbitrary bytes to the loader, the diff and the in-place editor: none may
// panic, every loader error must be an *Error naming the file, and an edit that succeeds must
// produce a file that loads.
func FuzzLoad(f *testing.F) {
	f.Add([]byte(validEntry))
	f.Add([]byte(specificity))
	f.Add([]byte(""))
	f.Add([]byte("entries: []\n"))
	f.Add([]byte("entries:\n  - {component: a, source: {nodeRole: \"*\"}, destination: {cidr: 10.0.0.1/8}, protocol: ICMP, port: 1, reason: r}\n"))
	if in, err := os.ReadFile(filepath.Join("testdata", "update-input.yaml")); err == nil {
		f.Add(in)
	}
	if files, err := TreeFiles(repoBaseline); err == nil {
		for _, p := range files {
			if in, err := os.ReadFile(p); err == nil {
				f.Add(in)
			}
		}
	}
	m := &matrix.Matrix{Entries: []matrix.Entry{
		node("worker", "quay.io", matrix.NamedByHostname, 443),
		pod("openshift-monitoring", "prometheus-k8s", "10.1.2.3", matrix.TCP, 443),
		pod("ns", "w", "2001:db8::1", matrix.ICMP, 0),
	}}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, errs := Parse("fuzz.yaml", data)
		errs = append(errs, checkDuplicates(entries)...)
		for _, err := range errs {
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz.yaml" {
				t.Fatalf("error without its file: %v", err)
			}
		}
		if len(errs) > 0 {
			return
		}
		b := &Baseline{Files: []string{"fuzz.yaml"}, Entries: entries}
		r := Diff(m, b)
		flip := map[int]bool{}
		for _, mt := range r.Matched {
			flip[mt.By.Index] = true
		}
		var added []Entry
		for _, o := range r.Undocumented {
			added = append(added, EntriesFor(o)...)
		}
		out, err := edit(data, flip, added, r.Undocumented)
		if err != nil {
			return
		}
		if _, errs := Parse("fuzz.yaml", out); len(errs) > 0 {
			t.Fatalf("edited file does not load: %v\n--- input\n%s\n--- output\n%s", errors.Join(errs...), data, out)
		}
	})
}
