package testbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/kvs"
	"github.com/pelletier/go-toml/v2"
)

// MaxSize is the largest instance. Ranks are created when first used, so
// an instance costs memory for the ranks a test touches, not for its size.
const MaxSize = 1 << 24

// Config configures an instance. The zero value is a one-rank instance.
type Config struct {
	// Size is the number of ranks, 1 to MaxSize. Default 1.
	Size int
	// Fanout is k of the k-ary tree: rank r's parent is (r-1)/k.
	// Default 2. A fanout of Size-1 or more gives a flat tree.
	Fanout int
	// Attrs are broker attributes set on every rank; "rank", "size" and
	// "tbon.fanout" are always set and cannot be overridden here.
	Attrs map[string]string
	// Config is the broker configuration as TOML, the same on every rank.
	// config.get returns its tables with keys in sorted order; use
	// ConfigJSON where a consumer depends on the order of keys.
	Config string
	// ConfigJSON, when set, is the configuration as a JSON object, returned
	// by config.get byte for byte, so key order is kept as flux-core's
	// jansson objects keep it. It takes precedence over Config.
	ConfigJSON string
	// Env is the broker environment (broker.getenv) on every rank.
	Env map[string]string
	// Owner is the instance owner's user id. Default os.Getuid().
	Owner *uint32
	// Seed seeds the RNG that drops messages on faulty links.
	Seed int64
}

// Link is a fault on the link between a rank and its parent, applied to each
// request and response that crosses it.
type Link struct {
	Delay    time.Duration
	DropRate float64 // probability in [0,1] that a message is lost
}

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
	rank0kv *legacyKV
	kvstore *kvs.Store
}

// New starts an instance for a test and closes it when the test ends. A bad
// configuration fails the test.
func New(t testing.TB, cfg Config) *Broker {
	t.Helper()
	b, err := Start(cfg)
	if err != nil {
		t.Fatalf("testbroker: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("testbroker: close: %v", err)
		}
	})
	return b
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
		rank0kv:  newLegacyKV(),
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

// StopRank makes rank r unreachable, as if its broker had crashed: requests
// to it or through it fail EHOSTUNREACH, requests in flight across it fail
// the same way, its handles can reach nobody, and it leaves broker.online.
func (b *Broker) StopRank(r uint32) {
	rk := b.Rank(r)
	rk.mu.Lock()
	if rk.down {
		rk.mu.Unlock()
		return
	}
	rk.down = true
	b.downMu.Lock()
	b.down[r] = struct{}{}
	b.downMu.Unlock()
	rk.mu.Unlock()
	b.stopped.Add(1)
	b.failInFlight()
	b.online.changed()
}

// StartRank brings a stopped rank back.
func (b *Broker) StartRank(r uint32) {
	rk := b.Rank(r)
	rk.mu.Lock()
	if !rk.down {
		rk.mu.Unlock()
		return
	}
	rk.down = false
	b.downMu.Lock()
	delete(b.down, r)
	b.downMu.Unlock()
	rk.mu.Unlock()
	b.stopped.Add(-1)
	b.online.changed()
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

var errClosed = fluxkit.Errorf(fluxkit.ECONNRESET, "testbroker: closed")

// Rank is the state of one rank.
type Rank struct {
	b  *Broker
	id uint32

	mu                   sync.Mutex
	down                 bool
	link                 Link
	toParent, fromParent wire // the link to the parent, each way
	attrs                map[string]string
	config               json.RawMessage
	env                  map[string]string
	modules              map[string]*module
	latency              map[string]time.Duration
	fail                 map[string]error
	log                  []ModuleOp
	services             map[string]*Handle
}

// ID is the rank number.
func (r *Rank) ID() uint32 { return r.id }

func (r *Rank) isUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.down
}

// SetAttr sets a broker attribute.
func (r *Rank) SetAttr(name, value string) {
	r.mu.Lock()
	r.attrs[name] = value
	r.mu.Unlock()
}

// Attr returns a broker attribute.
func (r *Rank) Attr(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.attrs[name]
	return v, ok
}

// SetConfig replaces the rank's configuration with the given TOML.
func (r *Rank) SetConfig(tomlText string) error {
	conf, err := configFromTOML(tomlText)
	if err != nil {
		return fmt.Errorf("rank %d: %w", r.id, err)
	}
	r.mu.Lock()
	r.config = conf
	r.mu.Unlock()
	return nil
}

// SetConfigJSON replaces the rank's configuration with a JSON object, kept
// byte for byte.
func (r *Rank) SetConfigJSON(jsonText string) error {
	conf, err := configFromJSON(jsonText)
	if err != nil {
		return fmt.Errorf("rank %d: %w", r.id, err)
	}
	r.mu.Lock()
	r.config = conf
	r.mu.Unlock()
	return nil
}

// ConfigError is a TOML syntax error in Config.Config or Rank.SetConfig,
// located by line and column (1-based) so that a caller that read the
// text from a file can name the place: FILE:Line:Column.
type ConfigError struct {
	Line, Column int
	Err          error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config:%d:%d: %v", e.Line, e.Column, e.Err)
}

// Unwrap exposes the parser's error.
func (e *ConfigError) Unwrap() error { return e.Err }

func configFromTOML(text string) (json.RawMessage, error) {
	conf := map[string]any{}
	if err := toml.Unmarshal([]byte(text), &conf); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &ConfigError{Line: line, Column: col, Err: errors.New(strings.TrimPrefix(de.Error(), "toml: "))}
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	b, err := json.Marshal(conf)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return b, nil
}

func configFromJSON(text string) (json.RawMessage, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &obj); err != nil {
		return nil, fmt.Errorf("config: not a JSON object: %w", err)
	}
	return json.RawMessage(text), nil
}

// SetEnv sets a variable of the broker environment.
func (r *Rank) SetEnv(name, value string) {
	r.mu.Lock()
	r.env[name] = value
	r.mu.Unlock()
}

// Env returns a variable of the broker environment.
func (r *Rank) Env(name string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.env[name]
	return v, ok
}

// ModuleOp records one module.load or module.remove.
type ModuleOp struct {
	Op         string // "load" or "remove"
	Name       string
	Args       []string
	Start, End time.Time
	Err        error
}

type module struct {
	name, path string
	args       []string
	loading    bool
}

// Modules returns the names of the loaded modules, sorted.
func (r *Rank) Modules() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for n, m := range r.modules {
		if !m.loading {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// SetModuleLatency makes module.load and module.remove of name take d.
func (r *Rank) SetModuleLatency(name string, d time.Duration) {
	r.mu.Lock()
	r.latency[name] = d
	r.mu.Unlock()
}

// FailModule makes loads of name fail with err; nil clears the failure.
func (r *Rank) FailModule(name string, err error) {
	r.mu.Lock()
	if err == nil {
		delete(r.fail, name)
	} else {
		r.fail[name] = err
	}
	r.mu.Unlock()
}

// ModuleLog returns the module operations completed on the rank, in order of
// completion.
func (r *Rank) ModuleLog() []ModuleOp {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]ModuleOp(nil), r.log...)
}

// provider returns the handle serving service on this rank.
func (r *Rank) provider(service string) *Handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.services[service]
}

func (r *Rank) addService(service string, h *Handle) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.services[service]; ok && p != h {
		return fluxkit.Errorf(fluxkit.EEXIST, "service %s is already registered on rank %d", service, r.id)
	}
	r.services[service] = h
	return nil
}

func (r *Rank) removeService(service string, h *Handle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.services[service] == h {
		delete(r.services, service)
	}
}
