package matrix

import (
	"fmt"
	"sort"
	"strings"
)

// Key is what identifies an entry: its source, destination, protocol and port. Two sources
// of the same window (Loki records, FlowMetrics counters) must give the same keys; their
// other columns differ by what each can give (Matrix.Lacks).
type Key struct {
	SrcNamespace, SrcWorkload, SrcKind string
	DstName                            string
	Protocol                           string
	Port                               int
}

// KeyOf is e's key.
func KeyOf(e Entry) Key {
	return Key{SrcNamespace: e.SrcNamespace, SrcWorkload: e.SrcWorkload, SrcKind: e.SrcKind,
		DstName: e.DstName, Protocol: e.Protocol, Port: e.Port}
}

func (k Key) String() string {
	src := k.SrcWorkload
	if k.SrcNamespace != "" {
		src = k.SrcNamespace + "/" + k.SrcWorkload
	}
	port := ""
	if k.Port != 0 {
		port = fmt.Sprintf(":%d", k.Port)
	}
	return fmt.Sprintf("%s (%s) -> %s %s%s", src, k.SrcKind, k.DstName, k.Protocol, port)
}

// Disagreement lists the keys that only one of two matrices holds.
type Disagreement struct {
	A, B         string // the two matrices' names, e.g. "loki" and "flowmetrics"
	OnlyA, OnlyB []Key
}

// Error lists both sides, a key per line.
func (d *Disagreement) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the %s and %s matrices disagree: %d entries only in %s, %d only in %s", d.A, d.B, len(d.OnlyA), d.A, len(d.OnlyB), d.B)
	for _, side := range []struct {
		name string
		keys []Key
	}{{d.A, d.OnlyA}, {d.B, d.OnlyB}} {
		for _, k := range side.keys {
			fmt.Fprintf(&b, "\n  only in %s: %s", side.name, k)
		}
	}
	return b.String()
}

// Compare returns nil when a and b hold the same keys, else the keys each holds alone,
// sorted. It compares keys only: flows, bytes and times are what each source can give.
func Compare(nameA string, a *Matrix, nameB string, b *Matrix) *Disagreement {
	ka, kb := keySet(a), keySet(b)
	d := &Disagreement{A: nameA, B: nameB}
	for k := range ka {
		if !kb[k] {
			d.OnlyA = append(d.OnlyA, k)
		}
	}
	for k := range kb {
		if !ka[k] {
			d.OnlyB = append(d.OnlyB, k)
		}
	}
	if len(d.OnlyA)+len(d.OnlyB) == 0 {
		return nil
	}
	for _, ks := range [][]Key{d.OnlyA, d.OnlyB} {
		sort.Slice(ks, func(i, j int) bool { return ks[i].String() < ks[j].String() })
	}
	return d
}

func keySet(m *Matrix) map[Key]bool {
	out := map[Key]bool{}
	if m == nil {
		return out
	}
	for _, e := range m.Entries {
		out[KeyOf(e)] = true
	}
	return out
}
