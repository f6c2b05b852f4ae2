package lokiflows

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"sync"
	"testing"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"

	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

var compiled sync.Map

// anchored compiles a regular expression that must match whole values (cached).
func anchored(re string) *regexp.Regexp {
	if v, ok := compiled.Load(re); ok {
		return v.(*regexp.Regexp)
	}
	c := regexp.MustCompile("^(?:" + re + ")$")
	compiled.Store(re, c)
	return c
}

func TestIntRangeRegex(t *testing.T) {
	for _, c := range []struct {
		lo, hi int
		skip   map[int]bool
	}{
		{1, 1023, nil}, {32768, 65535, nil}, {0, 100, nil}, {7, 7, nil}, {99, 101, nil}, {0, 0, nil}, {10, 19, nil},
		{32768, 65535, map[int]bool{32768: true, 40000: true, 65535: true, 6443: true}},
	} {
		re := anchored(intSetRegex(c.lo, c.hi, c.skip))
		for n := 0; n <= 70000; n++ {
			want := n >= c.lo && n <= c.hi && !c.skip[n]
			if got := re.MatchString(strconv.Itoa(n)); got != want {
				t.Fatalf("[%d, %d] minus %v: %d matched %v (regex %s)", c.lo, c.hi, c.skip, n, got, re)
			}
		}
		for _, s := range []string{"", "0" + strconv.Itoa(c.lo), "-1", "+5", " 53"} {
			if s != "0" && re.MatchString(s) && !(s == "00" && c.lo == 0) {
				t.Fatalf("[%d, %d]: %q matched", c.lo, c.hi, s)
			}
		}
	}
}

func TestFlagRegexes(t *testing.T) {
	syn, none := anchored(synBitfield), anchored(noEvidenceBitfields())
	for n := range 5000 {
		s := strconv.Itoa(n)
		if got := syn.MatchString(s); got != (n&int(flow.FlagSYN) != 0) {
			t.Fatalf("synBitfield on %d: %v", n, got)
		}
		if none.MatchString(s) && n&int(flow.FlagSYN|flow.FlagSYNACK) != 0 {
			t.Fatalf("noEvidenceBitfields drops %d, which has SYN or SYN_ACK", n)
		}
	}
	for _, stage := range flagStages[:2] {
		pat, err := strconv.Unquote(stage[len("regexp "):])
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(pat)
		for line, want := range map[string]bool{
			`{"Flags":["SYN","ACK"],"X":1}`: true, `{"Flags":["ACK","SYN_ACK"]}`: true, `{"Flags":["ACK"]}`: false,
			`{"Flags":[],"DnsName":"SYN"}`: false, `{"Flags":18}`: false,
			// JSON white space, as other encoders write it.
			`{"Flags": ["SYN", "ACK"], "X": 1}`: true, "{\"Flags\" :\t[ \"ACK\",\n\"SYN_ACK\" ]}": true, `{"Flags": [ "ACK" ]}`: false,
		} {
			m := re.FindStringSubmatch(line)
			name := re.SubexpNames()[1]
			got := m != nil
			if name == "FlagSYN" {
				want = want && regexp.MustCompile(`"SYN"`).MatchString(line)
			} else {
				want = want && regexp.MustCompile(`"SYN_ACK"`).MatchString(line)
			}
			if got != want {
				t.Errorf("%s on %s: %v, want %v", name, line, got, want)
			}
		}
	}
}

// The escape stage marks every line with a \u escape, which the flag stages cannot read.
func TestEscapeStage(t *testing.T) {
	pat, err := strconv.Unquote(flagStages[2][len("regexp "):])
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(pat)
	for line, want := range map[string]bool{
		`{"Flags":["\u0053YN"]}`: true, `{"\u0046lags":["SYN"]}`: true, `{"Flags":["SYN"],"X":"a\\b"}`: false, `{"Flags":["SYN"]}`: false,
	} {
		if m := re.FindStringSubmatch(line); (m != nil && m[1] != "") != want {
			t.Errorf("%s: marked %v, want %v", line, m != nil, want)
		}
	}
}

// eval is a label filter expression evaluated as Loki does: an absent label is "", and
// regular expressions match whole values.
func (c cond) eval(l map[string]string) bool {
	switch c.op {
	case "and":
		for _, k := range c.kids {
			if !k.eval(l) {
				return false
			}
		}
		return true
	case "or":
		for _, k := range c.kids {
			if k.eval(l) {
				return true
			}
		}
		return false
	}
	return matchAll(l, []lokiquery.Matcher{c.m})
}

// matchAll evaluates matchers on a label set the way Loki does (absent is "", regular
// expressions are anchored).
func matchAll(l map[string]string, ms []lokiquery.Matcher) bool {
	for _, m := range ms {
		v := l[m.Name]
		var ok bool
		switch m.Op {
		case lokiquery.OpEq:
			ok = v == m.Value
		case lokiquery.OpNeq:
			ok = v != m.Value
		case lokiquery.OpRe:
			ok = anchored(m.Value).MatchString(v)
		case lokiquery.OpNotRe:
			ok = !anchored(m.Value).MatchString(v)
		}
		if !ok {
			return false
		}
	}
	return true
}

// lokiLabels are the labels a record has in Loki after `| json` and the flag stages.
func lokiLabels(r flow.Record, listFlags bool) map[string]string {
	l := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			l[k] = v
		}
	}
	port := func(k string, p int, present bool) {
		if present {
			l[k] = strconv.Itoa(p)
		}
	}
	set("SrcK8S_Namespace", r.SrcNamespace)
	set("SrcK8S_OwnerName", r.SrcOwnerName)
	set("SrcK8S_OwnerType", r.SrcOwnerType)
	set("SrcK8S_Type", r.SrcType)
	set("SrcK8S_Name", r.SrcName)
	set("SrcK8S_HostName", r.SrcHostName)
	set("SrcAddr", r.SrcAddr)
	set("DstAddr", r.DstAddr)
	set("FlowDirection", r.FlowDirection)
	set("XlatSrcAddr", r.XlatSrcAddr)
	set("XlatDstAddr", r.XlatDstAddr)
	l["Proto"] = strconv.Itoa(r.Proto)
	ported := r.Proto == flow.ProtoTCP || r.Proto == flow.ProtoUDP || r.Proto == flow.ProtoSCTP
	port("SrcPort", r.SrcPort, ported || r.SrcPort != 0)
	port("DstPort", r.DstPort, ported || r.DstPort != 0)
	port("XlatSrcPort", r.XlatSrcPort, r.XlatSrcAddr != "")
	port("XlatDstPort", r.XlatDstPort, r.XlatSrcAddr != "")
	if listFlags {
		if r.Flags&flow.FlagSYN != 0 {
			l["FlagSYN"] = "SYN"
		}
		if r.Flags&flow.FlagSYNACK != 0 {
			l["FlagSYNACK"] = "SYN_ACK"
		}
	} else {
		l["Flags"] = strconv.Itoa(int(r.Flags))
	}
	return l
}

// TestAggregateKeysAreProject checks the contract of the aggregate path on many records:
// whichever query a line falls in, its key (after that query's drops) is one keyRecord
// turns into exactly the line's Project.
func TestAggregateKeysAreProject(t *testing.T) {
	for _, policy := range []matrix.PortPolicy{{}, {Extra: map[int]bool{6443: true, 40000: true}}} {
		hard, named := aggregateFilters(policy)
		dyn, _ := portRegexes(policy)
		dynRE, noFlags := anchored(dyn), anchored(noEvidenceBitfields())
		ports := []int{0, 22, 53, 123, 443, 1023, 1024, 5353, 6443, 8443, 30000, 32767, 32768, 40000, 45000, 60999, 65535}
		rng := rand.New(rand.NewPCG(1, 2))
		pick := func() int { return ports[rng.IntN(len(ports))] }
		seen := make([]int, nQueries)
		for range 50000 {
			r := flow.Record{SrcNamespace: []string{"ns", ""}[rng.IntN(2)], SrcOwnerName: "web",
				SrcOwnerType: []string{"Deployment", "DaemonSet", "Node", "Pod", ""}[rng.IntN(5)],
				SrcType:      []string{"Pod", "Pod", "Node", ""}[rng.IntN(4)], SrcName: "web-" + strconv.Itoa(rng.IntN(3)), SrcHostName: "n1",
				SrcAddr: "10.128.0." + strconv.Itoa(rng.IntN(3)), DstAddr: "198.51.100.1", Proto: []int{1, 6, 17, 132, 58}[rng.IntN(5)],
				FlowDirection: []string{"0", "1", "2", ""}[rng.IntN(4)]}
			ported := r.Proto == flow.ProtoTCP || r.Proto == flow.ProtoUDP || r.Proto == flow.ProtoSCTP
			if ported || rng.IntN(4) == 0 {
				r.SrcPort, r.DstPort = pick(), pick()
			}
			r.Flags = uint32(rng.IntN(0x800))
			if rng.IntN(3) == 0 {
				r.XlatSrcAddr, r.XlatDstAddr, r.XlatSrcPort, r.XlatDstPort = "10.0.0.1", r.DstAddr, pick(), pick()
			}
			l := lokiLabels(r, rng.IntN(2) == 0)
			want := matrix.Project(r, policy)
			want.Count, want.Bytes = 0, 0
			q := qPlain
			switch {
			case hard.eval(l):
				q = qHard
			case r.SrcNamespace == "":
				q = qNodes
			case named.eval(l):
				q = qNamed
			}
			seen[q]++
			if q == qHard {
				// Read as raw lines and projected whole: nothing to reconstruct.
				continue
			}
			for _, name := range []string{"SrcPort", "DstPort", "XlatSrcPort", "XlatDstPort"} {
				if dynRE.MatchString(l[name]) {
					delete(l, name)
				}
			}
			if noFlags.MatchString(l["Flags"]) {
				delete(l, "Flags")
			}
			if l["FlowDirection"] != "0" {
				delete(l, "FlowDirection")
			}
			if q == qPlain {
				for _, name := range sourceNameLabels {
					delete(l, name)
				}
			}
			got, err := keyRecord(l, policy)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("policy %v, query %d, labels %v:\n got %+v\nwant %+v\nfrom %+v", policy, q, l, got, want, r)
			}
		}
		for q, n := range seen {
			if n < 2000 {
				t.Fatalf("the test records do not exercise every query: %v", seen)
			}
			_ = q
		}
	}
}
