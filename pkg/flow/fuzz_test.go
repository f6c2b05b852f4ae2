package flow

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary input to Decode (both formats) and DecodeLine. It must never
// panic, and whatever it hands out must be a valid record and be accounted for.
func FuzzDecode(f *testing.F) {
	for _, path := range sampleFiles(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seedOf(data))
	}
	for _, s := range []string{
		`{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","Flags":["SYN"],"IfDirections":["1"],"Interfaces":["eth0"]}` + "\n{",
		`[{"SrcAddr":"::1","DstAddr":"::2","Flags":"SYN,ACK"}]`,
		`{"status":"success","data":{"resultType":"streams","result":[{"values":[["1","{}"]],"stream":{"DstPort":"x"}}]}}`,
		"{\n\"SrcAddr\": \"10.0.0.1\"\n}\n{\"DstAddr\": 5}",
		`{"SrcK8S_Namespace":"a","SrcPort":-1,"DstPort":53,"DnsName":"x.io","Count":3}` + "\n" + `{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","DstPort":-1}`,
		`{"SrcAddr":"10.0.0.1","DstAddr":"1.1.1.1","Count":0}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var handed int64
		st, err := Decode(bytes.NewReader(data), "fuzz", func(r Record) error {
			handed++
			// Only an input naming Count can hold aggregates (Count > 1, -1 ports, a DNS
			// aggregate without addresses); everything else must pass as a raw record.
			agg := mayNameCount(data)
			if verr := r.validate(agg); verr != nil {
				t.Fatalf("Decode handed an invalid record %+v: %v", r, verr)
			}
			if r.Count != 1 && !agg {
				t.Fatalf("Count %d without a Count field", r.Count)
			}
			return nil
		})
		if handed != st.Records || st.Undecodable < int64(len(st.Errors)) || len(st.Errors) > MaxKeptErrors {
			t.Fatalf("stats %+v after %d records handed", st, handed)
		}
		if err == nil && st.Records == 0 && st.Undecodable > 0 {
			t.Fatal("nothing decodable, yet no error")
		}
		for _, e := range st.Errors {
			if e.Error() == "" || e.Err == nil {
				t.Fatalf("empty decode error %#v", e)
			}
		}
		if r, err := DecodeLine(map[string]string{"FlowDirection": string(data)}, data); err == nil {
			if verr := r.validate(mayNameCount(data)); verr != nil {
				t.Fatalf("DecodeLine returned an invalid record without error: %v", verr)
			}
		}
	})
}

// mayNameCount reports whether data may hold a "Count" key (encoding/json matches keys case
// insensitively, and a key may be written with \u escapes).
func mayNameCount(data []byte) bool {
	return bytes.Contains(bytes.ToLower(data), []byte("count")) || bytes.Contains(data, []byte(`\u`))
}

// seedOf keeps a sample small enough for the fuzzer: with the 40-60 KB Loki answers whole,
// the engine spends a short run minimizing and mutating them, and hardly fuzzes
// (docs/performance.md). The first maxSeed bytes hold the answer's
// header, a whole stream and its first values; the unit tests decode the files whole.
func seedOf(data []byte) []byte {
	const maxSeed = 4 << 10
	if len(data) > maxSeed {
		return data[:maxSeed]
	}
	return data
}

// FuzzFastWire checks the one-pass decode against encoding/json, the reference it stands
// in for: on any input it must accept exactly what json.Unmarshal accepts into a wire, and
// fill the same values.
func FuzzFastWire(f *testing.F) {
	lines := bytes.Split(bytes.TrimSpace(syntheticLines(4)), []byte("\n"))
	for _, l := range lines {
		f.Add(l)
	}
	answers, others := recordedLines(f, 2)
	for _, l := range answers {
		f.Add(l)
	}
	for _, data := range others {
		f.Add(seedOf(data)) // a record file, not a Loki answer
	}
	for _, s := range []string{
		`{"srcaddr":"10.0.0.1","DSTADDR":"1.1.1.1"}`,                 // another case: encoding/json still matches
		`{"Src\u0041ddr":"10.0.0.1","DstAddr":"1.1.1.1"}`,            // an escaped key
		`{"SrcAddr":"10.0.0.1","SrcAddr":"10.0.0.2","Count":2}`,      // duplicates: the last wins
		`{"SrcAddr":"10.0.0.1"}{"DstAddr":"1.1.1.1"}`,                // two objects: malformed
		`{"SrcAddr":"10.0.0.1","x":tru}`,                             // a bad literal in an unknown field
		`{"SrcAddr":"10.0.0.1","x":12abc}`,                           // a bad number in an unknown field
		"{\"SrcAddr\":\"10.0.0.1\x01\"}",                             // a control character in a string
		`{"Flags":["SYN","A\"CK",7,null,true],"Interfaces":"br-ex"}`, // lists of every kind
		`{"IfDirections":[[1]],"Interfaces":[{"a":1}]}`,              // nested lists
		`{"Bytes":"12","Packets":1.2e1,"Duplicate":"true","Sampling":null,"DnsId":"x"}`,
		`{"SrcPort":{"a":1}}`, `[]`, `null`, `{}`, ` {"a": [1, {"b": "c"}]} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, ref wire
		errFast := unmarshalWire(data, &fast)
		errRef := json.Unmarshal(data, &ref)
		if (errFast == nil) != (errRef == nil) {
			t.Fatalf("%q: one-pass decode error %v, encoding/json error %v", data, errFast, errRef)
		}
		if errRef == nil && !reflect.DeepEqual(fast, ref) {
			t.Fatalf("%q: one-pass decode\n%+v\nencoding/json\n%+v", data, fast, ref)
		}
	})
}

// The table the one-pass decode uses must name every field of wire by its JSON tag.
func TestWireFieldsCoverWire(t *testing.T) {
	typ := reflect.TypeFor[wire]()
	var w wire
	for i := range typ.NumField() {
		name := typ.Field(i).Tag.Get("json")
		set := wireFields[name]
		if set == nil {
			t.Errorf("wire.%s (%q) is missing from wireFields", typ.Field(i).Name, name)
			continue
		}
		got := reflect.ValueOf(set(&w))
		want := reflect.ValueOf(&w).Elem().Field(i)
		if want.Kind() != reflect.Pointer {
			want = want.Addr()
		}
		if got.Pointer() != want.Pointer() {
			t.Errorf("wireFields[%q] points at the wrong field", name)
		}
	}
	if len(wireFields) != typ.NumField() {
		t.Errorf("wireFields has %d names, wire %d fields", len(wireFields), typ.NumField())
	}
}

// The one-pass decode must be the path real NetObserv lines take (the fuzz test shows it
// is right; this shows it is used).
func TestFastWireTakesRecordedLines(t *testing.T) {
	lines := bytes.Split(bytes.TrimSpace(syntheticLines(50)), []byte("\n"))
	answers, _ := recordedLines(t, -1)
	lines = append(lines, answers...)
	if len(lines) < 200 {
		t.Fatalf("only %d lines to try", len(lines))
	}
	for i, l := range lines {
		var w wire
		if !json.Valid(l) || !fastWire(l, &w) {
			t.Errorf("line %d takes encoding/json's path: %s", i, l)
		}
	}
}

// recordedLines returns the record lines of the recorded Loki answers (the first perStream
// of each stream; all when perStream < 0), and the sample files that are not Loki answers.
func recordedLines(tb testing.TB, perStream int) (lines, others [][]byte) {
	tb.Helper()
	for _, path := range sampleFiles(tb) {
		data, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		var answer struct {
			Data struct {
				Result []struct {
					Values [][2]string `json:"values"`
				} `json:"result"`
			} `json:"data"`
		}
		if json.Unmarshal(data, &answer) != nil {
			others = append(others, data)
			continue
		}
		for _, s := range answer.Data.Result {
			vs := s.Values
			if perStream >= 0 {
				vs = vs[:min(perStream, len(vs))]
			}
			for _, v := range vs {
				lines = append(lines, []byte(v[1]))
			}
		}
	}
	return lines, others
}
