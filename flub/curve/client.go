package curve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/go-zeromq/zmq4/transport"
)

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

// Validate reports the first field of c that is out of range, naming it.
// It changes nothing; NewClient calls it.
func (c *ClientConfig) Validate() error {
	if err := checkEnd("ClientConfig", c.Keys, c.HandshakeTimeout, c.MaxFrameSize, c.TCPUserTimeout); err != nil {
		return err
	}
	if c.ServerKey.IsZero() {
		return errors.New("curve: ClientConfig.ServerKey: the server's public key is required")
	}
	return nil
}

// NewClient registers a CURVE client configuration. It calls cfg.Validate
// and refuses what that refuses.
func (t *Transport) NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout, maxFrame := limits(cfg.HandshakeTimeout, cfg.MaxFrameSize)
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
