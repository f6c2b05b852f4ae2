package flow

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// syntheticLines returns n NetObserv 1.8-style JSON lines (labels inside, Flags as names).
func syntheticLines(n int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"AgentIP":"10.0.1.%d","Bytes":%d,"DstAddr":"52.%d.%d.%d","DstPort":443,"Etype":2048,"Flags":["SYN","ACK","PSH"],`+
			`"FlowDirection":"1","IfDirections":[1],"Interfaces":["br-ex"],"K8S_FlowLayer":"infra","Packets":12,"Proto":6,`+
			`"SrcAddr":"10.128.%d.%d","SrcK8S_Namespace":"openshift-ns-%d","SrcK8S_OwnerName":"op-%d","SrcK8S_OwnerType":"Deployment",`+
			`"SrcK8S_Type":"Pod","SrcK8S_Name":"op-%d-abc","SrcPort":%d,"TimeFlowStartMs":%d,"TimeFlowEndMs":%d,"TimeFlowRttNs":8421000,"app":"netobserv-flowcollector"}`+"\n",
			i%250, 1000+i, i%200, i%250, i%100, i%250, i%200, i%60, i%60, i%60, 32768+i%28000, 1700000000000+int64(i), 1700000000500+int64(i))
	}
	return b.Bytes()
}

// syntheticLoki wraps n records in a Loki query_range answer, labels in the stream.
func syntheticLoki(n int) []byte {
	lines := strings.Split(strings.TrimSpace(string(syntheticLines(n))), "\n")
	var b bytes.Buffer
	b.WriteString(`{"status":"success","data":{"resultType":"streams","result":[{"stream":{"app":"netobserv-flowcollector","FlowDirection":"1","K8S_FlowLayer":"infra","SrcK8S_Type":"Pod"},"values":[`)
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `["%d",%q]`, 1700000000500000000+int64(i), l)
	}
	b.WriteString(`]}]}}`)
	return b.Bytes()
}

func BenchmarkDecode(b *testing.B) {
	const n = 20000
	for _, in := range []struct {
		name string
		data []byte
	}{{"jsonlines", syntheticLines(n)}, {"loki", syntheticLoki(n)}} {
		b.Run(in.name, func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			var total int64
			for b.Loop() {
				st, err := Decode(bytes.NewReader(in.data), in.name, func(Record) error { return nil })
				if err != nil || st.Records != n {
					b.Fatalf("%+v %v", st, err)
				}
				total += st.Records
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkDecodeLine is the per-line decode a raw Loki read runs on every line.
func BenchmarkDecodeLine(b *testing.B) {
	lines := bytes.Split(bytes.TrimSpace(syntheticLines(1000)), []byte("\n"))
	labels := map[string]string{"app": "netobserv-flowcollector", "FlowDirection": "1", "SrcK8S_Type": "Pod"}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := DecodeLine(labels, lines[i%len(lines)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
