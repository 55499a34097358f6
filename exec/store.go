package exec

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/kvs"
)

// A job's KVS state is flux-core's, so that flux tools read it: a guest
// namespace "job-<id>" owned by the job's user, linked from the primary
// namespace at job.<id>.guest (a symlink into the namespace) while the job
// runs, and grafted there (the namespace's root copied over the link) once
// the job is done, before the namespace is removed and the job manager
// hears release final. The exec eventlog is the key exec.eventlog in the
// guest namespace: an RFC 18 eventlog, one JSON object and a newline per
// event, grown by appending. The job shell appends its own events
// (shell.init, shell.start) and writes the job's output eventlog there.

// eventlogKey is the exec eventlog's key in the guest namespace.
const eventlogKey = "exec.eventlog"

// guestNS is the name of job id's guest namespace.
func guestNS(id fluxkit.JobID) string { return "job-" + id.Dec() }

// guestKey is where the guest namespace is linked, then grafted, in the
// primary namespace.
func guestKey(id fluxkit.JobID) string { return id.KVS() + ".guest" }

// errNoNamespace is wrapped by createNS's error when the namespace itself
// could not be created (rather than linked).
var errNoNamespace = errors.New("no guest namespace")

// createNS creates job id's guest namespace, owned by userid, and links it
// at its guest key. existed reports that the namespace was there already
// (a previous coordinator created it); it is then linked again and used
// as it is.
func createNS(ctx context.Context, h fluxkit.Handle, id fluxkit.JobID, userid uint32, rootref string) (existed bool, err error) {
	link := make(chan error, 1)
	go func() { link <- linkNS(ctx, h, id) }()
	err = fluxkit.RPC(ctx, h, "kvs.namespace-create", 0,
		map[string]any{"namespace": guestNS(id), "rootref": rootref, "owner": userid, "flags": 0}, nil)
	switch {
	case errors.Is(err, syscall.EEXIST):
		existed, err = true, nil
	case err != nil:
		err = fmt.Errorf("%w: %w", errNoNamespace, err)
	}
	if lerr := <-link; err == nil && lerr != nil {
		err = lerr
	}
	return existed, err
}

// readGuestEventlog reads, for a reattach, the exec eventlog a previous
// coordinator left in job id's guest namespace; hasNS reports whether the
// namespace exists. Without one, the eventlog grafted in the primary
// namespace is read instead (the job was done, or the namespace was lost).
// A job with no eventlog at all gives none, and is not recoverable. The
// errors are flux-core's notes.
func readGuestEventlog(ctx context.Context, h fluxkit.Handle, id fluxkit.JobID) (evs []Event, hasNS bool, err error) {
	hasNS = true
	b, err := kvs.Lookup(ctx, h, guestNS(id), eventlogKey)
	if errors.Is(err, syscall.ENOTSUP) {
		hasNS = false
		b, err = kvs.Lookup(ctx, h, kvs.Primary, guestKey(id)+"."+eventlogKey)
	}
	switch {
	case errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENOTSUP):
		return nil, hasNS, nil
	case err != nil:
		return nil, hasNS, fmt.Errorf("reattach: failed to read exec.eventlog: %w", err)
	}
	if evs, err = parseEventlog(b); err != nil {
		return nil, hasNS, fmt.Errorf("reattach: corrupt exec.eventlog: %w", err)
	}
	return evs, hasNS, nil
}

// emptyDir is an empty RFC 11 directory as flux-core encodes it (compact,
// keys sorted): its blobref roots a new namespace.
const emptyDir = `{"data":{},"type":"dir","ver":1}`

// emptyRootref is the blobref of an empty directory under the content
// store's hash (the broker attribute content.hash), which is in every
// content store: flux_kvs_namespace_create roots new namespaces there.
func emptyRootref(hash string) (string, error) {
	var sum []byte
	switch hash {
	case "sha1":
		s := sha1.Sum([]byte(emptyDir))
		sum = s[:]
	case "sha256":
		s := sha256.Sum256([]byte(emptyDir))
		sum = s[:]
	default:
		return "", fmt.Errorf("content.hash %q: unknown hash", hash)
	}
	return hash + "-" + hex.EncodeToString(sum), nil
}

// linkNS makes job id's guest key a symlink into its guest namespace, as
// flux_kvs_txn_symlink (key, "job-<id>", ".") does.
func linkNS(ctx context.Context, h fluxkit.Handle, id fluxkit.JobID) error {
	data, _ := json.Marshal(map[string]string{"namespace": guestNS(id), "target": "."})
	link := kvs.Treeobj{Ver: 1, Type: kvs.TypeSymlink, Data: data}
	return kvs.Commit(ctx, h, kvs.Primary, &kvs.Txn{Ops: []kvs.Op{{Key: guestKey(id), Dirent: &link}}})
}

// graftNS copies the root of job id's guest namespace over its link in the
// primary namespace (flux_kvs_copy), then removes the namespace.
func graftNS(ctx context.Context, h fluxkit.Handle, id fluxkit.JobID) error {
	root, err := kvs.LookupTreeobj(ctx, h, guestNS(id), ".", kvs.FlagTreeobj)
	if err != nil {
		return fmt.Errorf("graft %s: %w", guestNS(id), err)
	}
	if err := kvs.Commit(ctx, h, kvs.Primary, &kvs.Txn{Ops: []kvs.Op{{Key: guestKey(id), Dirent: &root}}}); err != nil {
		return fmt.Errorf("graft %s: %w", guestNS(id), err)
	}
	if err := fluxkit.RPC(ctx, h, "kvs.namespace-remove", 0, map[string]string{"namespace": guestNS(id)}, nil); err != nil {
		return fmt.Errorf("remove %s: %w", guestNS(id), err)
	}
	return nil
}

// appendLine appends e to b as one line of an RFC 18 eventlog.
func appendLine(b []byte, e *Event) []byte {
	return append(appendEvent(b, e), '\n')
}

// parseEventlog decodes an RFC 18 eventlog: one JSON object per line,
// each with a numeric timestamp and a name, and an object as context if
// any. A bad line is an error naming it.
func parseEventlog(b []byte) ([]Event, error) {
	var out []Event
	for n := 1; len(b) > 0; n++ {
		line, rest, found := bytes.Cut(b, []byte{'\n'})
		if !found {
			return nil, fmt.Errorf("eventlog line %d: no newline at the end", n)
		}
		b = rest
		var raw struct {
			Timestamp *float64        `json:"timestamp"`
			Name      *string         `json:"name"`
			Context   json.RawMessage `json:"context"`
		}
		if err := json.Unmarshal(line, &raw); err != nil {
			return nil, fmt.Errorf("eventlog line %d: %w", n, err)
		}
		if raw.Timestamp == nil || raw.Name == nil || *raw.Name == "" {
			return nil, fmt.Errorf("eventlog line %d: an entry needs a timestamp and a name", n)
		}
		e := Event{Timestamp: *raw.Timestamp, Name: *raw.Name}
		if len(raw.Context) > 0 && string(raw.Context) != "null" {
			if err := json.Unmarshal(raw.Context, &e.Context); err != nil || e.Context == nil {
				return nil, fmt.Errorf("eventlog line %d: context is not an object", n)
			}
		}
		out = append(out, e)
	}
	return out, nil
}

// errNoEventlog: the job has no exec eventlog (no namespace, and none
// grafted).
var errNoEventlog = errors.New("no exec eventlog")

// loadEventlog reads job id's exec eventlog from its guest namespace, or,
// once that is gone, from the copy grafted in the primary namespace. A job
// with neither gives an error wrapping errNoEventlog.
func loadEventlog(ctx context.Context, h fluxkit.Handle, id fluxkit.JobID) ([]Event, error) {
	b, err := kvs.Lookup(ctx, h, guestNS(id), eventlogKey)
	if err != nil && (errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOENT)) {
		b, err = kvs.Lookup(ctx, h, kvs.Primary, guestKey(id)+"."+eventlogKey)
	}
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("%w: %v", errNoEventlog, err)
		}
		return nil, err
	}
	return parseEventlog(b)
}

// store commits the events the coordinator posts to the exec eventlogs, from
// one goroutine: whatever was posted while a round of commits was in
// flight goes in the next round, one commit per job (a commit names one
// namespace), all of a round's commits in flight at once. A job's events
// are therefore committed in order, each round after the previous one.
type store struct {
	h      fluxkit.Handle
	onSend func(n int)

	mu       sync.Mutex
	cond     *sync.Cond
	pending  map[fluxkit.JobID]*pend
	order    []fluxkit.JobID // pending jobs, first posted first
	inflight bool
	closed   bool
	wake     chan struct{}
}

// pend is what one job has waiting for the next round.
type pend struct {
	buf     []byte // eventlog lines
	replace bool   // the commit replaces the eventlog: a fresh start
	waiters []func(error)
}

func newStore(h fluxkit.Handle, onSend func(int)) *store {
	s := &store{h: h, onSend: onSend, pending: map[fluxkit.JobID]*pend{}, wake: make(chan struct{}, 1)}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// append queues events for job id; done (may be nil) runs once they, and
// everything queued for the job before them, are committed. With replace,
// the eventlog starts over with these events: a fresh start's exec
// eventlog, whatever an earlier start of the job left. Appending no events
// only waits.
func (s *store) append(id fluxkit.JobID, evs []Event, replace bool, done func(error)) {
	s.mu.Lock()
	p := s.pending[id]
	if p == nil {
		p = &pend{}
		s.pending[id] = p
		s.order = append(s.order, id)
	}
	if replace {
		p.buf, p.replace = p.buf[:0], true
	}
	for i := range evs {
		p.buf = appendLine(p.buf, &evs[i])
	}
	if done != nil {
		p.waiters = append(p.waiters, done)
	}
	closed := s.closed
	s.mu.Unlock()
	if closed {
		if done != nil {
			done(context.Canceled)
		}
		return
	}
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
			pending := s.pending
			s.pending, s.order = map[fluxkit.JobID]*pend{}, nil
			s.cond.Broadcast()
			s.mu.Unlock()
			for _, p := range pending {
				for _, w := range p.waiters {
					w(ctx.Err())
				}
			}
			return
		}
		for s.round(ctx) {
		}
	}
}

// round commits what is pending; it reports false when nothing was.
func (s *store) round(ctx context.Context) bool {
	s.mu.Lock()
	pending, order := s.pending, s.order
	s.pending, s.order = map[fluxkit.JobID]*pend{}, nil
	s.inflight = len(order) > 0
	s.mu.Unlock()
	if len(order) == 0 {
		return false
	}
	var wg sync.WaitGroup
	for _, id := range order {
		p := pending[id]
		if len(p.buf) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.onSend != nil {
				s.onSend(2)
			}
			txn := &kvs.Txn{}
			if p.replace {
				txn.Put(eventlogKey, p.buf)
			} else {
				txn.Append(eventlogKey, p.buf)
			}
			err := kvs.Commit(ctx, s.h, guestNS(id), txn)
			if err != nil {
				err = fmt.Errorf("exec.eventlog of %s: %w", id, err)
			}
			for _, w := range p.waiters {
				w(err)
			}
		}()
	}
	wg.Wait()
	for _, id := range order {
		if p := pending[id]; len(p.buf) == 0 {
			for _, w := range p.waiters {
				w(nil)
			}
		}
	}
	s.mu.Lock()
	s.inflight = false
	s.cond.Broadcast()
	s.mu.Unlock()
	return true
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
	for (len(s.order) > 0 || s.inflight) && !s.closed {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.cond.Wait()
	}
	return nil
}
