package lokiflows

import (
	"fmt"
	"testing"
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
