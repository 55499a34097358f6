package curve

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

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
