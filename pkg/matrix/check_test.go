package matrix

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/flow"
)

func TestCheck(t *testing.T) {
	decodeErrs := func(n int) []flow.DecodeError {
		var es []flow.DecodeError
		for i := 1; i <= n; i++ {
			es = append(es, flow.DecodeError{Source: "capture.json", Line: i * 10, Err: fmt.Errorf("bad record %d", i)})
		}
		return es
	}
	cases := []struct {
		name    string
		recs    []flow.Record
		decode  flow.Stats
		is      []error
		isNot   []error
		contain []string
		lacks   []string
	}{
		{name: "complete", recs: []flow.Record{rec(func(r *flow.Record) { r.Sampling = 1 })}},
		{name: "sampling not recorded is not sampling", recs: []flow.Record{rec()}},
		{name: "sampled",
			recs: []flow.Record{rec(func(r *flow.Record) { r.Sampling, r.Count = 50, 3 }), rec(func(r *flow.Record) { r.Sampling = 1; r.Count = 2 })},
			is:   []error{ErrSampled}, isNot: []error{ErrEmpty, ErrUndecodable},
			contain: []string{"FlowCollector spec.agent.ebpf.sampling must be 1", "3 of 5 records were sampled at 1:50", "record the window again"}},
		{name: "sampled at several rates names the highest",
			recs:    []flow.Record{rec(func(r *flow.Record) { r.Sampling = 50 }), rec(func(r *flow.Record) { r.Sampling = 400; r.FlowDirection = "0" })},
			is:      []error{ErrSampled},
			contain: []string{"2 of 2 records were sampled at 1:400"}},
		{name: "empty window",
			is: []error{ErrEmpty}, isNot: []error{ErrSampled, ErrUndecodable},
			contain: []string{"empty window: no flow records at all", "is the FlowCollector running and exporting to this Loki?"}},
		{name: "undecodable records",
			recs:   []flow.Record{rec()},
			decode: flow.Stats{Undecodable: 7, Errors: decodeErrs(5)},
			is:     []error{ErrUndecodable}, isNot: []error{ErrEmpty, ErrSampled},
			contain: []string{"7 flow records could not be decoded", "capture.json:10", "bad record 1", "bad record 3"},
			lacks:   []string{"bad record 4"}},
		{name: "nothing decodable is not an empty window",
			decode: flow.Stats{Undecodable: 2, Errors: decodeErrs(2)},
			is:     []error{ErrUndecodable}, isNot: []error{ErrEmpty},
			contain: []string{"none of the 2 flow records could be decoded", "bad record 2"}},
		{name: "undecodable without details",
			recs:   []flow.Record{rec()},
			decode: flow.Stats{Undecodable: 1},
			is:     []error{ErrUndecodable}, contain: []string{"no error was kept"}},
		{name: "every problem is reported",
			recs:   []flow.Record{rec(func(r *flow.Record) { r.Sampling = 2 })},
			decode: flow.Stats{Undecodable: 1, Errors: decodeErrs(1)},
			is:     []error{ErrSampled, ErrUndecodable}, isNot: []error{ErrEmpty}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := NewBuilder(testOptions())
			for _, r := range c.recs {
				b.Add(r)
			}
			b.AddDecodeStats(c.decode)
			err := b.Matrix().Check()
			if (err == nil) != (len(c.is) == 0) {
				t.Fatalf("Check() = %v, want errors %v", err, c.is)
			}
			for _, want := range c.is {
				if !errors.Is(err, want) {
					t.Errorf("Check() = %v: not %v", err, want)
				}
			}
			for _, not := range c.isNot {
				if errors.Is(err, not) {
					t.Errorf("Check() = %v: unexpectedly %v", err, not)
				}
			}
			for _, s := range c.contain {
				if !strings.Contains(fmt.Sprint(err), s) {
					t.Errorf("Check() = %v: does not say %q", err, s)
				}
			}
			for _, s := range c.lacks {
				if strings.Contains(fmt.Sprint(err), s) {
					t.Errorf("Check() = %v: says %q", err, s)
				}
			}
		})
	}
}

// TestCheckReadMatrix: a matrix read back from JSON is checked on the same stats.
func TestCheckReadMatrix(t *testing.T) {
	m, err := ReadJSON(strings.NewReader(`{"entries":[],"stats":{"records":10,"egress":10,"sampled":10,"samplingMax":100}}`), "m.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); !errors.Is(err, ErrSampled) || !strings.Contains(err.Error(), "10 of 10 records were sampled at 1:100") {
		t.Fatalf("Check() = %v", err)
	}
}
