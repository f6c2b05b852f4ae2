package lokitest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ErrNotStreams marks a file that is not a Loki query_range answer of log streams (a metric
// answer, a label list, ...).
var ErrNotStreams = errors.New("not a Loki query_range answer of streams")

// ReadAnswer turns a recorded Loki query_range answer back into push entries, at their
// recorded times, stream by stream in the answer's order.
func ReadAnswer(path string) ([]Entry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the recording: %w", err)
	}
	var answer struct {
		Data struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Stream map[string]string `json:"stream"`
				Values [][2]string       `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &answer); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrNotStreams, err)
	}
	if answer.Data.ResultType != "streams" {
		return nil, fmt.Errorf("%s: resultType %q: %w", path, answer.Data.ResultType, ErrNotStreams)
	}
	var entries []Entry
	for i, s := range answer.Data.Result {
		for j, v := range s.Values {
			ns, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: data.result[%d].values[%d]: timestamp %q: %w", path, i, j, v[0], err)
			}
			entries = append(entries, Entry{Labels: s.Stream, Time: time.Unix(0, ns), Line: []byte(v[1])})
		}
	}
	return entries, nil
}
