package idset

import (
	"cmp"
	"slices"
)

// Builder accumulates ids for a Set. Adding ids in ascending order costs
// amortised O(1) each; out-of-order additions are collected and sorted once
// when Set is called. The zero value is an empty Builder ready to use.
// A Builder must not be copied after first use.
type Builder struct {
	spans []span
	// unordered records that spans may be out of order or overlapping and
	// must be normalised before use.
	unordered bool
}

// Add adds id to the set being built. It panics if id exceeds MaxID.
func (b *Builder) Add(id uint32) { b.AddRange(id, id) }

// AddRange adds the ids lo through hi inclusive; it does nothing if lo > hi.
// It panics if hi exceeds MaxID.
func (b *Builder) AddRange(lo, hi uint32) {
	checkID(hi)
	if lo > hi {
		return
	}
	if k := len(b.spans); k > 0 && !b.unordered {
		last := &b.spans[k-1]
		switch {
		case lo > last.hi+1: // the common ascending case: a new run
		case lo >= last.lo: // overlaps or extends the last run
			last.hi = max(last.hi, hi)
			return
		default:
			b.unordered = true
		}
	}
	b.spans = append(b.spans, span{lo, hi})
}

// AddSet adds every id of s.
func (b *Builder) AddSet(s Set) {
	for _, r := range s.spans {
		b.AddRange(r.lo, r.hi)
	}
}

// Set returns the set of ids added so far. The Builder keeps its contents
// and may go on being used; the returned Set does not share memory with it.
func (b *Builder) Set() Set {
	b.normalise()
	return fromSpans(slices.Clone(b.spans))
}

// Reset empties the Builder.
func (b *Builder) Reset() {
	b.spans = b.spans[:0]
	b.unordered = false
}

func (b *Builder) normalise() {
	if !b.unordered {
		return
	}
	slices.SortFunc(b.spans, func(x, y span) int { return cmp.Compare(x.lo, y.lo) })
	out := b.spans[:1]
	for _, r := range b.spans[1:] {
		last := &out[len(out)-1]
		if r.lo <= last.hi+1 {
			last.hi = max(last.hi, r.hi)
			continue
		}
		out = append(out, r)
	}
	b.spans = out
	b.unordered = false
}
