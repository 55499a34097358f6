package curve

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/require"
)

func TestGoPairMessages(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := testClientKeys(t), testServerKeys(t)
	r, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, Authorizer: AllowList(ck.Public)})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public})
	d := newDealer(t, zmq4.WithID(zmq4.SocketIdentity("dealer-1")))
	require.NoError(t, d.Dial(dialEndpoint(t, cl, hp)))

	msgs := []zmq4.Msg{
		zmq4.NewMsgString("x"),
		zmq4.NewMsg(nil),
		zmq4.NewMsgFrom([]byte(""), bytes.Repeat([]byte("a"), 300), []byte("x")),
		zmq4.NewMsg(bytes.Repeat([]byte("b"), 256)),
		zmq4.NewMsg(bytes.Repeat([]byte("c"), 64<<10)),
		zmq4.NewMsg(bytes.Repeat([]byte("d"), 2<<20)),
	}
	for i, m := range msgs {
		if i%2 == 0 {
			require.NoError(t, d.Send(m))
		} else {
			require.NoError(t, d.SendMulti(m))
		}
		got := recv(t, r, 10*time.Second)
		require.Equal(t, "dealer-1", string(got.Frames[0]))
		require.Equal(t, len(m.Frames), len(got.Frames)-1, "message %d", i)
		for j := range m.Frames {
			require.True(t, bytes.Equal(m.Frames[j], got.Frames[j+1]), "message %d frame %d", i, j)
		}
		if i == 0 {
			p, ok := srv.Peer(got.Frames[0])
			require.True(t, ok)
			require.Equal(t, ck.Public, p.Key)
			require.Equal(t, testClientPublic, p.UserID)
			require.Equal(t, "DEALER", p.SocketType)
			require.Equal(t, "dealer-1", p.Metadata["Identity"])
		}
		require.NoError(t, r.Send(got))
		back := recv(t, d, 10*time.Second)
		require.Equal(t, len(m.Frames), len(back.Frames))
		for j := range m.Frames {
			require.True(t, bytes.Equal(m.Frames[j], back.Frames[j]))
		}
	}
	peers := cl.Peers()
	require.Len(t, peers, 1)
	require.Equal(t, sk.Public, peers[0].Key)
	require.Equal(t, "ROUTER", peers[0].SocketType)
	require.Len(t, srv.Peers(), 1)

	require.NoError(t, d.Close())
	require.Eventually(t, func() bool { return len(srv.Peers()) == 0 && len(cl.Peers()) == 0 },
		5*time.Second, 10*time.Millisecond, "peers forgotten once the connection closes")
	_, ok := srv.Peer([]byte("dealer-1"))
	require.False(t, ok)
}

// A key the authorizer denies is refused with ERROR "400" between Go
// peers.
func TestGoClientDenied(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, Authorizer: AllowList(newKeys(t).Public), HandshakeTimeout: 5 * time.Second})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, HandshakeTimeout: 5 * time.Second})
	d := newDealer(t)
	err := d.Dial(dialEndpoint(t, cl, hp))
	require.Error(t, err)
	var re *RefusedError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "400", re.Reason)
	require.ErrorIs(t, err, ErrHandshake)
	require.ErrorIs(t, err, ErrClientKeyNotAuthorized)
	require.Contains(t, err.Error(), "ERROR 400")
	require.Equal(t, "curve: client key not authorized (the server answered ERROR 400)", Failure(err).Error(),
		"Failure strips zmq4's wrapping")
	require.Empty(t, srv.Peers())
	require.Empty(t, cl.Peers())
}

func TestGoClientTempFail(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	var seen []Key
	var mu sync.Mutex
	auth := func(ctx context.Context, req AuthRequest) Decision {
		mu.Lock()
		seen = append(seen, req.Key)
		mu.Unlock()
		require.Equal(t, "flux", req.Domain)
		require.Equal(t, "127.0.0.1", req.Address)
		_, ok := ctx.Deadline()
		require.True(t, ok, "the authorizer runs under the handshake deadline")
		return Decision{Verdict: TempFail, Reason: "store unavailable"}
	}
	_, _, hp := goServer(t, tr, ServerConfig{Keys: sk, Authorizer: auth})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, HandshakeTimeout: 5 * time.Second})
	err := newDealer(t).Dial(dialEndpoint(t, cl, hp))
	require.ErrorIs(t, err, ErrHandshake)
	var re *RefusedError
	require.False(t, errors.As(err, &re), "ZAP 300 closes without ERROR: %v", err)
	mu.Lock()
	require.Equal(t, []Key{ck.Public}, seen)
	mu.Unlock()
}

func TestAuthorizerPanicFailsOnlyThatHandshake(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	good, bad, sk := newKeys(t), newKeys(t), newKeys(t)
	var logs testutil.Buffer
	auth := func(ctx context.Context, req AuthRequest) Decision {
		if req.Key == bad.Public {
			panic("authorizer bug")
		}
		return Decision{Verdict: Allow, UserID: "good"}
	}
	_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, Authorizer: auth, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	badCl := goClient(t, tr, ClientConfig{Keys: bad, ServerKey: sk.Public, HandshakeTimeout: 2 * time.Second})
	err := newDealer(t).Dial(dialEndpoint(t, badCl, hp))
	require.ErrorIs(t, err, ErrHandshake)
	var re *RefusedError
	require.False(t, errors.As(err, &re))
	require.Contains(t, logs.String(), "authorizer panicked")
	goodCl := goClient(t, tr, ClientConfig{Keys: good, ServerKey: sk.Public})
	require.NoError(t, newDealer(t).Dial(dialEndpoint(t, goodCl, hp)))
	// The client's Dial returns once its side of the handshake is done; the
	// server records the peer a moment later, when it hands the connection
	// to zmq4.
	require.Eventually(t, func() bool { return len(srv.Peers()) == 1 }, 5*time.Second, 5*time.Millisecond)
}

// A client that expects another server key fails between Go peers, and
// says so.
func TestGoClientWrongServerKey(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := testClientKeys(t), testServerKeys(t)
	_, _, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: ck.Public, HandshakeTimeout: 2 * time.Second})
	err := newDealer(t).Dial(dialEndpoint(t, cl, hp))
	require.ErrorIs(t, err, ErrHandshake)
	require.ErrorIs(t, err, ErrServerKeyMismatch)
	require.NotErrorIs(t, err, ErrHandshakeTimeout, "the hang-up, not the handshake deadline, ends it")
	msg := Failure(err).Error()
	require.True(t, strings.HasPrefix(msg, "curve: handshake failed: server key mismatch: "), msg)
	require.NotContains(t, msg, "zmq4")
}

func TestClientHandshakeTimeout(t *testing.T) {
	leakcheck.Check(t)
	silent := testutil.SilentListener(t) // accepts and says nothing
	tr := newTransport(t)
	cl := goClient(t, tr, ClientConfig{Keys: newKeys(t), ServerKey: newKeys(t).Public, HandshakeTimeout: 300 * time.Millisecond})
	err := newDealer(t).Dial(dialEndpoint(t, cl, silent))
	require.ErrorIs(t, err, ErrHandshake)
	require.ErrorIs(t, err, ErrHandshakeTimeout)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NotErrorIs(t, err, ErrServerKeyMismatch)
	require.Contains(t, Failure(err).Error(), "handshake timed out after 300ms")
}

// rawClient speaks CURVE directly, without zmq4, to poke at a server.
type rawClient struct {
	nc   net.Conn
	c    *conn
	sess *session
}

type nopOwner struct{}

func (nopOwner) released(*conn) {}

func dialRaw(t testing.TB, hostport string, ck KeyPair, sk Key, md []byte) (*rawClient, error) {
	t.Helper()
	nc, err := net.Dial("tcp", hostport)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	c := newConn(nc, false, nopOwner{}, slog.New(slog.DiscardHandler), 5*time.Second, 1<<20)
	h, err := newClientHandshake(nil, ck, sk, md)
	require.NoError(t, err)
	ctx := context.Background()
	c.watch(ctx)
	if err := c.clientWire(ctx, h, 0); err != nil {
		return nil, err
	}
	require.NoError(t, c.unwatch(ctx))
	return &rawClient{nc: nc, c: c, sess: &h.sess}, nil
}

func (rc *rawClient) send(t testing.TB, inner byte, data []byte) {
	t.Helper()
	f, err := rc.sess.appendMessage(nil, inner, data)
	require.NoError(t, err)
	_, err = rc.nc.Write(f)
	require.NoError(t, err)
}

func (rc *rawClient) recv(t testing.TB) (byte, []byte, error) {
	t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, body, err := rc.c.fr.next()
	if err != nil {
		return 0, nil, err
	}
	pt, err := rc.sess.openMessage(nil, body)
	if err != nil {
		return 0, nil, err
	}
	return pt[0], pt[1:], nil
}

// expectClosed asserts that the server closes nc without sending anything
// beyond what was already read.
func expectClosed(t testing.TB, nc net.Conn, d time.Duration) []byte {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(d))
	b, err := io.ReadAll(nc)
	if errors.Is(err, syscall.ECONNRESET) {
		// Closing with unread input in the kernel's buffer sends RST
		// rather than FIN: closed all the same.
		err = nil
	}
	require.NoError(t, err, "the server must close the connection (got %d bytes)", len(b))
	return b
}

func TestPingPongAndNonces(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	r, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true})
	rc, err := dialRaw(t, hp, ck, sk.Public, meta("Socket-Type", "DEALER", "Identity", "raw"))
	require.NoError(t, err)

	// PING with a context: PONG comes back inside a MESSAGE with inner
	// COMMAND, and the application never sees either.
	rc.send(t, innerCommand, []byte("\x04PING\x00\x64ping-context"))
	inner, data, err := rc.recv(t)
	require.NoError(t, err)
	require.Equal(t, byte(0x02), inner, "inner COMMAND is bit 1 (libzmq msg_t::command), not the wire bit")
	require.Equal(t, "\x04PONGping-context", string(data))
	// A context longer than 16 bytes is cut to 16, as libzmq does.
	rc.send(t, innerCommand, []byte("\x04PING\x00\x01"+strings.Repeat("k", 20)))
	_, data, err = rc.recv(t)
	require.NoError(t, err)
	require.Equal(t, "\x04PONG"+strings.Repeat("k", 16), string(data))
	// PONG and unknown commands are consumed.
	rc.send(t, innerCommand, []byte("\x04PONG"))
	rc.send(t, innerCommand, []byte("\x09SUBSCRIBEx"))

	rc.send(t, innerMore, []byte("a"))
	rc.send(t, 0, []byte("b"))
	m := recv(t, r, 5*time.Second)
	require.Equal(t, [][]byte{[]byte("raw"), []byte("a"), []byte("b")}, m.Frames)
	p, ok := srv.Peer([]byte("raw"))
	require.True(t, ok)
	require.Equal(t, ck.Public, p.Key)
	require.Empty(t, p.UserID, "AllowAnyClient gives no user id")

	// A replayed nonce closes the connection.
	rc.sess.sendNonce -= 1
	rc.send(t, 0, []byte("replay"))
	expectClosed(t, rc.nc, 5*time.Second)
	require.Eventually(t, func() bool { return len(srv.Peers()) == 0 }, 5*time.Second, 10*time.Millisecond)
	_, err = recvErr(r, 200*time.Millisecond)
	require.ErrorIs(t, err, errRecvTimeout, "the replayed frame is not delivered")
}

// Garbage, truncated and oversized input from a client fails that
// connection alone; the server serves on.
func TestServerRobustness(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	sk := newKeys(t)
	_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true, HandshakeTimeout: time.Second, MaxFrameSize: 1 << 20})
	curveGreeting := makeGreeting("CURVE", 3, 1, 0)
	hello := func() []byte {
		c, err := newClientHandshake(nil, newKeys(t), sk.Public, nil)
		require.NoError(t, err)
		return c.hello()
	}
	badVersion := hello()
	badVersion[6] = 2

	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	cases := map[string][]byte{
		"random bytes after greeting": append(curveGreeting[:], bytes.Repeat([]byte{0x5A, 0xC3, 0x11, 0xFE}, 100)...),
		"long size 2^63":              append(curveGreeting[:], 0x06, 0x80, 0, 0, 0, 0, 0, 0, 0),
		"long size 2^40":              append(curveGreeting[:], 0x06, 0, 0, 1, 0, 0, 0, 0, 0),
		"reserved flag bits":          append(curveGreeting[:], 0x24, 1, 0),
		"HELLO as data frame":         appendFrameHeader(append(curveGreeting[:], nil...), 0, 200),
		"HELLO version 2.0":           appendCommandFrame(curveGreeting[:], badVersion),
		"HELLO truncated":             appendCommandFrame(curveGreeting[:], hello()[:150]),
		"INITIATE first":              appendCommandFrame(curveGreeting[:], append([]byte("\x08INITIATE"), make([]byte, 300)...)),
		"greeting NULL":               func() []byte { g := makeGreeting("NULL", 3, 0, 0); return g[:] }(),
		"greeting version 2.0":        func() []byte { g := makeGreeting("CURVE", 2, 0, 0); return g[:] }(),
		"greeting ZMTP 1.0":           append([]byte{0x01, 0x00}, make([]byte, 62)...),
	}
	for name, payload := range cases {
		nc, err := net.Dial("tcp", hp)
		require.NoError(t, err, name)
		_, err = nc.Write(payload)
		require.NoError(t, err, name)
		got := expectClosed(t, nc, 5*time.Second)
		nc.Close()
		// Only the server's greeting (and for a valid HELLO, WELCOME) may
		// have been sent; never an ERROR or READY.
		require.LessOrEqual(t, len(got), 64, "%s: got %x", name, got)
		if len(got) > 0 {
			require.Equal(t, curveGreeting[:], got, name)
		}
	}
	runtime.ReadMemStats(&ms)
	require.Less(t, ms.TotalAlloc-before, uint64(64<<20), "announced sizes must not be allocated")
	require.Empty(t, srv.Peers())
}

func TestStalledHandshakesDoNotBlockOthers(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	r, _, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true, HandshakeTimeout: 2 * time.Second})
	echo(t, r, nil)
	var stalled []net.Conn
	for i := range 20 {
		nc, err := net.Dial("tcp", hp)
		require.NoError(t, err)
		t.Cleanup(func() { nc.Close() })
		if i%2 == 0 {
			g := makeGreeting("CURVE", 3, 1, 0)
			nc.Write(g[:10]) // half a greeting, then silence
		}
		stalled = append(stalled, nc)
	}
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, HandshakeTimeout: 5 * time.Second})
	d := newDealer(t)
	require.NoError(t, d.Dial(dialEndpoint(t, cl, hp)))
	require.NoError(t, d.Send(zmq4.NewMsgString("through")))
	require.Equal(t, "through", string(recv(t, d, 5*time.Second).Frames[0]))
	// The good client got through while every stalled handshake is still
	// pending: it did not wait for them to time out.
	for _, nc := range stalled {
		nc.SetReadDeadline(time.Now().Add(time.Millisecond))
		_, err := io.ReadAll(nc)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "stalled connection already closed: %v", err)
	}
	for _, nc := range stalled {
		expectClosed(t, nc, 5*time.Second) // the handshake deadline closes them
	}
}

// floodConns opens n TCP connections to hostport that never speak, and
// waits until the server has taken each one up (it sends its greeting).
func floodConns(t testing.TB, hostport string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, nc := range conns {
			nc.Close()
		}
	})
	for range n {
		nc, err := net.Dial("tcp", hostport)
		require.NoError(t, err)
		conns = append(conns, nc)
	}
	for _, nc := range conns {
		var g [greetingLen]byte
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := io.ReadFull(nc, g[:])
		require.NoError(t, err, "the server takes up every connection")
		nc.SetReadDeadline(time.Time{})
	}
	return conns
}

// stillOpen fails the test if the server closed nc.
func stillOpen(t testing.TB, nc net.Conn) {
	t.Helper()
	nc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	var b [1]byte
	_, err := nc.Read(b[:])
	require.ErrorIs(t, err, os.ErrDeadlineExceeded, "an idle connection within its handshake deadline stays open")
	nc.SetReadDeadline(time.Time{})
}

// More idle connections than the old cap of 1024 pending handshakes, all
// from 127.0.0.1 like the legitimate clients: the server neither resets
// the newcomers nor the idle ones, and clients still
// complete their handshakes (libzmq's: TestInteropHandshakeFlood). Only
// the handshake deadline ends an idle connection.
func TestHandshakeFloodLocksNoOneOut(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	sk, ck := newKeys(t), newKeys(t)
	r, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true})
	flood := floodConns(t, hp, 1100)

	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, HandshakeTimeout: 10 * time.Second})
	d := newDealer(t, zmq4.WithID(zmq4.SocketIdentity("legit")))
	require.NoError(t, d.Dial(dialEndpoint(t, cl, hp)), "a Go client during the flood")
	require.NoError(t, d.Send(zmq4.NewMsgFrom([]byte("hello"))))
	m := recv(t, r, 10*time.Second)
	require.Equal(t, [][]byte{[]byte("legit"), []byte("hello")}, m.Frames)
	require.Eventually(t, func() bool { return len(srv.Peers()) == 1 }, 10*time.Second, 10*time.Millisecond)

	for _, nc := range []net.Conn{flood[0], flood[len(flood)/2], flood[len(flood)-1]} {
		stillOpen(t, nc)
	}
}

// The handshake deadline, not a cap, is what ends an idle connection.
func TestIdleHandshakeEndsAtItsDeadline(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	_, _, hp := goServer(t, tr, ServerConfig{Keys: newKeys(t), AllowAnyClient: true, HandshakeTimeout: 300 * time.Millisecond})
	nc := floodConns(t, hp, 1)[0]
	require.Empty(t, expectClosed(t, nc, 5*time.Second))
}

func TestDuplicateIdentityRejected(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true, HandshakeTimeout: 2 * time.Second})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, HandshakeTimeout: 2 * time.Second})
	ep := dialEndpoint(t, cl, hp)
	require.NoError(t, newDealer(t, zmq4.WithID(zmq4.SocketIdentity("same"))).Dial(ep))
	require.Error(t, newDealer(t, zmq4.WithID(zmq4.SocketIdentity("same"))).Dial(ep))
	require.Len(t, srv.Peers(), 1)
}

func TestIncompatibleSocketType(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true, HandshakeTimeout: 2 * time.Second})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, HandshakeTimeout: 2 * time.Second})
	push := zmq4.NewPush(context.Background(), zmq4.WithLogger(quietLogger()), zmq4.WithDialerMaxRetries(0))
	t.Cleanup(func() { push.Close() })
	require.Error(t, push.Dial(dialEndpoint(t, cl, hp)))
	require.Empty(t, srv.Peers())

	// An unknown socket type must be refused before zmq4 sees it (zmq4's
	// own check panics on one).
	_, err := dialRaw(t, hp, ck, sk.Public, meta("Socket-Type", "BOGUS"))
	require.ErrorIs(t, err, ErrHandshake)
}

func TestMaxFrameSizeEnforced(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	r, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true, MaxFrameSize: 1024})
	rc, err := dialRaw(t, hp, ck, sk.Public, meta("Socket-Type", "DEALER"))
	require.NoError(t, err)
	rc.send(t, 0, make([]byte, 1024-messageMinLen))
	require.Len(t, recv(t, r, 5*time.Second).Frames[1], 1024-messageMinLen)
	rc.send(t, 0, make([]byte, 1024))
	expectClosed(t, rc.nc, 5*time.Second)
	require.Eventually(t, func() bool { return len(srv.Peers()) == 0 }, 5*time.Second, 10*time.Millisecond)
}

func TestShutdownEndsGoroutines(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	srv, err := tr.NewServer(ServerConfig{Keys: sk, AllowAnyClient: true, HandshakeTimeout: time.Minute})
	require.NoError(t, err)
	ep, err := srv.Endpoint("tcp://127.0.0.1:0")
	require.NoError(t, err)
	r := zmq4.NewRouter(context.Background(), zmq4.WithLogger(quietLogger()))
	require.NoError(t, r.Listen(ep))
	hp := r.Addr().String()
	cl, err := tr.NewClient(ClientConfig{Keys: ck, ServerKey: sk.Public})
	require.NoError(t, err)
	cep, err := cl.Endpoint("tcp://" + hp)
	require.NoError(t, err)
	d := zmq4.NewDealer(context.Background(), zmq4.WithLogger(quietLogger()))
	require.NoError(t, d.Dial(cep))
	// A pending handshake that would otherwise last a minute.
	nc, err := net.Dial("tcp", hp)
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, d.Send(zmq4.NewMsgString("hi")))
	recv(t, r, 5*time.Second)

	// Closing the sockets ends everything they started, including the
	// pending handshake, with no Server/Client Close needed.
	require.NoError(t, d.Close())
	require.NoError(t, r.Close())
	expectClosed(t, nc, 5*time.Second)
	require.Eventually(t, func() bool { return len(srv.Peers()) == 0 && len(cl.Peers()) == 0 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, srv.Close())
	require.NoError(t, cl.Close())
	require.NoError(t, srv.Close(), "Close is idempotent")

	// The endpoints are gone.
	r2 := newRouter(t)
	require.Error(t, r2.Listen(ep))
}

func TestServerCloseBeforeSocket(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	srv, err := tr.NewServer(ServerConfig{Keys: newKeys(t), AllowAnyClient: true})
	require.NoError(t, err)
	ep, err := srv.Endpoint("tcp://127.0.0.1:0")
	require.NoError(t, err)
	l, err := tr.Listen(t.Context(), strings.TrimPrefix(ep, tr.Scheme()+"://"))
	require.NoError(t, err)
	nc, err := net.Dial("tcp", l.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, srv.Close())
	expectClosed(t, nc, 5*time.Second) // pending handshakes end with the Server

	// zmq4's accept loop retries Accept errors without pause while its
	// socket lives, so Accept must keep blocking until the listener itself
	// is closed.
	accepted := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		accepted <- err
	}()
	select {
	case err := <-accepted:
		require.FailNow(t, "Accept returned after Server.Close", "%v", err)
	case <-time.After(100 * time.Millisecond):
	}
	require.NoError(t, l.Close())
	require.ErrorIs(t, <-accepted, net.ErrClosed)
	require.NoError(t, l.Close(), "Close is idempotent")

	// zmq4 end to end: a socket whose Server closed can be closed cleanly.
	srv2, err := tr.NewServer(ServerConfig{Keys: newKeys(t), AllowAnyClient: true})
	require.NoError(t, err)
	ep2, err := srv2.Endpoint("tcp://127.0.0.1:0")
	require.NoError(t, err)
	r := newRouter(t)
	require.NoError(t, r.Listen(ep2))
	require.NoError(t, srv2.Close())
	require.NoError(t, r.Close())
}

func TestConfigValidationAndEndpointErrors(t *testing.T) {
	tr := newTransport(t)
	kp := newKeys(t)
	// Validate names the field at fault, changes nothing, and is what the
	// constructors refuse.
	for _, tc := range []struct {
		cfg  ServerConfig
		want string
	}{
		{ServerConfig{Keys: kp}, "curve: ServerConfig.Authorizer: required unless AllowAnyClient is set"},
		{ServerConfig{Keys: KeyPair{Public: kp.Public, Secret: newKeys(t).Secret}, AllowAnyClient: true}, "curve: ServerConfig.Keys: public key does not match secret key"},
		{ServerConfig{Keys: kp, AllowAnyClient: true, MaxFrameSize: 10}, "curve: ServerConfig.MaxFrameSize: 10 is below"},
		{ServerConfig{Keys: kp, AllowAnyClient: true, MaxFrameSize: -1}, "curve: ServerConfig.MaxFrameSize: -1 is below"},
		{ServerConfig{Keys: kp, AllowAnyClient: true, HandshakeTimeout: -time.Second}, "curve: ServerConfig.HandshakeTimeout: negative duration -1s"},
		{ServerConfig{Keys: kp, AllowAnyClient: true, TCPUserTimeout: -time.Second}, "curve: ServerConfig.TCPUserTimeout: negative duration -1s"},
	} {
		before := tc.cfg
		require.ErrorContains(t, tc.cfg.Validate(), tc.want)
		require.Equal(t, before, tc.cfg, "Validate changed the config")
		_, err := tr.NewServer(tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
	for _, tc := range []struct {
		cfg  ClientConfig
		want string
	}{
		{ClientConfig{Keys: kp}, "curve: ClientConfig.ServerKey: the server's public key is required"},
		{ClientConfig{ServerKey: kp.Public}, "curve: ClientConfig.Keys: key pair has no secret key"},
		{ClientConfig{Keys: kp, ServerKey: kp.Public, MaxFrameSize: 1}, "curve: ClientConfig.MaxFrameSize: 1 is below"},
	} {
		require.ErrorContains(t, tc.cfg.Validate(), tc.want)
		_, err := tr.NewClient(tc.cfg)
		require.ErrorContains(t, err, tc.want)
	}
	require.NoError(t, (&ServerConfig{Keys: kp, AllowAnyClient: true}).Validate())
	require.NoError(t, (&ClientConfig{Keys: kp, ServerKey: kp.Public}).Validate())
	_, err := NewTransport("bad://")
	require.Error(t, err)
	_, err = NewTransport(tr.Scheme())
	require.Error(t, err, "schemes are unique")

	srv, err := tr.NewServer(ServerConfig{Keys: kp, AllowAnyClient: true})
	require.NoError(t, err)
	defer srv.Close()
	_, err = srv.Endpoint("ipc:///tmp/x")
	require.Error(t, err)
	_, err = srv.Endpoint("tcp://nohostport")
	require.Error(t, err)
	ep, err := srv.Endpoint("tcp://*:*")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(ep, tr.Scheme()+"://"))
	addr, err := tr.Addr(strings.TrimPrefix(ep, tr.Scheme()+"://"))
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(addr, "@0.0.0.0:0"), addr)
	_, err = tr.Addr("127.0.0.1:5")
	require.Error(t, err)

	// A server endpoint cannot be dialled, nor a client one listened on.
	d := newDealer(t)
	require.Error(t, d.Dial(strings.Replace(ep, "*:*", "127.0.0.1:1", 1)))
	cl, err := tr.NewClient(ClientConfig{Keys: kp, ServerKey: kp.Public})
	require.NoError(t, err)
	defer cl.Close()
	cep, err := cl.Endpoint("tcp://127.0.0.1:0")
	require.NoError(t, err)
	require.Error(t, newRouter(t).Listen(cep))
}

func TestNonNullZmq4SecurityRefused(t *testing.T) {
	leakcheck.Check(t)
	tr := newTransport(t)
	ck, sk := newKeys(t), newKeys(t)
	_, _, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, HandshakeTimeout: time.Second})
	d := newDealer(t, zmq4.WithSecurity(fakePlain{}))
	err := d.Dial(dialEndpoint(t, cl, hp))
	require.Error(t, err)
	require.Contains(t, err.Error(), "NULL mechanism")
}

// fakePlain claims a non-NULL mechanism, as a misconfigured socket would.
type fakePlain struct{}

func (fakePlain) Type() zmq4.SecurityType                    { return zmq4.PlainSecurity }
func (fakePlain) Handshake(*zmq4.Conn, bool) error           { return nil }
func (fakePlain) Encrypt(w io.Writer, b []byte) (int, error) { return w.Write(b) }
func (fakePlain) Decrypt(w io.Writer, b []byte) (int, error) { return w.Write(b) }

func TestPlainParserChunking(t *testing.T) {
	// zmq4 may split or join its writes anywhere; the parser must yield
	// the same frames for every chunking.
	g := makeGreeting("NULL", 3, 0, 0)
	var stream []byte
	stream = append(stream, g[:]...)
	var want [][]byte
	for _, n := range []int{0, 1, 255, 256, 70000} {
		body := bytes.Repeat([]byte{byte(n)}, n)
		stream = appendFrameHeader(stream, flagMore, n)
		stream = append(stream, body...)
		want = append(want, body)
	}
	for _, chunk := range []int{1, 2, 3, 7, 64, 65, 1000, len(stream)} {
		var pp plainParser
		var got [][]byte
		greeted := false
		for i := 0; i < len(stream); i += chunk {
			err := pp.feed(stream[i:min(i+chunk, len(stream))],
				func(b []byte) error { greeted = bytes.Equal(b, g[:]); return nil },
				func(flags byte, body []byte) error {
					require.Equal(t, byte(flagMore), flags&flagMore)
					got = append(got, bytes.Clone(body))
					return nil
				})
			require.NoError(t, err)
		}
		require.True(t, greeted)
		require.Equal(t, len(want), len(got), "chunk %d", chunk)
		for i := range want {
			require.True(t, bytes.Equal(want[i], got[i]), "chunk %d frame %d", chunk, i)
		}
	}
}

func TestFrameReaderGrowsWithData(t *testing.T) {
	// A frame announcing 100 MiB but delivering 10 bytes allocates little.
	hdr := []byte{0x02, 0, 0, 0, 0, 0x06, 0x40, 0, 0}
	fr := frameReader{r: bufioReader(append(hdr, make([]byte, 10)...)), max: 1 << 30}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	_, _, err := fr.next()
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	runtime.ReadMemStats(&ms)
	require.Less(t, ms.TotalAlloc-before, uint64(1<<20))

	data := bytes.Repeat([]byte{9}, 300000)
	frame := appendFrameHeader(nil, 0, len(data))
	fr = frameReader{r: bufioReader(append(frame, data...)), max: 1 << 30}
	_, body, err := fr.next()
	require.NoError(t, err)
	require.True(t, bytes.Equal(data, body))
	binary.BigEndian.PutUint64(frame[1:], 1<<20+1)
	fr = frameReader{r: bufioReader(frame), max: 1 << 20}
	_, _, err = fr.next()
	require.Error(t, err)
}

// The small handshake reader gives way to the data-phase one without
// losing what the peer sent right behind its last handshake command.
func TestGrowReaderKeepsBufferedBytes(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := newConn(b, false, nopOwner{}, slog.New(slog.DiscardHandler), time.Second, 1<<20)
	payload := bytes.Repeat([]byte("0123456789"), 100)
	go func() { a.Write(payload); a.Close() }()
	head := make([]byte, 3)
	_, err := io.ReadFull(c.br, head)
	require.NoError(t, err)
	require.Positive(t, c.br.Buffered(), "the handshake reader holds bytes beyond what was read")
	c.growReader()
	rest, err := io.ReadAll(c.fr.r)
	require.NoError(t, err)
	require.Equal(t, payload, append(head, rest...))
}

// TCPUserTimeout reaches the sockets of both ends, and Peer reports it.
func TestTCPUserTimeout(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_USER_TIMEOUT is Linux's")
	}
	leakcheck.Check(t)
	tr := newTransport(t)
	sk, ck := newKeys(t), newKeys(t)
	_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true, TCPUserTimeout: 1234 * time.Millisecond})
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: sk.Public, TCPUserTimeout: 4321 * time.Millisecond})
	require.NoError(t, newDealer(t).Dial(dialEndpoint(t, cl, hp)))
	require.Eventually(t, func() bool { return len(srv.Peers()) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, 1234*time.Millisecond, srv.Peers()[0].UserTimeout)
	require.Equal(t, 4321*time.Millisecond, cl.Peers()[0].UserTimeout)

	_, err := tr.NewServer(ServerConfig{Keys: sk, AllowAnyClient: true, TCPUserTimeout: -1})
	require.Error(t, err)
}
