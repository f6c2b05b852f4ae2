// Package capture is the lifecycle that lets one observation window cover a whole test run:
// Start installs what is missing (cluster.Install), waits until flows reach Loki, and records
// the window start and what it installed in a ConfigMap of the suite's namespace; the spec
// then reads that record (Load) and takes its window from it up to now; Stop removes what
// Start installed, from the record, in whatever process runs it.
package capture

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/openshift/egress-tests-ext/pkg/cluster"
	"github.com/openshift/egress-tests-ext/pkg/clustercheck"
)

// Where the record lives: the suite's namespace, so that it goes with everything else of ours.
const (
	RecordName = "egress-capture"
	RecordKey  = "record.json"
	// RecordVersion is the record's format; a record of another format is refused.
	RecordVersion = 1
)

// FlowingTimeout bounds the wait for the first flow in Loki after the FlowCollector is ready.
const FlowingTimeout = 5 * time.Minute

// Record is what Start leaves for the spec and for Stop.
type Record struct {
	Version int `json:"version"`
	// WindowStart is when flows were seen reaching Loki: the spec's window starts here.
	WindowStart       time.Time `json:"windowStart"`
	WindowStartSource string    `json:"windowStartSource"`
	StartedAt         time.Time `json:"startedAt"`
	// Store is the Loki the flows are written to.
	Store            *cluster.LokiStore `json:"store"`
	CollectorCreated bool               `json:"collectorCreated"`
	// ResolverHosts are the hostnames the resolver started by Start looks up (none: no resolver).
	ResolverHosts []string `json:"resolverHosts,omitempty"`
	// Created is what Start installed, oldest first: exactly what Stop removes.
	Created  []cluster.CreatedRef `json:"created"`
	Warnings []string             `json:"warnings,omitempty"`
}

// Options are Start's inputs. Install and WaitFlowing default to the real ones; tests replace
// them where the fake clients cannot follow (OLM, a port-forward to Loki).
type Options struct {
	Config *cluster.Config
	// Hosts, when set, starts the in-cluster resolver on them at once, so that the names of
	// the whole window's destinations are known.
	Hosts       []string
	Install     func(context.Context, *cluster.Clients, *cluster.Config, *cluster.Tracker) (*cluster.Setup, error)
	WaitFlowing func(context.Context, *cluster.Clients, *cluster.LokiStore) (time.Time, error)
	Now         func() time.Time
}

// ErrNoRecord is Stop's error when there is no capture to stop.
var ErrNoRecord = errors.New("no capture record")

// Start installs what is missing, waits for flows and writes the record. On any failure it
// removes what it installed before returning, so a failed start leaves nothing behind.
func Start(ctx context.Context, c *cluster.Clients, opts Options) (rec *Record, err error) {
	if opts.Config == nil {
		return nil, fmt.Errorf("capture start: no configuration (internal error)")
	}
	install, waitFlowing, now := opts.Install, opts.WaitFlowing, opts.Now
	if install == nil {
		install = cluster.Install
	}
	if waitFlowing == nil {
		waitFlowing = WaitFlowing
	}
	if now == nil {
		now = time.Now
	}
	existing, err := Load(ctx, c)
	if err != nil {
		return nil, err
	}
	if existing != nil {
		return nil, fmt.Errorf("a capture is already running (window from %s, record %s/%s); fix: run `egress-tests-ext capture stop` first, or use it as it is",
			existing.WindowStart.Format(time.RFC3339), cluster.SuiteNamespace, RecordName)
	}

	tracker := &cluster.Tracker{}
	defer func() {
		if err == nil {
			return
		}
		if cerr := tracker.Cleanup(context.WithoutCancel(ctx), c, 5*time.Minute); cerr != nil {
			err = fmt.Errorf("%w\nand cleaning up after it failed too: %v", err, cerr)
		} else if len(tracker.Created()) > 0 {
			err = fmt.Errorf("%w\n(what this start installed was removed)", err)
		}
		rec = nil
	}()
	rec = &Record{Version: RecordVersion, StartedAt: now().UTC()}
	setup, err := install(ctx, c, opts.Config, tracker)
	if err != nil {
		return nil, fmt.Errorf("capture start: install: %w", err)
	}
	rec.Store, rec.CollectorCreated, rec.Warnings = setup.Store, setup.CollectorCreated, setup.Warnings

	if len(opts.Hosts) > 0 {
		image, err := cluster.ToolsImage(ctx, c, opts.Config)
		if err != nil {
			return nil, fmt.Errorf("capture start: %w", err)
		}
		d := cluster.ResolverDeployment(cluster.SuiteNamespace, image, opts.Hosts, opts.Config.ResolveInterval)
		if err := cluster.StartResolver(ctx, c, tracker, d, opts.Config.InstallTimeout); err != nil {
			return nil, fmt.Errorf("capture start: %w", err)
		}
		rec.ResolverHosts = append([]string(nil), opts.Hosts...)
	}

	rec.WindowStart, err = waitFlowing(ctx, c, setup.Store)
	if err != nil {
		return nil, fmt.Errorf("capture start: %w", err)
	}
	rec.WindowStart = rec.WindowStart.UTC()
	rec.WindowStartSource = "first flow ingested after `capture start` found the FlowCollector ready"
	rec.Created = tracker.Refs()
	if err := save(ctx, c, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// Load returns the record, or nil when there is none (no namespace, no ConfigMap). A record
// that cannot be read or parsed is an error: the spec must not silently fall back to a
// window of its own when a capture was meant to cover the run.
func Load(ctx context.Context, c *cluster.Clients) (*Record, error) {
	cm, err := c.Kube.CoreV1().ConfigMaps(cluster.SuiteNamespace).Get(ctx, RecordName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the capture record ConfigMap %s/%s: %w", cluster.SuiteNamespace, RecordName, err)
	}
	return Parse(cm)
}

// Parse reads the record out of its ConfigMap; errors name the ConfigMap, key and fix.
func Parse(cm *corev1.ConfigMap) (*Record, error) {
	where := fmt.Sprintf("capture record ConfigMap %s/%s key %s", cm.Namespace, cm.Name, RecordKey)
	fix := "fix: run `egress-tests-ext capture stop` (or delete the ConfigMap and what it lists) and start again"
	raw, ok := cm.Data[RecordKey]
	if !ok {
		return nil, fmt.Errorf("%s is missing; %s", where, fix)
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("%s is not a capture record: %w; %s", where, err, fix)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s has data after the record; %s", where, fix)
	}
	switch {
	case rec.Version != RecordVersion:
		return nil, fmt.Errorf("%s has format version %d, this binary reads %d; fix: stop it with the binary that started it", where, rec.Version, RecordVersion)
	case rec.WindowStart.IsZero():
		return nil, fmt.Errorf("%s has no windowStart; %s", where, fix)
	case rec.Store == nil:
		return nil, fmt.Errorf("%s has no store; %s", where, fix)
	}
	return &rec, nil
}

func save(ctx context.Context, c *cluster.Clients, rec *Record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("capture start: encode the record: %w", err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: RecordName, Namespace: cluster.SuiteNamespace,
			Labels: map[string]string{"app.kubernetes.io/part-of": "egress-tests-ext"}},
		Data: map[string]string{RecordKey: string(data) + "\n"},
	}
	if _, err := c.Kube.CoreV1().ConfigMaps(cluster.SuiteNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("capture start: write the record ConfigMap %s/%s: %w", cluster.SuiteNamespace, RecordName, err)
	}
	return nil
}

// Stop removes what the record says Start installed, then the record. The suite's namespace
// (which holds the record) goes last and only once everything else is gone: if a deletion
// fails, the record stays and Stop can be run again.
func Stop(ctx context.Context, c *cluster.Clients, timeout time.Duration) (*Record, error) {
	rec, err := Load(ctx, c)
	if err != nil {
		return nil, err
	}
	if rec == nil {
		return nil, fmt.Errorf("capture stop: %w in %s/%s: nothing was started (or it was stopped already); fix: run `egress-tests-ext capture start` first", ErrNoRecord, cluster.SuiteNamespace, RecordName)
	}
	var rest, last []cluster.CreatedRef
	for _, r := range rec.Created {
		if r.Kind == "Namespace" && r.Name == cluster.SuiteNamespace {
			last = append(last, r)
			continue
		}
		rest = append(rest, r)
	}
	tracker, err := cluster.RestoreTracker(c, rest)
	if err != nil {
		return rec, fmt.Errorf("capture stop: %w", err)
	}
	if err := tracker.Cleanup(ctx, c, timeout); err != nil {
		return rec, fmt.Errorf("capture stop: %w\nThe record %s/%s is kept: fix what is named above and run `egress-tests-ext capture stop` again", err, cluster.SuiteNamespace, RecordName)
	}
	err = c.Kube.CoreV1().ConfigMaps(cluster.SuiteNamespace).Delete(ctx, RecordName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return rec, fmt.Errorf("capture stop: everything installed was removed, but not the record %s/%s: %w", cluster.SuiteNamespace, RecordName, err)
	}
	nsTracker, err := cluster.RestoreTracker(c, last)
	if err != nil {
		return rec, fmt.Errorf("capture stop: %w", err)
	}
	if err := nsTracker.Cleanup(ctx, c, timeout); err != nil {
		return rec, fmt.Errorf("capture stop: %w", err)
	}
	return rec, nil
}

// WriteText prints the record for `capture status`.
func (r *Record) WriteText(w io.Writer, now time.Time) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "capture record %s/%s\n", cluster.SuiteNamespace, RecordName)
	fmt.Fprintf(&b, "  window start: %s (%s ago; %s)\n", r.WindowStart.Format(time.RFC3339), now.Sub(r.WindowStart).Round(time.Second), r.WindowStartSource)
	fmt.Fprintf(&b, "  started at:   %s\n", r.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(&b, "  flows stored in: %s\n", r.Store)
	fmt.Fprintf(&b, "  FlowCollector created by start: %v\n", r.CollectorCreated)
	if len(r.ResolverHosts) > 0 {
		fmt.Fprintf(&b, "  resolver: %d hostnames\n", len(r.ResolverHosts))
	}
	fmt.Fprintf(&b, "  installed by start (%d, removed by `capture stop`):\n", len(r.Created))
	for _, c := range r.Created {
		fmt.Fprintf(&b, "    %s\n", c)
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(&b, "  WARNING: %s\n", wn)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WaitFlowing returns once Loki holds a flow stamped after the call (clustercheck.WaitFlowing,
// as the spec waits): from then on the window's flows are being recorded.
func WaitFlowing(ctx context.Context, c *cluster.Clients, store *cluster.LokiStore) (time.Time, error) {
	conn, err := cluster.ConnectLoki(ctx, c, store)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	return clustercheck.WaitFlowing(ctx, conn, FlowingTimeout)
}

// WindowStart is where the spec's window starts: the record's windowStart when a capture is
// running, else envStart (EGRESS_WINDOW_START); zero when neither, and the spec then waits
// for flows itself. Both at once is refused: one of them would be silently ignored.
func WindowStart(rec *Record, envStart time.Time) (time.Time, string, error) {
	switch {
	case rec != nil && !envStart.IsZero():
		return time.Time{}, "", fmt.Errorf("both EGRESS_WINDOW_START (%s) and the capture record %s/%s (window from %s) give the window start; fix: unset EGRESS_WINDOW_START, or run `egress-tests-ext capture stop`",
			envStart.Format(time.RFC3339), cluster.SuiteNamespace, RecordName, rec.WindowStart.Format(time.RFC3339))
	case rec != nil:
		return rec.WindowStart, fmt.Sprintf("capture record %s/%s: %s, started %s", cluster.SuiteNamespace, RecordName, rec.WindowStartSource, rec.StartedAt.Format(time.RFC3339)), nil
	case !envStart.IsZero():
		return envStart, "EGRESS_WINDOW_START", nil
	}
	return time.Time{}, "", nil
}
