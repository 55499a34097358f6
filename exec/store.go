package exec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/fluxkit/fluxkit"
)

// eventlogKey is where a job's exec eventlog batches live in the KVS. The
// eventlog is stored as numbered batches plus a count, so that appending is
// O(batch) rather than a rewrite of the whole log.
func eventlogKey(id fluxkit.JobID) string { return id.KVS() + ".guest.exec.eventlog" }

type kvsOp struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

// store batches eventlog appends from every job into as few kvs.commit
// requests as possible, from one goroutine that owns the commit stream.
// Appends for a job that arrive while its previous batch still waits for
// the next commit join that batch, so a job costs one batch and one count
// per commit rather than one per append (the KVS decodes every op).
type store struct {
	h      fluxkit.Handle
	rank   uint32
	onSend func(n int)

	mu       sync.Mutex
	cond     *sync.Cond
	jobs     map[fluxkit.JobID]*elog
	pending  []*batch
	waiters  []func(error)
	inflight bool
	closed   bool
	wake     chan struct{}
}

// elog is the store's view of one job's eventlog.
type elog struct {
	next int    // number of the next new batch
	open *batch // batch not yet sent, which appends join
}

// batch is one KVS batch of a job's events, encoded as they are appended
// (buf holds the JSON array without its closing bracket).
type batch struct {
	id  fluxkit.JobID
	n   int
	buf []byte
}

func newStore(h fluxkit.Handle, onSend func(int)) *store {
	s := &store{h: h, rank: h.Rank(), onSend: onSend, jobs: map[fluxkit.JobID]*elog{}, wake: make(chan struct{}, 1)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// append queues events for job id; done (may be nil) runs once they are
// committed. first is the number of the job's first batch in this store
// (0 for a fresh eventlog, the stored count on reattach); it is used only
// when the store has no record of the job.
func (s *store) append(id fluxkit.JobID, first int, evs []Event, done func(error)) {
	s.mu.Lock()
	e := s.jobs[id]
	if e == nil {
		e = &elog{next: first}
		s.jobs[id] = e
	}
	b := e.open
	if b == nil {
		b = &batch{id: id, n: e.next, buf: make([]byte, 0, 256)}
		e.next++
		e.open = b
		s.pending = append(s.pending, b)
	}
	for i := range evs {
		if len(b.buf) == 0 {
			b.buf = append(b.buf, '[')
		} else {
			b.buf = append(b.buf, ',')
		}
		b.buf = appendEvent(b.buf, &evs[i])
	}
	if done != nil {
		s.waiters = append(s.waiters, done)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// forget drops the store's record of a job whose eventlog is complete;
// batches already queued are still committed. A later append for the same
// id (a fresh start) begins at its first batch again.
func (s *store) forget(id fluxkit.JobID) {
	s.mu.Lock()
	delete(s.jobs, id)
	s.mu.Unlock()
}

func (s *store) run(ctx context.Context) {
	for {
		select {
		case <-s.wake:
		case <-ctx.Done():
			s.mu.Lock()
			s.closed = true
			ws := s.waiters
			s.waiters, s.pending = nil, nil
			s.cond.Broadcast()
			s.mu.Unlock()
			for _, w := range ws {
				w(ctx.Err())
			}
			return
		}
		for {
			s.mu.Lock()
			bs, ws := s.pending, s.waiters
			s.pending, s.waiters = nil, nil
			for _, b := range bs {
				if e := s.jobs[b.id]; e != nil && e.open == b {
					e.open = nil
				}
			}
			s.inflight = len(bs) > 0
			s.mu.Unlock()
			if len(bs) == 0 {
				break
			}
			if s.onSend != nil {
				s.onSend(2)
			}
			err := fluxkit.RPC(ctx, s.h, "kvs.commit", 0, encodeBatches(bs), nil)
			for _, w := range ws {
				w(err)
			}
			s.mu.Lock()
			s.inflight = false
			s.cond.Broadcast()
			s.mu.Unlock()
		}
	}
}

// encodeBatches is the kvs.commit payload for bs: each batch under its
// number and the job's count after it.
func encodeBatches(bs []*batch) []byte {
	ops := make([]kvsOp, 0, 2*len(bs))
	for _, b := range bs {
		k := eventlogKey(b.id)
		ops = append(ops,
			kvsOp{Key: k + "." + strconv.Itoa(b.n), Value: closeArray(b.buf)},
			kvsOp{Key: k + ".count", Value: strconv.AppendInt(nil, int64(b.n+1), 10)})
	}
	return encodeCommit(ops)
}

// sync waits until everything appended so far is committed, or ctx ends.
func (s *store) sync(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for (len(s.pending) > 0 || s.inflight) && !s.closed {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.cond.Wait()
	}
	return nil
}

// loadEventlog reads a job's exec eventlog; a job without one gives nil.
func loadEventlog(ctx context.Context, h fluxkit.Handle, id fluxkit.JobID) ([]Event, int, error) {
	k := eventlogKey(id)
	var cnt struct {
		Value int `json:"value"`
	}
	if err := fluxkit.RPC(ctx, h, "kvs.get", 0, map[string]string{"key": k + ".count"}, &cnt); err != nil {
		if errors.Is(err, fluxkit.ENOENT) {
			return nil, 0, nil
		}
		return nil, 0, fmt.Errorf("reattach: failed to read exec.eventlog: %w", err)
	}
	var out []Event
	for i := 0; i < cnt.Value; i++ {
		var b struct {
			Value []Event `json:"value"`
		}
		if err := fluxkit.RPC(ctx, h, "kvs.get", 0, map[string]string{"key": k + "." + strconv.Itoa(i)}, &b); err != nil {
			return nil, 0, fmt.Errorf("reattach: corrupt exec.eventlog: batch %d: %w", i, err)
		}
		out = append(out, b.Value...)
	}
	return out, cnt.Value, nil
}

// encodeCommit is json.Marshal(map[string]any{"ops": ops}) for values that
// are compact JSON, as appendEvents writes them.
func encodeCommit(ops []kvsOp) []byte {
	n := 16
	for _, op := range ops {
		n += len(op.Key) + len(op.Value) + 24
	}
	b := make([]byte, 0, n)
	b = append(b, `{"ops":[`...)
	for i, op := range ops {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"key":`...)
		b = appendStr(b, op.Key)
		b = append(b, `,"value":`...)
		if len(op.Value) == 0 {
			b = append(b, "null"...)
		} else {
			b = append(b, op.Value...)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func closeArray(buf []byte) []byte {
	if len(buf) == 0 {
		return []byte("[]")
	}
	return append(buf, ']')
}
