package flub

import (
	"context"
	"sync"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
)

// keyStore is a broker's set of authorized child keys (the ZAP handler's
// store). Keys are only ever added, as in flux-core: a replaced child's old
// key stays authorized. It is shared with the CURVE handshake goroutines,
// hence the lock.
type keyStore struct {
	mu   sync.RWMutex
	keys map[curve.Key]int64 // key → bound rank, -1 when unbound
}

func newKeyStore() *keyStore { return &keyStore{keys: map[curve.Key]int64{}} }

// authorize adds a key given as Z85 text, bound to the rank named by name
// when name is a decimal rank. Errors carry flux-core's text.
func (s *keyStore) authorize(z85, name string) error {
	k, err := curve.ParseKey(z85)
	if err != nil {
		return fluxkit.Errorf(fluxkit.EINVAL, textAuthorizeKey)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k]; ok {
		return fluxkit.Errorf(fluxkit.EEXIST, textAuthorizeKey)
	}
	s.keys[k] = rankName(name)
	return nil
}

// bound returns the rank bound to k and whether k is authorized at all.
func (s *keyStore) bound(k curve.Key) (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.keys[k]
	return r, ok
}

func (s *keyStore) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}

// authorizer is the CURVE server's ZAP role for the overlay socket.
func (s *keyStore) authorizer(_ context.Context, req curve.AuthRequest) curve.Decision {
	if _, ok := s.bound(req.Key); ok {
		return curve.Decision{Verdict: curve.Allow, UserID: req.Key.String(), Reason: "OK"}
	}
	return curve.Decision{Verdict: curve.Deny, Reason: "No access"}
}
