package hostlist

import (
	"iter"
	"slices"
	"strings"
)

const (
	// MaxRangeSize is the most hosts one bracket element may name;
	// libhostlist treats anything larger as a typo.
	MaxRangeSize = 1 << 20
	// MaxBracketRanges is the most elements one bracket may hold.
	MaxBracketRanges = 10240
)

type kind uint8

const (
	// kindRange is prefix followed by each number lo..hi zero-padded to
	// width. Only these merge with neighbours and share bracket groups.
	kindRange kind = iota
	// kindSingle is one host with no numeric part; its name is prefix.
	kindSingle
	// kindExpanded is what a bracket followed by a suffix produces:
	// prefix + padded number + suffix for each number, every host standing
	// alone as libhostlist's single-host entries do. Keeping the run as one
	// entry avoids a string per host.
	kindExpanded
)

type hostRange struct {
	prefix string
	suffix string // kindExpanded only
	lo, hi uint64
	width  int
	kind   kind
	off    int // index of the range's first host in the list, for Nth
}

func (r *hostRange) count() int {
	if r.kind == kindSingle {
		return 1
	}
	return int(r.hi-r.lo) + 1
}

// appendHost appends the name of the host numbered v (ignored for
// kindSingle).
func (r *hostRange) appendHost(b []byte, v uint64) []byte {
	b = append(b, r.prefix...)
	if r.kind == kindSingle {
		return b
	}
	b = appendPadded(b, v, r.width)
	return append(b, r.suffix...)
}

// Hostlist is an immutable, ordered list of host names that may contain
// duplicates. The zero value is the empty list.
type Hostlist struct {
	ranges []hostRange
	n      int
}

// Of returns the list of the given host names in order. Each argument is a
// single literal name, not a hostlist expression: use Parse for those.
// Empty names are skipped, as libhostlist does. A name containing a
// separator (",", space, tab) or a bracket is kept verbatim, but String
// cannot then be parsed back to the same list.
func Of(hosts ...string) Hostlist {
	var b Builder
	b.Append(hosts...)
	return b.take()
}

// Len reports the number of hosts, duplicates included.
func (h Hostlist) Len() int { return h.n }

// Nth returns the host at index i, or false if i is out of range.
func (h Hostlist) Nth(i int) (string, bool) {
	if i < 0 || i >= h.n {
		return "", false
	}
	// The last range starting at or before i holds it.
	k, _ := slices.BinarySearchFunc(h.ranges, i, func(r hostRange, i int) int {
		if r.off <= i {
			return -1
		}
		return 1
	})
	r := &h.ranges[k-1]
	if r.kind == kindSingle {
		return r.prefix, true
	}
	return string(r.appendHost(nil, r.lo+uint64(i-r.off))), true
}

// Find returns the index of the first occurrence of host, or -1. A name
// matches a range only if it is spelled exactly as the range prints it, so
// "foo9" is not in "foo[08-10]" (which holds foo09).
func (h Hostlist) Find(host string) int {
	for i := range h.ranges {
		r := &h.ranges[i]
		if r.kind == kindSingle {
			if host == r.prefix {
				return r.off
			}
			continue
		}
		num, ok := strings.CutPrefix(host, r.prefix)
		if !ok {
			continue
		}
		if num, ok = strings.CutSuffix(num, r.suffix); !ok || num == "" || !allDigits(num) {
			continue
		}
		v, ok := parseDecimal(num)
		if !ok || v < r.lo || v > r.hi || len(num) != max(r.width, digits(v)) {
			continue
		}
		return r.off + int(v-r.lo)
	}
	return -1
}

// All iterates over the host names in order.
func (h Hostlist) All() iter.Seq[string] {
	return func(yield func(string) bool) {
		var buf []byte
		for i := range h.ranges {
			r := &h.ranges[i]
			if r.kind == kindSingle {
				if !yield(r.prefix) {
					return
				}
				continue
			}
			for v := r.lo; ; v++ {
				buf = r.appendHost(buf[:0], v)
				if !yield(string(buf)) {
					return
				}
				if v == r.hi {
					break
				}
			}
		}
	}
}

// Append returns a new list with the literal host names appended (see Of).
// The receiver is not modified.
func (h Hostlist) Append(hosts ...string) Hostlist {
	b := h.builder()
	b.Append(hosts...)
	return b.take()
}

// AppendList returns a new list holding h's hosts followed by l's. The
// receiver is not modified.
func (h Hostlist) AppendList(l Hostlist) Hostlist {
	if l.n == 0 {
		return h
	}
	if h.n == 0 {
		return l
	}
	b := h.builder()
	b.AppendList(l)
	return b.take()
}

// builder returns a Builder holding a private copy of h's ranges: pushing
// may extend the last range in place, which must not show through h.
func (h Hostlist) builder() Builder {
	return Builder{ranges: slices.Clone(h.ranges), n: h.n}
}
