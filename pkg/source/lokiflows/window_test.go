package lokiflows

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/lokiquery"
)

// A window Loki would cut silently, or too long to pull, is refused before any query:
// the real Loki's /config names max_query_lookback; an unbounded window
// (--from 2000-01-01T00:00:00Z) ran for minutes.
func TestCheckWindowAsksLoki(t *testing.T) {
	s := lokitest.Start(t, lokitest.Limits{MaxQueryLookback: 3 * time.Hour, MaxQueryLength: 12 * time.Hour})
	c := testClient(t, s)
	l, err := c.Limits(context.Background())
	if err != nil || !l.Known || l.MaxQueryLookback != 3*time.Hour || l.MaxQueryLength != 12*time.Hour {
		t.Fatalf("limits %+v, %v: want the lookback and length Loki was started with", l, err)
	}
	now := time.Now()
	for _, c1 := range []struct {
		from, to time.Time
		want     string
	}{
		{now.Add(-4 * time.Hour), now.Add(-3*time.Hour + time.Minute), "max_query_lookback is 3h"},
		{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), now, "more than the 31d"},
	} {
		before := c.Requests()
		err := c.CheckWindow(context.Background(), c1.from, c1.to)
		if err == nil || !strings.Contains(err.Error(), c1.want) || !strings.Contains(err.Error(), "fix:") {
			t.Errorf("[%s, %s): %v, want an error with %q and the fix", c1.from, c1.to, err, c1.want)
		}
		if n := c.Requests() - before; n != 0 {
			t.Errorf("%d queries sent before refusing", n)
		}
	}
	if err := c.CheckWindow(context.Background(), now.Add(-2*time.Hour), now.Add(-time.Hour)); err != nil {
		t.Errorf("a window inside the lookback: %v", err)
	}
}

// A Loki whose /config is not there (the LokiStack gateway answers 404) leaves the limits
// unknown; the window's length is still bounded.
func TestCheckWindowWithoutConfig(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	gw := gateway(t, s, "tok")
	c, err := newClient(lokiquery.Config{URL: gw.URL + "/api/logs/v1/network", TLS: gw.Client().Transport.(*http.Transport).TLSClientConfig.Clone(),
		Token: func(context.Context) (string, error) { return "tok", nil }})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := c.Limits(context.Background()); err != nil || l.Known {
		t.Fatalf("limits through the gateway: %+v, %v; want unknown, no error", l, err)
	}
	if err := c.CheckWindow(context.Background(), from, to); err != nil {
		t.Errorf("the shared window: %v", err)
	}
	if err := c.CheckWindow(context.Background(), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), to); err == nil || !strings.Contains(err.Error(), "fix:") {
		t.Errorf("an unbounded window through the gateway: %v, want refused", err)
	}
}
