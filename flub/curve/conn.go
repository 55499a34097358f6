package curve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// This file is the translating connection: zmq4 runs its NULL mechanism
// and plain ZMTP framing over a conn, while the conn speaks ZMTP-CURVE to
// the peer. zmq4's greeting and NULL READY are intercepted and answered with
// synthesized ones; every plain frame zmq4 writes becomes one MESSAGE, and
// every MESSAGE from the peer becomes one plain frame.

// handshakeMaxFrame bounds handshake commands. INITIATE carries the
// metadata and is the largest; libzmq's is well under 1 KiB.
const handshakeMaxFrame = 64 << 10

// handshakeBufSize and dataBufSize size the wire reader before and after
// the handshake.
const (
	handshakeBufSize = 512
	dataBufSize      = 32 << 10
)

// flushLimit is how much a multipart message may buffer before it is
// written even though more frames follow.
const flushLimit = 64 << 10

// brokenError is what zmq4 sees once a conn has failed. It also matches
// io.EOF: zmq4 only retires a connection on io.EOF or a non-timeout
// net.Error, and would otherwise keep sending to a dead one.
type brokenError struct{ cause error }

func (e *brokenError) Error() string { return e.cause.Error() }

func (e *brokenError) Unwrap() []error { return []error{e.cause, io.EOF} }

type connOwner interface {
	// released is called once, when the conn closes.
	released(c *conn)
}

type conn struct {
	raw     net.Conn
	server  bool
	log     *slog.Logger
	owner   connOwner
	timeout time.Duration

	br *bufio.Reader
	fr frameReader

	// Handshake phase: zmq4's Open drives it sequentially (write greeting,
	// read greeting, write READY, read READY), all from one goroutine.
	hmu       sync.Mutex
	zout      []byte // synthesized greeting and READY for zmq4
	watchMu   sync.Mutex
	stopWatch func() bool     // guarded by watchMu: Close may race the handshake
	hctx      context.Context // the client handshake's context (Dial's)
	clientCfg *ClientConfig
	srvhs     *serverHandshake
	origin    *listener   // the listener that accepted it (server side)
	ready     atomic.Bool // data may flow; set under hmu
	maxFrame  uint64

	// peer is filled during the handshake and read-only once ready.
	peer Peer

	// zmq4 → wire: wmu serialises zmq4's writes and the frame parser.
	wmu  sync.Mutex
	in   plainParser
	werr error

	// omu serialises wire output and the send half of sess.
	omu  sync.Mutex
	sess session
	obuf []byte

	// wire → zmq4: rmu guards the receive half of sess and what is pending
	// for zmq4.
	rmu      sync.Mutex
	pendHdr  []byte
	pendData []byte
	hdrBuf   [9]byte
	pbuf     []byte
	rerr     error
	zdone    bool // zout fully served

	closeOnce sync.Once
	closeErr  error
}

func newConn(raw net.Conn, server bool, owner connOwner, log *slog.Logger, timeout time.Duration, maxFrame uint64) *conn {
	c := &conn{
		raw:      raw,
		server:   server,
		owner:    owner,
		log:      log,
		timeout:  timeout,
		maxFrame: maxFrame,
	}
	// A connection waiting in its handshake costs little: idle ones are
	// all a flood of connections costs the listener. The data-phase buffer
	// comes with the session (finish).
	c.br = bufio.NewReaderSize(raw, handshakeBufSize)
	c.fr = frameReader{r: c.br, max: handshakeMaxFrame}
	g := makeGreeting("NULL", 3, 0, 0)
	c.zout = append([]byte(nil), g[:]...)
	return c
}

// watch aborts the handshake's blocking I/O when ctx ends and arms the
// handshake deadline.
func (c *conn) watch(ctx context.Context) {
	c.raw.SetDeadline(time.Now().Add(c.timeout))
	c.watchMu.Lock()
	c.stopWatch = context.AfterFunc(ctx, func() { c.raw.SetDeadline(time.Unix(1, 0)) }) // a past deadline aborts blocked I/O
	c.watchMu.Unlock()
}

// unwatch ends the handshake's deadline and cancellation. It fails if the
// context already fired, since the deadline it set may then land after ours.
func (c *conn) unwatch(ctx context.Context) error {
	if !c.dropWatch() {
		return handshakeErr("aborted: %v", ctx.Err())
	}
	return c.raw.SetDeadline(time.Time{})
}

// dropWatch detaches the context hook; false if it had already fired.
func (c *conn) dropWatch() bool {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	ok := c.stopWatch == nil || c.stopWatch()
	c.stopWatch = nil
	return ok
}

// ioErr wraps an I/O error hit during the handshake. A deadline that
// fired without the context ending is the handshake timeout.
func (c *conn) ioErr(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		return handshakeErr("%s: %w (%w)", step, ctx.Err(), err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return handshakeErr("%w after %v (%s): %w", ErrHandshakeTimeout, c.timeout, step, os.ErrDeadlineExceeded)
	}
	return handshakeErr("%s: %w", step, err)
}

// closedByPeer reports whether err means the peer closed the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// growReader swaps the small handshake reader for the data-phase one,
// keeping whatever the peer already sent after its last handshake command.
func (c *conn) growReader() {
	var rd io.Reader = c.raw
	if n := c.br.Buffered(); n > 0 {
		pending, _ := c.br.Peek(n)
		rd = io.MultiReader(bytes.NewReader(bytes.Clone(pending)), c.raw)
	}
	c.br = bufio.NewReaderSize(rd, dataBufSize)
	c.fr.r = c.br
}

// Read serves zmq4 the synthesized greeting and READY, then one plain
// frame per MESSAGE received.
func (c *conn) Read(p []byte) (int, error) {
	n, fatal, err := c.read(p)
	if fatal {
		// Outside rmu: Close takes every lock.
		c.Close()
	}
	return n, err
}

func (c *conn) read(p []byte) (int, bool, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rerr != nil {
		return 0, false, c.rerr
	}
	if !c.zdone {
		c.hmu.Lock()
		n := copy(p, c.zout)
		c.zout = c.zout[n:]
		ready := c.ready.Load()
		c.zdone = ready && len(c.zout) == 0
		c.hmu.Unlock()
		if n > 0 {
			return n, false, nil
		}
		if !ready {
			return 0, true, c.readFailed(handshakeErr("read before the handshake completed"))
		}
	}
	if len(c.pendHdr) == 0 && len(c.pendData) == 0 {
		if err := c.fill(); err != nil {
			return 0, true, c.readFailed(err)
		}
	}
	n := copy(p, c.pendHdr)
	c.pendHdr = c.pendHdr[n:]
	if len(c.pendHdr) == 0 && n < len(p) {
		m := copy(p[n:], c.pendData)
		c.pendData = c.pendData[m:]
		n += m
	}
	return n, false, nil
}

// fill reads MESSAGEs until one carries application data.
func (c *conn) fill() error {
	if cap(c.pbuf) > retainLimit {
		c.pbuf = nil
	}
	for {
		_, body, err := c.fr.next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isNetErr(err) {
				return err
			}
			return protocolErr("%v", err)
		}
		pt, err := c.sess.openMessage(c.pbuf, body)
		if err != nil {
			return err
		}
		c.pbuf = pt
		inner, data := pt[0], pt[1:]
		if inner&innerCommand != 0 {
			if err := c.onCommand(data); err != nil {
				return err
			}
			continue
		}
		var flags byte
		if inner&innerMore != 0 {
			flags = flagMore
		}
		c.pendHdr = appendFrameHeader(c.hdrBuf[:0], flags, len(data))
		c.pendData = data
		return nil
	}
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne)
}

// onCommand handles a command carried inside a MESSAGE. PING is answered
// with PONG; PONG and anything else (SUBSCRIBE/CANCEL belong to other socket
// types) is consumed, never delivered as data.
func (c *conn) onCommand(cmd []byte) error {
	name, ok := commandName(cmd)
	if !ok {
		return protocolErr("malformed command in MESSAGE")
	}
	if name != "PING" {
		return nil
	}
	args := cmd[5:]
	if len(args) < 2 {
		return protocolErr("PING without TTL")
	}
	pctx := args[2:]
	if len(pctx) > 16 {
		pctx = pctx[:16] // libzmq echoes at most 16 context bytes
	}
	pong := append([]byte("\x04PONG"), pctx...)
	c.omu.Lock()
	defer c.omu.Unlock()
	return c.sendLocked(innerCommand, pong)
}

// readFailed makes a read error sticky and closes the wire, so the peer
// sees the disconnect that libzmq would cause.
func (c *conn) readFailed(err error) error {
	if c.rerr == nil {
		c.log.Debug("curve: connection failed", "remote", c.raw.RemoteAddr(), "err", err)
		if errors.Is(err, io.EOF) && !errors.Is(err, ErrProtocol) {
			c.rerr = io.EOF
		} else {
			c.rerr = &brokenError{cause: err}
		}
		c.raw.Close()
	}
	return c.rerr
}

// Write consumes the plain ZMTP stream zmq4 produces.
func (c *conn) Write(p []byte) (int, error) {
	n, fatal, err := c.write(p)
	if fatal {
		// zmq4 does not close a conn whose Open failed, so a failed conn
		// closes itself (outside wmu: Close takes every lock).
		c.Close()
	}
	return n, err
}

func (c *conn) write(p []byte) (int, bool, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return 0, false, c.werr
	}
	if err := c.in.feed(p, c.onPlainGreeting, c.onPlainFrame); err != nil {
		c.werr = &brokenError{cause: err}
		c.log.Debug("curve: connection failed", "remote", c.raw.RemoteAddr(), "err", err)
		c.raw.Close()
		return 0, true, c.werr
	}
	return len(p), false, nil
}

func (c *conn) onPlainGreeting(g []byte) error {
	if err := checkGreeting(g, "NULL"); err != nil {
		return fmt.Errorf("curve: zmq4 must use the NULL mechanism on a curve endpoint: %v", err)
	}
	return nil
}

func (c *conn) onPlainFrame(flags byte, body []byte) error {
	if !c.ready.Load() {
		return c.onZmq4Ready(flags, body)
	}
	c.omu.Lock()
	defer c.omu.Unlock()
	var inner byte
	if flags&flagMore != 0 {
		inner |= innerMore
	}
	if flags&flagCommand != 0 {
		inner |= innerCommand
	}
	return c.sendLocked(inner, body)
}

// sendLocked seals one frame. Frames of a multipart message are coalesced
// into one write until the last frame, as libzmq batches them too.
func (c *conn) sendLocked(inner byte, data []byte) error {
	out, err := c.sess.appendMessage(c.obuf, inner, data)
	c.obuf = out
	if err != nil {
		return err
	}
	if inner&innerMore != 0 && inner&innerCommand == 0 && len(c.obuf) < flushLimit {
		return nil
	}
	_, err = c.raw.Write(c.obuf)
	c.obuf = c.obuf[:0]
	if cap(c.obuf) > retainLimit {
		c.obuf = nil
	}
	return err
}

// Close closes the wire and wipes the session keys.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closeErr = c.raw.Close()
		if errors.Is(c.closeErr, net.ErrClosed) {
			// The wire was already closed (by the peer's shutdown path or
			// the listener's); closing it again is not a failure.
			c.closeErr = nil
		}
		// Closing the wire unblocks any Read or Write, so these locks are
		// soon free; the order matches Read (rmu→omu) and Write (wmu→omu).
		c.rmu.Lock()
		c.wmu.Lock()
		c.omu.Lock()
		c.sess.wipe()
		if c.rerr == nil {
			c.rerr = net.ErrClosed
		}
		if c.werr == nil {
			c.werr = net.ErrClosed
		}
		c.omu.Unlock()
		c.wmu.Unlock()
		c.rmu.Unlock()
		c.dropWatch()
		c.hmu.Lock()
		if c.srvhs != nil {
			c.srvhs.wipe()
			c.srvhs = nil
		}
		c.hmu.Unlock()
		c.owner.released(c)
	})
	return c.closeErr
}

func (c *conn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

func (c *conn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

func (c *conn) SetDeadline(t time.Time) error { return c.raw.SetDeadline(t) }

func (c *conn) SetReadDeadline(t time.Time) error { return c.raw.SetReadDeadline(t) }

func (c *conn) SetWriteDeadline(t time.Time) error { return c.raw.SetWriteDeadline(t) }
