package flub

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
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

// Defaults of the timing knobs shared by Config and JoinConfig.
const (
	DefaultLease            = 60 * time.Second
	DefaultHeartbeat        = time.Second
	DefaultTorpidMax        = 30 * time.Second
	DefaultParentTimeout    = 30 * time.Second
	DefaultReconnectTimeout = 10 * time.Second
	DefaultTCPUserTimeout   = 20 * time.Second
	DefaultSendTimeout      = 5 * time.Second
	DefaultBindHost         = "127.0.0.1"
)

// Reconnection backoff: libzmq's ZMQ_RECONNECT_IVL to start with, doubled
// up to a ceiling.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 2 * time.Second
)

// params is everything a broker needs, whichever way it was booted.
type params struct {
	rank, size       uint32
	topo             Topology
	keys             curve.KeyPair // the server keys, and the first client keys
	hostname         string
	attrs            map[string]string
	bindHost         string
	heartbeat        time.Duration
	torpidMax        time.Duration
	handshakeTimeout time.Duration
	tcpUserTimeout   time.Duration
	transport        *curve.Transport
	log              *slog.Logger
	now              func() time.Time
	version          uint32

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

	// every rank: built-in services (builtin.go, module.go)
	env           map[string]string
	modules       map[string]ModuleFunc
	moduleTimeout time.Duration

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

// child is the parent's record of one child rank.
type child struct {
	rank     uint32
	uuid     string    // routing id of its current connection
	key      curve.Key // the key that connection authenticated with
	host     string
	status   Status
	lastSeen time.Time
	online   bool
	lost     bool
	torpid   bool
	pending  inflight // requests forwarded to it
}

// waiter is a streaming groups.get on rank 0.
type waiter struct {
	req   *fluxkit.Message
	group string
	until int64 // -1: every change
}

// uplink is one connection to the parent: a DEALER with its own routing
// id, the CURVE client under it, and the goroutines that read and write
// it. A broker that loses its parent builds a new uplink rather than
// reviving the old one (zmq4 does not reconnect).
type uplink struct {
	id        string // DEALER routing id: the uuid of this connection
	keys      curve.KeyPair
	parentKey curve.Key
	parentURI string
	cl        *curve.Client
	sock      zmq4.Socket
	out       *queue[[][]byte]
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	gone      int // ticks seen without a connection
}

func (u *uplink) close() {
	u.closeOnce.Do(func() {
		u.cancel()
		_ = u.sock.Close()
		_ = u.cl.Close()
	})
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

func (b *Broker) openSockets() error {
	if b.p.topo.HasChildren(b.rank, b.size) {
		srv, err := b.p.transport.NewServer(curve.ServerConfig{Keys: b.p.keys, Authorizer: b.keystore.authorizer,
			Logger: b.log, HandshakeTimeout: b.p.handshakeTimeout, TCPUserTimeout: b.p.tcpUserTimeout})
		if err != nil {
			return fmt.Errorf("overlay: %w", err)
		}
		b.srv = srv
		ep, err := srv.Endpoint("tcp://" + net.JoinHostPort(b.p.bindHost, "0"))
		if err != nil {
			return fmt.Errorf("overlay: bind: %w", err)
		}
		b.router = zmq4.NewRouter(b.ctx, zmq4.WithTimeout(DefaultSendTimeout))
		if err := b.router.Listen(ep); err != nil {
			return fmt.Errorf("overlay: bind %s: %w", b.p.bindHost, err)
		}
		b.endpoint = "tcp://" + b.router.Addr().String()
		b.writers[b.router] = newQueue[[][]byte]()
		b.spawn(func() { b.readSocket(b.router, b.fromChild) })
	}
	if b.rank == 0 {
		auth := func(_ context.Context, req curve.AuthRequest) curve.Decision {
			if req.Key == b.p.owner {
				return curve.Decision{Verdict: curve.Allow, UserID: "owner"}
			}
			if _, ok := b.p.guests[req.Key]; ok {
				return curve.Decision{Verdict: curve.Allow, UserID: "guest"}
			}
			return curve.Decision{Verdict: curve.Deny, Reason: "No access"}
		}
		srv, err := b.p.transport.NewServer(curve.ServerConfig{Keys: b.p.keys, Authorizer: auth,
			Logger: b.log, HandshakeTimeout: b.p.handshakeTimeout, TCPUserTimeout: b.p.tcpUserTimeout})
		if err != nil {
			return fmt.Errorf("boot server: %w", err)
		}
		b.bootSrv = srv
		ep, err := srv.Endpoint("tcp://" + net.JoinHostPort(b.p.bindHost, "0"))
		if err != nil {
			return fmt.Errorf("boot server: %w", err)
		}
		b.boot = zmq4.NewRouter(b.ctx, zmq4.WithTimeout(DefaultSendTimeout))
		if err := b.boot.Listen(ep); err != nil {
			return fmt.Errorf("boot server: listen: %w", err)
		}
		b.bootURI = FormatBootURI(b.boot.Addr().String(), b.p.keys.Public)
		b.writers[b.boot] = newQueue[[][]byte]()
		b.spawn(func() { b.readSocket(b.boot, b.fromBoot) })
	}
	return nil
}

// dialUplink connects a new DEALER, with a routing id of its own, to the
// parent at uri holding key, authenticating with keys. It blocks until the
// CURVE handshake is done, ctx ends, or HandshakeTimeout passes; it never
// runs on the loop.
func (b *Broker) dialUplink(ctx context.Context, uri string, key curve.Key, keys curve.KeyPair) (*uplink, error) {
	cl, err := b.p.transport.NewClient(curve.ClientConfig{Keys: keys, ServerKey: key, Logger: b.log,
		HandshakeTimeout: b.p.handshakeTimeout, TCPUserTimeout: b.p.tcpUserTimeout})
	if err != nil {
		return nil, fmt.Errorf("overlay: %w", err)
	}
	ep, err := cl.Endpoint(uri)
	if err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("overlay: parent uri: %w", err)
	}
	uctx, cancel := context.WithCancel(b.ctx)
	u := &uplink{id: newUUID(), keys: keys, parentKey: key, parentURI: uri, cl: cl, out: newQueue[[][]byte](), ctx: uctx, cancel: cancel}
	// Retries are the caller's (reconnect backs off); zmq4's own would
	// hide how long the attempt took.
	u.sock = zmq4.NewDealer(uctx, zmq4.WithID(zmq4.SocketIdentity(u.id)),
		zmq4.WithTimeout(DefaultSendTimeout), zmq4.WithDialerMaxRetries(0),
		zmq4.WithDialerTimeout(b.p.handshakeTimeout))
	if err := dial(ctx, cancel, u.sock, ep); err != nil {
		u.close()
		return nil, fmt.Errorf("overlay: connect to parent %s: %w", uri, err)
	}
	return u, nil
}

// attach makes u the parent connection and says hello on it; again marks
// a hello after a reconnection or a rejoin.
func (b *Broker) attach(u *uplink, again bool) {
	if b.ctx.Err() != nil {
		u.close()
		return
	}
	b.up, b.helloOK, b.restoring = u, false, false
	b.uuid.Store(&u.id)
	b.p.parentKey, b.p.parentURI = u.parentKey, u.parentURI
	b.lastUp = b.p.now()
	reader := b.spawn(func() {
		defer u.close()
		for {
			msg, err := u.sock.Recv()
			if err != nil {
				return
			}
			b.msgs.Add(1)
			frames := msg.Frames
			if !b.post(func() {
				if b.up == u {
					b.fromParent(frames)
				}
			}) {
				return
			}
		}
	})
	writer := b.spawn(func() {
		for {
			frames, ok, _ := u.out.pop(u.ctx, nil)
			if !ok {
				return
			}
			if err := u.sock.Send(zmq4.NewMsgFrom(frames...)); err != nil && u.ctx.Err() == nil {
				b.log.Debug("overlay send to parent", "err", err)
			}
		}
	})
	if !reader || !writer {
		u.close()
		return
	}
	b.sendHello(again)
}

// detach drops the parent connection.
func (b *Broker) detach() {
	if b.up != nil {
		b.up.close()
		b.up = nil
	}
	b.helloOK = false
	b.parentUUID = ""
	b.failInflight(b.upPending, fmt.Sprintf("rank %d lost its connection to its parent rank %d", b.rank, b.Parent()))
}

// closeSockets closes the ROUTERs; an uplink closes itself when the
// broker's context ends.
func (b *Broker) closeSockets() {
	for _, s := range []zmq4.Socket{b.router, b.boot} {
		if s != nil {
			_ = s.Close()
		}
	}
	for _, s := range []*curve.Server{b.srv, b.bootSrv} {
		if s != nil {
			_ = s.Close()
		}
	}
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

func (b *Broker) readSocket(s zmq4.Socket, handle func([][]byte)) {
	for {
		msg, err := s.Recv()
		if err != nil {
			if b.ctx.Err() == nil {
				b.log.Debug("overlay recv", "err", err)
			}
			return
		}
		b.msgs.Add(1)
		frames := msg.Frames
		if !b.post(func() { handle(frames) }) {
			return
		}
	}
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
// socket it started. Use Leave for a clean exit.
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

// Leave removes every module (they may still need the overlay while they
// stop), says overlay.goodbye to the parent, waits for its answer (bounded
// by ctx), then closes the broker.
func (b *Broker) Leave(ctx context.Context) error {
	defer b.Close()
	b.stopModules()
	if b.rank == 0 {
		return nil
	}
	call, err := b.Request(ctx, &fluxkit.Message{Type: fluxkit.TypeRequest, Topic: TopicGoodbye, Nodeid: uint32(b.Parent()), Payload: []byte("{}")})
	if err != nil {
		return err
	}
	defer call.Close()
	_, err = call.Recv(ctx)
	return err
}

func (b *Broker) newConn(cred fluxkit.Cred) *Conn {
	ctx, cancel := context.WithCancel(b.ctx)
	return &Conn{b: b, id: newUUID(), cred: cred, ctx: ctx, cancel: cancel, work: newQueue[func()]()}
}

// Connect opens a client connection to this broker with cred.
func (b *Broker) Connect(cred fluxkit.Cred) (*Conn, error) {
	c := b.newConn(cred)
	errc := make(chan struct{})
	if !b.post(func() { b.clients[c.id] = c; close(errc) }) {
		return nil, errClosed
	}
	select {
	case <-errc:
		return c, nil
	case <-b.ctx.Done():
		return nil, errClosed
	}
}

var _ fluxkit.Handle = (*Broker)(nil)

// Rank is this broker's rank.
func (b *Broker) Rank() uint32 { return b.rank }

// Size is the instance size.
func (b *Broker) Size() uint32 { return b.size }

// Cred is the credential of the broker's own connection (owner, local).
func (b *Broker) Cred() fluxkit.Cred { return b.self.cred }

// Request sends a request as the instance owner.
func (b *Broker) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	return b.self.Request(ctx, req)
}

// Register serves a topic on the broker's own connection.
func (b *Broker) Register(topic string, allow fluxkit.Role, h fluxkit.HandlerFunc) (func(), error) {
	return b.self.Register(topic, allow, h)
}

// Publish publishes an event as the instance owner.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, flags fluxkit.MsgFlags) error {
	return b.self.Publish(ctx, topic, payload, flags)
}

// Subscribe subscribes the broker's own connection to events.
func (b *Broker) Subscribe(ctx context.Context, prefix string) (fluxkit.Subscription, error) {
	return b.self.Subscribe(ctx, prefix)
}

// UUID is the broker's identity on the overlay: the routing id of its
// current connection to its parent (a new one after each reconnection).
func (b *Broker) UUID() string { return *b.uuid.Load() }

// Endpoint is the concrete URI the broker is bound to for its children
// (tbon.endpoint), or "" for a leaf.
func (b *Broker) Endpoint() string { return b.endpoint }

// PublicKey is the broker's CURVE public key.
func (b *Broker) PublicKey() curve.Key { return b.p.keys.Public }

// Parent is the parent rank, or -1 for rank 0.
func (b *Broker) Parent() int64 { return b.p.topo.Parent(b.rank) }

// Topology is the broker's topology.
func (b *Broker) Topology() Topology { return b.p.topo }

// Status is the broker's subtree status; on rank 0 the overlay status.
func (b *Broker) Status() Status { return Status(b.statusVal.Load()) }

// BootURI is the boot server's URI (rank 0 only, "" elsewhere).
func (b *Broker) BootURI() string { return b.bootURI }

// Attr returns a broker attribute: rank, size, tbon.endpoint, tbon.topo,
// hostlist (rank 0: the live instance hostlist), instance-level and
// whatever the broker was configured or joined with.
func (b *Broker) Attr(name string) (string, bool) {
	switch name {
	case "rank":
		return strconv.FormatUint(uint64(b.rank), 10), true
	case "size":
		return strconv.FormatUint(uint64(b.size), 10), true
	case "tbon.endpoint":
		return b.endpoint, true
	case "tbon.topo":
		return b.p.topo.String(), true
	case "hostlist":
		if b.rank == 0 {
			return b.Hostlist(), true
		}
	}
	b.attrMu.RLock()
	defer b.attrMu.RUnlock()
	v, ok := b.p.attrs[name]
	return v, ok
}

// InstanceConfig is the instance configuration: rank 0's Config.
// InstanceConfig, or what getinfo delivered to a joiner (nil when the boot
// server sent none, as a flux-core server does).
func (b *Broker) InstanceConfig() json.RawMessage { return b.p.config }

// Hostlist is rank 0's instance hostlist, placeholders replaced by the
// hostnames of joined brokers.
func (b *Broker) Hostlist() string {
	if b.rank != 0 {
		v, _ := b.Attr("hostlist")
		return v
	}
	s, _ := ask(b, b.currentHostlist)
	return s
}

// Online is rank 0's broker.online group (empty on other ranks).
func (b *Broker) Online() idset.Set {
	if b.rank != 0 {
		return idset.Set{}
	}
	if p := b.onlineSet.Load(); p != nil {
		return *p
	}
	s, _ := ask(b, b.onlineIDs)
	return s
}

// Torpid is rank 0's broker.torpid group: ranks whose parent has not heard
// from them for TorpidMax, though they are still online (empty on other
// ranks).
func (b *Broker) Torpid() idset.Set {
	if b.rank != 0 {
		return idset.Set{}
	}
	s, _ := ask(b, func() idset.Set { return b.torpid.ids() })
	return s
}

// RankInfo is one line of rank 0's overlay status.
type RankInfo struct {
	Rank     uint32
	Hostname string // the placeholder extra<rank> until a joiner replaced it
	Online   bool
	Torpid   bool
	State    RankState // the rank pool's view
}

// rankInfo builds r's line; loop only.
func (b *Broker) rankInfo(r uint32) RankInfo {
	st := Online
	if r != 0 {
		st = b.p.pool.State(r)
	}
	return RankInfo{Rank: r, Hostname: b.hostOf(r), Online: r == 0 || b.below.has(r), Torpid: b.torpid.has(r), State: st}
}

// Lookup is rank 0's view of rank r; false on other ranks or when r is
// not a rank of the instance.
func (b *Broker) Lookup(r uint32) (RankInfo, bool) {
	if b.rank != 0 || r >= b.size {
		return RankInfo{}, false
	}
	return ask(b, func() RankInfo { return b.rankInfo(r) })
}

// Ranks is rank 0's view of every rank that is or was in use: online,
// torpid, leased, orphaned, or named by a joiner; in ascending order, and
// nil on other ranks. The other ranks are offline placeholders (see
// Lookup); listing them would cost the size, not the ranks in use.
func (b *Broker) Ranks() []RankInfo {
	if b.rank != 0 {
		return nil
	}
	rs, _ := ask(b, func() []RankInfo {
		seen := rankSet{0: {}}
		for r := range b.below {
			seen[r] = struct{}{}
		}
		for r := range b.hosts {
			seen[r] = struct{}{}
		}
		b.p.pool.Each(func(r uint32, _ RankState) { seen[r] = struct{}{} })
		rs := make([]RankInfo, 0, len(seen))
		for _, r := range seen.sorted() {
			rs = append(rs, b.rankInfo(r))
		}
		return rs
	})
	return rs
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

// Messages counts the overlay messages this broker sent or received on its
// sockets.
func (b *Broker) Messages() uint64 { return b.msgs.Load() }

// Disconnect forces child rank r offline, as `flux overlay disconnect`:
// the child is sent DISCONNECT and marked lost. ENOENT when r is not an
// online child of this broker.
func (b *Broker) Disconnect(ctx context.Context, r uint32) error {
	errc := make(chan error, 1)
	if !b.post(func() {
		c := b.children[r]
		if c == nil || !c.online {
			errc <- fluxkit.Errorf(fluxkit.ENOENT, "rank %d is not an online child of rank %d", r, b.rank)
			return
		}
		b.loseChild(c, "disconnected")
		errc <- nil
	}) {
		return errClosed
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return errClosed
	}
}
