package matrix

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteJSON writes m as indented JSON ({"entries":[...],"stats":{...}}), entries sorted.
func WriteJSON(w io.Writer, m *Matrix) error {
	out := *m
	out.Entries = append(make([]Entry, 0, len(m.Entries)), m.Entries...)
	SortEntries(out.Entries)
	b, err := json.MarshalIndent(&out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode matrix: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadJSON reads a matrix WriteJSON wrote. It is strict: an unknown field, trailing data or
// two entries with the same Key is an error naming source, the line or entry, and the fix.
func ReadJSON(r io.Reader, source string) (*Matrix, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("%s: read: %w", source, err)
	}
	var m Matrix
	if err := strictUnmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: not an egress matrix: %w; regenerate it with the matrix command, or fix the field named", source, err)
	}
	seen := make(map[string]int, len(m.Entries))
	for i, e := range m.Entries {
		k := e.Key()
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s: entries[%d] and entries[%d] are the same entry %q; merge them", source, j, i, k)
		}
		seen[k] = i
	}
	if m.Entries == nil {
		m.Entries = []Entry{}
	}
	return &m, nil
}
