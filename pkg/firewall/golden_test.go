package firewall

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden pins the full rendered output of the test baseline, one file per format, so a
// change in any output shows up in review (go test ./pkg/firewall -run Golden -update).
func TestGolden(t *testing.T) {
	for _, format := range Formats {
		r, err := Render(format, testBaseline(), testOptions(t))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if _, err := r.WriteTo(&got); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("testdata", format+".golden")
		if *update {
			if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s output differs from %s; review the change and run with -update", format, path)
		}
	}
}
