package flow

import (
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/testfix"
)

func samplesDir(t testing.TB) string { return testfix.Samples(t) }

func sampleFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(samplesDir(t), "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.json samples in %s: %v", samplesDir(t), err)
	}
	sort.Strings(files)
	return files
}

func decodeAll(t *testing.T, path string) ([]Record, Stats, error) {
	t.Helper()
	var recs []Record
	st, err := DecodeFile(path, func(r Record) error {
		recs = append(recs, r)
		return nil
	})
	return recs, st, err
}

// TestDecodeSamples decodes every real sample and checks values read from the files.
func TestDecodeSamples(t *testing.T) {
	ms := func(v int64) time.Time { return time.UnixMilli(v).UTC() }
	cases := map[string]struct {
		records, undecodable int64
		err                  string // substring of the error; "" = none
		check                func(t *testing.T, recs []Record)
	}{
		"console-plugin-flow_records.json": {records: 50, check: func(t *testing.T, recs []Record) {
			r := recs[0] // labels from the stream, plural Interfaces, IfDirections as strings
			want := Record{SrcOwnerName: "ip-10-0-1-7.ec2.internal", SrcOwnerType: "Node", SrcName: "ip-10-0-1-7.ec2.internal",
				SrcType: "Node", SrcHostName: "ip-10-0-1-7.ec2.internal", SrcAddr: "10.0.1.7", SrcPort: 50104,
				DstAddr: "10.0.1.140", DstPort: 443, Proto: ProtoICMP, Flags: FlagACK, FlowDirection: "1",
				FlowLayer: "infra", ClusterName: "test-cluster", Bytes: 66, Packets: 1,
				Start: ms(1708011867121), End: ms(1708011867121), Count: 1,
				Interfaces: "br-ex,test1,test2,test3,test4,test5", IfDirections: "1,0,0,0,0,0",
				AgentIP: "10.0.1.7", Etype: EtypeIPv4}
			if r != want {
				t.Errorf("record 0:\n got %+v\nwant %+v", r, want)
			}
			if r := recs[1]; r.Interfaces != "eth0" || r.IfDirections != "1" { // singular fields
				t.Errorf("record 1: Interfaces %q IfDirections %q, want eth0 / 1", r.Interfaces, r.IfDirections)
			}
			dns := 0
			for _, r := range recs {
				if r.DNSID != 0 {
					dns++
				}
			}
			if dns == 0 {
				t.Error("no record with DnsId decoded; the sample has some")
			}
		}},
		"console-plugin-flow_records_dropped.json": {records: 0}, // a real empty answer
		"console-plugin-flow_records_has_dropped.json": {records: 50, check: func(t *testing.T, recs []Record) {
			var bits uint32
			for _, r := range recs {
				bits |= r.Flags
			}
			if bits&FlagRST == 0 {
				t.Errorf("flags OR %#x: want RST (Flags 4 occurs in the sample)", bits)
			}
		}},
		"console-plugin-flow_records_sent.json": {records: 50, check: func(t *testing.T, recs []Record) {
			arp, syn := 0, 0
			for _, r := range recs {
				if r.Etype == 0x0806 {
					arp++
					if r.IsIP() || r.SrcAddr != "" {
						t.Errorf("ARP record %+v: want non-IP without address", r)
					}
				}
				if r.HasSYN() {
					syn++
					if r.SrcAddr != "169.254.169.2" || r.DstAddr != "172.30.136.217" || r.DstPort != 8443 {
						t.Errorf("SYN record %+v, want 169.254.169.2 -> 172.30.136.217:8443", r)
					}
				}
			}
			if arp != 4 || syn != 1 {
				t.Errorf("%d ARP and %d SYN records, want 4 and 1", arp, syn)
			}
		}},
		"console-plugin-flows-2022.json": {records: 50, check: func(t *testing.T, recs []Record) {
			r := recs[0]
			if r.SrcNamespace != "openshift-ingress" || r.SrcOwnerName != "router-default" || r.FlowDirection != "0" ||
				r.DstOwnerName != "console" || r.DstPort != 8443 || r.Interfaces != "genev_sys_6081" || r.IfDirections != "0" || r.Duplicate {
				t.Errorf("record 0: %+v", r)
			}
			dups := 0
			for _, r := range recs {
				if r.Duplicate {
					dups++
				}
			}
			if dups != 8 {
				t.Errorf("%d Duplicate records, want 8", dups)
			}
		}},
		"console-plugin-namespaces.json":              {err: "label or series answer"},
		"console-plugin-topology-namespace-2022.json": {err: `resultType "matrix" is a metric answer`},
		"record-2026-egressip-lab.json": {records: 1, check: func(t *testing.T, recs []Record) {
			r := recs[0]
			if r.Flags != FlagACK || r.HasSYN() || r.SrcAddr != "142.251.152.119" || r.SrcPort != 443 ||
				r.DstAddr != "10.133.0.21" || r.DstPort != 52960 || r.FlowDirection != "0" || r.Proto != ProtoTCP ||
				r.DstSubnetLabel != "Pods" || r.DstNamespace != "llm-demo" || r.Interfaces != "genev_sys_6081,eth0" ||
				r.IfDirections != "0,0" || r.Sampling != 50 || !r.Start.Equal(ms(1776231454316)) || !r.End.Equal(ms(1776231454328)) {
				t.Errorf("record: %+v", r)
			}
		}},
	}
	for _, path := range sampleFiles(t) {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			c, ok := cases[name]
			if !ok {
				t.Fatalf("no expectations for sample %s: add them to this table", name)
			}
			recs, st, err := decodeAll(t, path)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), name) {
					t.Fatalf("error %v, want one naming the file and containing %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.Records != c.records || st.Undecodable != c.undecodable || int64(len(recs)) != st.Records {
				t.Fatalf("stats %+v (%d records handed), want %d records %d undecodable; errors: %v", st, len(recs), c.records, c.undecodable, st.Errors)
			}
			for _, r := range recs {
				if r.Count != 1 {
					t.Fatalf("Count %d, want 1", r.Count)
				}
			}
			if c.check != nil {
				c.check(t, recs)
			}
		})
	}
}
