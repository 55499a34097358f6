package curve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// This file drives the handshake on a conn: the greetings, the CURVE
// commands each side sends (the pure state machines of handshake.go decide
// their contents), and the synthesized NULL greeting and READY that zmq4
// sees instead.

// keyMismatch is the error of a client whose server hung up on HELLO
// without a word: it could not open HELLO, which was sealed for another
// key than its own.
func (c *conn) keyMismatch(err error) error {
	return handshakeErr("%w: the server hung up on HELLO, as a CURVE server does when HELLO is sealed for another key (%w)",
		ErrServerKeyMismatch, err)
}

// readCommand reads one handshake command frame.
func (c *conn) readCommand(ctx context.Context, step string) ([]byte, error) {
	flags, body, err := c.fr.next()
	if err != nil {
		return nil, c.ioErr(ctx, step, err)
	}
	if flags&flagCommand == 0 || flags&flagMore != 0 {
		return nil, handshakeErr("%s: expected a command frame, got flags %#02x", step, flags)
	}
	return body, nil
}

func (c *conn) exchangeGreetings(ctx context.Context, g []byte) error {
	if _, err := c.raw.Write(g); err != nil {
		return c.ioErr(ctx, "send greeting", err)
	}
	var pg [greetingLen]byte
	if _, err := io.ReadFull(c.br, pg[:]); err != nil {
		return c.ioErr(ctx, "read greeting", err)
	}
	if err := checkGreeting(pg[:], "CURVE"); err != nil {
		return handshakeErr("greeting: %v", err)
	}
	return nil
}

// clientWire runs the client handshake on the wire: greetings, HELLO,
// WELCOME → INITIATE, then READY. HELLO waits for the server's greeting,
// as libzmq's client does, so that a server hanging up afterwards can only
// be refusing HELLO: the sign of a wrong server key.
func (c *conn) clientWire(ctx context.Context, h *clientHandshake, idLen int) error {
	g := makeGreeting("CURVE", 3, 1, idLen)
	if err := c.exchangeGreetings(ctx, g[:]); err != nil {
		return err
	}
	if _, err := c.raw.Write(appendCommandFrame(nil, h.hello())); err != nil {
		return c.ioErr(ctx, "send HELLO", err)
	}
	for {
		flags, body, err := c.fr.next()
		if err != nil {
			if h.state == clientSentHello && ctx.Err() == nil && closedByPeer(err) {
				return c.keyMismatch(err)
			}
			return c.ioErr(ctx, "read handshake command", err)
		}
		if flags&flagCommand == 0 || flags&flagMore != 0 {
			return handshakeErr("read handshake command: expected a command frame, got flags %#02x", flags)
		}
		reply, done, err := h.step(body)
		if err != nil {
			return err
		}
		if reply != nil {
			if _, err := c.raw.Write(appendCommandFrame(nil, reply)); err != nil {
				return c.ioErr(ctx, "send INITIATE", err)
			}
		}
		if done {
			return nil
		}
	}
}

// serverWire runs the server handshake on the wire up to a verified
// INITIATE, returning the client's key and raw metadata.
func (c *conn) serverWire(ctx context.Context, h *serverHandshake) (Key, []byte, error) {
	var none Key
	g := makeGreeting("CURVE", 3, 1, 0)
	if err := c.exchangeGreetings(ctx, g[:]); err != nil {
		return none, nil, err
	}
	body, err := c.readCommand(ctx, "read HELLO")
	if err != nil {
		return none, nil, err
	}
	welcome, err := h.onHello(body)
	if err != nil {
		return none, nil, err
	}
	if _, err := c.raw.Write(appendCommandFrame(nil, welcome)); err != nil {
		return none, nil, c.ioErr(ctx, "send WELCOME", err)
	}
	body, err = c.readCommand(ctx, "read INITIATE")
	if err != nil {
		return none, nil, err
	}
	return h.onInitiate(body)
}

// sendError sends an ERROR command; failures are moot since the conn is
// about to close.
func (c *conn) sendError(reason string) {
	c.raw.Write(appendCommandFrame(nil, errorCommand(reason)))
}

// zmq4Ready builds the NULL READY that zmq4 reads as its peer's metadata.
// Only Socket-Type and Identity are passed: zmq4 derives the routing id and
// the compatibility check from them, and its own metadata decoder is not
// safe on arbitrary input.
func zmq4Ready(socketType, identity string) []byte {
	body := []byte("\x05READY")
	body = appendProperty(body, "Socket-Type", socketType)
	body = appendProperty(body, "Identity", identity)
	out := appendFrameHeader(nil, flagCommand, len(body))
	return append(out, body...)
}

// onZmq4Ready handles the NULL READY zmq4 writes: its metadata is what the
// peer must receive. The client now runs its whole wire handshake; the
// server, whose handshake already reached a verified INITIATE, sends READY.
func (c *conn) onZmq4Ready(flags byte, body []byte) error {
	c.hmu.Lock()
	defer c.hmu.Unlock()
	if flags&flagCommand == 0 || !hasCommandName(body, "READY") {
		return errors.New("curve: zmq4 must use the NULL mechanism on a curve endpoint")
	}
	meta := body[6:]
	md, err := parseMetadata(meta)
	if err != nil {
		return fmt.Errorf("curve: zmq4 metadata: %w", err)
	}
	localType, _ := md.get("Socket-Type")
	if !knownSocketType(localType) {
		return fmt.Errorf("curve: zmq4 socket type %q", localType)
	}
	if c.server {
		return c.serverReady(localType, meta)
	}
	identity, _ := md.get("Identity")
	return c.clientHandshake(localType, identity, meta)
}

func (c *conn) serverReady(localType string, meta []byte) error {
	h := c.srvhs
	if h == nil {
		return handshakeErr("server handshake not verified")
	}
	if !compatible(localType, c.peer.SocketType) {
		return handshakeErr("client socket type %q is not compatible with %q", c.peer.SocketType, localType)
	}
	ready, err := h.ready(meta)
	if err != nil {
		return err
	}
	c.raw.SetWriteDeadline(time.Now().Add(c.timeout))
	if _, err := c.raw.Write(appendCommandFrame(nil, ready)); err != nil {
		return c.ioErr(context.Background(), "send READY", err)
	}
	c.raw.SetWriteDeadline(time.Time{})
	c.finish(&h.sess, c.peer.SocketType, string(c.peer.RoutingID))
	h.wipe()
	c.srvhs = nil
	return nil
}

func (c *conn) clientHandshake(localType, identity string, meta []byte) error {
	cfg := c.clientCfg
	ctx := c.hctx
	if ctx == nil {
		ctx = context.Background()
	}
	h, err := newClientHandshake(nil, cfg.Keys, cfg.ServerKey, meta)
	if err != nil {
		return err
	}
	defer h.wipe()
	if err := c.clientWire(ctx, h, len(identity)); err != nil {
		return err
	}
	md, err := parseMetadata(h.peerMetadata())
	if err != nil {
		return handshakeErr("server metadata: %v", err)
	}
	peerType, _ := md.get("Socket-Type")
	if !knownSocketType(peerType) || !compatible(localType, peerType) {
		return handshakeErr("server socket type %q is not compatible with %q", peerType, localType)
	}
	peerID, _ := md.get("Identity")
	if err := c.unwatch(ctx); err != nil {
		return err
	}
	c.peer = Peer{
		Key:         cfg.ServerKey,
		RoutingID:   []byte(peerID),
		SocketType:  peerType,
		Metadata:    md.toMap(),
		LocalAddr:   c.raw.LocalAddr(),
		RemoteAddr:  c.raw.RemoteAddr(),
		UserTimeout: userTimeout(c.raw),
	}
	c.finish(&h.sess, peerType, peerID)
	return nil
}

// finish switches the conn to data mode. It runs under hmu inside zmq4's
// Open, before zmq4 starts reading; the receive half needs no rmu because
// Read only touches it after observing ready, whose atomic store publishes
// these writes. Taking rmu here would invert Close's lock order.
func (c *conn) finish(s *session, peerType, peerID string) {
	c.omu.Lock()
	c.sess = *s
	c.sess.plain = nil
	c.omu.Unlock()
	c.fr.max = c.maxFrame
	c.growReader()
	s.wipe()
	c.zout = append(c.zout, zmq4Ready(peerType, peerID)...)
	c.ready.Store(true)
}
