package flub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/go-zeromq/zmq4"
)

// Client is a connection to an instance's boot server, authenticated by a
// CURVE key pair: the owner's certificate for FLUB. It implements the
// request side of [fluxkit.Handle]; Register, Publish and Subscribe fail
// with ENOSYS.
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

var _ fluxkit.Handle = (*Client)(nil)

// ClientOptions tunes DialBoot; zero values are defaults.
type ClientOptions struct {
	Transport        *curve.Transport // default DefaultTransport()
	Logger           *slog.Logger     // default discard
	HandshakeTimeout time.Duration    // default 30 s; ctx's deadline bounds it too
}

// DialBoot connects to the boot server at uri with the given key pair.
// It fails if the server refuses the key or does not hold the URI's key.
func DialBoot(ctx context.Context, uri string, keys curve.KeyPair, opt ClientOptions) (*Client, error) {
	ep, serverKey, err := ParseBootURI(uri)
	if err != nil {
		return nil, err
	}
	tr := opt.Transport
	if tr == nil {
		if tr, err = DefaultTransport(); err != nil {
			return nil, err
		}
	}
	if opt.HandshakeTimeout < 0 {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "ClientOptions.HandshakeTimeout: negative duration %v", opt.HandshakeTimeout)
	}
	cl, err := tr.NewClient(curve.ClientConfig{Keys: keys, ServerKey: serverKey, Logger: opt.Logger, HandshakeTimeout: opt.HandshakeTimeout})
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
		zmq4.WithTimeout(6*DefaultSendTimeout), zmq4.WithDialerMaxRetries(2), zmq4.WithDialerRetry(100*time.Millisecond))
	if err = dial(ctx, cancel, c.sock, cep); err != nil {
		_ = c.sock.Close()
		_ = cl.Close()
		return nil, fmt.Errorf("boot server %s: %w", strings.TrimPrefix(ep, "tcp://"), err)
	}
	c.wg.Add(1)
	go c.read()
	return c, nil
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

// Rank is 0: the boot server is rank 0.
func (c *Client) Rank() uint32 { return 0 }

// Size is unknown to a boot client (0); getinfo tells it.
func (c *Client) Size() uint32 { return 0 }

// Cred is what the client asserts; the server decides from its key.
func (c *Client) Cred() fluxkit.Cred {
	return fluxkit.Cred{Userid: fluxkit.UseridUnknown, Roles: fluxkit.RoleOwner}
}

// Request sends a request through the boot server.
func (c *Client) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	if req == nil || req.Type != fluxkit.TypeRequest {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "Request takes a message of type request")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := req.Clone()
	m.Route = nil
	m.Flags |= fluxkit.FlagRoute
	var cl *call
	if !m.IsNoResponse() {
		var ok bool
		if cl, ok = c.calls.add(m.IsStreaming()); !ok {
			return nil, errClosed
		}
		m.Matchtag = cl.tag
	}
	c.sendMu.Lock()
	err := c.sock.Send(zmq4.NewMsgFrom(m.Frames()...))
	c.sendMu.Unlock()
	if err != nil {
		if cl != nil {
			cl.Close()
		}
		return nil, fluxkit.Errorf(fluxkit.ECONNRESET, "boot server: send: %v", err)
	}
	if cl == nil {
		return nil, nil
	}
	return cl, nil
}

// Register is not supported on a boot client.
func (c *Client) Register(string, fluxkit.Role, fluxkit.HandlerFunc) (func(), error) {
	return nil, fluxkit.Errorf(fluxkit.ENOSYS, "a boot client cannot serve requests")
}

// Publish is not supported on a boot client.
func (c *Client) Publish(context.Context, string, []byte, fluxkit.MsgFlags) error {
	return fluxkit.Errorf(fluxkit.ENOSYS, "a boot client cannot publish")
}

// Subscribe is not supported on a boot client.
func (c *Client) Subscribe(context.Context, string) (fluxkit.Subscription, error) {
	return nil, fluxkit.Errorf(fluxkit.ENOSYS, "a boot client cannot subscribe")
}

// Close disconnects and waits for the reader.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.cancel()
		_ = c.sock.Close()
		c.wg.Wait()
		_ = c.cl.Close()
	})
	return nil
}
