package flow

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDecodeLine(t *testing.T) {
	base := `"SrcAddr":"10.128.0.5","DstAddr":"52.1.2.3"`
	cases := []struct {
		name   string
		labels map[string]string
		line   string
		check  func(r Record) bool
		err    string
	}{
		{name: "flags as list of names", line: `{` + base + `,"Flags":["SYN","ACK","PSH"]}`,
			check: func(r Record) bool { return r.Flags == FlagSYN|FlagACK|FlagPSH && r.HasSYN() }},
		{name: "flags as bitfield", line: `{` + base + `,"Flags":18}`,
			check: func(r Record) bool { return r.Flags == FlagSYN|FlagACK }},
		{name: "SYN_ACK is not SYN", line: `{` + base + `,"Flags":["SYN_ACK"]}`,
			check: func(r Record) bool { return r.Flags == FlagSYNACK && !r.HasSYN() }},
		{name: "every flag name", line: `{` + base + `,"Flags":["SYN","ACK","SYN_ACK","FIN","RST","PSH","URG","ECE","CWR","FIN_ACK","RST_ACK"]}`,
			check: func(r Record) bool { return r.Flags == 0x7FF }},
		{name: "unknown flag names ignored", line: `{` + base + `,"Flags":["ACK","NEWFLAG"]}`,
			check: func(r Record) bool { return r.Flags == FlagACK }},
		{name: "flags as numeric string", line: `{` + base + `,"Flags":"2"}`,
			check: func(r Record) bool { return r.Flags == FlagSYN }},
		{name: "flags as name string", line: `{` + base + `,"Flags":"SYN,ACK"}`,
			check: func(r Record) bool { return r.Flags == FlagSYN|FlagACK }},
		{name: "numbers as strings", line: `{` + base + `,"SrcPort":"40000","DstPort":"443","Proto":"6","Bytes":"1500","Packets":"3","TimeFlowStartMs":"1700000000000","TimeFlowEndMs":"1700000000500"}`,
			check: func(r Record) bool {
				return r.SrcPort == 40000 && r.DstPort == 443 && r.Proto == ProtoTCP && r.Bytes == 1500 && r.Packets == 3 &&
					r.Start.Equal(time.UnixMilli(1700000000000)) && r.End.Equal(time.UnixMilli(1700000000500))
			}},
		{name: "numbers as floats", line: `{` + base + `,"DstPort":443.0,"TimeFlowEndMs":1.7e12}`,
			check: func(r Record) bool { return r.DstPort == 443 && r.End.Equal(time.UnixMilli(1.7e12)) }},
		{name: "plural interfaces, directions as numbers", line: `{` + base + `,"Interfaces":["br-ex","eth0"],"IfDirections":[1,0]}`,
			check: func(r Record) bool { return r.Interfaces == "br-ex,eth0" && r.IfDirections == "1,0" }},
		{name: "plural interfaces, directions as strings", line: `{` + base + `,"Interfaces":["br-ex"],"IfDirections":["1"]}`,
			check: func(r Record) bool { return r.Interfaces == "br-ex" && r.IfDirections == "1" }},
		{name: "singular interface", line: `{` + base + `,"Interface":"eth0","IfDirection":1}`,
			check: func(r Record) bool { return r.Interfaces == "eth0" && r.IfDirections == "1" }},
		{name: "duplicate bool", line: `{` + base + `,"Duplicate":true}`,
			check: func(r Record) bool { return r.Duplicate }},
		{name: "duplicate string", line: `{` + base + `,"Duplicate":"true"}`,
			check: func(r Record) bool { return r.Duplicate }},
		{name: "flow direction as number", line: `{` + base + `,"FlowDirection":1}`,
			check: func(r Record) bool { return r.FlowDirection == "1" }},
		{name: "flow direction as label", labels: map[string]string{"FlowDirection": "2"}, line: `{` + base + `}`,
			check: func(r Record) bool { return r.FlowDirection == "2" }},
		{name: "flow direction absent", line: `{` + base + `}`,
			check: func(r Record) bool { return r.FlowDirection == "" && r.Count == 1 && r.Start.IsZero() }},
		{name: "labels merged", labels: map[string]string{"SrcK8S_Namespace": "ns", "SrcK8S_OwnerName": "web", "SrcK8S_Type": "Pod", "K8S_FlowLayer": "app", "app": "netobserv-flowcollector", "UdnId": "x"},
			line: `{` + base + `,"SrcK8S_OwnerType":"Deployment"}`,
			check: func(r Record) bool {
				return r.SrcNamespace == "ns" && r.SrcOwnerName == "web" && r.SrcType == "Pod" && r.FlowLayer == "app" && r.SrcOwnerType == "Deployment"
			}},
		{name: "label wins over line", labels: map[string]string{"SrcK8S_Namespace": "from-label", "SrcPort": "1234"},
			line:  `{` + base + `,"SrcK8S_Namespace":"from-line","SrcPort":9}`,
			check: func(r Record) bool { return r.SrcNamespace == "from-label" && r.SrcPort == 1234 }},
		{name: "unknown fields ignored", line: `{` + base + `,"NetworkEvents":[{"Action":"allow"}],"Udns":[""],"SomethingNew":{"a":1}}`,
			check: func(r Record) bool { return r.SrcAddr == "10.128.0.5" }},
		{name: "DNS and translation", line: `{` + base + `,"DnsName":"quay.io","DnsId":77,"XlatSrcAddr":"10.0.0.1","XlatDstAddr":"52.1.2.3","XlatSrcPort":1000,"XlatDstPort":443}`,
			check: func(r Record) bool {
				return r.DNSName == "quay.io" && r.DNSID == 77 && r.XlatSrcAddr == "10.0.0.1" && r.XlatDstPort == 443 && r.XlatSrcPort == 1000
			}},
		{name: "null values", line: `{` + base + `,"Flags":null,"DstPort":null,"Interfaces":null,"SrcK8S_Namespace":null}`,
			check: func(r Record) bool { return r.Flags == 0 && r.DstPort == 0 && r.Interfaces == "" }},
		{name: "escaped string", line: `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","SrcK8S_Name":"a\u002db"}`,
			check: func(r Record) bool { return r.SrcName == "a-b" }},
		{name: "pod placed by its namespace", labels: map[string]string{"SrcK8S_Namespace": "ns", "SrcK8S_Type": "Pod"},
			line:  `{"DstAddr":"52.1.2.3","DstPort":443,"Proto":6}`,
			check: func(r Record) bool { return r.SrcNamespace == "ns" && r.SrcAddr == "" }},
		{name: "pod aggregate placed by its labels", line: `{"SrcK8S_Namespace":"ns","SrcK8S_Type":"Pod","DstAddr":"52.1.2.3","Count":3,"DstPort":443}`,
			check: func(r Record) bool { return r.Count == 3 && r.SrcAddr == "" }},
		{name: "DNS aggregate by name only", line: `{"SrcK8S_Namespace":"ns","SrcK8S_Type":"Pod","DnsName":"quay.io","Count":2}`,
			check: func(r Record) bool { return r.Count == 2 && r.DNSName == "quay.io" }},
		{name: "ARP has no address", line: `{"Etype":2054,"SrcMac":"0A:58:0A:80:00:1D","Bytes":42}`,
			check: func(r Record) bool { return !r.IsIP() && r.Bytes == 42 }},

		{name: "malformed JSON", line: `{"SrcAddr":`, err: "malformed JSON"},
		{name: "not a flow record", line: `{"status":"ok"}`, err: "neither SrcAddr nor DstAddr"},
		// A record that cannot be placed is undecodable, whichever address is missing: a pod
		// record without DstAddr was counted "not egress", and one without SrcAddr could only
		// be placed by its labels.
		{name: "no DstAddr", labels: map[string]string{"SrcK8S_Namespace": "ns", "SrcK8S_Type": "Pod"},
			line: `{"SrcAddr":"10.128.0.5","DstPort":443,"Proto":6}`, err: "no DstAddr"},
		{name: "empty DstAddr", line: `{"SrcAddr":"10.128.0.5","DstAddr":" ","DstPort":443}`, err: "no DstAddr"},
		{name: "null DstAddr", line: `{"SrcAddr":"10.128.0.5","DstAddr":null,"DstPort":443}`, err: "no DstAddr"},
		{name: "no SrcAddr", line: `{"DstAddr":"52.1.2.3","DstPort":443,"Proto":6}`, err: "no SrcAddr"},
		{name: "pod without namespace nor SrcAddr", labels: map[string]string{"SrcK8S_Type": "Pod"},
			line: `{"DstAddr":"52.1.2.3","DstPort":443,"Proto":6}`, err: "no SrcAddr"},
		{name: "IPv4 Etype without DstAddr", line: `{"Etype":2048,"SrcAddr":"10.128.0.5"}`, err: "no DstAddr"},
		{name: "aggregate without DstAddr", line: `{"SrcAddr":"10.0.0.1","SrcK8S_Type":"Node","Count":3,"DstPort":443}`, err: "no DstAddr"},
		{name: "unnamed node without SrcAddr", line: `{"SrcK8S_Type":"Node","DstAddr":"52.1.2.3","Count":3,"DstPort":443}`, err: "no SrcAddr"},
		{name: "bad address", line: `{"SrcAddr":"10.0.0.300","DstAddr":"1.1.1.1"}`, err: `SrcAddr "10.0.0.300" is not an IP address`},
		{name: "port out of range", line: `{` + base + `,"DstPort":70000}`, err: "DstPort 70000 is not a port"},
		{name: "proto object", line: `{` + base + `,"Proto":{"n":6}}`, err: "field Proto"},
		{name: "port not a number", line: `{` + base + `,"SrcPort":"http"}`, err: "field SrcPort"},
		{name: "bad label", labels: map[string]string{"DstPort": "x"}, line: `{` + base + `}`, err: "label DstPort"},
		{name: "end before start", line: `{` + base + `,"TimeFlowStartMs":2000,"TimeFlowEndMs":1000}`, err: "before TimeFlowStartMs"},
		{name: "a list is not a record", line: `[1,2]`, err: "cannot unmarshal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := DecodeLine(c.labels, []byte(c.line))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !c.check(r) {
				t.Fatalf("decoded %+v", r)
			}
		})
	}
}

func decodeString(t *testing.T, in string) ([]Record, Stats, error) {
	t.Helper()
	var recs []Record
	st, err := Decode(strings.NewReader(in), "in.json", func(r Record) error {
		recs = append(recs, r)
		return nil
	})
	return recs, st, err
}

func TestDecodeJSONLines(t *testing.T) {
	good := func(port int) string {
		return fmt.Sprintf(`{"SrcAddr":"10.128.0.5","DstAddr":"52.1.2.3","DstPort":%d}`, port)
	}
	pretty := "{\n  \"SrcAddr\": \"10.128.0.5\",\n  \"DstAddr\": \"52.1.2.3\",\n  \"Interfaces\": [\n    \"eth0\"\n  ],\n  \"DstPort\": 7\n}"
	cases := []struct {
		name    string
		in      string
		ports   []int
		badAt   []int // lines of the undecodable records
		wantErr string
	}{
		{name: "lines", in: good(1) + "\n" + good(2) + "\n", ports: []int{1, 2}},
		{name: "no final newline, CRLF, blank lines", in: good(1) + "\r\n\r\n\n" + good(2), ports: []int{1, 2}},
		{name: "byte order mark", in: "\xef\xbb\xbf" + good(1) + "\n", ports: []int{1}},
		{name: "bad line in the middle", in: good(1) + "\n" + `{"SrcAddr":"x","DstAddr":"1.1.1.1"}` + "\n" + good(3) + "\n", ports: []int{1, 3}, badAt: []int{2}},
		{name: "truncated line then good", in: good(1) + "\n" + `{"SrcAddr":"10.0.0.1",` + "\n" + good(3) + "\n", ports: []int{1, 3}, badAt: []int{2}},
		{name: "garbage line", in: good(1) + "\nnot json\n" + good(3), ports: []int{1, 3}, badAt: []int{2}},
		{name: "pretty printed objects", in: pretty + "\n" + pretty + "\n" + good(9), ports: []int{7, 7, 9}},
		{name: "truncated at end", in: good(1) + "\n" + "{\n  \"SrcAddr\": \"10.0.0.1\",\n", ports: []int{1}, badAt: []int{2}},
		{name: "array of records", in: "[" + good(1) + ",\n" + `{"DstAddr":"bad"}` + ",\n" + good(3) + "]", ports: []int{1, 3}, badAt: []int{2}},
		{name: "logcli jsonl", in: `{"labels":{"FlowDirection":"1","SrcK8S_Namespace":"a"},"line":"{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\",\"DstPort\":5}","timestamp":"2026-01-02T10:00:00.5Z"}` + "\n" +
			`{"labels":{},"line":"{\"SrcAddr\":\"bad\"}","timestamp":"2026-01-02T10:00:00.5Z"}`, ports: []int{5}, badAt: []int{2}},
		{name: "empty", in: " \n\n", wantErr: "empty input"},
		{name: "nothing decodable", in: `{"entries":[],"stats":{}}`, wantErr: "none of its 1 entries"},
		{name: "truncated array", in: "[" + good(1) + ",", wantErr: "truncated JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, st, err := decodeString(t, c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "in.json") {
					t.Fatalf("error %v, want %q naming in.json", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ports []int
			for _, r := range recs {
				ports = append(ports, r.DstPort)
			}
			if fmt.Sprint(ports) != fmt.Sprint(c.ports) || st.Records != int64(len(c.ports)) {
				t.Fatalf("ports %v (stats %+v), want %v", ports, st, c.ports)
			}
			var lines []int
			for _, e := range st.Errors {
				lines = append(lines, e.Line)
				if !strings.Contains(e.Error(), fmt.Sprintf("in.json:%d:", e.Line)) || !strings.Contains(e.Error(), "fix") {
					t.Errorf("error %q does not name file:line and the fix", e.Error())
				}
			}
			if fmt.Sprint(lines) != fmt.Sprint(c.badAt) || st.Undecodable != int64(len(c.badAt)) {
				t.Fatalf("undecodable at lines %v (count %d), want %v: %v", lines, st.Undecodable, c.badAt, st.Errors)
			}
		})
	}
}

func lokiAnswer(streams ...string) string {
	return `{"status":"success","data":{"resultType":"streams","result":[` + strings.Join(streams, ",") + `],"stats":{"summary":{"x":1}}}}`
}

func TestDecodeLokiAnswer(t *testing.T) {
	line := func(port int) string {
		return fmt.Sprintf(`%q`, fmt.Sprintf(`{"SrcAddr":"10.128.0.5","DstAddr":"52.1.2.3","DstPort":%d,"TimeFlowEndMs":1700000000000}`, port))
	}
	val := func(port int) string { return `["1700000000000000000",` + line(port) + `]` }
	cases := []struct {
		name    string
		in      string
		ports   []int
		ns      []string
		bad     [][2]int // stream, value
		wantErr string
	}{
		{name: "streams with labels",
			in:    lokiAnswer(`{"stream":{"SrcK8S_Namespace":"a"},"values":[`+val(1)+`,`+val(2)+`]}`, `{"stream":{"SrcK8S_Namespace":"b"},"values":[`+val(3)+`]}`),
			ports: []int{1, 2, 3}, ns: []string{"a", "a", "b"}},
		{name: "values before stream",
			in:    lokiAnswer(`{"values":[` + val(1) + `],"stream":{"SrcK8S_Namespace":"late"}}`),
			ports: []int{1}, ns: []string{"late"}},
		{name: "data before status, keys reordered",
			in:    `{"data":{"result":[{"stream":{},"values":[` + val(1) + `]}],"resultType":"streams"},"status":"success"}`,
			ports: []int{1}, ns: []string{""}},
		{name: "structured metadata",
			in:    lokiAnswer(`{"stream":{"app":"x"},"values":[["1700000000000000000",` + line(1) + `,{"structuredMetadata":{"SrcK8S_Namespace":"meta"}}]]}`),
			ports: []int{1}, ns: []string{"meta"}},
		{name: "undecodable value is counted with its position",
			in:    lokiAnswer(`{"stream":{},"values":[`+val(1)+`]}`, `{"stream":{},"values":[`+val(2)+`,["1",`+fmt.Sprintf("%q", `{"SrcAddr":"nope"}`)+`],["1",5]]}`),
			ports: []int{1, 2}, ns: []string{"", ""}, bad: [][2]int{{1, 1}, {1, 2}}},
		{name: "empty result", in: lokiAnswer(), ports: nil},
		{name: "metric answer", in: `{"status":"success","data":{"resultType":"matrix","result":[]}}`, wantErr: "metric answer"},
		{name: "metric series without resultType", in: `{"status":"success","data":{"result":[{"metric":{},"values":[[1,"2"]]}]}}`, wantErr: "metric answer"},
		{name: "failed query", in: `{"status":"error","errorType":"bad_data","error":"parse error"}`, wantErr: `status "error" (parse error)`},
		{name: "no data", in: `{"status":"success"}`, wantErr: `without "data"`},
		{name: "truncated", in: lokiAnswer(`{"stream":{},"values":[` + val(1) + `]}`)[:120], wantErr: "truncated JSON"},
		{name: "syntax error names line", in: "{\"status\":\"success\",\n\"data\":{\"resultType\":\"streams\",\n\"result\":[}", wantErr: "in.json:3:"},
		{name: "trailing data", in: lokiAnswer() + `{}`, wantErr: "more JSON after"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			recs, st, err := decodeString(t, c.in)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "in.json") {
					t.Fatalf("error %v, want %q naming in.json", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ports []int
			var ns []string
			for _, r := range recs {
				ports = append(ports, r.DstPort)
				ns = append(ns, r.SrcNamespace)
				if !r.End.Equal(time.UnixMilli(1700000000000)) {
					t.Errorf("End %v", r.End)
				}
			}
			if fmt.Sprint(ports) != fmt.Sprint(c.ports) || fmt.Sprint(ns) != fmt.Sprint(c.ns) {
				t.Fatalf("ports %v namespaces %q, want %v %q", ports, ns, c.ports, c.ns)
			}
			var bad [][2]int
			for _, e := range st.Errors {
				bad = append(bad, [2]int{e.Stream, e.Entry})
				want := fmt.Sprintf("in.json: data.result[%d].values[%d]:", e.Stream, e.Entry)
				if !e.Loki || !strings.Contains(e.Error(), want) {
					t.Errorf("error %q does not contain %q", e.Error(), want)
				}
			}
			if fmt.Sprint(bad) != fmt.Sprint(c.bad) || st.Undecodable != int64(len(c.bad)) {
				t.Fatalf("undecodable %v, want %v", bad, c.bad)
			}
		})
	}
}

func TestDecodeLokiTimestampFallback(t *testing.T) {
	in := lokiAnswer(`{"stream":{},"values":[["1700000000123000000","{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\"}"]]}`)
	recs, _, err := decodeString(t, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.UnixMilli(1700000000123).UTC(); !recs[0].End.Equal(want) || !recs[0].Start.Equal(want) {
		t.Fatalf("Start/End %v/%v, want the entry timestamp %v", recs[0].Start, recs[0].End, want)
	}
}

func TestDecodeKeepsFirstErrorsCountsAll(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1"}` + "\n")
	for i := 0; i < 50; i++ {
		b.WriteString(`{"SrcAddr":"bad","DstAddr":"1.1.1.1"}` + "\n")
	}
	_, st, err := decodeString(t, b.String())
	if err != nil {
		t.Fatal(err)
	}
	if st.Undecodable != 50 || len(st.Errors) != MaxKeptErrors || st.Errors[0].Line != 2 || st.Errors[19].Line != 21 {
		t.Fatalf("undecodable %d, kept %d, first line %d", st.Undecodable, len(st.Errors), st.Errors[0].Line)
	}
	var total Stats
	total.Add(st)
	total.Add(st)
	if total.Undecodable != 100 || len(total.Errors) != MaxKeptErrors || total.Records != 2 {
		t.Fatalf("Stats.Add: %+v", total)
	}
}

func TestDecodeCallbackErrorStops(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	in := lokiAnswer(`{"stream":{},"values":[["1","{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\"}"],["1","{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\"}"]]}`)
	_, err := Decode(strings.NewReader(in), "in.json", func(Record) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 || !strings.Contains(err.Error(), "data.result[0].values[0]") {
		t.Fatalf("err %v after %d calls", err, n)
	}
	n = 0
	_, err = Decode(strings.NewReader("{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\"}\n{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\"}\n"), "in.json", func(Record) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 || !strings.Contains(err.Error(), "in.json:1:") {
		t.Fatalf("err %v after %d calls", err, n)
	}
}

func TestDecodeFileMissing(t *testing.T) {
	if _, err := DecodeFile(t.TempDir()+"/nope.json", func(Record) error { return nil }); err == nil || !strings.Contains(err.Error(), "nope.json") {
		t.Fatalf("err %v", err)
	}
}

func TestFlagNames(t *testing.T) {
	if got := strings.Join(FlagNames(FlagSYN|FlagACK|FlagSYNACK), ","); got != "SYN,ACK,SYN_ACK" {
		t.Fatalf("FlagNames = %s", got)
	}
	if FlagsFromNames("syn", " ack ", "bogus") != FlagSYN|FlagACK {
		t.Fatal("FlagsFromNames")
	}
}

// TestDecodeStreamsLongLine checks a line longer than the reader's buffer.
func TestDecodeStreamsLongLine(t *testing.T) {
	long := `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","Pad":"` + strings.Repeat("x", 200<<10) + `"}`
	recs, st, err := decodeString(t, long+"\n"+long)
	if err != nil || len(recs) != 2 || st.Undecodable != 0 {
		t.Fatalf("%d records, %+v, %v", len(recs), st, err)
	}
}

func TestDecodeLogcliEntry(t *testing.T) {
	in := `{"labels":{"FlowDirection":"1","SrcK8S_Namespace":"a"},"line":"{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\"}","timestamp":"2026-01-02T10:00:00.5Z"}`
	recs, _, err := decodeString(t, in)
	if err != nil {
		t.Fatal(err)
	}
	want := time.Date(2026, 1, 2, 10, 0, 0, 5e8, time.UTC)
	if r := recs[0]; r.SrcNamespace != "a" || r.FlowDirection != "1" || !r.End.Equal(want) || r.SrcAddr != "10.0.0.1" {
		t.Fatalf("record %+v", r)
	}
}

func TestDecodeOversizedRecord(t *testing.T) {
	in := "{\n" + strings.Repeat("  \"a\": 1,\n", 150000) + "  \"b\": {}\n}\n" + `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1"}`
	recs, st, err := decodeString(t, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || st.Undecodable != 1 || st.Errors[0].Line != 1 || !strings.Contains(st.Errors[0].Error(), "still incomplete") {
		t.Fatalf("%d records, %+v", len(recs), st)
	}
}

// TestLabelsEquivalentToLine: every field NetObserv may move to a stream label decodes the
// same from a label (a string) as from the JSON line.
func TestLabelsEquivalentToLine(t *testing.T) {
	line := `{"SrcK8S_Namespace":"ns","SrcK8S_OwnerName":"own","SrcK8S_OwnerType":"Deployment","SrcK8S_Name":"pod",
"SrcK8S_Type":"Pod","SrcK8S_HostName":"w0","SrcAddr":"10.128.0.5","SrcPort":40000,"SrcSubnetLabel":"Pods",
"DstK8S_Namespace":"dns","DstK8S_OwnerName":"dst","DstK8S_OwnerType":"DaemonSet","DstK8S_Name":"dpod","DstK8S_Type":"Pod",
"DstK8S_HostName":"w1","DstAddr":"10.128.2.2","DstPort":5353,"DstSubnetLabel":"Pods","Proto":17,"Flags":["SYN","ACK"],
"FlowDirection":"1","K8S_FlowLayer":"infra","K8S_ClusterName":"c","DnsName":"quay.io","DnsId":9,"XlatSrcAddr":"10.0.0.1",
"XlatDstAddr":"10.0.0.2","XlatSrcPort":1,"XlatDstPort":2,"Bytes":10,"Packets":1,"TimeFlowStartMs":1000,"TimeFlowEndMs":2000,
"Duplicate":true,"Interface":"eth0","IfDirection":1,"Sampling":1,"AgentIP":"10.0.0.3","Etype":2048}`
	want, err := DecodeLine(nil, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for k, v := range fields {
		if s, ok := v.(string); ok {
			labels[k] = s
		} else {
			b, _ := json.Marshal(v) // numbers, bools and the Flags list as Loki's `| json` renders them
			labels[k] = string(b)
		}
		if labelSetters[k] == nil {
			t.Errorf("field %s cannot be read from a label", k)
		}
	}
	got, err := DecodeLine(labels, []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("from labels:\n got %+v\nwant %+v", got, want)
	}
}

func TestDecodeGzip(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(lokiAnswer(`{"stream":{"SrcK8S_Namespace":"z"},"values":[["1","{\"SrcAddr\":\"10.0.0.1\",\"DstAddr\":\"1.1.1.1\"}"]]}`))); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	recs, st, err := decodeString(t, buf.String())
	if err != nil || len(recs) != 1 || recs[0].SrcNamespace != "z" || st.Records != 1 {
		t.Fatalf("%+v %+v %v", recs, st, err)
	}
	_, _, err = decodeString(t, "\x1f\x8bnot gzip")
	if err == nil || !strings.Contains(err.Error(), "in.json") {
		t.Fatalf("corrupt gzip: %v", err)
	}
}
