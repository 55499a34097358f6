package idset

import (
	"fmt"
	"iter"
	"math"
)

// MaxID is the largest id an idset can hold. flux-core caps the idset
// universe at 2^31 ids, so anything larger cannot be exchanged with it.
const MaxID = 1<<31 - 1

// span is an inclusive run of ids. Within a Set spans are sorted, disjoint
// and separated by at least one missing id, so the representation of a set
// is unique and Equal can compare slices.
type span struct{ lo, hi uint32 }

// Set is an immutable set of ids in [0, MaxID]. The zero value is the empty
// set. Sets are values: copying one is cheap and never aliases mutable state.
type Set struct {
	spans []span
	n     uint32 // cached count; 2^31 ids still fit
}

// Of returns the set of the given ids, in any order, duplicates allowed.
// It panics if an id exceeds MaxID, because such a set could not be encoded.
func Of(ids ...uint32) Set {
	var b Builder
	for _, id := range ids {
		b.Add(id)
	}
	return b.Set()
}

// Range returns the set of ids lo through hi inclusive, or the empty set if
// lo > hi. It panics if hi exceeds MaxID.
func Range(lo, hi uint32) Set {
	checkID(hi)
	if lo > hi {
		return Set{}
	}
	return Set{spans: []span{{lo, hi}}, n: hi - lo + 1}
}

func checkID(id uint32) {
	if id > MaxID {
		panic(fmt.Sprintf("idset: id %d exceeds MaxID", id))
	}
}

// Len reports the number of ids. On 32-bit platforms a set of more than
// math.MaxInt ids reports math.MaxInt.
func (s Set) Len() int {
	if uint64(s.n) > math.MaxInt {
		return math.MaxInt
	}
	return int(s.n)
}

// IsEmpty reports whether the set has no ids.
func (s Set) IsEmpty() bool { return len(s.spans) == 0 }

// First returns the smallest id, or false if the set is empty.
func (s Set) First() (uint32, bool) {
	if len(s.spans) == 0 {
		return 0, false
	}
	return s.spans[0].lo, true
}

// Last returns the largest id, or false if the set is empty.
func (s Set) Last() (uint32, bool) {
	if len(s.spans) == 0 {
		return 0, false
	}
	return s.spans[len(s.spans)-1].hi, true
}

// Contains reports whether id is in the set.
func (s Set) Contains(id uint32) bool {
	// Find the first span that ends at or after id; id is a member exactly
	// when that span also starts at or before it.
	lo, hi := 0, len(s.spans)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if s.spans[m].hi < id {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo < len(s.spans) && s.spans[lo].lo <= id
}

// All iterates over the ids in ascending order.
func (s Set) All() iter.Seq[uint32] {
	return func(yield func(uint32) bool) {
		for _, r := range s.spans {
			for id := r.lo; ; id++ {
				if !yield(id) {
					return
				}
				if id == r.hi {
					break
				}
			}
		}
	}
}

// Ranges iterates over the maximal runs of consecutive ids as inclusive
// (lo, hi) pairs in ascending order.
func (s Set) Ranges() iter.Seq2[uint32, uint32] {
	return func(yield func(uint32, uint32) bool) {
		for _, r := range s.spans {
			if !yield(r.lo, r.hi) {
				return
			}
		}
	}
}

// Equal reports whether s and t contain the same ids.
func (s Set) Equal(t Set) bool {
	if s.n != t.n || len(s.spans) != len(t.spans) {
		return false
	}
	for i := range s.spans {
		if s.spans[i] != t.spans[i] {
			return false
		}
	}
	return true
}

// Union returns the ids in s or t.
func (s Set) Union(t Set) Set {
	if len(t.spans) == 0 {
		return s
	}
	if len(s.spans) == 0 {
		return t
	}
	out := make([]span, 0, len(s.spans)+len(t.spans))
	i, j := 0, 0
	for i < len(s.spans) || j < len(t.spans) {
		var next span
		if j == len(t.spans) || (i < len(s.spans) && s.spans[i].lo <= t.spans[j].lo) {
			next = s.spans[i]
			i++
		} else {
			next = t.spans[j]
			j++
		}
		// hi <= MaxID, so hi+1 cannot wrap.
		if k := len(out); k > 0 && next.lo <= out[k-1].hi+1 {
			out[k-1].hi = max(out[k-1].hi, next.hi)
			continue
		}
		out = append(out, next)
	}
	return fromSpans(out)
}

// Intersect returns the ids in both s and t.
func (s Set) Intersect(t Set) Set {
	var out []span
	i, j := 0, 0
	for i < len(s.spans) && j < len(t.spans) {
		a, b := s.spans[i], t.spans[j]
		// Pieces cannot come out adjacent: two consecutive common ids lie in
		// one span of each operand and so in one piece.
		if lo, hi := max(a.lo, b.lo), min(a.hi, b.hi); lo <= hi {
			out = append(out, span{lo, hi})
		}
		if a.hi < b.hi {
			i++
		} else {
			j++
		}
	}
	return fromSpans(out)
}

// Difference returns the ids in s that are not in t.
func (s Set) Difference(t Set) Set {
	if len(s.spans) == 0 || len(t.spans) == 0 {
		return s
	}
	var out []span
	j := 0
	for _, a := range s.spans {
		lo := a.lo
		// Skip subtrahend spans wholly below the current piece.
		for j < len(t.spans) && t.spans[j].hi < lo {
			j++
		}
		k := j
		for ; k < len(t.spans) && t.spans[k].lo <= a.hi; k++ {
			b := t.spans[k]
			if b.lo > lo {
				out = append(out, span{lo, b.lo - 1})
			}
			if b.hi >= a.hi {
				lo = a.hi + 1 // marks a as used up; a.hi <= MaxID so no wrap
				break
			}
			lo = b.hi + 1
		}
		if lo <= a.hi {
			out = append(out, span{lo, a.hi})
		}
	}
	return fromSpans(out)
}

// fromSpans wraps normalised spans, computing the cached count.
func fromSpans(spans []span) Set {
	if len(spans) == 0 {
		return Set{}
	}
	var n uint32
	for _, r := range spans {
		n += r.hi - r.lo + 1
	}
	return Set{spans: spans, n: n}
}

const digitPairs = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"
