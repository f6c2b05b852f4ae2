package lokiflows

import (
	"context"
	"sort"

	"github.com/openshift/egress-tests-ext/pkg/lokiquery"
)

// shardDims are the stream labels a piece is sharded on when its answer has too many
// series, coarsest first.
var shardDims = []string{"SrcK8S_Namespace", "SrcK8S_OwnerName", "DstK8S_OwnerName"}

// shardWays is how many parts a shard is cut into at each split: a failed query costs a
// scan, so cutting in more than two saves rounds.
const shardWays = 8

// shard is a subset of the query's streams: equality matchers fixed by coarser dimensions,
// and a subset of the values of dimension dim. A shard with rest also takes every value not
// given to a sibling (values that appeared after the streams were listed, and "absent"), so
// the shards of a split always cover the whole parent.
type shard struct {
	fixed  []lokiquery.Matcher
	dim    int // index in shardDims; -1: not sharded
	values []string
	rest   bool
	all    []string // every listed value at this level, for the rest matcher
}

func (s shard) matchers() []lokiquery.Matcher {
	out := append([]lokiquery.Matcher(nil), s.fixed...)
	if s.dim < 0 {
		return out
	}
	name := shardDims[s.dim]
	if !s.rest {
		return append(out, lokiquery.Matcher{Name: name, Op: lokiquery.OpRe, Value: lokiquery.RegexAlternatives(s.values)})
	}
	mine := map[string]bool{}
	for _, v := range s.values {
		mine[v] = true
	}
	var others []string
	for _, v := range s.all {
		if !mine[v] {
			others = append(others, v)
		}
	}
	if len(others) == 0 {
		return out
	}
	return append(out, lokiquery.Matcher{Name: name, Op: lokiquery.OpNotRe, Value: lokiquery.RegexAlternatives(others)})
}

// packShards packs source namespaces into shards of at most capacity keys (first fit,
// largest first), given the (estimated) keys per namespace; values lists every namespace
// of the window's streams, and exclude those queried apart. The first shard takes
// "the rest": keys without a namespace, and namespaces that appeared after the listing.
// A namespace over capacity gets a shard of its own (it is split by owner when Loki
// refuses it).
func packShards(keys map[string]int, values []string, exclude map[string]bool, capacity int) []shard {
	set := map[string]bool{}
	for _, v := range values {
		if v != "" {
			set[v] = true
		}
	}
	all := make([]string, 0, len(set))
	var byKeys []string
	for v := range set {
		all = append(all, v)
		if !exclude[v] {
			byKeys = append(byKeys, v)
		}
	}
	sort.Strings(all)
	sort.Strings(byKeys)
	sort.SliceStable(byKeys, func(i, j int) bool { return keys[byKeys[i]] > keys[byKeys[j]] })
	type bin struct {
		values []string
		keys   int
	}
	bins := []*bin{{keys: keys[""]}}
	for _, v := range byKeys {
		var fit *bin
		for _, b := range bins {
			if b.keys+keys[v] <= capacity {
				fit = b
				break
			}
		}
		if fit == nil {
			fit = &bin{}
			bins = append(bins, fit)
		}
		fit.values, fit.keys = append(fit.values, v), fit.keys+keys[v]
	}
	if len(bins) == 1 && len(exclude) == 0 {
		return []shard{{dim: -1}}
	}
	out := make([]shard, 0, len(bins))
	for i, b := range bins {
		sort.Strings(b.values)
		out = append(out, shard{dim: 0, values: b.values, rest: i == 0, all: all})
	}
	return out
}

// shardStreams is what rawShards cuts on, without listing every stream of the window
// (hundreds of thousands of label sets on a busy cluster, all held at once while the
// answer is decoded): the source namespaces (label values, one short answer) as one label
// set each, and the streams without a namespace (nodes and host-network pods, a few per
// node), listed. Namespaces without a stream of the query only cost an empty shard.
func (r *run) shardStreams(ctx context.Context) ([]map[string]string, error) {
	const ns = "SrcK8S_Namespace"
	values, err := r.c.LabelValues(ctx, ns, r.o.From, r.o.To)
	if err != nil {
		return nil, err
	}
	bare, err := r.streamsOf(ctx, []lokiquery.Matcher{{Name: ns, Op: lokiquery.OpEq, Value: ""}})
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, 0, len(values)+len(bare))
	for _, v := range values {
		out = append(out, map[string]string{ns: v})
	}
	return append(out, bare...), nil
}

// streamsOf lists the label sets of the query's streams that match fixed in the window.
func (r *run) streamsOf(ctx context.Context, fixed []lokiquery.Matcher) ([]map[string]string, error) {
	sel := append(append([]lokiquery.Matcher(nil), r.base.Selector...), fixed...)
	ls, err := r.c.Series(ctx, lokiquery.SelectorString(sel), r.o.From, r.o.To)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]string, len(ls))
	for i, l := range ls {
		out[i] = l
	}
	return out, nil
}

// splitShard cuts a piece's shard in parts that cover it; nil when it cannot be cut further
// by label values (then time splitting is the way left).
func (r *run) splitShard(ctx context.Context, p piece) ([]piece, error) {
	return cutShard(p, func(fixed []lokiquery.Matcher) ([]map[string]string, error) { return r.streamsOf(ctx, fixed) })
}

// cutShard is splitShard with the streams a shard is cut on given by list.
func cutShard(p piece, list func(fixed []lokiquery.Matcher) ([]map[string]string, error)) ([]piece, error) {
	s := p.shard
	if s.dim < 0 || (len(s.values) == 1 && !s.rest) {
		// Not sharded yet, or down to one value: shard on the next dimension inside it.
		fixed := append([]lokiquery.Matcher(nil), s.fixed...)
		if s.dim >= 0 {
			fixed = append(fixed, lokiquery.Matcher{Name: shardDims[s.dim], Op: lokiquery.OpEq, Value: s.values[0]})
		}
		streams, err := list(fixed)
		if err != nil {
			return nil, err
		}
		found := false
		for next := s.dim + 1; next < len(shardDims); next++ {
			if values := valuesOf(streams, fixed, shardDims[next]); len(values) > 0 {
				s = shard{fixed: fixed, dim: next, values: values, rest: true, all: values}
				found = true
				break
			}
		}
		if !found {
			return nil, nil
		}
	}
	n := len(s.values)
	if n == 0 {
		return nil, nil // only values that were not listed are left: no label to cut on
	}
	ways := min(shardWays, n)
	if s.rest {
		ways = min(shardWays-1, n)
	}
	var out []piece
	for i := range ways {
		q := p
		q.shard = shard{fixed: s.fixed, dim: s.dim, values: s.values[i*n/ways : (i+1)*n/ways], all: s.all}
		out = append(out, q)
	}
	if s.rest {
		q := p
		q.shard = shard{fixed: s.fixed, dim: s.dim, rest: true, all: s.all}
		out = append(out, q)
	}
	return out, nil
}

// valuesOf lists the distinct non-empty values of label among the streams matching fixed.
func valuesOf(streams []map[string]string, fixed []lokiquery.Matcher, label string) []string {
	set := map[string]bool{}
next:
	for _, s := range streams {
		for _, m := range fixed {
			if s[m.Name] != m.Value {
				continue next
			}
		}
		if v := s[label]; v != "" {
			set[v] = true
		}
	}
	out := make([]string, 0, len(set))
	for v := range set {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
