package lokiquery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	logcli "github.com/grafana/loki/v3/pkg/logcli/client"
	"github.com/grafana/loki/v3/pkg/loghttp"
	"github.com/grafana/loki/v3/pkg/logproto"
)

// AnswerReader reads the body of a successful answer in place of logcli (QueryLines).
type AnswerReader func(io.Reader) error

type answerReaderKey struct{}

// LineStream is the stream of the entries ReadStreams hands on.
type LineStream struct {
	Labels loghttp.LabelSet
	Key    string // MapKey(Labels)
	// Index is the stream's place in the answer, Entry the place of the entry being
	// handed on in its values (for error messages).
	Index, Entry int
}

// QueryLines runs a log query over [start, end) with a line limit, oldest first, through
// the logcli client like every other query, but has read take Loki's answer as it arrives
// instead of letting logcli decode it. logcli decodes a whole answer with json-iterator
// from the response stream, which copies every escaped line byte by byte and holds the
// whole batch as strings (docs/performance.md); a streamed answer holds one line at a
// time. read is called again from the start if the request is retried, so it must drop
// what an earlier attempt gave it.
func (c *Client) QueryLines(ctx context.Context, query string, limit int, start, end time.Time, read AnswerReader) error {
	err := c.do(context.WithValue(ctx, answerReaderKey{}, read), func(lc *logcli.DefaultClient) error {
		_, err := lc.QueryRange(query, limit, start, end, logproto.FORWARD, 0, 0, true)
		return err
	})
	if err != nil {
		return fmt.Errorf("query_range %s: %w", Shorten(query), err)
	}
	return nil
}

// ReadStreams reads a query_range answer of streams ({"status", "warnings", "data":
// {"resultType", "result": [{"stream": {...}, "values": [["<ns>", "<line>"], ...]}]}}) and
// calls fn for each entry, with its stream, its timestamp in ns and its line still quoted
// (valid until fn returns). A status other than success, a warning that the answer is
// partial, another result type and anything malformed are errors, found once the whole
// answer is read: what fn was given is only good if ReadStreams returns nil.
func ReadStreams(r io.Reader, fn func(s *LineStream, ts int64, quoted, meta jsontext.Value)) error {
	// NetObserv writes valid UTF-8; a line that is not is pkg/flow's to report, not a
	// reason to drop the batch.
	d := jsontext.NewDecoder(r, jsontext.AllowInvalidUTF8(true))
	var resp loghttp.QueryResponse
	var resultType string
	err := eachMember(d, func(name string) error {
		switch name {
		case "status":
			return decodeValue(d, &resp.Status)
		case "warnings":
			return decodeValue(d, &resp.Warnings)
		case "data":
			return eachMember(d, func(name string) error {
				switch name {
				case "resultType":
					return decodeValue(d, &resultType)
				case "result":
					// Loki names the type before the result; checked again at the end if not.
					if err := wantStreams(resultType); err != nil {
						return err
					}
					streams := 0
					return eachElement(d, func() error {
						streams++
						return readStream(d, streams-1, fn)
					})
				}
				return d.SkipValue()
			})
		}
		return d.SkipValue()
	})
	if err != nil {
		return fmt.Errorf("reading Loki's answer: %w", err)
	}
	if err := checkResponse(&resp); err != nil {
		return err
	}
	return wantStreams(resultType)
}

// wantStreams fails unless resultType is a streams answer's (or not named yet).
func wantStreams(resultType string) error {
	if resultType != "" && resultType != string(loghttp.ResultTypeStream) {
		return fmt.Errorf("expected a streams answer, got %s", resultType)
	}
	return nil
}

// readStream reads one stream of a streams answer. Loki writes its labels before its
// values; entries cannot be handed on without their labels, so the other order is an error.
func readStream(d *jsontext.Decoder, index int, fn func(s *LineStream, ts int64, quoted, meta jsontext.Value)) error {
	var s *LineStream
	return eachMember(d, func(name string) error {
		switch name {
		case "stream":
			v, err := d.ReadValue()
			if err != nil {
				return err
			}
			s = &LineStream{Index: index}
			if err := s.Labels.UnmarshalJSON(v); err != nil {
				return fmt.Errorf("stream labels: %w", err)
			}
			s.Key = MapKey(s.Labels)
			return nil
		case "values":
			var lineBuf []byte
			if s == nil {
				return errors.New(`a stream's "values" come before its "stream" labels`)
			}
			return eachElement(d, func() error {
				if k := d.PeekKind(); k != '[' {
					return fmt.Errorf("an entry is %v, not an array", k)
				}
				if _, err := d.ReadToken(); err != nil {
					return err
				}
				ts, err := d.ReadValue()
				if err != nil {
					return err
				}
				var ns int64
				if ts.Kind() == '"' && len(ts) > 2 {
					ns, err = strconv.ParseInt(string(ts[1:len(ts)-1]), 10, 64)
				}
				if ns == 0 || err != nil {
					return fmt.Errorf("entry timestamp %s is not a string of nanoseconds", ts)
				}
				if k := d.PeekKind(); k != '"' {
					return fmt.Errorf("entry line is %v, not a string", k)
				}
				v, err := d.ReadValue()
				if err != nil {
					return err
				}
				// A read value is only good until the next Peek or Read: the line is kept
				// in a buffer of the stream's past the metadata, for fn.
				line := jsontext.Value(append(lineBuf[:0], v...))
				lineBuf = line
				// Structured metadata, when Loki categorizes labels, is read as a file's
				// would be (flow.DecodeEntry); nothing after it is part of an entry.
				var meta jsontext.Value
				if d.PeekKind() == '{' {
					if meta, err = d.ReadValue(); err != nil {
						return err
					}
				}
				fn(s, ns, line, meta)
				s.Entry++
				for d.PeekKind() != ']' {
					if err := d.SkipValue(); err != nil {
						return err
					}
				}
				_, err = d.ReadToken()
				return err
			})
		}
		return d.SkipValue()
	})
}

// eachMember reads an object (null is none), calling fn with each member's name; fn reads
// or skips the value.
func eachMember(d *jsontext.Decoder, fn func(name string) error) error {
	if ok, err := open(d, '{', "an object"); !ok {
		return err
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return err
		}
		if err := fn(name.String()); err != nil {
			return err
		}
	}
	_, err := d.ReadToken() // the '}', or the syntax error in its place
	return err
}

// eachElement reads an array (null is none), calling fn to read each element.
func eachElement(d *jsontext.Decoder, fn func() error) error {
	if ok, err := open(d, '[', "an array"); !ok {
		return err
	}
	for d.PeekKind() != ']' {
		if d.PeekKind() == 0 {
			// PeekKind hides the error: the next read reports it.
			_, err := d.ReadToken()
			return err
		}
		if err := fn(); err != nil {
			return err
		}
	}
	_, err := d.ReadToken()
	return err
}

// decodeValue reads the next value into v, as encoding/json does (small values only).
func decodeValue(d *jsontext.Decoder, v any) error {
	raw, err := d.ReadValue()
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

// open reads the token that opens a value of kind want ('{' or '['); false for a null,
// which has no members.
func open(d *jsontext.Decoder, want jsontext.Kind, what string) (bool, error) {
	tok, err := d.ReadToken()
	switch {
	case err != nil:
		return false, err
	case tok.Kind() == 'n':
		return false, nil
	case tok.Kind() != want:
		return false, fmt.Errorf("expected %s, got %v", what, tok.Kind())
	}
	return true, nil
}

// MapKey is a stable text key of a label set: its names sorted, with quoted values.
func MapKey(l map[string]string) string {
	names := make([]string, 0, len(l))
	for k := range l {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(l[k]))
		b.WriteByte(',')
	}
	return b.String()
}
