package promtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func query(t *testing.T, s *Server, q string) []any {
	t.Helper()
	b, err := get(context.Background(), s.URL+"/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	var ans struct {
		Data struct{ Result []any } `json:"data"`
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatal(err)
	}
	return ans.Data.Result
}

func TestScrapeAndPush(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "# TYPE demo_total counter\ndemo_total{a=\"b\"} 7")
	}))
	defer target.Close()
	s := Start(t, Config{
		Scrapes:     []Scrape{{Job: "demo", Targets: []string{strings.TrimPrefix(target.URL, "http://")}}},
		RemoteWrite: true, OutOfOrder: time.Hour,
	})
	deadline := time.Now().Add(15 * time.Second)
	for len(query(t, s, `demo_total{job="demo"}`)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("demo_total never scraped; log:\n%s", s.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	now := time.Now().Add(-10 * time.Minute).UnixMilli()
	var series []Series
	for i := range 3 {
		series = append(series, Series{Labels: map[string]string{"__name__": "pushed_total", "i": fmt.Sprint(i)},
			Samples: []Sample{{T: now, V: 1}, {T: now + 1000, V: 2}}})
	}
	if err := s.Push(context.Background(), series, 2); err != nil {
		t.Fatal(err)
	}
	at := fmt.Sprintf("@ %d", (now+1000)/1000)
	if got := query(t, s, `count(pushed_total `+at+`)`); len(got) != 1 || !strings.Contains(fmt.Sprint(got), " 3]") {
		t.Fatalf("pushed series: %v", got)
	}
}
