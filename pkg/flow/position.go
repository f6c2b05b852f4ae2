package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// lineCounter passes reads through and remembers where the recent newlines are, so that a
// fatal error in a streamed JSON document can name its line without keeping the document.
// json.Decoder reads ahead by at most its buffer, so a window of recent newlines suffices.
type lineCounter struct {
	r      io.Reader
	read   int64   // bytes read so far
	before int     // newlines before the first remembered offset
	nl     []int64 // offsets of the remembered newlines, ascending
}

const lineWindow = 1 << 16 // newline offsets kept

func newLineCounter(r io.Reader) *lineCounter { return &lineCounter{r: r} }

func (c *lineCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	for i, b := 0, p[:n]; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			break
		}
		c.nl = append(c.nl, c.read+int64(i+j))
		i += j + 1
	}
	if len(c.nl) > 2*lineWindow {
		drop := len(c.nl) - lineWindow
		c.before += drop
		c.nl = append(c.nl[:0], c.nl[drop:]...)
	}
	c.read += int64(n)
	return n, err
}

// lineAt returns the 1-based line of byte offset off (exact unless off is older than the
// window, then a lower bound).
func (c *lineCounter) lineAt(off int64) int {
	n := c.before
	for _, o := range c.nl {
		if o >= off {
			break
		}
		n++
	}
	return n + 1
}

// fatal wraps an error that stops decoding with the position it happened at.
func (c *lineCounter) fatal(source string, dec *json.Decoder, err error) error {
	off := dec.InputOffset()
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off = se.Offset
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s:%d: truncated JSON (input ends at byte %d): %w; fetch the answer again, completely", source, c.lineAt(c.read), c.read, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("%s:%d: malformed JSON near byte %d: %w; fetch or export it again, unmodified", source, c.lineAt(off), off, err)
}

func unixNano(ns int64) time.Time { return time.Unix(0, ns).UTC() }
