package curve

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// side is what a Server and a Client have in common: the transport that
// knows it by id, the limits and logger of its connections, and the
// connections it tracks until it closes.
type side struct {
	t        *Transport
	id       string
	log      *slog.Logger
	timeout  time.Duration
	maxFrame uint64

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
}

// init sets up a side with the defaults of a validated config and
// registers it with t under an id starting with prefix; end is the Server
// or Client the id stands for.
func (s *side) init(t *Transport, prefix string, end any, log *slog.Logger, timeout time.Duration, maxFrame int64) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	if maxFrame == 0 {
		maxFrame = DefaultMaxFrameSize
	}
	s.t, s.log, s.timeout, s.maxFrame = t, log, timeout, uint64(maxFrame)
	s.conns = map[*conn]struct{}{}
	s.id = t.add(prefix, end)
}

// peers returns the peers of the established connections.
func (s *side) peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Peer
	for c := range s.conns {
		if c.ready.Load() {
			out = append(out, c.peer.clone())
		}
	}
	return out
}

// track adds c, unless the side is closed.
func (s *side) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// shut closes the side to new connections and unregisters it; also runs
// under the lock, for what the Server tracks besides. It returns the
// connections to close, and false when the side was closed already.
func (s *side) shut(also func()) ([]*conn, bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, false
	}
	s.closed = true
	if also != nil {
		also()
	}
	cs := slices.Collect(maps.Keys(s.conns))
	s.mu.Unlock()
	s.t.remove(s.id)
	return cs, true
}

// checkEnd checks what a ServerConfig and a ClientConfig (named what)
// have in common.
func checkEnd(what string, keys KeyPair, timeout time.Duration, maxFrame int64, userTimeout time.Duration) error {
	if err := keys.check(); err != nil {
		return fmt.Errorf("curve: %s.Keys: %w", what, err)
	}
	if timeout < 0 {
		return fmt.Errorf("curve: %s.HandshakeTimeout: negative duration %v", what, timeout)
	}
	if maxFrame < 0 || maxFrame > 0 && maxFrame < messageMinLen {
		return fmt.Errorf("curve: %s.MaxFrameSize: %d is below the %d-byte MESSAGE minimum", what, maxFrame, messageMinLen)
	}
	if userTimeout < 0 {
		return fmt.Errorf("curve: %s.TCPUserTimeout: negative duration %v", what, userTimeout)
	}
	return nil
}
