package lokiflows_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
	"github.com/openshift/egress-tests-ext/pkg/observe"
	"github.com/openshift/egress-tests-ext/pkg/report"
	"github.com/openshift/egress-tests-ext/pkg/source/flowfile"
	"github.com/openshift/egress-tests-ext/pkg/source/lokiflows"
)

// One Loki line is one record whatever the path: the same answer read live and saved to a
// file gives byte-identical matrices, including lines that lost TimeFlowEndMs (the entry
// time stands in for it on both paths).
func TestLiveAndFileGiveTheSameMatrix(t *testing.T) {
	srv := lokitest.Start(t, lokitest.Limits{})
	now := time.Now().UTC().Truncate(time.Second)
	from, to := now.Add(-20*time.Minute), now.Add(-time.Minute)
	gen := lokitest.Generate(lokitest.GenConfig{Records: 1500, From: from, To: to, Seed: 3, Namespaces: 4})
	entries := lokitest.Entries(gen)
	cut := 0
	for i := range entries {
		if cut < 50 && strings.Contains(string(entries[i].Line), `"TimeFlowEndMs"`) {
			var m map[string]any
			if err := json.Unmarshal(entries[i].Line, &m); err != nil {
				t.Fatal(err)
			}
			delete(m, "TimeFlowEndMs")
			entries[i].Line, _ = json.Marshal(m)
			cut++
		}
	}
	ctx := context.Background()
	if err := srv.Push(ctx, entries); err != nil {
		t.Fatal(err)
	}
	win := observe.Window{From: from, To: to.Add(time.Minute)}
	opts := matrix.Options{NodeRoles: lokitest.NodeRoles()}
	for _, c := range lokitest.ClusterNetworks {
		opts.ClusterNetworks = append(opts.ClusterNetworks, netip.MustParsePrefix(c))
	}

	live, err := lokiflows.New(lokiflows.Config{URL: srv.URL, Tenant: srv.Tenant, Mode: lokiflows.Raw})
	if err != nil {
		t.Fatal(err)
	}
	lo, err := observe.Run(ctx, observe.Config{Source: live, Window: win, Matrix: opts})
	if err != nil {
		t.Fatal(err)
	}

	// The answer a user saves: the same selection, through Loki's HTTP API.
	q := url.Values{"query": {lo.Batch.Evidence.Query}, "start": {strconv.FormatInt(win.From.UnixNano(), 10)},
		"end": {strconv.FormatInt(win.To.UnixNano(), 10)}, "limit": {"5000"}, "direction": {"forward"}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/loki/api/v1/query_range?"+q.Encode(), nil)
	req.Header.Set("X-Scope-OrgID", srv.Tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("query_range: %d %v %s", resp.StatusCode, err, body)
	}
	path := filepath.Join(t.TempDir(), "answer.json")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	fileSrc, _ := flowfile.New(path)
	fo, err := observe.Run(ctx, observe.Config{Source: fileSrc, Window: win, Matrix: opts})
	if err != nil {
		t.Fatal(err)
	}
	if fo.Batch.Evidence.Retrieved != lo.Batch.Evidence.Retrieved || fo.Batch.Evidence.Retrieved >= 5000 {
		t.Fatalf("the saved answer holds %d records, the live pull %d", fo.Batch.Evidence.Retrieved, lo.Batch.Evidence.Retrieved)
	}
	var a, b bytes.Buffer
	if err := report.WriteMatrix(&a, lo.Matrix, report.JSON); err != nil {
		t.Fatal(err)
	}
	if err := report.WriteMatrix(&b, fo.Matrix, report.JSON); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("live and file matrices differ:\nlive %s\nfile %s", a.String()[:min(a.Len(), 2000)], b.String()[:min(b.Len(), 2000)])
	}
	if len(lo.Matrix.Entries) == 0 || cut == 0 {
		t.Fatalf("nothing compared: %d entries, %d lines without TimeFlowEndMs", len(lo.Matrix.Entries), cut)
	}
}
