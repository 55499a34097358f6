package hostlist

import (
	"math"
	"slices"
	"strings"
)

// Builder accumulates hosts for a Hostlist with the same merging rules as
// Parse, in amortised constant time per host. The zero value is an empty
// Builder ready to use. A Builder must not be copied after first use.
type Builder struct {
	ranges []hostRange
	n      int
	// fromInput marks strings as slices of a parse input, which are copied
	// before being kept so a small list does not pin a large input.
	fromInput bool
}

// Append adds literal host names, skipping empty ones (see Of).
func (b *Builder) Append(hosts ...string) {
	for _, name := range hosts {
		b.appendName(name)
	}
}

// AppendList adds every host of l, joining l's first range onto the
// Builder's last one where the usual rules allow.
func (b *Builder) AppendList(l Hostlist) {
	for _, r := range l.ranges {
		b.push(r)
	}
}

// Len reports the number of hosts added so far.
func (b *Builder) Len() int { return b.n }

// Hostlist returns the list built so far. The Builder keeps its contents
// and may go on being used; the result does not share memory with it.
func (b *Builder) Hostlist() Hostlist {
	return Hostlist{ranges: slices.Clone(b.ranges), n: b.n}
}

// Reset empties the Builder.
func (b *Builder) Reset() {
	clear(b.ranges) // drop string references
	b.ranges = b.ranges[:0]
	b.n = 0
}

// take hands the ranges over without copying; only for Builders that are
// discarded straight away.
func (b *Builder) take() Hostlist {
	if len(b.ranges) == 0 {
		return Hostlist{}
	}
	return Hostlist{ranges: slices.Clip(b.ranges), n: b.n}
}

func (b *Builder) appendName(name string) {
	if name == "" {
		return
	}
	r := splitName(name)
	if b.fromInput {
		r.prefix = b.intern(r.prefix)
	}
	b.push(r)
}

// intern returns s, sharing the previous range's prefix when equal (the
// usual case in a list like "n1,n3,n5") and otherwise copying s if it is a
// slice of a parse input.
func (b *Builder) intern(s string) string {
	if k := len(b.ranges); k > 0 && b.ranges[k-1].prefix == s {
		return b.ranges[k-1].prefix
	}
	if b.fromInput {
		return strings.Clone(s)
	}
	return s
}

// push appends r, joining it onto the last range when libhostlist would.
func (b *Builder) push(r hostRange) {
	c := r.count()
	if k := len(b.ranges); k > 0 {
		last := &b.ranges[k-1]
		if last.kind == r.kind && r.kind != kindSingle && last.prefix == r.prefix &&
			last.hi != math.MaxUint64 && last.hi+1 == r.lo {
			switch r.kind {
			case kindRange:
				if w, ok := joinWidth(last.lo, last.width, r.lo, r.width); ok {
					last.hi, last.width = r.hi, w
					b.n += c
					return
				}
			case kindExpanded:
				// Every host here prints on its own, so joining only saves
				// memory and needs the exact same spelling rules.
				if last.suffix == r.suffix && last.width == r.width {
					last.hi = r.hi
					b.n += c
					return
				}
			}
		}
	}
	r.off = b.n
	b.ranges = append(b.ranges, r)
	b.n += c
}
