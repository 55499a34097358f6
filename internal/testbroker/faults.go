package testbroker

import (
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
)

// Link is a fault on the link between a rank and its parent, applied to each
// request and response that crosses it.
type Link struct {
	Delay    time.Duration
	DropRate float64 // probability in [0,1] that a message is lost
}

// StopRank makes rank r unreachable, as if its broker had crashed: requests
// to it or through it fail EHOSTUNREACH, requests in flight across it fail
// the same way, its handles can reach nobody, and it leaves broker.online.
func (b *Broker) StopRank(r uint32) {
	if !b.setDown(r, true) {
		return
	}
	b.stopped.Add(1)
	b.failInFlight()
	b.online.changed()
}

// StartRank brings a stopped rank back.
func (b *Broker) StartRank(r uint32) {
	if !b.setDown(r, false) {
		return
	}
	b.stopped.Add(-1)
	b.online.changed()
}

// setDown marks rank r down or up; it reports whether that changed it.
func (b *Broker) setDown(r uint32, down bool) bool {
	rk := b.Rank(r)
	rk.mu.Lock()
	defer rk.mu.Unlock()
	if rk.down == down {
		return false
	}
	rk.down = down
	b.downMu.Lock()
	if down {
		b.down[r] = struct{}{}
	} else {
		delete(b.down, r)
	}
	b.downMu.Unlock()
	return true
}

// Online is the set of ranks that are up.
func (b *Broker) Online() idset.Set {
	var down idset.Builder
	b.downMu.Lock()
	for r := range b.down {
		down.Add(r)
	}
	b.downMu.Unlock()
	return idset.Range(0, uint32(b.size-1)).Difference(down.Set())
}

// SetLink sets the fault on the link between child and its parent; the zero
// Link clears it.
func (b *Broker) SetLink(child uint32, l Link) {
	rk := b.Rank(child)
	if child == 0 {
		panic("testbroker: rank 0 has no parent link")
	}
	rk.mu.Lock()
	was := rk.link != (Link{})
	rk.link = l
	rk.mu.Unlock()
	switch now := l != (Link{}); {
	case now && !was:
		b.faulty.Add(1)
	case !now && was:
		b.faulty.Add(-1)
	}
}

// path returns the ranks a message visits from a to c, both included.
func (b *Broker) path(a, c uint32) []uint32 {
	if a == c {
		return []uint32{a}
	}
	var up, down []uint32
	for a != c {
		if a > c {
			up = append(up, a)
			a = (a - 1) / uint32(b.fanout)
		} else {
			down = append(down, c)
			c = (c - 1) / uint32(b.fanout)
		}
	}
	up = append(up, a)
	for i := len(down) - 1; i >= 0; i-- {
		up = append(up, down[i])
	}
	return up
}

// reachable reports whether every rank on p is up.
func (b *Broker) reachable(p []uint32) bool {
	if b.stopped.Load() == 0 {
		return true
	}
	for _, r := range p {
		if !b.up(r) {
			return false
		}
	}
	return true
}

// reachableBetween reports whether every rank on the way from a to c is up.
// Paths are computed only when some rank is down, which keeps the common
// case free of allocation.
func (b *Broker) reachableBetween(a, c uint32) bool {
	if b.stopped.Load() == 0 {
		return true
	}
	return b.reachable(b.path(a, c))
}

// failInFlight fails every request in flight whose path crosses a stopped
// rank.
func (b *Broker) failInFlight() {
	b.mu.Lock()
	hs := make([]*Handle, 0, len(b.handles))
	for h := range b.handles {
		hs = append(hs, h)
	}
	b.mu.Unlock()
	for _, h := range hs {
		for _, rsp := range h.pendingResponders() {
			if !b.reachableBetween(rsp.src, rsp.dst) {
				rsp.fail(fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank unreachable"))
			}
		}
	}
}
