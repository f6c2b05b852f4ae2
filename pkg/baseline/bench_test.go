package baseline

import (
	"fmt"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// BenchmarkLoadDiff loads the repository's AWS baseline and diffs a 5,000-entry matrix
// against it (a busy cluster's matrix is a few hundred to a few thousand entries).
func BenchmarkLoadDiff(b *testing.B) {
	files, err := Select(repoBaseline, "4.21", "AWS", "HighlyAvailable")
	if err != nil {
		b.Fatal(err)
	}
	m := &matrix.Matrix{}
	for i := 0; i < 5000; i++ {
		switch i % 4 {
		case 0:
			m.Entries = append(m.Entries, node("worker", fmt.Sprintf("cdn%02d.quay.io", i%7), matrix.NamedByHostname, 443))
		case 1:
			m.Entries = append(m.Entries, pod(fmt.Sprintf("openshift-ns-%d", i%50), "w", fmt.Sprintf("198.51.100.%d", i%250), matrix.TCP, 1024+i))
		case 2:
			m.Entries = append(m.Entries, pod("openshift-image-registry", "image-registry", "52.1.2.3", matrix.TCP, 443))
			m.Entries[i].DstName, m.Entries[i].DstNamedBy = fmt.Sprintf("s3-%d.us-east-1.amazonaws.com", i), matrix.NamedByHostname
		default:
			m.Entries = append(m.Entries, node("control-plane", fmt.Sprintf("%d.rhel.pool.ntp.org", 1+i%3), matrix.NamedByHostname, 123))
			m.Entries[i].Protocol = matrix.UDP
		}
	}
	b.Run("Load", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := Load(files...); err != nil {
				b.Fatal(err)
			}
		}
	})
	bl, err := Load(files...)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Diff", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := Diff(m, bl); len(r.Matched) == 0 {
				b.Fatal("nothing matched")
			}
		}
		b.ReportMetric(float64(len(m.Entries)), "entries")
	})
	b.Run("LoadDiff", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			bl, err := Load(files...)
			if err != nil {
				b.Fatal(err)
			}
			if r := Diff(m, bl); len(r.Matched) == 0 {
				b.Fatal("nothing matched")
			}
		}
	})
}
