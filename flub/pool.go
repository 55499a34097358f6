package flub

import (
	"math/bits"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
)

// TextNoRanks is the error text of a getinfo that finds no rank to hand out.
const TextNoRanks = "there are no available ranks"

// RankState is the pool's view of one rank.
type RankState uint8

// Rank states. A rank is in exactly one of them.
const (
	// Unavailable: not offered (an initial rank that has not yet gone
	// offline, or rank 0).
	Unavailable RankState = iota
	// Available: offered to the next getinfo.
	Available
	// Leased: handed out by getinfo and not yet online.
	Leased
	// Online: in broker.online.
	Online
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
	}
	return "invalid"
}

// Pool is rank 0's rank pool: a pure state machine (no clock, no goroutines)
// driven by getinfo allocations, broker.online transitions and lease
// expiry. The caller passes the time in; the Broker drives it.
//
// Allocation takes the lowest available rank in O(size/64) worst case, a
// word scan of a bitmap that starts at a low-water mark.
type Pool struct {
	state  []RankState
	lease  []time.Time // deadline of a Leased rank
	avail  []uint64    // bitmap of Available ranks
	low    int         // no available rank below low*64
	leases int
}

// NewPool returns the pool of an instance of size ranks whose first initial
// ranks were booted with the instance (the PMI size): ranks initial..size-1
// are available, the others unavailable until they go offline.
func NewPool(size, initial uint32) (*Pool, error) {
	if size == 0 || initial == 0 || initial > size {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "error provisioning flub allocator: initial %d, size %d", initial, size)
	}
	p := &Pool{
		state: make([]RankState, size),
		lease: make([]time.Time, size),
		avail: make([]uint64, (size+63)/64),
	}
	for r := initial; r < size; r++ {
		p.setAvail(r, true)
		p.state[r] = Available
	}
	return p, nil
}

func (p *Pool) setAvail(r uint32, on bool) {
	w, b := r/64, r%64
	if on {
		p.avail[w] |= 1 << b
		if int(w) < p.low {
			p.low = int(w)
		}
	} else {
		p.avail[w] &^= 1 << b
	}
}

// Size is the number of ranks the pool covers.
func (p *Pool) Size() uint32 { return uint32(len(p.state)) }

// State returns the state of rank r (Unavailable when out of range).
func (p *Pool) State(r uint32) RankState {
	if int(r) >= len(p.state) {
		return Unavailable
	}
	return p.state[r]
}

// Allocate takes the lowest available rank and leases it until deadline.
// With nothing available it fails ENOENT "there are no available ranks".
func (p *Pool) Allocate(deadline time.Time) (uint32, error) {
	for w := p.low; w < len(p.avail); w++ {
		if p.avail[w] == 0 {
			p.low = w + 1
			continue
		}
		r := uint32(w*64 + bits.TrailingZeros64(p.avail[w]))
		p.setAvail(r, false)
		p.state[r] = Leased
		p.lease[r] = deadline
		p.leases++
		return r, nil
	}
	return 0, fluxkit.Errorf(fluxkit.ENOENT, TextNoRanks)
}

// SetOnline records that rank r entered broker.online: it leaves the pool
// (the original broker reconnecting before a replacement claimed it) and its
// lease ends.
func (p *Pool) SetOnline(r uint32) {
	if int(r) >= len(p.state) {
		return
	}
	p.leave(r)
	p.state[r] = Online
}

// SetOffline records that rank r left broker.online: it becomes available
// again, for every boot method (D5). A rank that was not online is left
// alone, so a stray leave cannot cancel a lease.
func (p *Pool) SetOffline(r uint32) {
	if int(r) >= len(p.state) || p.state[r] != Online || r == 0 {
		return
	}
	p.state[r] = Available
	p.setAvail(r, true)
}

func (p *Pool) leave(r uint32) {
	switch p.state[r] {
	case Available:
		p.setAvail(r, false)
	case Leased:
		p.leases--
		p.lease[r] = time.Time{}
	}
}

// Expire returns to the pool every leased rank whose deadline is not after
// now and returns those ranks in ascending order.
func (p *Pool) Expire(now time.Time) []uint32 {
	if p.leases == 0 {
		return nil
	}
	var out []uint32
	for r := range p.state {
		if p.state[r] == Leased && !p.lease[r].After(now) {
			p.leave(uint32(r))
			p.state[r] = Available
			p.setAvail(uint32(r), true)
			out = append(out, uint32(r))
		}
	}
	return out
}

// NextExpiry returns the earliest lease deadline, if any rank is leased.
func (p *Pool) NextExpiry() (time.Time, bool) {
	if p.leases == 0 {
		return time.Time{}, false
	}
	var min time.Time
	for r := range p.state {
		if p.state[r] == Leased && (min.IsZero() || p.lease[r].Before(min)) {
			min = p.lease[r]
		}
	}
	return min, true
}

// Available returns the set of available ranks.
func (p *Pool) Available() idset.Set {
	var b idset.Builder
	for w, word := range p.avail {
		for word != 0 {
			i := bits.TrailingZeros64(word)
			b.Add(uint32(w*64 + i))
			word &^= 1 << i
		}
	}
	return b.Set()
}
