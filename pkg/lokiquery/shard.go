package lokiquery

import (
	"context"
	"sort"
)

// shardDims are the stream labels a piece is sharded on when its answer has too many
// series, coarsest first.
var shardDims = []string{"SrcK8S_Namespace", "SrcK8S_OwnerName", "DstK8S_OwnerName"}

// shardWays is how many parts a shard is cut into at each split: a failed query costs a
// scan, so cutting in more than two saves rounds.
const shardWays = 8

// shard is a subset of a family's streams: equality matchers fixed by coarser dimensions,
// and a subset of the values of dimension dim. A shard with rest also takes every value not
// given to a sibling (values that appeared after the streams were listed, and "absent"), so
// the shards of a split always cover the whole parent.
type shard struct {
	fixed  []Matcher
	dim    int // index in shardDims; -1: not sharded
	values []string
	rest   bool
	all    []string // every listed value at this level, for the rest matcher
}

func (s shard) matchers() []Matcher {
	out := append([]Matcher(nil), s.fixed...)
	if s.dim < 0 {
		return out
	}
	name := shardDims[s.dim]
	if !s.rest {
		return append(out, Matcher{Name: name, Op: OpRe, Value: regexAlternatives(s.values)})
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
	return append(out, Matcher{Name: name, Op: OpNotRe, Value: regexAlternatives(others)})
}

// planShards cuts the egress streams by source namespace into shards of about maxSeries
// streams each (longest first, each to the lightest shard): a stream rarely holds more
// than one matrix key, so such a shard usually fits, and one that does not is split again.
// When there is more than one shard there are at least minShards, so that Loki's cores
// work in parallel. Streams without a namespace (nodes), and namespaces that appear after
// the listing, go to a shard that takes "the rest".
func planShards(streams []map[string]string, maxSeries, minShards int) []shard {
	perNS := map[string]int{}
	for _, s := range streams {
		perNS[s[shardDims[0]]]++
	}
	var values []string
	for ns := range perNS {
		if ns != "" {
			values = append(values, ns)
		}
	}
	n := (len(streams) + maxSeries - 1) / max(maxSeries, 1)
	if n > 1 {
		n = max(n, minShards)
	}
	n = min(n, len(values)+1)
	if n <= 1 {
		return []shard{{dim: -1}}
	}
	sort.Slice(values, func(i, j int) bool {
		if perNS[values[i]] != perNS[values[j]] {
			return perNS[values[i]] > perNS[values[j]]
		}
		return values[i] < values[j]
	})
	type bin struct {
		values  []string
		streams int
	}
	bins := make([]bin, n)
	bins[0].streams = perNS[""] // the rest shard starts with the streams without a namespace
	for _, v := range values {
		least := 0
		for i := range bins {
			if bins[i].streams < bins[least].streams {
				least = i
			}
		}
		bins[least].values = append(bins[least].values, v)
		bins[least].streams += perNS[v]
	}
	all := append([]string(nil), values...)
	sort.Strings(all)
	var out []shard
	for i, b := range bins {
		if i > 0 && len(b.values) == 0 {
			continue
		}
		sort.Strings(b.values)
		out = append(out, shard{dim: 0, values: b.values, rest: i == 0, all: all})
	}
	return out
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

// familyStreams is the label sets of the family's egress streams in the window, the values
// shards are made of.
func (r *run) familyStreams(ctx context.Context, _ *family) ([]map[string]string, error) {
	r.listMu.Lock()
	defer r.listMu.Unlock()
	if !r.listed {
		all, err := r.c.series(ctx, selector(r.base.Selector), r.o.From, r.o.To)
		if err != nil {
			return nil, err
		}
		r.all, r.listed = all, true
	}
	var out []map[string]string
	for _, l := range r.all {
		out = append(out, l)
	}
	return out, nil
}

// splitShard cuts a piece's shard in parts that cover it; nil when it cannot be cut further
// by label values (then time splitting is the way left).
func (r *run) splitShard(ctx context.Context, p piece) ([]piece, error) {
	s := p.shard
	if s.dim < 0 || (len(s.values) == 1 && !s.rest) {
		// Not sharded yet, or down to one value: shard on the next dimension inside it.
		fixed := append([]Matcher(nil), s.fixed...)
		if s.dim >= 0 {
			fixed = append(fixed, Matcher{Name: shardDims[s.dim], Op: OpEq, Value: s.values[0]})
		}
		streams, err := r.familyStreams(ctx, p.fam)
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
func valuesOf(streams []map[string]string, fixed []Matcher, label string) []string {
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
