package flub

import (
	"container/heap"
	"slices"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
)

// textNoRanks is the error text of a getinfo that finds no rank to hand out.
const textNoRanks = "there are no available ranks"

// MaxSize is the largest instance size: ranks run from 0 to MaxSize-1,
// the largest id an idset (and so broker.online) can hold. Memory does not
// grow with the size, only with the ranks in use.
const MaxSize = idset.MaxID + 1

// RankState is the pool's view of one rank.
type RankState uint8

// Rank states. A rank is in exactly one of them.
const (
	// Unavailable: not offered (an initial rank that has not yet gone
	// offline, or rank 0).
	Unavailable RankState = iota
	// Available: offered to the next getinfo.
	Available
	// Leased: handed out by getinfo (or reclaimed) and not yet online.
	Leased
	// Online: in broker.online.
	Online
	// Orphaned: was online until an ancestor was lost. Its broker may
	// still be alive behind the lost ancestor, so the rank is held for it
	// (it may reclaim it) until its lease runs out; only then is it
	// available again.
	Orphaned
)

func (s RankState) String() string {
	switch s {
	case Unavailable:
		return "unavailable"
	case Available:
		return "available"
	case Leased:
		return "leased"
	case Online:
		return "online"
	case Orphaned:
		return "orphaned"
	}
	return "invalid"
}

// Pool is rank 0's rank pool: a pure state machine (no clock, no
// goroutines) driven by getinfo allocations, reclaims, broker.online
// transitions and lease expiry. The caller passes the time in; the Broker
// drives it.
//
// Memory follows the ranks in use, not the size: a rank that was never
// touched has no record. Allocation and every transition cost O(log n) in
// the number of ranks in use.
type Pool struct {
	size, initial uint32
	// slots holds every rank that has left its default state. The default
	// is Available at or above hw and Unavailable below initial; every
	// rank in [initial, hw) has a slot.
	slots map[uint32]*slot
	hw    uint32
	// free holds the ranks below hw that became Available, each at most
	// once (slot.queued); entries whose rank was taken again are skipped
	// when they surface.
	free minHeap[uint32]
	// leases orders lease deadlines; entries of ranks that left Leased or
	// Orphaned, or were leased again since, are skipped.
	leases minHeap[leaseEntry]
}

type slot struct {
	state    RankState
	queued   bool // in free
	gen      uint32
	deadline time.Time
	holder   string // who reclaimed a Leased rank
}

// NewPool returns the pool of an instance of size ranks whose first initial
// ranks were booted with the instance (the PMI size): ranks initial..size-1
// are available, the others unavailable until they go offline.
func NewPool(size, initial uint32) (*Pool, error) {
	if size == 0 || initial == 0 || initial > size || size > MaxSize {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "error provisioning flub allocator: initial %d, size %d (at most %d)", initial, size, uint64(MaxSize))
	}
	return &Pool{size: size, initial: initial, hw: initial, slots: map[uint32]*slot{},
		free:   minHeap[uint32]{less: func(a, b uint32) bool { return a < b }},
		leases: minHeap[leaseEntry]{less: leaseEntry.before},
	}, nil
}

// Size is the number of ranks the pool covers.
func (p *Pool) Size() uint32 { return p.size }

// State returns the state of rank r (Unavailable when out of range).
func (p *Pool) State(r uint32) RankState {
	if r >= p.size {
		return Unavailable
	}
	if s := p.slots[r]; s != nil {
		return s.state
	}
	if r >= p.hw {
		return Available
	}
	return Unavailable
}

// slotOf returns r's slot, creating it in r's current state.
func (p *Pool) slotOf(r uint32) *slot {
	s := p.slots[r]
	if s == nil {
		s = &slot{state: p.State(r)}
		p.slots[r] = s
	}
	return s
}

// set moves r to state st, keeping the free queue and the lease count
// right; deadline matters for Leased and Orphaned.
func (p *Pool) set(r uint32, st RankState, deadline time.Time) {
	s := p.slotOf(r)
	s.state = st
	s.gen++
	s.deadline = time.Time{}
	s.holder = ""
	switch st {
	case Available:
		if r < p.hw && !s.queued {
			s.queued = true
			heap.Push(&p.free, r)
		}
	case Leased, Orphaned:
		s.deadline = deadline
		heap.Push(&p.leases, leaseEntry{deadline: deadline, rank: r, gen: s.gen})
	}
}

// Allocate takes the lowest available rank and leases it until deadline.
// With nothing available it fails ENOENT "there are no available ranks".
func (p *Pool) Allocate(deadline time.Time) (uint32, error) {
	for p.free.Len() > 0 {
		r := heap.Pop(&p.free).(uint32)
		s := p.slots[r]
		s.queued = false
		if s.state == Available {
			p.set(r, Leased, deadline)
			return r, nil
		}
	}
	for p.hw < p.size {
		r := p.hw
		p.hw++
		if s := p.slots[r]; s != nil && s.state != Available {
			continue // came online without an allocation
		}
		p.set(r, Leased, deadline)
		return r, nil
	}
	return 0, fluxkit.Errorf(fluxkit.ENOENT, textNoRanks)
}

// Reclaim leases rank r again, until deadline, to holder, the broker that
// held it: one that was orphaned by the loss of an ancestor and rejoins
// through the boot server. It succeeds while r is Orphaned, Available (no
// one else took it) or leased by an earlier Reclaim of the same holder
// (renewed while the broker waits for its parent), and fails EEXIST
// otherwise: another broker holds r or is joining as r.
func (p *Pool) Reclaim(r uint32, holder string, deadline time.Time) error {
	if r == 0 || r >= p.size {
		return fluxkit.Errorf(fluxkit.EINVAL, "rank %d cannot be reclaimed in an instance of size %d", r, p.size)
	}
	st := p.State(r)
	if st == Orphaned || st == Available || st == Leased && holder != "" && p.slots[r].holder == holder {
		p.set(r, Leased, deadline)
		p.slots[r].holder = holder
		return nil
	}
	return fluxkit.Errorf(fluxkit.EEXIST, "rank %d is %v: another broker holds it", r, st)
}

// SetOnline records that rank r entered broker.online: it leaves the pool
// (the original broker reconnecting before a replacement claimed it) and its
// lease ends.
func (p *Pool) SetOnline(r uint32) {
	if r >= p.size {
		return
	}
	p.set(r, Online, time.Time{})
}

// SetOffline records that the broker holding rank r was lost or left:
// the rank becomes available again, whichever way it was booted. A rank
// that was neither online nor orphaned is left alone, so a stray leave
// cannot cancel a lease.
func (p *Pool) SetOffline(r uint32) {
	if r == 0 || r >= p.size {
		return
	}
	if st := p.State(r); st == Online || st == Orphaned {
		p.set(r, Available, time.Time{})
	}
}

// Orphan records that rank r left broker.online because an ancestor was
// lost, not because its own broker was: it is held until deadline for a
// reclaim or a reconnection, then expires back to the pool. The root of an
// orphaned subtree, rejoining, holds its live descendants this way too:
// an orphaned rank gets the new deadline, and an available one (lost and
// reconnected while no message could reach rank 0) is held again. A
// leased rank is left to its new holder.
func (p *Pool) Orphan(r uint32, deadline time.Time) {
	if r == 0 || r >= p.size {
		return
	}
	if st := p.State(r); st == Online || st == Orphaned || st == Available && p.slots[r] != nil {
		p.set(r, Orphaned, deadline)
	}
}

// Expire returns to the pool every leased or orphaned rank whose deadline
// is not after now and returns those ranks in ascending order.
func (p *Pool) Expire(now time.Time) []uint32 {
	var out []uint32
	for p.leases.Len() > 0 {
		e := p.leases.items[0]
		if e.deadline.After(now) {
			break
		}
		heap.Pop(&p.leases)
		s := p.slots[e.rank]
		if s == nil || s.gen != e.gen || (s.state != Leased && s.state != Orphaned) {
			continue // the rank moved on since this lease began
		}
		p.set(e.rank, Available, time.Time{})
		out = append(out, e.rank)
	}
	slices.Sort(out)
	return out
}

// NextExpiry returns the earliest lease deadline, if any rank is leased or
// orphaned.
func (p *Pool) NextExpiry() (time.Time, bool) {
	for p.leases.Len() > 0 {
		e := p.leases.items[0]
		if s := p.slots[e.rank]; s != nil && s.gen == e.gen && (s.state == Leased || s.state == Orphaned) {
			return e.deadline, true
		}
		heap.Pop(&p.leases) // stale: dropping it changes nothing observable
	}
	return time.Time{}, false
}

// Available returns the set of available ranks.
func (p *Pool) Available() idset.Set {
	var b idset.Builder
	for r, s := range p.slots {
		if s.state == Available {
			b.Add(r)
		}
	}
	lo := p.hw
	var above []uint32
	for r, s := range p.slots {
		if r >= p.hw && s.state != Available {
			above = append(above, r)
		}
	}
	slices.Sort(above)
	for _, r := range above {
		if r > lo {
			b.AddRange(lo, r-1)
		}
		lo = r + 1
	}
	if lo < p.size {
		b.AddRange(lo, p.size-1)
	}
	return b.Set()
}

// Each calls f for every rank that is not in its default state (leased,
// online, orphaned, or available again after being used), in no
// particular order.
func (p *Pool) Each(f func(r uint32, st RankState)) {
	for r, s := range p.slots {
		f(r, s.state)
	}
}

// minHeap is a min-heap for container/heap, ordered by less.
type minHeap[T any] struct {
	items []T
	less  func(a, b T) bool
}

func (h *minHeap[T]) Len() int           { return len(h.items) }
func (h *minHeap[T]) Less(i, j int) bool { return h.less(h.items[i], h.items[j]) }
func (h *minHeap[T]) Swap(i, j int)      { h.items[i], h.items[j] = h.items[j], h.items[i] }
func (h *minHeap[T]) Push(x any)         { h.items = append(h.items, x.(T)) }
func (h *minHeap[T]) Pop() any {
	n := len(h.items) - 1
	x := h.items[n]
	h.items = h.items[:n]
	return x
}

// leaseEntry is a lease deadline in the lease heap: earliest first, then
// lowest rank.
type leaseEntry struct {
	deadline time.Time
	rank     uint32
	gen      uint32
}

func (e leaseEntry) before(o leaseEntry) bool {
	if !e.deadline.Equal(o.deadline) {
		return e.deadline.Before(o.deadline)
	}
	return e.rank < o.rank
}
