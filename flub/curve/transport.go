package curve

import (
	"bytes"
	"context"
	"fmt"
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
	cl, hostport, err := lookupAs[*Client](t, addr, "a Server; dial with a Client endpoint")
	if err != nil {
		return nil, err
	}
	return cl.dial(ctx, d, hostport)
}

// Listen is part of transport.Transport, called by zmq4's Listen.
func (t *Transport) Listen(ctx context.Context, addr string) (net.Listener, error) {
	srv, hostport, err := lookupAs[*Server](t, addr, "a Client; listen with a Server endpoint")
	if err != nil {
		return nil, err
	}
	return srv.listen(ctx, hostport)
}

// lookupAs finds the Server or Client (T) that addr names; other says
// what addr names instead, when it is the other kind.
func lookupAs[T any](t *Transport, addr, other string) (T, string, error) {
	var zero T
	end, hostport, err := t.lookup(addr)
	if err != nil {
		return zero, "", err
	}
	e, ok := end.(T)
	if !ok {
		return zero, "", fmt.Errorf("curve: endpoint %q belongs to %s", addr, other)
	}
	return e, hostport, nil
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
	p.RoutingID = bytes.Clone(p.RoutingID)
	p.Metadata = maps.Clone(p.Metadata)
	return p
}
