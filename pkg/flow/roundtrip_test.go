package flow_test

import (
	"bytes"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// roundTripRecords is a generated capture (both NetObserv formats) plus aggregates of the
// kinds `matrix collect --save-flows` writes: Count > 1, client ports folded to
// EphemeralPort on either side, translated addresses, and DNS aggregates without addresses.
func roundTripRecords(t *testing.T) []flow.Record {
	t.Helper()
	from := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var rs []flow.Record
	for _, g := range lokitest.Generate(lokitest.GenConfig{Records: 3000, From: from, To: from.Add(time.Hour), Seed: 7, OldFormat: 0.3}) {
		rs = append(rs, g.Truth)
	}
	n := len(rs)
	for i := 0; i < n; i += 7 {
		a := rs[i]
		a.Count = int64(2 + i%5)
		a.Bytes *= a.Count
		if a.SrcPort >= 32768 {
			a.SrcPort = flow.EphemeralPort
		} else if a.DstPort >= 32768 {
			a.DstPort = flow.EphemeralPort
		}
		rs = append(rs, a)
	}
	rs = append(rs,
		// A pod's egress with PacketTranslation, and the node-side leg it became.
		flow.Record{SrcNamespace: "app", SrcOwnerName: "web", SrcOwnerType: "Deployment", SrcType: "Pod",
			SrcAddr: "10.128.2.5", SrcPort: flow.EphemeralPort, DstAddr: "198.51.100.10", DstPort: 443,
			Proto: flow.ProtoTCP, Flags: flow.FlagSYN, FlowDirection: "1", XlatSrcAddr: "10.0.0.12",
			XlatDstAddr: "198.51.100.10", XlatSrcPort: 40001, XlatDstPort: 443, Count: 1,
			Start: from.Add(time.Second), End: from.Add(2 * time.Second)},
		flow.Record{SrcOwnerName: "ip-10-0-0-12", SrcOwnerType: "Node", SrcName: "ip-10-0-0-12", SrcType: "Node",
			SrcAddr: "10.0.0.12", SrcPort: 40001, DstAddr: "198.51.100.10", DstPort: 443, Proto: flow.ProtoTCP,
			Flags: flow.FlagSYN, FlowDirection: "1", SrcSubnetLabel: "Machines", Count: 1},
		// An aggregate of one that lost its client port: Count must still be written.
		flow.Record{SrcNamespace: "app", SrcOwnerName: "web", SrcOwnerType: "Deployment", SrcType: "Pod",
			SrcAddr: "10.128.2.6", SrcPort: flow.EphemeralPort, DstAddr: "203.0.113.20", DstPort: 443,
			Proto: flow.ProtoTCP, FlowDirection: "1", Count: 1},
		// DNS aggregates as pkg/lokiquery's DNSQueries returns them: no addresses.
		flow.Record{SrcNamespace: "app", SrcOwnerName: "web", SrcOwnerType: "Deployment", SrcType: "Pod",
			SrcPort: flow.EphemeralPort, DstNamespace: "openshift-dns", DstType: "Pod", DstPort: 53,
			Proto: flow.ProtoUDP, DNSName: "quay.io", Count: 12},
		flow.Record{SrcOwnerName: "ip-10-0-0-10", SrcOwnerType: "Node", SrcType: "Node",
			SrcPort: flow.EphemeralPort, DstNamespace: "openshift-dns", DstType: "Pod", DstPort: 53,
			Proto: flow.ProtoUDP, DNSName: "registry.redhat.io", Count: 1},
	)
	return rs
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	rs := roundTripRecords(t)
	var file bytes.Buffer
	for _, r := range rs {
		line, err := flow.EncodeJSONLine(r)
		if err != nil {
			t.Fatal(err)
		}
		file.Write(line)
		file.WriteByte('\n')
	}
	var got []flow.Record
	st, err := flow.Decode(&file, "flows.jsonl", func(r flow.Record) error {
		got = append(got, r)
		return nil
	})
	if err != nil || st.Undecodable != 0 {
		t.Fatalf("decode: %v, stats %+v", err, st)
	}
	if len(got) != len(rs) {
		t.Fatalf("decoded %d records, encoded %d", len(got), len(rs))
	}
	aggregates := 0
	for i := range rs {
		if rs[i].Count > 1 || rs[i].SrcPort == flow.EphemeralPort || rs[i].DstPort == flow.EphemeralPort {
			aggregates++
		}
		if got[i] != rs[i] {
			t.Fatalf("record %d changed in the round trip:\n got %+v\nwant %+v", i, got[i], rs[i])
		}
	}
	if aggregates < 400 {
		t.Fatalf("only %d aggregates: the test does not cover them", aggregates)
	}

	var nets []netip.Prefix
	for _, c := range lokitest.ClusterNetworks {
		nets = append(nets, netip.MustParsePrefix(c))
	}
	opts := matrix.Options{ClusterNetworks: nets, NodeRoles: lokitest.NodeRoles()}
	want, replayed := matrix.Build(rs, opts), matrix.Build(got, opts)
	if !reflect.DeepEqual(want, replayed) {
		t.Fatalf("the matrix of the replayed file differs:\n got %+v\nwant %+v", replayed, want)
	}
	if len(want.Entries) == 0 || len(want.DNSQueries) == 0 || !want.PacketTranslation {
		t.Fatalf("matrix without entries, DNS evidence or translation: %+v", want.Stats)
	}
}

func TestDecodeAggregateFields(t *testing.T) {
	for _, c := range []struct {
		name, line, wantErr string
		check               func(flow.Record) bool
	}{
		{name: "Count absent is 1", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","DstPort":443}`,
			check: func(r flow.Record) bool { return r.Count == 1 }},
		{name: "Count kept", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","SrcPort":-1,"DstPort":443,"Count":"42"}`,
			check: func(r flow.Record) bool { return r.Count == 42 && r.SrcPort == flow.EphemeralPort }},
		{name: "DstPort -1 in an aggregate", line: `{"SrcAddr":"1.1.1.1","DstAddr":"10.0.0.1","SrcPort":443,"DstPort":-1,"Count":1}`,
			check: func(r flow.Record) bool { return r.DstPort == flow.EphemeralPort && r.Count == 1 }},
		{name: "DNS aggregate without addresses", line: `{"SrcK8S_Namespace":"a","DnsName":"quay.io","SrcPort":-1,"DstPort":53,"Count":3}`,
			check: func(r flow.Record) bool { return r.DNSName == "quay.io" && r.Count == 3 }},
		{name: "Count zero", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","Count":0}`, wantErr: "field Count = 0"},
		{name: "Count negative", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","Count":-3}`, wantErr: "write Count >= 1"},
		{name: "raw record with SrcPort -1", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","SrcPort":-1,"DstPort":443}`,
			wantErr: "SrcPort -1 is not a port (0-65535): -1 (any ephemeral port) is only valid in an aggregated record"},
		{name: "raw record with DstPort -1", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","DstPort":-1}`, wantErr: `add "Count"`},
		{name: "aggregate with port -2", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","SrcPort":-2,"Count":2}`, wantErr: "SrcPort -2 is not a port"},
		{name: "Xlat port -1 even in an aggregate", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","XlatSrcPort":-1,"Count":2}`, wantErr: "XlatSrcPort -1"},
		{name: "raw DNS record without addresses", line: `{"SrcK8S_Namespace":"a","DnsName":"quay.io"}`, wantErr: "not a flow record"},
		{name: "aggregate without addresses nor DnsName", line: `{"SrcK8S_Namespace":"a","Count":2}`, wantErr: "not a flow record"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []flow.Record
			st, err := flow.Decode(strings.NewReader("{\"SrcAddr\":\"10.0.0.9\",\"DstAddr\":\"10.0.0.8\"}\n"+c.line+"\n"), "saved.jsonl", func(r flow.Record) error {
				got = append(got, r)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if c.wantErr != "" {
				if len(st.Errors) != 1 || !strings.Contains(st.Errors[0].Error(), c.wantErr) || !strings.HasPrefix(st.Errors[0].Error(), "saved.jsonl:2: ") {
					t.Fatalf("errors %v, want one at saved.jsonl:2 saying %q", st.Errors, c.wantErr)
				}
				return
			}
			if len(got) != 2 || !c.check(got[1]) {
				t.Fatalf("decoded %+v (errors %v)", got, st.Errors)
			}
		})
	}
}
