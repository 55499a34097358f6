package flub

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/go-zeromq/zmq4"
)

// sendTimeout bounds a zmq4 send on an overlay socket, so that a peer
// that stopped reading holds up its writer for that long at most.
const sendTimeout = 5 * time.Second

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

// openSockets binds the overlay ROUTER of a broker with children and rank
// 0's boot server.
func (b *Broker) openSockets() error {
	var err error
	if b.p.topo.HasChildren(b.rank, b.size) {
		b.router, b.srv, err = b.bindRouter("overlay", b.keystore.authorizer, b.fromChild)
		if err != nil {
			return err
		}
		b.endpoint = "tcp://" + b.router.Addr().String()
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
		b.boot, b.bootSrv, err = b.bindRouter("boot server", auth, b.fromBoot)
		if err != nil {
			return err
		}
		b.bootURI = FormatBootURI(b.boot.Addr().String(), b.p.keys.Public)
	}
	return nil
}

// bindRouter binds a ROUTER on BindHost, at a port of the system's
// choosing, behind a CURVE server that asks auth about each client key,
// and starts its reader, which hands what arrives to handle; what names it
// in errors. What it made before an error is returned with the error, for
// closeSockets.
func (b *Broker) bindRouter(what string, auth curve.Authorizer, handle func([][]byte)) (zmq4.Socket, *curve.Server, error) {
	srv, err := b.p.transport.NewServer(curve.ServerConfig{Keys: b.p.keys, Authorizer: auth,
		Logger: b.log, HandshakeTimeout: b.p.handshakeTimeout, TCPUserTimeout: b.p.tcpUserTimeout})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	ep, err := srv.Endpoint("tcp://" + net.JoinHostPort(b.p.bindHost, "0"))
	if err != nil {
		return nil, srv, fmt.Errorf("%s: bind: %w", what, err)
	}
	s := zmq4.NewRouter(b.ctx, zmq4.WithTimeout(sendTimeout))
	if err := s.Listen(ep); err != nil {
		return s, srv, fmt.Errorf("%s: bind %s: %w", what, b.p.bindHost, err)
	}
	b.writers[s] = newQueue[[][]byte]()
	b.spawn(func() { b.readSocket(s, handle) })
	return s, srv, nil
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
		zmq4.WithTimeout(sendTimeout), zmq4.WithDialerMaxRetries(0),
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

// sendTo queues m for socket s (with routing id id on a ROUTER). Each
// socket has its own writer goroutine, so a peer that stops reading holds
// up that socket's writes, never the loop.
func (b *Broker) sendTo(s zmq4.Socket, id string, m *fluxkit.Message) {
	frames := m.Frames()
	if id != "" {
		frames = append([][]byte{[]byte(id)}, frames...)
	}
	if q := b.writers[s]; q != nil && q.push(frames) {
		b.msgs.Add(1)
	}
}

// writer sends what sendTo queued for s until the broker stops.
func (b *Broker) writer(s zmq4.Socket, q *queue[[][]byte]) {
	for {
		frames, ok, _ := q.pop(b.ctx, nil)
		if !ok {
			return
		}
		if err := s.Send(zmq4.NewMsgFrom(frames...)); err != nil && b.ctx.Err() == nil {
			b.log.Debug("overlay send", "err", err)
		}
	}
}

// dial connects s to ep, or gives up when ctx ends (cancel, which ends
// s's context, aborts the attempt). A CURVE failure comes back without
// the layers zmq4 wraps around it: "server key mismatch", "client key not
// authorized", "handshake timed out after ...".
func dial(ctx context.Context, cancel context.CancelFunc, s zmq4.Socket, ep string) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Dial(ep) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		cancel()
		<-errc
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		var hs *curve.HandshakeError
		var re *curve.RefusedError
		if errors.As(err, &hs) || errors.As(err, &re) {
			return dialError{curve.Failure(err), err}
		}
	}
	return err
}

// dialError shows a CURVE failure alone while keeping zmq4's whole chain
// for errors.Is and errors.As.
type dialError struct {
	shown, full error
}

func (e dialError) Error() string { return strings.TrimPrefix(e.shown.Error(), "curve: ") }

func (e dialError) Unwrap() error { return e.full }
