package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
)

// errNotReady is wrapped by every wait that timed out: the caller collects diagnostics.
var errNotReady = errors.New("not ready")

// pollInterval maps the production poll intervals; tests shorten them.
var pollInterval = func(d time.Duration) time.Duration { return d }

// waitFor polls cond until it reports done, printing its status whenever the status changes
// so that a long install shows progress. On timeout the error names what did not come up
// and the last status seen. cond returns an error only for what waiting cannot fix.
func waitFor(ctx context.Context, c *Clients, what string, interval, timeout time.Duration, cond func(context.Context) (bool, string, error)) error {
	start := time.Now()
	last := ""
	err := wait.PollUntilContextTimeout(ctx, pollInterval(interval), timeout, true, func(ctx context.Context) (bool, error) {
		done, status, err := cond(ctx)
		if err != nil {
			return false, err
		}
		if status != last {
			c.progress("  %s: %s (%s)", what, status, time.Since(start).Round(time.Second))
			last = status
		}
		return done, nil
	})
	if err == nil {
		return nil
	}
	if wait.Interrupted(err) {
		return fmt.Errorf("%s did not come up within %s; last status: %s: %w", what, timeout, last, errNotReady)
	}
	return fmt.Errorf("waiting for %s: %w", what, err)
}

// transient reports API errors worth retrying: the server is busy or briefly unreachable.
func transient(err error) bool {
	return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsTooManyRequests(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err) || apierrors.IsConflict(err)
}

// onTransient retries fn with client-go's default backoff while it fails transiently.
func onTransient(fn func() error) error {
	return retry.OnError(retry.DefaultBackoff, transient, fn)
}

// condition returns the status, reason and message of the condition named typ.
func condition(u *unstructured.Unstructured, typ string) (status, reason, message string, found bool) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != typ {
			continue
		}
		status, _ = m["status"].(string)
		reason, _ = m["reason"].(string)
		message, _ = m["message"].(string)
		return status, reason, message, true
	}
	return "", "", "", false
}
