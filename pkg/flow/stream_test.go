package flow

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"testing"
)

// lokiStream generates a Loki answer of n records on the fly, so the test input is never in
// memory as a whole.
type lokiStream struct {
	n, i       int
	buf        bytes.Buffer
	begun      bool
	done       bool
	totalBytes int64
}

func (s *lokiStream) Read(p []byte) (int, error) {
	for s.buf.Len() < len(p) && !s.done {
		switch {
		case !s.begun:
			s.buf.WriteString(`{"status":"success","data":{"resultType":"streams","result":[{"stream":{"SrcK8S_Type":"Pod"},"values":[`)
			s.begun = true
		case s.i < s.n:
			if s.i > 0 {
				s.buf.WriteByte(',')
			}
			line := fmt.Sprintf(`{"SrcAddr":"10.128.%d.%d","DstAddr":"52.1.%d.%d","SrcPort":%d,"DstPort":443,"Proto":6,"Flags":["SYN","ACK"],"Bytes":%d,"TimeFlowStartMs":1700000000000,"TimeFlowEndMs":1700000000001,"Interfaces":["br-ex"],"IfDirections":[1],"Pad":"%0300d"}`,
				s.i%200, s.i%250, s.i%100, s.i%250, 32768+s.i%20000, s.i, s.i)
			fmt.Fprintf(&s.buf, `["%d",%q]`, 1700000000001000000, line)
			s.i++
		default:
			s.buf.WriteString(`]}]}}`)
			s.done = true
		}
	}
	if s.buf.Len() == 0 {
		return 0, io.EOF
	}
	n, err := s.buf.Read(p)
	s.totalBytes += int64(n)
	return n, err
}

// TestDecodeStreamsLokiAnswer decodes a Loki answer of tens of MB and checks the live heap
// stays small: the answer is walked token by token, never held.
func TestDecodeStreamsLokiAnswer(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes tens of MB")
	}
	const n = 60000
	var peak uint64
	var ms runtime.MemStats
	in := &lokiStream{n: n}
	st, err := Decode(in, "generated", func(r Record) error {
		if r.Bytes%10000 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		return nil
	})
	if err != nil || st.Records != n || st.Undecodable != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	t.Logf("peak live heap %.1f MB while decoding %d records (%.0f MB)", float64(peak)/(1<<20), n, float64(in.totalBytes)/(1<<20))
	if peak > 16<<20 {
		t.Fatalf("live heap reached %.1f MB: the decoder holds the input instead of streaming it", float64(peak)/(1<<20))
	}
}
