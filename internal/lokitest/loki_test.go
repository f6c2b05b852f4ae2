package lokitest

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStartPushQuery(t *testing.T) {
	start := time.Now()
	s := Start(t, Limits{})
	t.Logf("ready in %s", time.Since(start))
	to := time.Now().Add(-time.Minute).Truncate(time.Second)
	gs := Generate(GenConfig{Records: 1000, From: to.Add(-10 * time.Minute), To: to, Seed: 3})
	if err := s.Push(context.Background(), Entries(gs)); err != nil {
		t.Fatal(err)
	}
	// Without the tenant header a multi-tenant Loki refuses the query.
	resp, err := http.Get(s.URL + "/loki/api/v1/labels")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no tenant: got %d %s, want 401", resp.StatusCode, b)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/loki/api/v1/label/SrcK8S_Namespace/values", nil)
	req.Header.Set("X-Scope-OrgID", s.Tenant)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "openshift-dns") {
		t.Fatalf("label values: %d %s", resp.StatusCode, b)
	}
}
