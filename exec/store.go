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
type store struct {
	h      fluxkit.Handle
	rank   uint32
	onSend func(n int)

	mu       sync.Mutex
	cond     *sync.Cond
	pending  []kvsOp
	waiters  []func(error)
	inflight bool
	closed   bool
	wake     chan struct{}
}

func newStore(h fluxkit.Handle, onSend func(int)) *store {
	s := &store{h: h, rank: h.Rank(), onSend: onSend, wake: make(chan struct{}, 1)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// append queues events for job id as batch number n; done (may be nil) runs
// once they are committed.
func (s *store) append(id fluxkit.JobID, n int, evs []Event, done func(error)) {
	v, err := appendEvents(nil, evs)
	if err != nil {
		v, _ = json.Marshal(evs)
	}
	c := strconv.AppendInt(nil, int64(n+1), 10)
	k := eventlogKey(id)
	s.mu.Lock()
	s.pending = append(s.pending, kvsOp{Key: k + "." + strconv.Itoa(n), Value: v}, kvsOp{Key: k + ".count", Value: c})
	if done != nil {
		s.waiters = append(s.waiters, done)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
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
			ops, ws := s.pending, s.waiters
			s.pending, s.waiters = nil, nil
			s.inflight = len(ops) > 0
			s.mu.Unlock()
			if len(ops) == 0 {
				break
			}
			if s.onSend != nil {
				s.onSend(2)
			}
			err := fluxkit.RPC(ctx, s.h, "kvs.commit", 0, encodeCommit(ops), nil)
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
