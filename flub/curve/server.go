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
	"slices"
	"time"
)

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

// Server holds the CURVE server configuration of one listening socket and
// tracks its connections. Use one Server per zmq4 socket: routing ids are
// unique per Server.
type Server struct {
	side
	cfg ServerConfig

	// guarded by side.mu
	listeners map[*listener]struct{}
	byID      map[string]*conn // routing id → conn, reserved at INITIATE
	nextID    uint32
}

// Validate reports the first field of c that is out of range, naming it.
// It changes nothing; NewServer calls it.
func (c *ServerConfig) Validate() error {
	if err := checkEnd("ServerConfig", c.Keys, c.HandshakeTimeout, c.MaxFrameSize, c.TCPUserTimeout); err != nil {
		return err
	}
	if c.Authorizer == nil && !c.AllowAnyClient {
		return errors.New("curve: ServerConfig.Authorizer: required unless AllowAnyClient is set")
	}
	return nil
}

// NewServer registers a CURVE server configuration. It calls cfg.Validate
// and refuses what that refuses.
func (t *Transport) NewServer(cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	var seed [4]byte
	if _, err := rand.Read(seed[:]); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		listeners: map[*listener]struct{}{},
		byID:      map[string]*conn{},
		nextID:    binary.BigEndian.Uint32(seed[:]),
	}
	s.init(t, "s", s, cfg.Logger, cfg.HandshakeTimeout, cfg.MaxFrameSize)
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
func (s *Server) Peers() []Peer { return s.peers() }

// Close unregisters the server, stops its listeners' accepting and pending
// handshakes, closes its connections, and waits for its goroutines. Closing
// the zmq4 socket first is the usual order; Close is then a formality.
func (s *Server) Close() error {
	var ls []*listener
	cs, first := s.shut(func() { ls = slices.Collect(maps.Keys(s.listeners)) })
	if !first {
		return nil
	}
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
