package curve

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/go-zeromq/zmq4/transport"
)

// Defaults for zero config fields.
const (
	DefaultHandshakeTimeout = 30 * time.Second // libzmq's ZMQ_HANDSHAKE_IVL
	DefaultMaxFrameSize     = 256 << 20
	DefaultDomain           = "flux"
)

// Transport is a zmq4 transport whose connections speak ZMTP-CURVE over TCP
// while the zmq4 socket above runs its ordinary NULL mechanism. Each socket
// gets its keys from a Server or Client created here; their Endpoint method
// turns a "tcp://host:port" URI into this transport's scheme, naming the
// configuration in the address, since zmq4 hands a transport nothing but
// the address.
type Transport struct {
	scheme string

	mu   sync.Mutex
	seq  uint64
	ends map[string]any // *Server or *Client by endpoint id
}

// NewTransport creates a Transport and registers it with zmq4 under scheme.
// zmq4's registry is process-wide and cannot forget a name, so a program
// creates one Transport per scheme, once, and shares it between sockets.
func NewTransport(scheme string) (*Transport, error) {
	if scheme == "" || strings.ContainsAny(scheme, ":/@") {
		return nil, fmt.Errorf("curve: invalid transport scheme %q", scheme)
	}
	t := &Transport{scheme: scheme, ends: map[string]any{}}
	if err := zmq4.RegisterTransport(scheme, t); err != nil {
		return nil, fmt.Errorf("curve: register transport: %w", err)
	}
	return t, nil
}

// Scheme returns the URI scheme the transport is registered under.
func (t *Transport) Scheme() string { return t.scheme }

func (t *Transport) add(prefix string, end any) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	id := fmt.Sprintf("%s%d", prefix, t.seq)
	t.ends[id] = end
	return id
}

func (t *Transport) remove(id string) {
	t.mu.Lock()
	delete(t.ends, id)
	t.mu.Unlock()
}

func (t *Transport) lookup(addr string) (any, string, error) {
	id, hostport, ok := strings.Cut(addr, "@")
	if !ok {
		return nil, "", fmt.Errorf("curve: address %q lacks an endpoint id; build it with Server.Endpoint or Client.Endpoint", addr)
	}
	t.mu.Lock()
	end, ok := t.ends[id]
	t.mu.Unlock()
	if !ok {
		return nil, "", fmt.Errorf("curve: endpoint %q is unknown or closed: %w", id, net.ErrClosed)
	}
	return end, hostport, nil
}

// Addr normalises "id@host:port" as zmq4's tcp transport does ("*" host
// means all interfaces, "*" port means any). It is part of
// transport.Transport, called by zmq4.
func (t *Transport) Addr(ep string) (string, error) {
	id, hostport, ok := strings.Cut(ep, "@")
	if !ok || id == "" {
		return "", fmt.Errorf("curve: endpoint %q lacks an endpoint id", ep)
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("curve: endpoint %q: %w", ep, err)
	}
	if host == "" || host == "*" {
		host = "0.0.0.0"
	}
	if port == "" || port == "*" {
		port = "0"
	}
	return id + "@" + net.JoinHostPort(host, port), nil
}

// Dial is part of transport.Transport, called by zmq4's Dial. It connects
// over TCP; the CURVE handshake then runs inside zmq4's connection setup,
// once zmq4 has told the conn its socket type and identity, so a failed
// handshake is returned by the socket's Dial.
func (t *Transport) Dial(ctx context.Context, d transport.Dialer, addr string) (net.Conn, error) {
	end, hostport, err := t.lookup(addr)
	if err != nil {
		return nil, err
	}
	cl, ok := end.(*Client)
	if !ok {
		return nil, fmt.Errorf("curve: endpoint %q belongs to a Server; dial with a Client endpoint", addr)
	}
	return cl.dial(ctx, d, hostport)
}

// Listen is part of transport.Transport, called by zmq4's Listen.
func (t *Transport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	end, hostport, err := t.lookup(addr)
	if err != nil {
		return nil, err
	}
	srv, ok := end.(*Server)
	if !ok {
		return nil, fmt.Errorf("curve: endpoint %q belongs to a Client; listen with a Server endpoint", addr)
	}
	return srv.listen(ctx, hostport)
}

func (t *Transport) endpoint(id, uri string) (string, error) {
	hostport, ok := strings.CutPrefix(uri, "tcp://")
	if !ok {
		return "", fmt.Errorf("curve: endpoint %q is not a tcp:// URI", uri)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return "", fmt.Errorf("curve: endpoint %q: %w", uri, err)
	}
	return t.scheme + "://" + id + "@" + hostport, nil
}

// Peer describes the authenticated peer of one connection.
type Peer struct {
	// Key is the peer's permanent public key: on the server, the client
	// key proven by the vouch; on the client, the configured server key,
	// proven because only its secret could open HELLO and seal WELCOME.
	Key Key
	// UserID is the authorizer's user id (server side only).
	UserID string
	// RoutingID is the identity zmq4 uses for the peer. On a ROUTER it is
	// the first frame of every message from this peer: the client's
	// Identity, or a libzmq-style generated id (0x00 and 4 bytes) when the
	// client sent none.
	RoutingID []byte
	// SocketType is the peer's Socket-Type metadata.
	SocketType string
	// Metadata is the peer's full metadata, names as sent.
	Metadata   map[string]string
	LocalAddr  net.Addr
	RemoteAddr net.Addr
	// UserTimeout is the connection's TCP user timeout, zero for the
	// system's default (see ServerConfig.TCPUserTimeout).
	UserTimeout time.Duration
}

func (p Peer) clone() Peer {
	p.RoutingID = append([]byte(nil), p.RoutingID...)
	p.Metadata = maps.Clone(p.Metadata)
	return p
}

// ServerConfig configures the CURVE server side of a socket (ZMQ_CURVE_SERVER).
type ServerConfig struct {
	// Keys is the server's permanent key pair.
	Keys KeyPair
	// Authorizer decides on each client key. Required unless
	// AllowAnyClient is set.
	Authorizer Authorizer
	// AllowAnyClient accepts every client key with an empty user id, as
	// libzmq does when no ZAP handler runs. It is an explicit opt-in.
	AllowAnyClient bool
	// Domain is passed to the Authorizer (ZAP domain); default "flux".
	Domain string
	// HandshakeTimeout bounds each handshake; default 30 s.
	HandshakeTimeout time.Duration
	// MaxFrameSize bounds a received frame; default 256 MiB.
	MaxFrameSize int64
	// TCPUserTimeout bounds how long data sent on a connection may stay
	// unacknowledged before the kernel drops it (Linux TCP_USER_TIMEOUT,
	// libzmq's ZMQ_TCP_MAXRT): how a dead peer host is told from a quiet
	// one. Zero keeps the system's default.
	TCPUserTimeout time.Duration
	// Logger receives debug and info records; nil discards them.
	Logger *slog.Logger
}

// ClientConfig configures the CURVE client side of a socket.
type ClientConfig struct {
	// Keys is the client's permanent key pair.
	Keys KeyPair
	// ServerKey is the server's permanent public key (ZMQ_CURVE_SERVERKEY).
	ServerKey Key
	// HandshakeTimeout bounds each handshake; default 30 s.
	HandshakeTimeout time.Duration
	// MaxFrameSize bounds a received frame; default 256 MiB.
	MaxFrameSize int64
	// TCPUserTimeout as in ServerConfig.
	TCPUserTimeout time.Duration
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

func limits(timeout time.Duration, maxFrame int64) (time.Duration, uint64, error) {
	if timeout < 0 || maxFrame < 0 {
		return 0, 0, errors.New("curve: negative timeout or frame size")
	}
	if timeout == 0 {
		timeout = DefaultHandshakeTimeout
	}
	if maxFrame == 0 {
		maxFrame = DefaultMaxFrameSize
	}
	if maxFrame < messageMinLen {
		return 0, 0, fmt.Errorf("curve: MaxFrameSize %d is below the %d-byte MESSAGE minimum", maxFrame, messageMinLen)
	}
	return timeout, uint64(maxFrame), nil
}

// Server holds the CURVE server configuration of one listening socket and
// tracks its connections. Use one Server per zmq4 socket: routing ids are
// unique per Server.
type Server struct {
	t        *Transport
	id       string
	cfg      ServerConfig
	log      *slog.Logger
	timeout  time.Duration
	maxFrame uint64

	mu        sync.Mutex
	closed    bool
	listeners map[*listener]struct{}
	conns     map[*conn]struct{}
	byID      map[string]*conn // routing id → conn, reserved at INITIATE
	nextID    uint32
}

// NewServer registers a CURVE server configuration.
func (t *Transport) NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Keys.check(); err != nil {
		return nil, err
	}
	if cfg.Authorizer == nil && !cfg.AllowAnyClient {
		return nil, errors.New("curve: ServerConfig needs an Authorizer or AllowAnyClient")
	}
	if cfg.TCPUserTimeout < 0 {
		return nil, errors.New("curve: negative TCPUserTimeout")
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	timeout, maxFrame, err := limits(cfg.HandshakeTimeout, cfg.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	var seed [4]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	s := &Server{
		t:         t,
		cfg:       cfg,
		log:       orDiscard(cfg.Logger),
		timeout:   timeout,
		maxFrame:  maxFrame,
		listeners: map[*listener]struct{}{},
		conns:     map[*conn]struct{}{},
		byID:      map[string]*conn{},
		nextID:    binary.BigEndian.Uint32(seed[:]),
	}
	s.id = t.add("s", s)
	return s, nil
}

// Endpoint maps a "tcp://host:port" URI to this server's endpoint, for the
// socket's Listen. Port 0 or "*" picks a free port; the socket's Addr
// reports it.
func (s *Server) Endpoint(uri string) (string, error) {
	return s.t.endpoint(s.id, uri)
}

// Peer returns the peer whose routing id is id, as a ROUTER reports it in
// the first frame of each message, while its connection is open.
func (s *Server) Peer(routingID []byte) (Peer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.byID[string(routingID)]
	if !ok || !c.ready.Load() {
		return Peer{}, false
	}
	return c.peer.clone(), true
}

// Peers returns the peers of all established connections.
func (s *Server) Peers() []Peer {
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

// Close unregisters the server, stops its listeners' accepting and pending
// handshakes, closes its connections, and waits for its goroutines. Closing
// the zmq4 socket first is the usual order; Close is then a formality.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	ls := make([]*listener, 0, len(s.listeners))
	for l := range s.listeners {
		ls = append(ls, l)
	}
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	s.t.remove(s.id)
	for _, l := range ls {
		l.stop()
	}
	for _, c := range cs {
		c.Close()
	}
	return nil
}

func (s *Server) released(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if rid := string(c.peer.RoutingID); rid != "" && s.byID[rid] == c {
		delete(s.byID, rid)
	}
}

func (s *Server) track(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// reserve claims the routing id for c and records its peer, under mu
// because released may read it concurrently when the Server closes.
// libzmq's ROUTER refuses a second connection with an identity already in
// use, and so does this.
func (s *Server) reserve(c *conn, identity string, peer Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if identity == "" {
		for {
			s.nextID++
			var id [5]byte
			binary.BigEndian.PutUint32(id[1:], s.nextID)
			if _, used := s.byID[string(id[:])]; !used {
				identity = string(id[:])
				break
			}
		}
	} else if _, used := s.byID[identity]; used {
		return handshakeErr("identity %q already connected", identity)
	}
	s.byID[identity] = c
	peer.RoutingID = []byte(identity)
	c.peer = peer
	return nil
}

func (s *Server) listen(ctx context.Context, hostport string) (net.Listener, error) {
	var lc net.ListenConfig
	tl, err := lc.Listen(ctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	l := newListener(s, tl)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		tl.Close()
		return nil, fmt.Errorf("curve: server closed: %w", net.ErrClosed)
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	l.start(ctx)
	return l, nil
}

// forget drops a closed listener and closes the connections it handed to
// zmq4 that are still open. zmq4 closes its connections before its
// listener, so these are only ones zmq4 accepted while closing and would
// otherwise never close.
func (s *Server) forget(l *listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	var orphans []*conn
	for c := range s.conns {
		if c.origin == l {
			orphans = append(orphans, c)
		}
	}
	s.mu.Unlock()
	for _, c := range orphans {
		c.Close()
	}
}

// handshake runs the server side on a fresh TCP connection, up to the
// point where zmq4 may take it.
func (s *Server) handshake(ctx context.Context, l *listener, raw net.Conn) (*conn, error) {
	c := newConn(raw, true, s, s.log, s.timeout, s.maxFrame)
	c.origin = l
	if !s.track(c) {
		raw.Close()
		return nil, net.ErrClosed
	}
	if err := setUserTimeout(raw, s.cfg.TCPUserTimeout); err != nil {
		c.Close()
		return nil, fmt.Errorf("curve: TCP user timeout: %w", err)
	}
	c.watch(ctx)
	if err := s.verify(ctx, c, newServerHandshake(nil, s.cfg.Keys)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// verify runs the wire handshake to a verified INITIATE, then the
// authorizer and the metadata checks, leaving c ready for zmq4.
func (s *Server) verify(ctx context.Context, c *conn, h *serverHandshake) error {
	key, rawMeta, err := c.serverWire(ctx, h)
	if err != nil {
		h.wipe()
		return err
	}
	dec := Decision{Verdict: Allow}
	if s.cfg.Authorizer != nil {
		dec = s.authorize(ctx, AuthRequest{Domain: s.cfg.Domain, Address: hostOf(c.raw.RemoteAddr()), Key: key})
	}
	switch dec.Verdict {
	case Allow:
	case TempFail:
		h.wipe()
		return handshakeErr("authorizer failed temporarily for %s: %s", key, dec.Reason)
	default:
		h.wipe()
		s.log.Info("curve: client denied", "key", key.String(), "remote", c.raw.RemoteAddr(), "reason", dec.Reason)
		c.sendError("400")
		return handshakeErr("client key %s denied: %s", key, dec.Reason)
	}
	md, err := parseMetadata(rawMeta)
	if err != nil {
		h.wipe()
		return handshakeErr("client metadata: %v", err)
	}
	typ, _ := md.get("Socket-Type")
	if !knownSocketType(typ) {
		h.wipe()
		return handshakeErr("client socket type %q", typ)
	}
	identity, _ := md.get("Identity")
	if len(identity) > 255 || len(identity) > 0 && identity[0] == 0 {
		h.wipe()
		return handshakeErr("client identity is reserved or too long")
	}
	peer := Peer{
		Key:         key,
		UserID:      dec.UserID,
		SocketType:  typ,
		Metadata:    md.toMap(),
		LocalAddr:   c.raw.LocalAddr(),
		RemoteAddr:  c.raw.RemoteAddr(),
		UserTimeout: userTimeout(c.raw),
	}
	if err := s.reserve(c, identity, peer); err != nil {
		h.wipe()
		return err
	}
	if err := c.unwatch(ctx); err != nil {
		h.wipe()
		return err
	}
	c.hmu.Lock()
	c.srvhs = h
	c.hmu.Unlock()
	s.log.Debug("curve: client authenticated", "key", key.String(), "remote", c.raw.RemoteAddr())
	return nil
}

// authorize calls the Authorizer. A panic in it, perhaps provoked by one
// particular client key, fails only that handshake (as a temporary failure:
// no ERROR) instead of the whole process, as net/http does for handlers.
func (s *Server) authorize(ctx context.Context, req AuthRequest) (dec Decision) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("curve: authorizer panicked", "key", req.Key.String(), "panic", fmt.Sprint(r))
			dec = Decision{Verdict: TempFail, Reason: "authorizer panicked"}
		}
	}()
	return s.cfg.Authorizer(actx, req)
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// listener finishes each CURVE handshake on its own goroutine and hands
// zmq4 only authenticated connections, so a slow or hostile client never
// holds up zmq4's accept loop.
//
// Like libzmq, it refuses no connection short of the process's descriptor
// limit: a cap on pending handshakes would let anyone who opens that many
// idle connections (from any address, the legitimate peers' own included)
// lock every peer out. Each handshake is bounded by HandshakeTimeout
// instead, and a connection waiting in its handshake costs a goroutine and
// a small buffer.
type listener struct {
	srv   *Server
	tl    net.Listener
	ready chan *conn
	done  chan struct{} // closed by Close: Accept returns

	ctx    context.Context // handshakes; cancelled by stop
	cancel context.CancelFunc
	wg     sync.WaitGroup

	stopOnce  sync.Once
	closeOnce sync.Once
	unhook    func() bool
}

func newListener(s *Server, tl net.Listener) *listener {
	ctx, cancel := context.WithCancel(context.Background())
	return &listener{
		srv:    s,
		tl:     tl,
		ready:  make(chan *conn),
		done:   make(chan struct{}),
		ctx:    ctx,
		cancel: cancel,
	}
}

func (l *listener) start(sockCtx context.Context) {
	l.wg.Add(1)
	go l.acceptLoop()
	// zmq4 closes its listener when the socket closes, but tie it to the
	// socket's context as well so nothing outlives the socket.
	l.unhook = context.AfterFunc(sockCtx, func() { l.Close() })
}

func (l *listener) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.tl.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: back off rather than spin.
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		l.wg.Add(1)
		go l.serve(raw)
	}
}

func (l *listener) serve(raw net.Conn) {
	defer l.wg.Done()
	c, err := l.srv.handshake(l.ctx, l, raw)
	if err != nil {
		l.srv.log.Debug("curve: handshake failed", "remote", raw.RemoteAddr(), "err", err)
		return
	}
	select {
	case l.ready <- c:
	case <-l.ctx.Done():
		c.Close()
	}
}

// Accept returns the next authenticated connection. After the Server is
// closed it keeps blocking until the listener itself is closed: zmq4's
// accept loop retries errors without pause while its socket lives.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// stop ends accepting and pending handshakes and waits for the goroutines.
func (l *listener) stop() {
	l.stopOnce.Do(func() {
		l.cancel()
		l.tl.Close()
	})
	l.wg.Wait()
}

// Close stops the listener and makes Accept return.
func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		if l.unhook != nil {
			l.unhook()
		}
	})
	l.stop()
	l.srv.forget(l)
	return nil
}

func (l *listener) Addr() net.Addr { return l.tl.Addr() }

// Client holds the CURVE client configuration of one connecting socket and
// tracks its connections.
type Client struct {
	t        *Transport
	id       string
	cfg      ClientConfig
	log      *slog.Logger
	timeout  time.Duration
	maxFrame uint64

	mu     sync.Mutex
	closed bool
	conns  map[*conn]struct{}
}

// NewClient registers a CURVE client configuration.
func (t *Transport) NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Keys.check(); err != nil {
		return nil, err
	}
	if cfg.ServerKey.IsZero() {
		return nil, errors.New("curve: ClientConfig needs a ServerKey")
	}
	if cfg.TCPUserTimeout < 0 {
		return nil, errors.New("curve: negative TCPUserTimeout")
	}
	timeout, maxFrame, err := limits(cfg.HandshakeTimeout, cfg.MaxFrameSize)
	if err != nil {
		return nil, err
	}
	cl := &Client{
		t:        t,
		cfg:      cfg,
		log:      orDiscard(cfg.Logger),
		timeout:  timeout,
		maxFrame: maxFrame,
		conns:    map[*conn]struct{}{},
	}
	cl.id = t.add("c", cl)
	return cl, nil
}

// Endpoint maps a "tcp://host:port" URI to this client's endpoint, for the
// socket's Dial.
func (cl *Client) Endpoint(uri string) (string, error) {
	return cl.t.endpoint(cl.id, uri)
}

// Peers returns the servers of all established connections.
func (cl *Client) Peers() []Peer {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	var out []Peer
	for c := range cl.conns {
		if c.ready.Load() {
			out = append(out, c.peer.clone())
		}
	}
	return out
}

// Close unregisters the client and closes its connections.
func (cl *Client) Close() error {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil
	}
	cl.closed = true
	cs := make([]*conn, 0, len(cl.conns))
	for c := range cl.conns {
		cs = append(cs, c)
	}
	cl.mu.Unlock()
	cl.t.remove(cl.id)
	for _, c := range cs {
		c.Close()
	}
	return nil
}

func (cl *Client) released(c *conn) {
	cl.mu.Lock()
	delete(cl.conns, c)
	cl.mu.Unlock()
}

func (cl *Client) dial(ctx context.Context, d transport.Dialer, hostport string) (net.Conn, error) {
	raw, err := d.DialContext(ctx, "tcp", hostport)
	if err != nil {
		return nil, err
	}
	if err := setUserTimeout(raw, cl.cfg.TCPUserTimeout); err != nil {
		raw.Close()
		return nil, fmt.Errorf("curve: TCP user timeout: %w", err)
	}
	c := newConn(raw, false, cl, cl.log, cl.timeout, cl.maxFrame)
	c.clientCfg = &cl.cfg
	c.hctx = ctx
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		raw.Close()
		return nil, fmt.Errorf("curve: client closed: %w", net.ErrClosed)
	}
	cl.conns[c] = struct{}{}
	cl.mu.Unlock()
	c.watch(ctx)
	return c, nil
}
