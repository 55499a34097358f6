package flub

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/kvs"
	"github.com/go-zeromq/zmq4"
)

// Errors a broker stops with; match with errors.Is.
var (
	// ErrParentLost: the connection to the parent went away and could not
	// be restored, by reconnecting or by rejoining through the boot server.
	ErrParentLost = errors.New("flub: lost connection to parent")
	// ErrDisconnected: the parent sent a DISCONNECT control message.
	ErrDisconnected = errors.New("flub: disconnected by parent")
	// ErrReplaced: another broker holds this broker's rank now; it was
	// handed out again while this one was cut off.
	ErrReplaced = errors.New("flub: rank held by another broker")

	errClosed = fluxkit.Errorf(fluxkit.ECONNRESET, "broker is closed")
)

// Reconnection backoff: libzmq's ZMQ_RECONNECT_IVL to start with, doubled
// up to a ceiling.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 2 * time.Second
)

// params is everything a broker needs, whichever way it was booted.
type params struct {
	knobs
	rank, size uint32
	topo       Topology
	keys       curve.KeyPair // the server keys, and the first client keys
	hostname   string
	attrs      map[string]string

	parentKey curve.Key // rank > 0: from kex
	parentURI string
	// rejoin is how a joiner gets back in when its parent is gone.
	rejoin *rejoinParams

	// rank 0 only
	pool     *Pool
	lease    time.Duration
	config   json.RawMessage
	owner    curve.Key
	ownerUID uint32
	guests   map[curve.Key]uint32

	// test hooks
	getinfoHook func(map[string]any)
	frameHook   func(id string, frames [][]byte)
}

// rejoinParams is what a joiner keeps of its JoinConfig to come back
// through the boot server.
type rejoinParams struct {
	bootURI          string
	owner            curve.KeyPair
	parentTimeout    time.Duration
	reconnectTimeout time.Duration
	// parentURI, if set, rewrites the parent URI a kex returns (tests
	// route the link through a proxy they can cut).
	parentURI func(string) string
}

// Broker is one broker of an overlay instance: rank 0 started by [Start]
// or a broker added by [Join]. It implements [fluxkit.Handle] as a local
// owner connection; [Broker.Connect] opens connections with other
// credentials.
//
// One goroutine (the loop) owns all routing state; socket readers and
// client calls hand it closures through an unbounded queue.
type Broker struct {
	p      params
	rank   uint32
	size   uint32
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	inbox  *queue[func()]
	self   *Conn
	uuid   atomic.Pointer[string] // the current uplink's id (rank 0: fixed)

	spawnMu sync.Mutex
	closing bool

	closeOnce sync.Once
	errMu     sync.Mutex
	err       error

	// attrMu guards p.attrs, which attr.set changes while Attr reads it
	// from any goroutine.
	attrMu sync.RWMutex

	// modMu guards the module table, shared by the loop (load, remove,
	// list), each module's goroutines and Close.
	modMu     sync.Mutex
	mods      map[string]*module
	modClosed bool

	msgs atomic.Uint64 // messages sent or received on sockets

	// sockets, set before the loop starts and closed after it ends
	router   zmq4.Socket
	srv      *curve.Server
	endpoint string
	boot     zmq4.Socket
	bootSrv  *curve.Server
	bootURI  string
	keystore *keyStore
	writers  map[zmq4.Socket]*queue[[][]byte]

	helloDone chan error // joiner: result of the first hello

	// loop-owned state
	handlers     map[string]*registration
	services     map[string]int   // topics registered per service
	serviceOwner map[string]*Conn // the client providing each service
	clients      map[string]*Conn
	subs         map[*subscription]struct{}
	children     map[uint32]*child
	childByUUID  map[string]*child
	up           *uplink  // rank > 0: the parent connection, nil while cut off
	upPending    inflight // requests forwarded to the parent
	joined       bool     // the first hello succeeded
	helloOK      bool     // the current uplink's hello succeeded
	restoring    bool     // a reconnect or rejoin is under way
	parentUUID   string
	lastUp       time.Time
	status       Status
	statusVal    atomic.Uint32
	seq          uint32
	bootPeers    map[string]fluxkit.Cred
	// below holds the online ranks of this broker's subtree (itself
	// excluded): on rank 0, broker.online; elsewhere what a hello after a
	// reconnection announces.
	below rankSet

	env map[string]string // broker.getenv/setenv

	// rank 0
	kvs         *kvs.Store                // rank 0's KVS
	onlineCache *idset.Set                // broker.online, rebuilt when needed
	onlineSet   atomic.Pointer[idset.Set] // the same for other goroutines
	torpid      rankSet                   // broker.torpid
	hosts       map[uint32]string         // real hostnames; others are extra<rank>
	hostlist    string
	hostsStale  bool
	pendingHost map[uint32]string
	waitAll     []*waiter
	waitFor     map[uint32][]*waiter
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Start starts rank 0 of an instance of cfg.Size ranks whose other ranks
// join later through its boot server ([Broker.BootURI]). It calls
// cfg.Validate and refuses what that refuses.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p, err := cfg.params()
	if err != nil {
		return nil, err
	}
	return newBroker(ctx, p)
}

// newBroker binds the broker's sockets, connects a joiner to its parent
// and starts the loop. A joiner's first hello result arrives on helloDone.
func newBroker(ctx context.Context, p params) (*Broker, error) {
	bctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		p: p, rank: p.rank, size: p.size, log: p.log,
		ctx: bctx, cancel: cancel, inbox: newQueue[func()](),
		handlers: map[string]*registration{}, services: map[string]int{}, serviceOwner: map[string]*Conn{},
		clients: map[string]*Conn{}, subs: map[*subscription]struct{}{},
		children: map[uint32]*child{}, childByUUID: map[string]*child{},
		bootPeers: map[string]fluxkit.Cred{}, keystore: newKeyStore(),
		writers:   map[zmq4.Socket]*queue[[][]byte]{},
		helloDone: make(chan error, 1),
		env:       p.env, mods: map[string]*module{}, below: rankSet{}, upPending: inflight{},
	}
	id := newUUID()
	b.uuid.Store(&id)
	if b.env == nil {
		b.env = map[string]string{}
	}
	b.log = b.log.With("rank", p.rank)
	if p.rank == 0 {
		b.hosts = map[uint32]string{0: p.hostname}
		b.hostsStale = true
		b.pendingHost = map[uint32]string{}
		b.torpid = rankSet{}
		b.kvs = kvs.NewStore()
		b.waitFor = map[uint32][]*waiter{}
		b.onlineChanged()
	}
	b.status = b.computeStatus()
	b.statusVal.Store(uint32(b.status))
	b.self = b.newConn(fluxkit.Cred{Userid: p.ownerUID, Roles: fluxkit.RoleOwner | fluxkit.RoleLocal})
	b.clients[b.self.id] = b.self
	if err := b.openSockets(); err != nil {
		b.closeSockets()
		cancel()
		return nil, err
	}
	for s, q := range b.writers {
		b.spawn(func() { b.writer(s, q) })
	}
	b.spawn(b.loop)
	if p.rank > 0 {
		u, err := b.dialUplink(ctx, p.parentURI, p.parentKey, p.keys)
		if err != nil {
			_ = b.Close()
			return nil, err
		}
		if !b.post(func() { b.attach(u, false) }) {
			u.close()
			_ = b.Close()
			return nil, errClosed
		}
	}
	return b, nil
}

// spawn runs f on a goroutine that Close waits for. After Close has begun
// it does nothing and reports false.
func (b *Broker) spawn(f func()) bool {
	b.spawnMu.Lock()
	defer b.spawnMu.Unlock()
	if b.closing {
		return false
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		f()
	}()
	return true
}

// post hands f to the loop. It reports false once the broker is stopping.
func (b *Broker) post(f func()) bool {
	if b.ctx.Err() != nil {
		return false
	}
	return b.inbox.push(f)
}

func (b *Broker) loop() {
	tick := b.p.heartbeat / 2
	if tick <= 0 || tick > 500*time.Millisecond {
		tick = min(500*time.Millisecond, max(tick, 10*time.Millisecond))
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			b.shutdown()
			return
		case <-b.inbox.signal:
			for _, f := range b.inbox.drain() {
				f()
			}
		case <-t.C:
			b.tick()
		}
	}
}

// shutdown runs on the loop as it ends: every waiter learns the end.
func (b *Broker) shutdown() {
	b.inbox.close()
	for _, c := range b.clients {
		c.calls.closeAll()
		c.work.close()
	}
	for s := range b.subs {
		s.q.close()
	}
	if b.up != nil {
		b.up.close()
	}
	select {
	case b.helloDone <- errClosed:
	default:
	}
}

// fail stops the broker with err (parent lost, hello refused...).
func (b *Broker) fail(err error) {
	b.errMu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.errMu.Unlock()
	b.log.Info("broker stopping", "err", err)
	b.cancel()
}

// Err returns why the broker stopped on its own, or nil.
func (b *Broker) Err() error {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return b.err
}

// Done is closed when the broker stops, on Close or on its own (see Err).
func (b *Broker) Done() <-chan struct{} { return b.ctx.Done() }

// Close removes every module (cancelling each and waiting for it to
// return, while the broker still routes their last messages), then stops
// the broker without telling its parent (a crash, as far as the parent can
// tell, once the connection drops) and waits for every goroutine and
// socket it started. Use Shutdown for a clean exit. Calling it again is
// harmless.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		b.stopModules()
		b.cancel()
		b.spawnMu.Lock()
		b.closing = true
		b.spawnMu.Unlock()
		b.closeSockets()
		b.wg.Wait()
	})
	return nil
}

// Shutdown leaves the overlay gracefully, bounded by ctx, then closes the
// broker: it removes every module (they may still need the overlay while
// they stop), says overlay.goodbye to the parent so that the rank goes
// offline rather than lost, and waits for the parent's answer. Rank 0 has
// no parent to tell; its Shutdown removes the modules and closes. The
// error is ctx's, or the parent's refusal, when the goodbye went unanswered.
func (b *Broker) Shutdown(ctx context.Context) error {
	defer b.Close()
	b.stopModules()
	if b.rank == 0 {
		return nil
	}
	return rpc(ctx, b, topicGoodbye, uint32(b.Parent()), map[string]any{}, nil)
}

// ask runs f on the loop and returns its result; ok is false once the
// broker stops.
func ask[T any](b *Broker, f func() T) (T, bool) {
	out := make(chan T, 1)
	var zero T
	if !b.post(func() { out <- f() }) {
		return zero, false
	}
	select {
	case v := <-out:
		return v, true
	case <-b.ctx.Done():
		return zero, false
	}
}
