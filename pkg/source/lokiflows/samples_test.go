package lokiflows

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/openshift/egress-tests-ext/internal/testfix"

	"github.com/openshift/egress-tests-ext/internal/lokitest"
	"github.com/openshift/egress-tests-ext/pkg/flow"
	"github.com/openshift/egress-tests-ext/pkg/matrix"
)

// TestRealSamplesAggregateLikeRaw pushes the recorded NetObserv answers of
// ../shared/netobserv-samples (integer Flags, both interface formats, records without
// ports, a dynamic destination port from a non-server source port) into a real Loki and
// checks that the aggregate path gives exactly the projection of the raw lines.
func TestRealSamplesAggregateLikeRaw(t *testing.T) {
	from, to := window()
	at := from.Add(time.Second)
	entries := recordedEntries(t)
	for i := range entries {
		// The recorded times are years old: Loki keeps lines in their order, at times
		// of this window.
		entries[i].Time = at
		at = at.Add(time.Millisecond)
	}
	s := lokitest.Start(t, lokitest.LokiStackLimits)
	if err := s.Push(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
	c := testClient(t, s)
	agg, err := c.Egress(context.Background(), Options{From: from, To: to})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Egress(context.Background(), Options{From: from, To: to, Mode: Raw})
	if err != nil {
		t.Fatal(err)
	}
	if raw.Decode.Undecodable > 0 {
		t.Fatalf("%d recorded lines did not decode: %+v", raw.Decode.Undecodable, raw.Decode)
	}
	if agg.Retrieved < 30 || agg.Retrieved != raw.Retrieved {
		t.Fatalf("%d egress lines aggregated, %d pulled raw, out of %d recorded: want the same, and the samples' 41", agg.Retrieved, raw.Retrieved, len(entries))
	}
	var proj []flow.Record
	for _, r := range raw.Records {
		proj = append(proj, matrix.Project(r, matrix.PortPolicy{}))
	}
	diffRecords(t, agg.Records, matrix.Fold(proj))
}

// EgressPipeline's selector leaves out streams with a destination namespace or owner, which
// is only right because NetObserv writes them with a destination type, which the type test
// drops anyway. The recorded records of both formats say so.
func TestRealSamplesOwnerImpliesType(t *testing.T) {
	var named, untyped int
	for i, e := range recordedEntries(t) {
		var line map[string]any
		if err := json.Unmarshal(e.Line, &line); err != nil {
			t.Fatalf("recorded entry %d: %v", i, err)
		}
		field := func(k string) string {
			if v := e.Labels[k]; v != "" {
				return v
			}
			v, _ := line[k].(string)
			return v
		}
		if field("DstK8S_Namespace") == "" && field("DstK8S_OwnerName") == "" {
			untyped++
			continue
		}
		named++
		if field("DstK8S_Type") == "" {
			t.Errorf("recorded entry %d has a destination namespace or owner but no type: EgressPipeline's selector would drop it: %s", i, e.Line)
		}
	}
	if named < 50 || untyped < 10 {
		t.Fatalf("%d records with a destination namespace or owner, %d without: the samples should hold both", named, untyped)
	}
}

// recordedEntries are the entries of the recorded NetObserv streams answers of
// ../shared/netobserv-samples, in file order.
func recordedEntries(t *testing.T) []lokitest.Entry {
	t.Helper()
	dir := testfix.Samples(t)
	files, err := filepath.Glob(filepath.Join(dir, "console-plugin-flow*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded answers in %s (%v): the samples sit beside the repository", dir, err)
	}
	var entries []lokitest.Entry
	for _, f := range files {
		recorded, err := lokitest.ReadAnswer(f)
		if errors.Is(err, lokitest.ErrNotStreams) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, recorded...)
	}
	return entries
}
