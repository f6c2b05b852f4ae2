package firewall

import (
	"bytes"
	"testing"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

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
		testfix.Golden(t, format+".golden", got.Bytes())
	}
}
