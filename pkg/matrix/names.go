package matrix

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"
)

// Names maps destination IPs to the hostnames they were resolved from inside the cluster,
// each valid over a time range: CDN and registry addresses rotate, so an address only names
// a host while a resolution covered it. The caller fills it (resolved during the window).
type Names struct {
	byAddr map[netip.Addr][]Resolution
}

// Resolution says that Address was an answer for Host from From to To (inclusive). A zero
// From or To leaves that end open.
type Resolution struct {
	Address netip.Addr
	Host    string
	From    time.Time
	To      time.Time
}

// NewNames returns an empty map.
func NewNames() *Names { return &Names{byAddr: map[netip.Addr][]Resolution{}} }

// Add records that addr resolved for host from..to. Hosts are compared lowercase without a
// trailing dot. IPv4-mapped IPv6 addresses are stored as IPv4.
func (n *Names) Add(addr netip.Addr, host string, from, to time.Time) {
	if n.byAddr == nil {
		n.byAddr = map[netip.Addr][]Resolution{}
	}
	addr = addr.Unmap()
	host = normalizeHost(host)
	for _, r := range n.byAddr[addr] {
		if r.Host == host && r.From.Equal(from) && r.To.Equal(to) {
			return
		}
	}
	n.byAddr[addr] = append(n.byAddr[addr], Resolution{Address: addr, Host: host, From: from, To: to})
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// Lookup returns the host addr was resolved for at time at. When several hosts share the
// address at that time (one CDN address for many names), the choice is deterministic: the
// lowest host in byte order; LookupAll returns them all. A zero at matches any resolution.
func (n *Names) Lookup(addr netip.Addr, at time.Time) (host string, ok bool) {
	return n.LookupRange(addr, at, at)
}

// LookupRange is Lookup for a flow lasting from..to: a resolution overlapping it counts.
func (n *Names) LookupRange(addr netip.Addr, from, to time.Time) (host string, ok bool) {
	if n == nil {
		return "", false
	}
	for _, r := range n.byAddr[addr.Unmap()] {
		if r.overlaps(from, to) && (!ok || r.Host < host) {
			host, ok = r.Host, true
		}
	}
	return host, ok
}

// LookupRangeAll is LookupAll for a flow lasting from..to: every host a resolution
// overlapping it names, sorted.
func (n *Names) LookupRangeAll(addr netip.Addr, from, to time.Time) []string {
	if n == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range n.byAddr[addr.Unmap()] {
		if r.overlaps(from, to) && !seen[r.Host] {
			seen[r.Host] = true
			out = append(out, r.Host)
		}
	}
	sort.Strings(out)
	return out
}

// LookupAll returns every host addr was resolved for at time at, sorted.
func (n *Names) LookupAll(addr netip.Addr, at time.Time) []string {
	if n == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, r := range n.byAddr[addr.Unmap()] {
		if r.overlaps(at, at) && !seen[r.Host] {
			seen[r.Host] = true
			out = append(out, r.Host)
		}
	}
	sort.Strings(out)
	return out
}

func (r Resolution) overlaps(from, to time.Time) bool {
	if from.IsZero() && to.IsZero() {
		return true
	}
	if to.IsZero() {
		to = from
	}
	if from.IsZero() {
		from = to
	}
	return (r.From.IsZero() || !to.Before(r.From)) && (r.To.IsZero() || !from.After(r.To))
}

// Len is the number of resolutions held.
func (n *Names) Len() int {
	if n == nil {
		return 0
	}
	c := 0
	for _, rs := range n.byAddr {
		c += len(rs)
	}
	return c
}

// Resolutions returns every resolution, sorted by address, host, from, to.
func (n *Names) Resolutions() []Resolution {
	if n == nil {
		return nil
	}
	var out []Resolution
	for _, rs := range n.byAddr {
		out = append(out, rs...)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if c := a.Address.Compare(b.Address); c != 0 {
			return c < 0
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		if !a.From.Equal(b.From) {
			return a.From.Before(b.From)
		}
		return a.To.Before(b.To)
	})
	return out
}

// namesFile is the JSON file format of Names.
type namesFile struct {
	Resolutions []namesFileEntry `json:"resolutions"`
}

type namesFileEntry struct {
	Address string `json:"address"`
	Host    string `json:"host"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// LoadNamesFile reads a names file, see ReadNames.
func LoadNamesFile(path string) (*Names, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open names file: %w", err)
	}
	defer f.Close()
	return ReadNames(f, path)
}

// ReadNames reads {"resolutions":[{"address":"1.2.3.4","host":"quay.io","from":RFC3339,
// "to":RFC3339}]} strictly: an unknown field, a bad address, host or time is an error naming
// source and the entry.
func ReadNames(r io.Reader, source string) (*Names, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", source, err)
	}
	var f namesFile
	if err := strictUnmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s: %w; fix the file: it must be {\"resolutions\":[{\"address\":\"1.2.3.4\",\"host\":\"quay.io\",\"from\":\"<RFC3339>\",\"to\":\"<RFC3339>\"}]}", source, err)
	}
	n := NewNames()
	for i, e := range f.Resolutions {
		where := fmt.Sprintf("%s: resolutions[%d]", source, i)
		addr, err := netip.ParseAddr(strings.TrimSpace(e.Address))
		if err != nil {
			return nil, fmt.Errorf("%s: address %q is not an IP address; fix or remove the entry", where, e.Address)
		}
		host := normalizeHost(e.Host)
		if err := checkHost(host); err != nil {
			return nil, fmt.Errorf("%s (address %s): host %q: %w; fix or remove the entry", where, addr, e.Host, err)
		}
		from, err := parseOptionalTime(e.From)
		if err != nil {
			return nil, fmt.Errorf("%s (%s %s): from: %w; write RFC3339, e.g. 2026-01-02T15:04:05Z", where, addr, host, err)
		}
		to, err := parseOptionalTime(e.To)
		if err != nil {
			return nil, fmt.Errorf("%s (%s %s): to: %w; write RFC3339, e.g. 2026-01-02T15:04:05Z", where, addr, host, err)
		}
		if !from.IsZero() && !to.IsZero() && to.Before(from) {
			return nil, fmt.Errorf("%s (%s %s): to %s is before from %s; swap them", where, addr, host, e.To, e.From)
		}
		n.Add(addr, host, from, to)
	}
	return n, nil
}

func parseOptionalTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

// checkHost accepts DNS names (letters, digits, '-', '_', dots), not wildcards: a
// resolution is for one name.
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty")
	}
	if len(h) > 253 {
		return errors.New("longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" {
			return errors.New("has an empty label")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("character %q is not allowed in a host name", c)
			}
		}
	}
	return nil
}

// WriteJSON writes n in the format ReadNames reads, sorted.
func (n *Names) WriteJSON(w io.Writer) error {
	f := namesFile{Resolutions: []namesFileEntry{}}
	for _, r := range n.Resolutions() {
		e := namesFileEntry{Address: r.Address.String(), Host: r.Host}
		if !r.From.IsZero() {
			e.From = r.From.UTC().Format(time.RFC3339Nano)
		}
		if !r.To.IsZero() {
			e.To = r.To.UTC().Format(time.RFC3339Nano)
		}
		f.Resolutions = append(f.Resolutions, e)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// SaveNamesFile writes n to path.
func SaveNamesFile(path string, n *Names) error {
	var buf bytes.Buffer
	if err := n.WriteJSON(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write names file: %w", err)
	}
	return nil
}

// strictUnmarshal decodes one JSON value, refusing unknown fields and trailing data, and
// names the line of a syntax or type error.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return fmt.Errorf("line %d: %w", lineOf(data, se.Offset), err)
		case errors.As(err, &te):
			return fmt.Errorf("line %d: %w", lineOf(data, te.Offset), err)
		case errors.Is(err, io.EOF):
			return errors.New("empty file")
		}
		return fmt.Errorf("line %d: %w", lineOf(data, dec.InputOffset()), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("line %d: unexpected data after the JSON document", lineOf(data, dec.InputOffset()))
	}
	return nil
}

func lineOf(data []byte, off int64) int {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	if off < 0 {
		off = 0
	}
	return bytes.Count(data[:off], []byte("\n")) + 1
}
