package testbroker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/kvs"
)

// Broker is an in-process instance.
type Broker struct {
	size   int
	fanout int
	owner  uint32
	attrs  map[string]string // every rank's attributes, before rank, size and tbon.fanout
	env    map[string]string
	config json.RawMessage

	// ranks is a two-level table of the ranks created so far, read
	// without locks; grow serialises creation.
	ranks []atomic.Pointer[rankChunk]
	grow  sync.Mutex

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards closed, timers, handles, subs, stopped
	closed  bool
	timers  map[uint64]*time.Timer
	timerID uint64
	handles map[*Handle]struct{}

	evMu sync.Mutex // orders events: sequence assignment and fan-out
	seq  uint32
	subs map[*subscription]struct{}

	downMu   sync.Mutex
	down     map[uint32]struct{} // stopped ranks
	stopped  atomic.Int32        // number of stopped ranks; 0 skips reachability checks
	faulty   atomic.Int32        // number of links with a fault
	carriers atomic.Int32        // number of wires carrying messages
	rngMu    sync.Mutex
	rng      *rand.Rand
	uuidNext atomic.Uint64
	uuidBase string

	online  *onlineGroup
	kvstore *kvs.Store
}

// Start starts an instance. The caller must Close it.
func Start(cfg Config) (*Broker, error) {
	if cfg.Size == 0 {
		cfg.Size = 1
	}
	if cfg.Size < 0 || cfg.Size > MaxSize {
		return nil, fmt.Errorf("size %d out of range 1..%d", cfg.Size, MaxSize)
	}
	if cfg.Fanout == 0 {
		cfg.Fanout = 2
	}
	if cfg.Fanout < 0 {
		return nil, fmt.Errorf("fanout %d must be positive", cfg.Fanout)
	}
	owner := uint32(os.Getuid())
	if cfg.Owner != nil {
		owner = *cfg.Owner
	}
	conf, err := configFromTOML(cfg.Config)
	if err != nil {
		return nil, err
	}
	if cfg.ConfigJSON != "" {
		if conf, err = configFromJSON(cfg.ConfigJSON); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		size:     cfg.Size,
		fanout:   cfg.Fanout,
		owner:    owner,
		attrs:    maps.Clone(cfg.Attrs),
		env:      maps.Clone(cfg.Env),
		config:   conf,
		ranks:    make([]atomic.Pointer[rankChunk], (cfg.Size+chunkSize-1)/chunkSize),
		down:     make(map[uint32]struct{}),
		ctx:      ctx,
		cancel:   cancel,
		timers:   make(map[uint64]*time.Timer),
		handles:  make(map[*Handle]struct{}),
		subs:     make(map[*subscription]struct{}),
		rng:      rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)^0x9e3779b97f4a7c15)),
		uuidBase: fmt.Sprintf("%08x-%04x", uint32(time.Now().UnixNano()), os.Getpid()&0xffff),
		kvstore:  kvs.NewStore(),
	}
	b.online = newOnlineGroup(b)
	return b, nil
}

const (
	chunkBits = 10
	chunkSize = 1 << chunkBits
)

type rankChunk [chunkSize]atomic.Pointer[Rank]

// peek returns rank r if it was created, else nil. An uncreated rank is up,
// has perfect links and serves only the built-in services.
func (b *Broker) peek(r uint32) *Rank {
	c := b.ranks[r>>chunkBits].Load()
	if c == nil {
		return nil
	}
	return c[r&(chunkSize-1)].Load()
}

// rank returns rank r, creating it (with its built-in services) on first
// use. r must be below the size.
func (b *Broker) rank(r uint32) *Rank {
	if rk := b.peek(r); rk != nil {
		return rk
	}
	b.grow.Lock()
	defer b.grow.Unlock()
	if rk := b.peek(r); rk != nil {
		return rk
	}
	rk := &Rank{
		b:        b,
		id:       r,
		attrs:    maps.Clone(b.attrs),
		config:   b.config,
		env:      maps.Clone(b.env),
		modules:  map[string]*module{},
		latency:  map[string]time.Duration{},
		fail:     map[string]error{},
		services: map[string]*Handle{},
	}
	if rk.attrs == nil {
		rk.attrs = map[string]string{}
	}
	if rk.env == nil {
		rk.env = map[string]string{}
	}
	rk.attrs["rank"] = strconv.FormatUint(uint64(r), 10)
	rk.attrs["size"] = strconv.Itoa(b.size)
	rk.attrs["tbon.fanout"] = strconv.Itoa(b.fanout)
	// Registration fails only once the instance is closed, and a closed
	// instance serves nothing anyway.
	rk.startBuiltins()
	c := b.ranks[r>>chunkBits].Load()
	if c == nil {
		c = new(rankChunk)
		b.ranks[r>>chunkBits].Store(c)
	}
	c[r&(chunkSize-1)].Store(rk)
	return rk
}

// up reports whether rank r is up.
func (b *Broker) up(r uint32) bool {
	rk := b.peek(r)
	return rk == nil || rk.isUp()
}

// provider returns the handle serving service on rank r. An uncreated rank
// serves only the built-ins, so it is created only when asked for one.
func (b *Broker) provider(r uint32, service string) *Handle {
	rk := b.peek(r)
	if rk == nil {
		if !isBuiltin(r, service) {
			return nil
		}
		rk = b.rank(r)
	}
	return rk.provider(service)
}

// Close closes every handle, stops pending timers and waits for every
// goroutine the instance started. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	for id, t := range b.timers {
		if t.Stop() {
			b.wg.Done()
		}
		delete(b.timers, id)
	}
	hs := make([]*Handle, 0, len(b.handles))
	for h := range b.handles {
		hs = append(hs, h)
	}
	b.mu.Unlock()
	// End every caller's calls first, so that they see the instance
	// closing rather than the services that go away in the second pass.
	for _, h := range hs {
		h.calls.Fail(errClosed)
	}
	for _, h := range hs {
		h.shutdown(false)
	}
	b.cancel()
	b.wg.Wait()
	return nil
}

// Size is the number of ranks.
func (b *Broker) Size() int { return b.size }

// OwnerID is the instance owner's user id.
func (b *Broker) OwnerID() uint32 { return b.owner }

// Parent is the parent rank of r in the tree; ok is false for rank 0.
func (b *Broker) Parent(r uint32) (parent uint32, ok bool) {
	if r == 0 {
		return 0, false
	}
	return (r - 1) / uint32(b.fanout), true
}

// Rank returns rank r's state, creating the rank if nobody used it yet. It
// panics for a rank outside the instance, a programming error in a test.
func (b *Broker) Rank(r uint32) *Rank {
	if int(r) >= b.size {
		panic(fmt.Sprintf("testbroker: rank %d outside instance of size %d", r, b.size))
	}
	return b.rank(r)
}

// Connect opens a client connection to rank r with the given credentials.
func (b *Broker) Connect(r uint32, cred fluxkit.Cred) (*Handle, error) {
	if int(r) >= b.size {
		return nil, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "rank %d outside instance of size %d", r, b.size)
	}
	h := newHandle(b, b.rank(r), cred)
	if !b.adopt(h) {
		return nil, errClosed
	}
	return h, nil
}

// adopt makes h one of the instance's handles, which Close closes; it
// reports false once the instance is closed.
func (b *Broker) adopt(h *Handle) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.handles[h] = struct{}{}
	return true
}

// Owner connects to rank r as the instance owner. It panics if r is outside
// the instance or the broker is closed.
func (b *Broker) Owner(r uint32) *Handle {
	return b.mustConnect(r, fluxkit.Cred{Userid: b.owner, Roles: fluxkit.RoleOwner | fluxkit.RoleLocal})
}

// Guest connects to rank r as user userid with the user role.
func (b *Broker) Guest(r uint32, userid uint32) *Handle {
	return b.mustConnect(r, fluxkit.Cred{Userid: userid, Roles: fluxkit.RoleUser | fluxkit.RoleLocal})
}

func (b *Broker) mustConnect(r uint32, c fluxkit.Cred) *Handle {
	h, err := b.Connect(r, c)
	if err != nil {
		panic(fmt.Sprintf("testbroker: connect to rank %d: %v", r, err))
	}
	return h
}

func (b *Broker) forget(h *Handle) {
	b.mu.Lock()
	delete(b.handles, h)
	b.mu.Unlock()
}

// newUUID returns a unique, UUID-shaped connection identity.
func (b *Broker) newUUID() string {
	n := b.uuidNext.Add(1)
	return fmt.Sprintf("%s-%04x-%012x", b.uuidBase, (n>>48)&0xffff, n&0xffffffffffff)
}

// after runs fn after d on a goroutine the broker owns; Close cancels it if
// it has not started.
func (b *Broker) after(d time.Duration, fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.timerID++
	id := b.timerID
	b.wg.Add(1)
	b.timers[id] = time.AfterFunc(d, func() {
		b.mu.Lock()
		_, mine := b.timers[id]
		delete(b.timers, id)
		b.mu.Unlock()
		if !mine {
			return // Close stopped us and already counted us done
		}
		defer b.wg.Done()
		fn()
	})
}

// go runs fn on a goroutine the broker waits for.
func (b *Broker) goOwned(fn func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
	return true
}

var errClosed = fluxkit.Errorf(fluxkit.ECONNRESET, "testbroker: closed")
