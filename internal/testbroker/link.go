package testbroker

import (
	"sync"
	"time"
)

// wire is one direction of the link between a rank and its parent. A
// message enters it, waits out the link's delay, and leaves it never ahead
// of a message that entered before it: a delay stretches the link as a slow
// TCP connection does, it does not reorder it.
type wire struct {
	mu      sync.Mutex
	q       []crossing
	carried bool // a carrier goroutine owns the wire until q is empty
}

type crossing struct {
	due  time.Time
	next func() // the rest of the message's way
}

// quiet reports that no link is faulty and no message is on a wire, so a
// message may skip the links: the common case costs two atomic loads.
func (b *Broker) quiet() bool { return b.faulty.Load() == 0 && b.carriers.Load() == 0 }

// transmit carries a message from rank a to rank c over the links between
// them, in order on each, then calls deliver, unless a link loses it.
// Callers skip it when quiet.
func (b *Broker) transmit(a, c uint32, deliver func()) {
	b.cross(b.path(a, c), 0, deliver)
}

// cross carries a message over the links of p from p[i] on.
func (b *Broker) cross(p []uint32, i int, deliver func()) {
	for ; i+1 < len(p); i++ {
		rk, w := b.wire(p[i], p[i+1])
		if rk == nil {
			continue // nobody touched the rank: its link is perfect and idle
		}
		rk.mu.Lock()
		l := rk.link
		rk.mu.Unlock()
		if l.DropRate > 0 && b.lose(l.DropRate) {
			return
		}
		next := i + 1
		if b.enter(w, l.Delay, func() { b.cross(p, next, deliver) }) {
			return
		}
	}
	deliver()
}

// wire returns the wire from rank x to its neighbour y and the child rank
// that holds it, or nil when that rank was never created.
func (b *Broker) wire(x, y uint32) (*Rank, *wire) {
	if x > y { // child to parent
		if rk := b.peek(x); rk != nil {
			return rk, &rk.toParent
		}
		return nil, nil
	}
	if rk := b.peek(y); rk != nil {
		return rk, &rk.fromParent
	}
	return nil, nil
}

func (b *Broker) lose(rate float64) bool {
	b.rngMu.Lock()
	defer b.rngMu.Unlock()
	return b.rng.Float64() < rate
}

// enter queues next on w behind the messages already there and reports
// true, or reports false when w is idle and delay is zero: the caller then
// carries the message on at once.
func (b *Broker) enter(w *wire, delay time.Duration, next func()) bool {
	w.mu.Lock()
	if !w.carried && delay <= 0 {
		w.mu.Unlock()
		return false
	}
	w.q = append(w.q, crossing{due: time.Now().Add(delay), next: next})
	if w.carried {
		w.mu.Unlock()
		return true
	}
	w.carried = true
	b.carriers.Add(1)
	w.mu.Unlock()
	if !b.goOwned(func() { b.carry(w) }) {
		b.release(w) // closed: what is on the wire is lost with the instance
	}
	return true
}

// carry moves the messages on w, oldest first, each at its due time, until
// w is empty or the instance closes.
func (b *Broker) carry(w *wire) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		w.mu.Lock()
		if len(w.q) == 0 || b.ctx.Err() != nil {
			w.mu.Unlock()
			b.release(w)
			return
		}
		c := w.q[0]
		w.q[0] = crossing{}
		w.q = w.q[1:]
		w.mu.Unlock()
		if d := time.Until(c.due); d > 0 {
			if t == nil {
				t = time.NewTimer(d)
			} else {
				t.Reset(d)
			}
			select {
			case <-t.C:
			case <-b.ctx.Done():
				b.release(w)
				return
			}
		}
		c.next()
	}
}

// release ends the carrier's ownership of w, dropping what w holds once the
// instance is closed.
func (b *Broker) release(w *wire) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.q) > 0 && b.ctx.Err() == nil {
		// A message entered after the carrier looked: keep carrying. The
		// caller is the carrier, which returns; a new one takes over.
		if b.goOwned(func() { b.carry(w) }) {
			return
		}
	}
	w.q = nil
	w.carried = false
	b.carriers.Add(-1)
}
