package journal

import (
	"slices"

	"github.com/fluxkit/fluxkit"
)

// entry is one slot of a sorted list. The keys are copied in so that a
// removed (tombstoned, j == nil) slot keeps the list sorted for binary
// search while its job moves on.
type entry struct {
	j  *jobRec
	id fluxkit.JobID
	k  float64 // t_run or t_inactive
	p  int64   // priority
}

// slist is a list kept in the reverse of its listing order, so that the
// usual insertions (newest runs, newest inactive jobs) are appends and
// purges of the oldest are removals at the head.
type slist struct {
	e    []entry
	head int
	dead int
	cmp  func(a, b *entry) int // storage order (ascending)
}

func cmpPending(a, b *entry) int {
	if a.p != b.p {
		if a.p < b.p {
			return -1
		}
		return 1
	}
	return -cmpID(a.id, b.id)
}

func cmpTime(a, b *entry) int {
	if c := cmpFloat(a.k, b.k); c != 0 {
		return c
	}
	return cmpID(a.id, b.id)
}

func (l *slist) search(en *entry) int {
	lo, hi := l.head, len(l.e)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l.cmp(&l.e[m], en) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (l *slist) insert(en entry) {
	n := len(l.e)
	if n == l.head || l.cmp(&l.e[n-1], &en) < 0 {
		l.e = append(l.e, en)
		return
	}
	i := l.search(&en)
	if i == l.head && i > 0 {
		l.head--
		l.e[l.head] = en
		return
	}
	l.e = slices.Insert(l.e, i, en)
}

func (l *slist) remove(en entry) {
	i := l.search(&en)
	if i >= len(l.e) || l.e[i].id != en.id || l.e[i].j == nil {
		return
	}
	l.e[i].j = nil
	l.dead++
	for l.head < len(l.e) && l.e[l.head].j == nil {
		l.head++
		l.dead--
	}
	if l.head == len(l.e) {
		l.e, l.head, l.dead = l.e[:0], 0, 0
		return
	}
	if l.dead > 64 && l.dead*2 > len(l.e)-l.head {
		l.compact()
	}
}

func (l *slist) compact() {
	n := 0
	for _, e := range l.e[l.head:] {
		if e.j != nil {
			l.e[n] = e
			n++
		}
	}
	clear(l.e[n:])
	l.e, l.head, l.dead = l.e[:n], 0, 0
}

func (l *slist) len() int { return len(l.e) - l.head - l.dead }

// each calls fn in listing order (reverse of storage) until it returns
// false.
func (l *slist) each(fn func(j *jobRec) bool) {
	for i := len(l.e) - 1; i >= l.head; i-- {
		if j := l.e[i].j; j != nil {
			if !fn(j) {
				return
			}
		}
	}
}

// build replaces the list with the given entries, sorted once.
func (l *slist) build(es []entry, pending bool) {
	if pending {
		slices.SortFunc(es, func(a, b entry) int { return cmpPending(&a, &b) })
	} else {
		// The common case (the backlog's inactive jobs) with the comparison
		// inlined: a function value here costs several times the sort.
		slices.SortFunc(es, func(a, b entry) int {
			if a.k != b.k {
				if a.k < b.k {
					return -1
				}
				return 1
			}
			if a.id != b.id {
				if a.id < b.id {
					return -1
				}
				return 1
			}
			return 0
		})
	}
	l.e, l.head, l.dead = es, 0, 0
}
