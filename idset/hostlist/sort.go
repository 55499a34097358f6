package hostlist

import (
	"cmp"
	"math"
	"slices"
	"strings"
)

// Sort returns the hosts in sorted order, duplicates kept, re-compressed
// with the usual joining rules, as hostlist_sort does:
// "[0-20],12,15" sorts to "[0-12,12-15,15-20]".
//
// The order depends only on the host names. A name splits into a stem and
// its trailing digits, as Parse splits a plain name. Names sort by stem
// (bytewise), a name without digits before those with, then by the digits
// as printed: shorter digit strings first, equal lengths by value. That is
// libhostlist's "by number when the widths are compatible, otherwise by
// width" made into a total order, so foo9 < foo10 and foo09 < foo10, while
// foo1 < foo01. libhostlist instead sorts its internal ranges, so its
// result can depend on how the list was written. The differences:
//
//   - A range straddling a digit-count boundary is sorted host by host:
//     "[9-10],05" sorts to "[9,05,10]", not "[9-10,05]".
//   - A prefix ending in digits is re-split: "f00[7-8]" sorts to
//     "f[007-008]", so that it orders and de-duplicates against "f007".
//   - Hosts from a bracket with a suffix are ordinary hosts once sorted:
//     "a[1-2]3,a13" sorts to "a[13,13,23]".
//
// Each duplicated name becomes its own range, so sorting a list that
// repeats a large range yields about as many ranges as hosts (libhostlist
// does the same).
func (h Hostlist) Sort() Hostlist { return h.sorted(false) }

// Uniq returns the hosts sorted as by Sort with duplicate names removed,
// as hostlist_uniq does: "[0-20],45,12,015" becomes "[0-20,45,015]".
func (h Hostlist) Uniq() Hostlist { return h.sorted(true) }

// sortItem is a run of hosts that all print their number with the same
// number of digits ("line" l), or a single host when single is set.
type sortItem struct {
	prefix string
	single bool
	l      int
	lo, hi uint64
}

func compareItems(a, b sortItem) int {
	if c := strings.Compare(a.prefix, b.prefix); c != 0 {
		return c
	}
	if a.single != b.single {
		if a.single {
			return -1
		}
		return 1
	}
	return cmp.Or(cmp.Compare(a.l, b.l), cmp.Compare(a.lo, b.lo), cmp.Compare(a.hi, b.hi))
}

func (h Hostlist) sorted(uniq bool) Hostlist {
	if h.n <= 1 {
		return h
	}
	items := make([]sortItem, 0, len(h.ranges))
	for i := range h.ranges {
		items = appendItems(items, &h.ranges[i])
	}
	slices.SortFunc(items, compareItems)

	var b Builder
	for i := 0; i < len(items); {
		j := i + 1
		for j < len(items) && items[j].prefix == items[i].prefix &&
			items[j].single == items[i].single && (items[i].single || items[j].l == items[i].l) {
			j++
		}
		group := items[i:j]
		if group[0].single {
			copies := len(group)
			if uniq {
				copies = 1
			}
			for range copies {
				b.push(hostRange{prefix: group[0].prefix, kind: kindSingle})
			}
		} else {
			emitLine(&b, group, uniq)
		}
		i = j
	}
	return b.take()
}

// appendItems adds r's hosts to items keyed by name: stem, digit count
// and value of the trailing digits.
func appendItems(items []sortItem, r *hostRange) []sortItem {
	switch r.kind {
	case kindSingle:
		// Already canonical: the name has no trailing digits, or too many
		// to be a number, exactly as splitName would decide.
		return append(items, sortItem{prefix: r.prefix, single: true})
	case kindExpanded:
		// These names compare by their own trailing digits, which are not
		// the bracket's number (a[1-2]3), so they must be spelled out.
		var buf []byte
		for v := r.lo; ; v++ {
			buf = r.appendHost(buf[:0], v)
			items = appendName(items, string(buf))
			if v == r.hi {
				return items
			}
		}
	}
	stem := strings.TrimRight(r.prefix, "0123456789")
	tail := r.prefix[len(stem):]
	lo := r.lo
	// Split into runs whose numbers print with the same number of digits:
	// [9-10] at width 1 is 9 (one digit) and 10 (two), while [005-120] at
	// width 3 is a single run.
	for l := max(r.width, digits(lo)); ; l++ {
		hi := min(r.hi, largestWithDigits(l))
		if tail == "" {
			items = append(items, sortItem{prefix: stem, l: l, lo: lo, hi: hi})
		} else if base, ok := shifted(tail, l, hi); ok {
			// Digits ending the prefix lead the number: f00[7-8] is f007,
			// f008; node1[0-5] is node10 to node15.
			items = append(items, sortItem{prefix: stem, l: len(tail) + l, lo: base + lo, hi: base + hi})
		} else {
			// The names' digits do not fit in 64 bits; treat each name
			// as Parse would.
			var buf []byte
			for v := lo; ; v++ {
				buf = append(buf[:0], r.prefix...)
				buf = appendPadded(buf, v, l)
				items = appendName(items, string(buf))
				if v == hi {
					break
				}
			}
		}
		if hi == r.hi {
			return items
		}
		lo = hi + 1
	}
}

// shifted returns tail's value times 10^l, the amount to add to an l-digit
// number printed after tail, if tail followed by any such number up to hi
// still fits in 64 bits.
func shifted(tail string, l int, hi uint64) (uint64, bool) {
	t, ok := parseDecimal(tail)
	if !ok {
		return 0, false
	}
	if t == 0 {
		return 0, true
	}
	base := t
	for range l {
		if base > math.MaxUint64/10 {
			return 0, false
		}
		base *= 10
	}
	if base > math.MaxUint64-hi {
		return 0, false
	}
	return base, true
}

func appendName(items []sortItem, name string) []sortItem {
	r := splitName(name)
	if r.kind == kindSingle {
		return append(items, sortItem{prefix: r.prefix, single: true})
	}
	return append(items, sortItem{prefix: r.prefix, l: r.width, lo: r.lo, hi: r.lo})
}

// largestWithDigits is the largest number printed with at most l digits.
func largestWithDigits(l int) uint64 {
	if l >= 20 {
		return math.MaxUint64
	}
	v := uint64(1)
	for range l {
		v *= 10
	}
	return v - 1
}

// emitLine appends the hosts of runs that share a prefix and digit count,
// sorted by lo, in ascending order. It sweeps over the run boundaries so
// that stretches covered once cost one range, whatever their length; a
// number covered c times is pushed c times, which is what makes
// "foo[0-2],foo[0-2]" sort to "foo[0,0-1,1-2,2]".
func emitLine(b *Builder, runs []sortItem, uniq bool) {
	prefix, width := runs[0].prefix, runs[0].l
	emit := func(lo, hi uint64, copies int) {
		if uniq || copies == 1 {
			b.push(hostRange{prefix: prefix, lo: lo, hi: hi, width: width})
			return
		}
		for v := lo; ; v++ {
			for range copies {
				b.push(hostRange{prefix: prefix, lo: v, hi: v, width: width})
			}
			if v == hi {
				return
			}
		}
	}

	var ends endHeap // inclusive ends of the runs covering pos
	next := 0
	var pos uint64
	for next < len(runs) || ends.Len() > 0 {
		if ends.Len() == 0 {
			pos = runs[next].lo
		}
		for next < len(runs) && runs[next].lo == pos {
			ends.push(runs[next].hi)
			next++
		}
		// The coverage count is constant from pos up to the nearest run
		// end or the point just before the next run starts.
		end := ends[0]
		if next < len(runs) && runs[next].lo-1 < end {
			end = runs[next].lo - 1
		}
		emit(pos, end, ends.Len())
		for ends.Len() > 0 && ends[0] == end {
			ends.pop()
		}
		if end == math.MaxUint64 {
			return
		}
		pos = end + 1
	}
}

// endHeap is a min-heap of run ends. It is hand-rolled rather than built
// on container/heap because boxing each uint64 in an interface allocated
// once per run.
type endHeap []uint64

func (h endHeap) Len() int { return len(h) }

func (h *endHeap) push(v uint64) {
	*h = append(*h, v)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p] <= a[i] {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *endHeap) pop() {
	a := *h
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(a) {
			break
		}
		if c+1 < len(a) && a[c+1] < a[c] {
			c++
		}
		if a[i] <= a[c] {
			break
		}
		a[i], a[c] = a[c], a[i]
		i = c
	}
	*h = a
}
