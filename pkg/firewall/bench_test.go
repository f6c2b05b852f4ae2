package firewall

import (
	"fmt"
	"io"
	"net/netip"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/baseline"
)

// bigBaseline has n entries over 50 namespaces and both node roles, half CIDRs, half hostnames.
func bigBaseline(n int) *baseline.Baseline {
	b := &baseline.Baseline{Files: []string{"bench"}}
	for i := 0; i < n; i++ {
		src := pods(fmt.Sprintf("ns-%d", i%50), "w")
		if i%5 == 0 {
			src = node([]string{"worker", "control-plane", "*"}[i%3])
		}
		dst := cidr(fmt.Sprintf("10.%d.%d.0/24", 64+i/256%64, i%256))
		if i%2 == 1 {
			dst = host(fmt.Sprintf("h%d.example.com", i))
		}
		b.Entries = append(b.Entries, entry(i, "C", src, dst, "TCP", fmt.Sprint(443+i%7)))
	}
	return b
}

func BenchmarkRender(b *testing.B) {
	bl := bigBaseline(5000)
	for _, format := range Formats {
		b.Run(format, func(b *testing.B) {
			opts := testOptions(nil)
			opts.Resolve = func(h string) ([]netip.Addr, error) { return fakeAddr(h), nil }
			b.ReportAllocs()
			for b.Loop() {
				r, err := Render(format, bl, opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.WriteTo(io.Discard); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
