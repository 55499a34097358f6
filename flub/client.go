package flub

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/go-zeromq/zmq4"
)

// Requester sends requests into an instance and is all a boot [Client]
// does: it serves nothing, publishes nothing and hears no events. A
// [Broker] and a [Conn] are Requesters too, as every [fluxkit.Handle] is.
type Requester interface {
	// Request sends req, as [fluxkit.Handle]'s Request does.
	Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error)
}

var (
	_ Requester = (*Client)(nil)
	_ Requester = fluxkit.Handle(nil)
)

// ClientConfig configures a boot client. BootURI and Keys are required;
// the zero value of every other field is its documented default.
type ClientConfig struct {
	// BootURI is the instance's boot server, as printed by rank 0
	// ([Broker.BootURI]).
	BootURI string
	// Keys authenticate the client: the owner's certificate, or a guest's
	// key pair (whose FLUB requests get EPERM).
	Keys curve.KeyPair
	// Transport carries CURVE. Default DefaultTransport().
	Transport *curve.Transport
	// Logger receives the CURVE client's log. Default: discard.
	Logger *slog.Logger
	// HandshakeTimeout bounds the CURVE handshake; ctx's deadline bounds
	// it too. Default 30 s (libzmq's ZMQ_HANDSHAKE_IVL).
	HandshakeTimeout time.Duration
}

// Validate reports the first field of c that is out of range, naming it.
// It changes nothing; DialBoot calls it.
func (c *ClientConfig) Validate() error {
	if _, _, err := ParseBootURI(c.BootURI); err != nil {
		return fmt.Errorf("ClientConfig.BootURI: %w", err)
	}
	if c.Keys.Public.IsZero() {
		return fluxkit.Errorf(fluxkit.EINVAL, "ClientConfig.Keys: a key pair is required")
	}
	if c.HandshakeTimeout < 0 {
		return fluxkit.Errorf(fluxkit.EINVAL, "ClientConfig.HandshakeTimeout: negative duration %v", c.HandshakeTimeout)
	}
	return nil
}

// Client is a connection to an instance's boot server, authenticated by a
// CURVE key pair: the owner's certificate for FLUB. Requests sent on it
// are routed into the overlay from rank 0, with the credentials the
// server grants its key.
type Client struct {
	sock   zmq4.Socket
	cl     *curve.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	calls  calls
	sendMu sync.Mutex
	once   sync.Once
}

// DialBoot connects to the boot server at cfg.BootURI. It calls
// cfg.Validate and refuses what that refuses, and fails if the server
// refuses the key or does not hold the URI's key.
func DialBoot(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ep, serverKey, _ := ParseBootURI(cfg.BootURI)
	tr := cfg.Transport
	if tr == nil {
		var err error
		if tr, err = DefaultTransport(); err != nil {
			return nil, err
		}
	}
	cl, err := tr.NewClient(curve.ClientConfig{Keys: cfg.Keys, ServerKey: serverKey, Logger: cfg.Logger, HandshakeTimeout: cfg.HandshakeTimeout})
	if err != nil {
		return nil, err
	}
	cep, err := cl.Endpoint(ep)
	if err != nil {
		_ = cl.Close()
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{cl: cl, ctx: cctx, cancel: cancel}
	// A boot client has no loop to stall, so its send guard is generous.
	c.sock = zmq4.NewDealer(cctx, zmq4.WithID(zmq4.SocketIdentity(newUUID())),
		zmq4.WithTimeout(6*sendTimeout), zmq4.WithDialerMaxRetries(2), zmq4.WithDialerRetry(100*time.Millisecond))
	if err = dial(ctx, cancel, c.sock, cep); err != nil {
		_ = c.sock.Close()
		_ = cl.Close()
		return nil, fmt.Errorf("boot server %s: %w", strings.TrimPrefix(ep, "tcp://"), err)
	}
	c.wg.Add(1)
	go c.read()
	return c, nil
}

func (c *Client) read() {
	defer c.wg.Done()
	defer c.calls.closeAll()
	for {
		msg, err := c.sock.Recv()
		if err != nil {
			return
		}
		m, err := fluxkit.DecodeFrames(msg.Frames)
		if err != nil || m.Type != fluxkit.TypeResponse {
			continue
		}
		c.calls.deliver(m)
	}
}

// Request sends a request through the boot server; see [Requester].
func (c *Client) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	m, cl, err := c.calls.open(ctx, req, nil)
	if err != nil {
		return nil, err
	}
	c.sendMu.Lock()
	err = c.sock.Send(zmq4.NewMsgFrom(m.Frames()...))
	c.sendMu.Unlock()
	if err != nil {
		err = fluxkit.Errorf(fluxkit.ECONNRESET, "boot server: send: %v", err)
	}
	return cl.sent(err)
}

// Close disconnects and waits for the reader. Calling it again is
// harmless.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.cancel()
		_ = c.sock.Close()
		c.wg.Wait()
		_ = c.cl.Close()
	})
	return nil
}

// rpc sends a request with payload in to nodeid through r and decodes its
// single response into out (when not nil), as fluxkit.RPC does for a
// Handle.
func rpc(ctx context.Context, r Requester, topic string, nodeid uint32, in, out any) error {
	call, err := send(ctx, r, topic, nodeid, 0, in)
	if err != nil {
		return err
	}
	defer call.Close()
	m, err := call.Recv(ctx)
	if err != nil || out == nil {
		return err
	}
	return fluxkit.DecodePayload(m, out)
}

// send sends a request with payload in (see fluxkit.EncodePayload) and
// flags to nodeid through r.
func send(ctx context.Context, r Requester, topic string, nodeid uint32, flags fluxkit.MsgFlags, in any) (fluxkit.Call, error) {
	p, err := fluxkit.EncodePayload(in)
	if err != nil {
		return nil, err
	}
	req := fluxkit.NewRequest(topic, nodeid, p)
	req.Flags |= flags
	return r.Request(ctx, req)
}
