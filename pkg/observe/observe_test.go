package observe

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

var (
	t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	w  = Window{From: t0, To: t0.Add(30 * time.Minute)}
)

// The CLI and the spec once filtered resolutions differently: the spec also took those that
// ended before the window or started after it, whose records it then pulled raw for
// nothing. One rule now: a resolution matters when it starts or ends inside the window.
func TestTimeSensitive(t *testing.T) {
	n := matrix.NewNames()
	add := func(addr string, from, to time.Time) { n.Add(netip.MustParseAddr(addr), "h.example.com", from, to) }
	add("198.51.100.1", t0.Add(-time.Hour), t0.Add(time.Hour))        // whole window: not sensitive
	add("198.51.100.2", t0.Add(10*time.Minute), t0.Add(time.Hour))    // starts inside
	add("198.51.100.3", t0.Add(-time.Hour), t0.Add(20*time.Minute))   // ends inside
	add("198.51.100.4", t0.Add(-2*time.Hour), t0.Add(-time.Hour))     // ended before the window
	add("198.51.100.5", t0.Add(time.Hour), t0.Add(2*time.Hour))       // starts after it
	add("198.51.100.6", t0.Add(5*time.Minute), t0.Add(6*time.Minute)) // both inside
	got := TimeSensitive(n, w)
	slices.Sort(got)
	want := []string{"198.51.100.2", "198.51.100.3", "198.51.100.6"}
	if !slices.Equal(got, want) {
		t.Fatalf("TimeSensitive = %v, want %v", got, want)
	}
	if TimeSensitive(nil, w) != nil || TimeSensitive(n, Window{}) != nil {
		t.Fatal("no names or no window: nothing is time-sensitive")
	}
}

func egress(dst string, port int) flow.Record {
	return flow.Record{SrcNamespace: "openshift-image-registry", SrcOwnerName: "image-registry", SrcOwnerType: "Deployment", SrcType: "Pod",
		SrcAddr: "10.128.0.5", SrcPort: 40000, DstAddr: dst, DstPort: port, Proto: flow.ProtoTCP, Flags: flow.FlagSYN | flow.FlagACK,
		Sampling: 1, Count: 1, Start: t0.Add(time.Minute), End: t0.Add(time.Minute)}
}

type failing struct{}

func (failing) Describe() string { return "broken store" }
func (failing) Collect(context.Context, Request) (*Batch, error) {
	return nil, errors.New("store said no")
}

func TestRunFailsClosed(t *testing.T) {
	opts := matrix.Options{ClusterNetworks: []netip.Prefix{netip.MustParsePrefix("10.128.0.0/14")}}
	inCluster := egress("10.128.9.9", 8080)
	sampled := egress("198.51.100.7", 443)
	sampled.Sampling = 50
	cases := []struct {
		name    string
		src     Source
		prove   func([]flow.Record) error
		exclude func(flow.Record) bool
		want    string // "" passes
		whole   bool   // the outcome comes back whole with the error
	}{
		{name: "egress", src: &Records{Name: "mem", Batch: Batch{Records: []flow.Record{egress("198.51.100.7", 443)}}}},
		{name: "store error", src: failing{}, want: "broken store: store said no"},
		{name: "no egress", src: &Records{Name: "mem", Batch: Batch{Records: []flow.Record{inCluster}}}, want: "no egress flow record", whole: true},
		{name: "nothing at all", src: &Records{Name: "mem"}, want: "no egress flow record", whole: true},
		{name: "sampled", src: &Records{Name: "mem", Batch: Batch{Records: []flow.Record{sampled}}}, want: "sampling must be 1", whole: true},
		{name: "undecodable", src: &Records{Name: "mem", Batch: Batch{Records: []flow.Record{egress("198.51.100.7", 443)},
			Evidence: Evidence{Decode: flow.Stats{Undecodable: 1}}}}, want: "could not be decoded", whole: true},
		{name: "proven empty", src: &Records{Name: "mem", Batch: Batch{Records: []flow.Record{inCluster, egress("198.51.100.9", 443)}}},
			exclude: func(r flow.Record) bool { return r.DstAddr == "198.51.100.9" }, prove: func(ex []flow.Record) error {
				if len(ex) != 1 {
					return errors.New("canary missing")
				}
				return nil
			}},
		{name: "proof fails", src: &Records{Name: "mem", Batch: Batch{Records: []flow.Record{egress("198.51.100.7", 443)}}},
			exclude: func(flow.Record) bool { return false }, prove: func(ex []flow.Record) error { return errors.New("canary missing") },
			want: "canary missing", whole: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := Run(context.Background(), Config{Source: c.src, Window: w, Matrix: opts, Prove: c.prove, Exclude: c.exclude})
			if c.want == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run = %v, want an error saying %q", err, c.want)
			}
			if c.whole && (out == nil || out.Matrix == nil) {
				t.Fatalf("the outcome is not returned with the error: %+v", out)
			}
			if c.whole && c.prove == nil && !errors.Is(err, ErrIncomplete) {
				t.Fatalf("%v does not wrap ErrIncomplete", err)
			}
		})
	}
}

func TestRunRefusesABadWindow(t *testing.T) {
	src := &Records{Name: "mem"}
	for _, win := range []Window{{From: t0, To: t0}, {From: t0.Add(time.Minute), To: t0}, {From: t0}} {
		if _, err := Run(context.Background(), Config{Source: src, Window: win}); err == nil || !strings.Contains(err.Error(), "fix:") {
			t.Errorf("window %+v: %v, want a refusal with the fix", win, err)
		}
	}
	if _, err := Run(context.Background(), Config{Window: w}); err == nil {
		t.Error("no source: want an error")
	}
}

func TestRunCarriesLacks(t *testing.T) {
	src := &Records{Name: "counters", Batch: Batch{Records: []flow.Record{egress("198.51.100.7", 443)},
		Evidence: Evidence{Lacks: []string{LackBytes, LackFirstSeen, LackLastSeen}}}}
	out, err := Run(context.Background(), Config{Source: src, Window: w})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(out.Matrix.Lacks, []string{LackBytes, LackFirstSeen, LackLastSeen}) {
		t.Fatalf("matrix lacks %v", out.Matrix.Lacks)
	}
}
