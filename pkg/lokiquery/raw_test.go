package lokiquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// The raw shards cover every stream exactly once, including streams the listing did not
// show (a namespace or a node that began sending after it).
func TestRawShardsCoverEveryStreamOnce(t *testing.T) {
	const ns, owner = "SrcK8S_Namespace", "SrcK8S_OwnerName"
	listed := []map[string]string{
		{ns: "app-a", owner: "web"}, {ns: "app-a", owner: "db"}, {ns: "app-b", owner: "api"},
		{ns: "", owner: "node-1"}, {ns: "", owner: "node-2"}, {owner: "node-2", "SrcK8S_Type": "Node"},
	}
	shards := rawShards(listed)
	// Two namespaces, two nodes, and a rest for each.
	if len(shards) != 6 {
		t.Fatalf("got %d shards, want 6: %v", len(shards), shards)
	}
	later := []map[string]string{{ns: "app-c", owner: "x"}, {ns: "", owner: "node-3"}, {}, {ns: "app-a.b", owner: "y"}}
	for _, s := range append(listed, later...) {
		var in []string
		for _, sh := range shards {
			if matchAll(s, sh.matchers()) {
				in = append(in, fmt.Sprint(sh.matchers()))
			}
		}
		if len(in) != 1 {
			t.Errorf("stream %v is in %d shards %v, want exactly one", s, len(in), in)
		}
	}
}

// With nothing listed there are still the two rests, which take everything.
func TestRawShardsOfNoListing(t *testing.T) {
	shards := rawShards(nil)
	if len(shards) != 2 {
		t.Fatalf("got %d shards, want the two rests: %v", len(shards), shards)
	}
	for _, s := range []map[string]string{{"SrcK8S_Namespace": "a"}, {}} {
		n := 0
		for _, sh := range shards {
			if matchAll(s, sh.matchers()) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("stream %v is in %d shards, want one", s, n)
		}
	}
}

// An answer is decoded only once its request holds a slot: with the one slot taken, a
// request to a real Loki waits after Loki answered and gives up with its context; once
// the slot is free, the same request reads its lines.
func TestAnswerHoldGatesDecoding(t *testing.T) {
	s, _, from, to := sharedLoki(t)
	c := newClient(t, s)
	gate := make(chan struct{}, 1)
	first := &answerHold{gate: gate}
	if err := first.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := first.acquire(context.Background()); err != nil || len(gate) != 1 {
		t.Fatalf("a second acquire by the holder must not take another slot: %v, %d taken", err, len(gate))
	}
	query := EgressPipeline(nil).String()
	var requests int
	c.cfg.Trace = func(string, string, time.Duration, error) { requests++ }
	second := &answerHold{gate: gate}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	entries := 0
	read := func(r io.Reader) error {
		entries = 0
		return readStreams(r, func(*lineStream, int64, jsontext.Value, jsontext.Value) { entries++ })
	}
	if err := c.queryLines(withAnswerHold(ctx, second), query, 100, from, to, read); !errors.Is(err, context.DeadlineExceeded) || second.held {
		t.Fatalf("with the slot taken: err %v, held %v; want a deadline while waiting for the slot", err, second.held)
	}
	if requests != 1 {
		t.Fatalf("%d requests reached Loki, want 1: the slot is taken after Loki answers", requests)
	}
	first.release()
	first.release() // harmless
	err := c.queryLines(withAnswerHold(context.Background(), second), query, 100, from, to, read)
	if err != nil || !second.held || entries != 100 {
		t.Fatalf("with the slot free: %d entries, held %v, err %v", entries, second.held, err)
	}
	second.release()
	if len(gate) != 0 {
		t.Fatalf("%d slots still taken after release", len(gate))
	}
}
