package curve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	side
	cfg ClientConfig
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
	cl := &Client{cfg: cfg}
	cl.init(t, "c", cl, cfg.Logger, cfg.HandshakeTimeout, cfg.MaxFrameSize)
	return cl, nil
}

// Endpoint maps a "tcp://host:port" URI to this client's endpoint, for the
// socket's Dial.
func (cl *Client) Endpoint(uri string) (string, error) {
	return cl.t.endpoint(cl.id, uri)
}

// Peers returns the servers of all established connections.
func (cl *Client) Peers() []Peer { return cl.peers() }

// Close unregisters the client and closes its connections.
func (cl *Client) Close() error {
	cs, _ := cl.shut(nil)
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
	if !cl.track(c) {
		raw.Close()
		return nil, fmt.Errorf("curve: client closed: %w", net.ErrClosed)
	}
	c.watch(ctx)
	return c, nil
}
