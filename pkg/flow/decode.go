package flow

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
)

// MaxKeptErrors is how many DecodeErrors Stats keeps; the rest are only counted.
const MaxKeptErrors = 20

// maxRecordBytes bounds one multi-line record of a JSON-lines file: past it the lines are
// reported as undecodable instead of being buffered further.
const maxRecordBytes = 1 << 20

// Stats accounts for every entry a Decode call read: Records + Undecodable of them.
type Stats struct {
	Records     int64         // records decoded and handed to fn
	Undecodable int64         // entries that could not be decoded (all of them, kept or not)
	Errors      []DecodeError // the first MaxKeptErrors undecodable entries
}

// Add merges the counts of another decode (e.g. one file of several).
func (s *Stats) Add(o Stats) {
	s.Records += o.Records
	s.Undecodable += o.Undecodable
	for _, e := range o.Errors {
		if len(s.Errors) >= MaxKeptErrors {
			break
		}
		s.Errors = append(s.Errors, e)
	}
}

func (s *Stats) undecodable(e DecodeError) {
	s.Undecodable++
	if len(s.Errors) < MaxKeptErrors {
		s.Errors = append(s.Errors, e)
	}
}

// DecodeError names one entry that could not be decoded, and where it is.
type DecodeError struct {
	Source string // file name or the caller's label for the input
	Line   int    // 1-based line where the record starts (JSON lines); 0 for a Loki answer
	Stream int    // 0-based index of the stream in a Loki answer's data.result
	Entry  int    // 0-based index of the value within that stream
	Loki   bool   // the entry came from a Loki answer: Stream and Entry locate it
	Err    error
}

func (e DecodeError) Error() string {
	const fix = "fix or drop that record (a NetObserv flow record is a JSON object with SrcAddr/DstAddr), or re-export it from Loki"
	if e.Loki {
		return fmt.Sprintf("%s: data.result[%d].values[%d]: undecodable flow record: %v; %s", e.Source, e.Stream, e.Entry, e.Err, fix)
	}
	return fmt.Sprintf("%s:%d: undecodable flow record: %v; %s", e.Source, e.Line, e.Err, fix)
}

func (e DecodeError) Unwrap() error { return e.Err }

var wires = sync.Pool{New: func() any { return new(wire) }}

// DecodeLine decodes one Loki entry: the stream labels and the JSON line. NetObserv moves
// the label fields out of the line, so the record is their union; when a field is in both,
// the label wins (it is what Loki selected on). Unknown fields and labels are ignored.
func DecodeLine(labels map[string]string, line []byte) (Record, error) {
	// The walk's field setters take w's address, so a local wire would be allocated for
	// every line; a million-line pull reuses a few.
	w := wires.Get().(*wire)
	defer wires.Put(w)
	*w = wire{}
	if err := unmarshalWire(line, w); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return Record{}, fmt.Errorf("malformed JSON at byte %d: %w", se.Offset, err)
		}
		return Record{}, fieldError(line, err)
	}
	for k, v := range labels {
		if set := labelSetters[k]; set != nil {
			if err := set(w, v); err != nil {
				return Record{}, fmt.Errorf("label %s=%q: %w", k, v, err)
			}
		}
	}
	return w.record()
}

// DecodeFile decodes the file at path, see Decode.
func DecodeFile(path string, fn func(Record) error) (Stats, error) {
	f, err := os.Open(path)
	if err != nil {
		return Stats{}, fmt.Errorf("open flow records: %w", err)
	}
	defer f.Close()
	return Decode(f, path, fn)
}

// Decode reads flow records from r and calls fn for each, in input order. The input is
// either a Loki query_range answer (resultType "streams", as the HTTP API returns it), or a
// stream of JSON objects: flow records with their labels inside (JSON lines, pretty-printed
// objects one after the other, or a JSON array of them) or `logcli --output=jsonl` entries
// ({"labels":{...},"line":"<record>","timestamp":...}); any of them may be gzipped. It
// streams: memory does not grow with the input.
//
// An entry that cannot be decoded is counted in Stats.Undecodable (the first MaxKeptErrors
// kept in Stats.Errors) and decoding goes on. The returned error is for what stops decoding:
// a malformed Loki answer, a metric answer, an input with nothing decodable, a read error, or
// an error from fn (returned wrapped, with the position).
func Decode(r io.Reader, source string, fn func(Record) error) (Stats, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(64 << 10)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return Stats{}, fmt.Errorf("%s: read: %w", source, err)
	}
	if bytes.HasPrefix(head, []byte{0x1f, 0x8b}) {
		// A gzipped artifact (CI compresses them): decode what it holds.
		zr, err := gzip.NewReader(br)
		if err != nil {
			return Stats{}, fmt.Errorf("%s: gzip: %w", source, err)
		}
		defer zr.Close()
		return Decode(zr, source, fn)
	}
	head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
	trimmed := bytes.TrimLeft(head, " \t\r\n")
	if len(trimmed) == 0 {
		return Stats{}, fmt.Errorf("%s: empty input: expected a Loki query_range answer or NetObserv flow records as JSON lines", source)
	}
	var st Stats
	switch {
	case trimmed[0] == '{' && isLokiAnswer(trimmed):
		err = decodeLoki(br, source, fn, &st)
	case trimmed[0] == '[':
		err = decodeArray(br, source, fn, &st)
	default:
		err = decodeLines(br, source, fn, &st)
	}
	if err == nil && st.Records == 0 && st.Undecodable > 0 {
		err = fmt.Errorf("%s: none of its %d entries is a decodable flow record; first: %w", source, st.Undecodable, st.Errors[0])
	}
	return st, err
}

// isLokiAnswer tells a Loki API answer from a flow record by the first key of the object.
func isLokiAnswer(head []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(head))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return false
	}
	t, err := dec.Token()
	if err != nil {
		return false
	}
	switch t {
	case "status", "data", "error", "errorType", "warnings", "stats":
		return true
	}
	return false
}

// decodeLines reads flow records as JSON lines. A record may also span lines (pretty
// printed); lines are joined until they form a complete object, and a line starting with
// '{' in column 0 always starts a new record, so one truncated line costs one record only.
func decodeLines(br *bufio.Reader, source string, fn func(Record) error, st *Stats) error {
	var (
		acc      []byte // a record spanning lines, so far
		accStart int    // its first line
		skipping bool   // dropping the rest of an oversized record
		lineNo   int
	)
	bad := func(line int, err error) {
		st.undecodable(DecodeError{Source: source, Line: line, Err: err})
	}
	emit := func(line int, data []byte) (incomplete bool, err error) {
		rec, derr := decodeObject(data)
		if derr != nil {
			if isIncomplete(data) {
				return true, nil
			}
			bad(line, derr)
			return false, nil
		}
		st.Records++
		if err := fn(rec); err != nil {
			return false, fmt.Errorf("%s:%d: %w", source, line, err)
		}
		return false, nil
	}
	for {
		line, rerr := readLine(br)
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return fmt.Errorf("%s:%d: read: %w", source, lineNo+1, rerr)
		}
		if rerr != nil && line == nil {
			break
		}
		lineNo++
		if lineNo == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		newRecord := len(line) > 0 && line[0] == '{'
		if skipping && !newRecord {
			continue
		}
		skipping = false
		if acc != nil && newRecord {
			bad(accStart, fmt.Errorf("incomplete JSON object (lines %d-%d): the next line starts a new record", accStart, lineNo-1))
			acc = nil
		}
		t := bytes.TrimSpace(line)
		if acc == nil {
			if len(t) == 0 {
				continue
			}
			incomplete, err := emit(lineNo, t)
			if err != nil {
				return err
			}
			if incomplete {
				acc, accStart = append([]byte(nil), t...), lineNo
			}
		} else {
			acc = append(append(acc, '\n'), t...)
			if len(acc) > maxRecordBytes {
				bad(accStart, fmt.Errorf("record is over %d bytes and still incomplete at line %d", maxRecordBytes, lineNo))
				acc, skipping = nil, true
				continue
			}
			if len(t) == 0 || t[len(t)-1] != '}' {
				continue // cannot end the object: do not re-parse (keeps this linear)
			}
			incomplete, err := emit(accStart, acc)
			if err != nil {
				return err
			}
			if !incomplete {
				acc = nil
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
	}
	if acc != nil {
		bad(accStart, fmt.Errorf("incomplete JSON object at end of input (lines %d-%d): the file is truncated", accStart, lineNo))
	}
	return nil
}

// logcliEntry is one line of `logcli query --output=jsonl`.
type logcliEntry struct {
	Labels    map[string]string `json:"labels"`
	Line      *string           `json:"line"`
	Timestamp time.Time         `json:"timestamp"`
}

// decodeObject decodes one JSON-lines object: a flow record, or a logcli jsonl entry
// wrapping one (tried only when the object is not a flow record by itself).
func decodeObject(data []byte) (Record, error) {
	rec, err := DecodeLine(nil, data)
	if err == nil {
		return rec, nil
	}
	var e logcliEntry
	if json.Unmarshal(data, &e) != nil || e.Line == nil {
		return rec, err
	}
	rec, err = DecodeLine(e.Labels, []byte(*e.Line))
	if err != nil {
		return Record{}, fmt.Errorf("logcli entry: %w", err)
	}
	if rec.End.IsZero() && !e.Timestamp.IsZero() {
		rec.End = e.Timestamp.UTC()
		if rec.Start.IsZero() {
			rec.Start = rec.End
		}
		// Only the times changed since DecodeLine validated the rest.
		if err := rec.validate(true); err != nil {
			return Record{}, fmt.Errorf("logcli entry timestamp: %w", err)
		}
	}
	return rec, nil
}

// readLine returns the next line without its end of line, however long; nil at end of input.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if len(line) == 0 && err != nil {
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	if errors.Is(err, io.EOF) {
		return line, io.EOF
	}
	return line, err
}

// isIncomplete reports whether data is the start of a JSON value cut short.
func isIncomplete(data []byte) bool {
	var raw json.RawMessage
	err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw)
	return errors.Is(err, io.ErrUnexpectedEOF)
}

// decodeArray reads a JSON array of flow records (`jq -s` output).
func decodeArray(br *bufio.Reader, source string, fn func(Record) error, st *Stats) error {
	lc := newLineCounter(br)
	dec := json.NewDecoder(lc)
	if _, err := dec.Token(); err != nil {
		return lc.fatal(source, dec, err)
	}
	for i := 0; dec.More(); i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return lc.fatal(source, dec, err)
		}
		line := lc.lineAt(dec.InputOffset() - int64(len(raw)))
		rec, err := DecodeLine(nil, raw)
		if err != nil {
			st.undecodable(DecodeError{Source: source, Line: line, Err: fmt.Errorf("array element %d: %w", i, err)})
			continue
		}
		st.Records++
		if err := fn(rec); err != nil {
			return fmt.Errorf("%s:%d: %w", source, line, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return lc.fatal(source, dec, err)
	}
	return trailing(dec, lc, source)
}

func trailing(dec *json.Decoder, lc *lineCounter, source string) error {
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("more JSON after the end of the answer")
		}
		return lc.fatal(source, dec, err)
	}
	return nil
}

// decodeLoki walks a Loki API answer token by token: data.result[i].values[j] lines are
// decoded one at a time, so a large answer never sits in memory.
func decodeLoki(br *bufio.Reader, source string, fn func(Record) error, st *Stats) error {
	lc := newLineCounter(br)
	dec := json.NewDecoder(lc)
	fatal := func(err error) error { return lc.fatal(source, dec, err) }
	if err := expectDelim(dec, '{'); err != nil {
		return fatal(err)
	}
	var status, errMsg string
	sawData := false
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return fatal(err)
		}
		switch key {
		case "status":
			if err := dec.Decode(&status); err != nil {
				return fatal(fmt.Errorf("status: %w", err))
			}
		case "error":
			if err := dec.Decode(&errMsg); err != nil {
				return fatal(fmt.Errorf("error: %w", err))
			}
		case "data":
			sawData = true
			if status != "" && status != "success" {
				return fmt.Errorf("%s: Loki answered status %q (%s): the query failed; fix the query and fetch again", source, status, errMsg)
			}
			if err := decodeLokiData(dec, lc, source, fn, st); err != nil {
				return err
			}
		default:
			if err := skipValue(dec); err != nil {
				return fatal(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fatal(err)
	}
	if err := trailing(dec, lc, source); err != nil {
		return err
	}
	if status != "" && status != "success" {
		return fmt.Errorf("%s: Loki answered status %q (%s): the query failed; fix the query and fetch again", source, status, errMsg)
	}
	if !sawData {
		return fmt.Errorf("%s: Loki answer without \"data\": not a query_range answer; save the whole answer of /loki/api/v1/query_range", source)
	}
	return nil
}

func decodeLokiData(dec *json.Decoder, lc *lineCounter, source string, fn func(Record) error, st *Stats) error {
	fatal := func(err error) error { return lc.fatal(source, dec, err) }
	t, err := dec.Token()
	if err != nil {
		return fatal(err)
	}
	if t != json.Delim('{') {
		return fmt.Errorf("%s: \"data\" is %s, not an object: a label or series answer, not flow records; save the answer of /loki/api/v1/query_range with a log query", source, tokenKind(t))
	}
	resultType := ""
	for dec.More() {
		key, err := objectKey(dec)
		if err != nil {
			return fatal(err)
		}
		switch key {
		case "resultType":
			if err := dec.Decode(&resultType); err != nil {
				return fatal(fmt.Errorf("data.resultType: %w", err))
			}
			if err := checkResultType(source, resultType); err != nil {
				return err
			}
		case "result":
			if err := decodeLokiResult(dec, lc, source, fn, st); err != nil {
				return err
			}
		default:
			if err := skipValue(dec); err != nil {
				return fatal(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fatal(err)
	}
	return nil
}

func checkResultType(source, rt string) error {
	switch rt {
	case "streams", "":
		return nil
	case "matrix", "vector", "scalar":
		return fmt.Errorf("%s: Loki answer of resultType %q is a metric answer, not flow records: decode it as a metric aggregate, or query with a log selector (no count_over_time/sum) to get flows", source, rt)
	}
	return fmt.Errorf("%s: unknown Loki resultType %q: expected \"streams\"", source, rt)
}

// decodeLokiResult reads data.result: a list of {"stream": labels, "values": [[ts, line], ...]}.
func decodeLokiResult(dec *json.Decoder, lc *lineCounter, source string, fn func(Record) error, st *Stats) error {
	fatal := func(err error) error { return lc.fatal(source, dec, err) }
	if err := expectDelim(dec, '['); err != nil {
		return fatal(fmt.Errorf("data.result: %w", err))
	}
	for si := 0; dec.More(); si++ {
		if err := expectDelim(dec, '{'); err != nil {
			return fatal(fmt.Errorf("data.result[%d]: %w", si, err))
		}
		var (
			labels  map[string]string
			pending [][]json.RawMessage // values met before "stream" (key order is not guaranteed)
			pendAt  int
			entry   int
		)
		each := func(v []json.RawMessage) error {
			defer func() { entry++ }()
			rec, err := decodeLokiValue(labels, v)
			if err != nil {
				st.undecodable(DecodeError{Source: source, Stream: si, Entry: entry, Loki: true, Err: err})
				return nil
			}
			st.Records++
			if err := fn(rec); err != nil {
				return fmt.Errorf("%s: data.result[%d].values[%d]: %w", source, si, entry, err)
			}
			return nil
		}
		for dec.More() {
			key, err := objectKey(dec)
			if err != nil {
				return fatal(err)
			}
			switch key {
			case "stream":
				if err := dec.Decode(&labels); err != nil {
					return fatal(fmt.Errorf("data.result[%d].stream: %w", si, err))
				}
			case "metric":
				return fmt.Errorf("%s: data.result[%d] has \"metric\": a metric answer, not flow records: query with a log selector to get flows", source, si)
			case "values":
				if err := expectDelim(dec, '['); err != nil {
					return fatal(fmt.Errorf("data.result[%d].values: %w", si, err))
				}
				var v []json.RawMessage // reused: Decode overwrites it in place
				for dec.More() {
					if err := dec.Decode(&v); err != nil {
						var te *json.UnmarshalTypeError
						if !errors.As(err, &te) {
							return fatal(fmt.Errorf("data.result[%d].values[%d]: %w", si, entry+len(pending), err))
						}
						v = v[:0] // not a list: reported as undecodable by each
					}
					if labels == nil {
						c := make([]json.RawMessage, len(v))
						for i := range v {
							c[i] = append(json.RawMessage(nil), v[i]...)
						}
						pending = append(pending, c)
						continue
					}
					if err := each(v); err != nil {
						return err
					}
				}
				if _, err := dec.Token(); err != nil {
					return fatal(err)
				}
			default:
				if err := skipValue(dec); err != nil {
					return fatal(err)
				}
			}
			for ; pendAt < len(pending) && labels != nil; pendAt++ {
				if err := each(pending[pendAt]); err != nil {
					return err
				}
			}
		}
		if _, err := dec.Token(); err != nil {
			return fatal(err)
		}
		for ; pendAt < len(pending); pendAt++ { // a stream without labels
			if err := each(pending[pendAt]); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return fatal(err)
	}
	return nil
}

// lokiMeta is the third element of a value when Loki categorizes labels.
type lokiMeta struct {
	StructuredMetadata map[string]string `json:"structuredMetadata"`
	Parsed             map[string]string `json:"parsed"`
}

// decodeLokiValue decodes one [ "<ns timestamp>", "<json line>" (, metadata) ] value.
func decodeLokiValue(labels map[string]string, parts []json.RawMessage) (Record, error) {
	if len(parts) < 2 {
		return Record{}, errors.New(`value is not ["<ns timestamp>", "<line>"]`)
	}
	var ts, line string
	if err := json.Unmarshal(parts[0], &ts); err != nil {
		return Record{}, fmt.Errorf("timestamp %s is not a string", truncate(parts[0], 40))
	}
	if err := json.Unmarshal(parts[1], &line); err != nil {
		return Record{}, fmt.Errorf("line %s is not a string", truncate(parts[1], 40))
	}
	var meta map[string]string
	if len(parts) > 2 {
		meta = EntryMetadata(parts[2])
	}
	ns, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		ns = -1 // only an error if the line has no TimeFlowEndMs either
	}
	return DecodeEntry(labels, ns, []byte(line), meta)
}

// EntryMetadata reads the third element of a Loki entry, when Loki categorizes labels:
// {"structuredMetadata": {...}, "parsed": {...}}, merged (structured metadata wins). Nil
// when there is none or it is not that shape: it is never part of a flow record's identity.
func EntryMetadata(raw []byte) map[string]string {
	var m lokiMeta
	if json.Unmarshal(raw, &m) != nil || len(m.StructuredMetadata)+len(m.Parsed) == 0 {
		return nil
	}
	out := make(map[string]string, len(m.StructuredMetadata)+len(m.Parsed))
	for _, src := range []map[string]string{m.Parsed, m.StructuredMetadata} {
		for k, v := range src {
			out[k] = v
		}
	}
	return out
}

// DecodeEntry decodes one Loki entry, whichever way it was read (a live answer or a saved
// one): the stream labels, the entry's nanosecond timestamp, the JSON line and the entry's
// metadata (EntryMetadata; nil for none). Labels win over metadata, and both over the line.
// Loki's entry timestamp is TimeFlowEndMs: it stands in for a line that lost the field.
func DecodeEntry(labels map[string]string, ns int64, line []byte, meta map[string]string) (Record, error) {
	if len(meta) > 0 {
		merged := make(map[string]string, len(labels)+len(meta))
		for k, v := range meta {
			merged[k] = v
		}
		for k, v := range labels {
			merged[k] = v
		}
		labels = merged
	}
	rec, err := DecodeLine(labels, line)
	if err != nil {
		return rec, err
	}
	if rec.End.IsZero() {
		if ns <= 0 {
			return Record{}, fmt.Errorf("the line has no TimeFlowEndMs and the entry timestamp %d is not nanoseconds since the epoch", ns)
		}
		rec.End = unixNano(ns)
		if rec.Start.IsZero() {
			rec.Start = rec.End
		}
		// Only the times changed since DecodeLine validated the rest.
		if err := rec.validate(true); err != nil {
			return Record{}, fmt.Errorf("entry timestamp %d: %w", ns, err)
		}
	}
	return rec, nil
}

func expectDelim(dec *json.Decoder, d json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	if t != d {
		return fmt.Errorf("found %s, expected %q", tokenKind(t), string(d))
	}
	return nil
}

func objectKey(dec *json.Decoder) (string, error) {
	t, err := dec.Token()
	if err != nil {
		return "", err
	}
	k, ok := t.(string)
	if !ok {
		return "", fmt.Errorf("found %s, expected an object key", tokenKind(t))
	}
	return k, nil
}

// skipValue consumes one value without keeping it.
func skipValue(dec *json.Decoder) error {
	depth := 0
	for {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			depth++
		case json.Delim('}'), json.Delim(']'):
			depth--
		}
		if depth == 0 {
			return nil
		}
	}
}

func tokenKind(t json.Token) string {
	switch v := t.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "a list"
		}
		return fmt.Sprintf("%q", string(v))
	case string:
		return fmt.Sprintf("string %q", v)
	case nil:
		return "null"
	case bool:
		return "a boolean"
	}
	return "a number"
}
