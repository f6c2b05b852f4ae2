package promtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// Sample is one point of a series: Unix milliseconds and a value.
type Sample struct {
	T int64
	V float64
}

// Series is one time series to push: its labels (with __name__) and samples in time order.
type Series struct {
	Labels  map[string]string
	Samples []Sample
}

// Push writes series to the server by remote write (protobuf + snappy, the v1 protocol),
// batch series per request.
func (s *Server) Push(ctx context.Context, series []Series, batch int) error {
	if batch <= 0 {
		batch = 5000
	}
	for i := 0; i < len(series); i += batch {
		end := min(i+batch, len(series))
		req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, 0, end-i)}
		for _, sr := range series[i:end] {
			ts := prompb.TimeSeries{Labels: make([]prompb.Label, 0, len(sr.Labels))}
			for k, v := range sr.Labels {
				ts.Labels = append(ts.Labels, prompb.Label{Name: k, Value: v})
			}
			sort.Slice(ts.Labels, func(a, b int) bool { return ts.Labels[a].Name < ts.Labels[b].Name })
			for _, p := range sr.Samples {
				ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: p.T, Value: p.V})
			}
			req.Timeseries = append(req.Timeseries, ts)
		}
		raw, err := req.Marshal()
		if err != nil {
			return err
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
		if err != nil {
			return err
		}
		hr.Header.Set("Content-Encoding", "snappy")
		hr.Header.Set("Content-Type", "application/x-protobuf")
		hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("remote write of series %d-%d: %s: %s", i, end, resp.Status, bytes.TrimSpace(body))
		}
	}
	return nil
}
