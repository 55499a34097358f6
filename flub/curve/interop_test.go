package curve

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/require"
)

// These tests run against libzmq 4.3.4 through Debian's python3-zmq, in
// testdata/peer.py. Without it they skip, except under CI=true.

type pyMsg struct {
	RID        string   `json:"rid"`
	Identity   *string  `json:"identity"`
	UserID     *string  `json:"user_id"`
	SocketType *string  `json:"socket_type"`
	Frames     []string `json:"frames"`
}

// pyMessages parses the MSG records the libzmq server logged.
func pyMessages(t testing.TB, p *pyPeer) []pyMsg {
	t.Helper()
	var out []pyMsg
	for _, l := range strings.Split(p.Stderr(), "\n") {
		if rest, ok := strings.CutPrefix(l, "MSG "); ok {
			var m pyMsg
			require.NoError(t, json.Unmarshal([]byte(rest), &m))
			out = append(out, m)
		}
	}
	return out
}

func hexFrames(frames ...[]byte) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = hex.EncodeToString(f)
	}
	return out
}

// A Go client completes CURVE with a libzmq server and exchanges messages,
// whatever greeting role the server announces.
func TestInteropGoClientLibzmqServer(t *testing.T) {
	requirePeer(t)
	leakcheck.Check(t)
	tr := newTransport(t)
	ck := testClientKeys(t)
	p, hp, skey := startPyServer(t, "--test-keys", "--allow="+testClientPublic)
	require.Equal(t, testServerPublic, skey.String())
	cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: skey, HandshakeTimeout: 5 * time.Second})
	d := newDealer(t, zmq4.WithID(zmq4.SocketIdentity("go-dealer-c1")))
	require.NoError(t, d.Dial(dialEndpoint(t, cl, hp)))

	msgs := [][][]byte{
		{[]byte("single")},
		{[]byte(""), bytes.Repeat([]byte("a"), 300), []byte("x")},
		{nil},
		{bytes.Repeat([]byte("L"), 70000), nil, []byte("tail")},
	}
	for _, frames := range msgs {
		require.NoError(t, d.Send(zmq4.NewMsgFrom(frames...)))
		got := recv(t, d, 5*time.Second)
		require.Equal(t, hexFrames(frames...), hexFrames(got.Frames...))
	}
	logged := pyMessages(t, p)
	require.Len(t, logged, len(msgs))
	for i, m := range logged {
		require.Equal(t, hexFrames(msgs[i]...), m.Frames)
		require.NotNil(t, m.Identity)
		require.Equal(t, "go-dealer-c1", *m.Identity, "libzmq sees the Go DEALER's identity")
		require.Equal(t, hex.EncodeToString([]byte("go-dealer-c1")), m.RID)
		require.NotNil(t, m.SocketType)
		require.Equal(t, "DEALER", *m.SocketType)
		require.NotNil(t, m.UserID)
		require.Equal(t, testClientPublic, *m.UserID, "the ZAP handler's user id")
	}
	peers := cl.Peers()
	require.Len(t, peers, 1)
	require.Equal(t, "ROUTER", peers[0].SocketType)
	require.Equal(t, skey, peers[0].Key)
}

// A libzmq client completes CURVE with a Go server, which takes its role
// from its configuration rather than the client's greeting.
func TestInteropLibzmqClientGoServer(t *testing.T) {
	requirePeer(t)
	leakcheck.Check(t)
	tr := newTransport(t)
	sk := testServerKeys(t)
	r, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, Authorizer: AllowList(testClientKeys(t).Public), HandshakeTimeout: 5 * time.Second})

	received := echo(t, r, srv)

	c := startPeer(t, "client", "--endpoint", "tcp://"+hp, "--server-key="+testServerPublic,
		"--test-keys", "--identity", "9", "--multipart", "--monitor", "--hex", "78", "", "79")
	require.Equal(t, "EVENT HANDSHAKE_SUCCEEDED 0", c.line(t, "EVENT", 15*time.Second))
	require.Equal(t, 0, c.exitCode(t, 15*time.Second), "libzmq client: %s", c.Stderr())

	// Single frames, one empty and one long, without an identity: the
	// ROUTER generates a libzmq-style routing id.
	c2 := startPeer(t, "client", "--endpoint", "tcp://"+hp, "--server-key="+testServerPublic,
		"--test-keys", "--hex", "", hex.EncodeToString(bytes.Repeat([]byte("z"), 300)))
	require.Equal(t, 0, c2.exitCode(t, 15*time.Second), "libzmq client: %s", c2.Stderr())

	got := received()
	require.Len(t, got, 3)
	first := got[0]
	require.Equal(t, [][]byte{[]byte("9"), []byte("x"), {}, []byte("y")}, normalize(first.frames))
	require.True(t, first.ok)
	require.Equal(t, testClientPublic, first.peer.Key.String())
	require.Equal(t, testClientPublic, first.peer.UserID)
	require.Equal(t, "DEALER", first.peer.SocketType)
	require.Equal(t, "DEALER", first.peer.Metadata["Socket-Type"])
	require.Equal(t, "9", first.peer.Metadata["Identity"])

	gen := got[1].frames[0]
	require.Len(t, gen, 5)
	require.Equal(t, byte(0), gen[0], "generated routing ids start with 0x00, as libzmq's")
	require.Equal(t, gen, got[2].frames[0])
	require.Empty(t, got[1].frames[1])
	require.Len(t, got[2].frames[1], 300)
	require.True(t, got[1].ok)
}

func normalize(frames [][]byte) [][]byte {
	out := make([][]byte, len(frames))
	for i, f := range frames {
		out[i] = append([]byte{}, f...)
	}
	return out
}

// A key the authorizer denies is refused with ERROR "400" both ways
// between Go and libzmq.
func TestInteropDenied(t *testing.T) {
	requirePeer(t)
	leakcheck.Check(t)
	tr := newTransport(t)

	t.Run("libzmq client denied by Go server", func(t *testing.T) {
		var logs testutil.Buffer
		sk := newKeys(t)
		a, b := newKeys(t), newKeys(t)
		_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, Authorizer: AllowList(a.Public),
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		c := startPeer(t, "client", "--endpoint", "tcp://"+hp, "--server-key="+sk.Public.String(),
			"--public="+b.Public.String(), "--secret="+b.Secret.String(), "--timeout", "1", "--monitor", "x")
		// libzmq itself reads our ERROR as a ZAP 400 authentication failure.
		require.Equal(t, "EVENT HANDSHAKE_FAILED_AUTH 400", c.line(t, "EVENT", 15*time.Second))
		require.Equal(t, 2, c.exitCode(t, 15*time.Second), "no reply for a denied key")
		require.Contains(t, logs.String(), "client denied")
		require.Contains(t, logs.String(), b.Public.String())
		require.Empty(t, srv.Peers())
	})

	t.Run("Go client denied by libzmq server", func(t *testing.T) {
		_, hp, skey := startPyServer(t, "--allow="+newKeys(t).Public.String())
		cl := goClient(t, tr, ClientConfig{Keys: newKeys(t), ServerKey: skey, HandshakeTimeout: 5 * time.Second})
		err := newDealer(t).Dial(dialEndpoint(t, cl, hp))
		var re *RefusedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "400", re.Reason)
		require.Contains(t, err.Error(), "ERROR 400")
		require.ErrorIs(t, err, ErrClientKeyNotAuthorized)
	})
}

// A client that expects another server key fails, both ways between Go
// and libzmq, and says so.
func TestInteropWrongServerKey(t *testing.T) {
	requirePeer(t)
	leakcheck.Check(t)
	tr := newTransport(t)

	t.Run("Go client, libzmq server", func(t *testing.T) {
		_, hp, _ := startPyServer(t, "--test-keys")
		ck := testClientKeys(t)
		cl := goClient(t, tr, ClientConfig{Keys: ck, ServerKey: ck.Public, HandshakeTimeout: 2 * time.Second})
		err := newDealer(t).Dial(dialEndpoint(t, cl, hp))
		require.ErrorIs(t, err, ErrHandshake)
		require.ErrorIs(t, err, ErrServerKeyMismatch, "libzmq hangs up on a HELLO it cannot open")
		require.NotErrorIs(t, err, ErrHandshakeTimeout, "the hang-up, not the handshake deadline, ends it")
	})

	t.Run("libzmq client, Go server", func(t *testing.T) {
		_, srv, hp := goServer(t, tr, ServerConfig{Keys: testServerKeys(t), AllowAnyClient: true})
		c := startPeer(t, "client", "--endpoint", "tcp://"+hp, "--server-key="+testClientPublic,
			"--test-keys", "--timeout", "1", "x")
		require.Equal(t, 2, c.exitCode(t, 15*time.Second))
		require.Empty(t, srv.Peers())
	})
}

// libzmq sends as-server = 0 in CURVE greetings from either side; the Go
// peers accept it.
func TestInteropGreetingAsServer(t *testing.T) {
	requirePeer(t)
	// libzmq's CURVE server sends as-server = 0 ...
	_, hp, _ := startPyServer(t, "--test-keys")
	nc, err := net.Dial("tcp", hp)
	require.NoError(t, err)
	defer nc.Close()
	g := makeGreeting("CURVE", 3, 1, 0)
	_, err = nc.Write(g[:])
	require.NoError(t, err)
	var pg [64]byte
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadFull(nc, pg[:])
	require.NoError(t, err)
	require.Equal(t, byte(0), pg[32], "libzmq CURVE server's as-server byte")
	require.NoError(t, checkGreeting(pg[:], "CURVE"))

	// ... and so does its CURVE client; the Go server takes its role from
	// its own configuration and completes the handshake regardless.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	startPeer(t, "client", "--endpoint", "tcp://"+ln.Addr().String(), "--server-key="+testServerPublic, "--test-keys", "--timeout", "1", "x")
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
	cc, err := ln.Accept()
	require.NoError(t, err)
	defer cc.Close()
	cc.Write(g[:])
	cc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadFull(cc, pg[:])
	require.NoError(t, err)
	require.Equal(t, byte(0), pg[32], "libzmq CURVE client's as-server byte")
	require.Equal(t, "CURVE", strings.TrimRight(string(pg[12:32]), "\x00"))
}

// libzmq's ZMTP heartbeat PINGs get PONGs, so a Go peer is never dropped
// as silent.
func TestInteropHeartbeats(t *testing.T) {
	requirePeer(t)
	leakcheck.Check(t)
	tr := newTransport(t)
	const ivl = "100" // ms; libzmq drops a peer silent for 3 intervals

	t.Run("libzmq server pings Go client", func(t *testing.T) {
		_, hp, skey := startPyServer(t, "--heartbeat", ivl)
		cl := goClient(t, tr, ClientConfig{Keys: newKeys(t), ServerKey: skey})
		d := newDealer(t)
		require.NoError(t, d.Dial(dialEndpoint(t, cl, hp)))
		require.NoError(t, d.Send(zmq4.NewMsgString("one")))
		require.Equal(t, "one", string(recv(t, d, 5*time.Second).Frames[0]))
		time.Sleep(time.Second) // ten PINGs; without PONGs libzmq would drop us
		require.NoError(t, d.Send(zmq4.NewMsgString("two")))
		require.Equal(t, "two", string(recv(t, d, 5*time.Second).Frames[0]))
		_, err := recvErr(d, 100*time.Millisecond)
		require.ErrorIs(t, err, errRecvTimeout, "PING/PONG never reach the application")
		require.Len(t, cl.Peers(), 1, "still the first connection")
	})

	t.Run("libzmq client pings Go server", func(t *testing.T) {
		r, srv, hp := goServer(t, tr, ServerConfig{Keys: testServerKeys(t), AllowAnyClient: true})
		received := echo(t, r, srv)
		c := startPeer(t, "client", "--endpoint", "tcp://"+hp, "--server-key="+testServerPublic, "--test-keys",
			"--identity", "hb", "--heartbeat", ivl, "--pause", "1", "a", "b")
		require.Equal(t, 0, c.exitCode(t, 15*time.Second), c.Stderr())
		got := received()
		require.Len(t, got, 2, "only data reaches the ROUTER")
		require.Equal(t, "a", string(got[0].frames[1]))
		require.Equal(t, "b", string(got[1].frames[1]))
	})
}

func TestDeniedErrorBytes(t *testing.T) { // exact ERROR "400" on the wire
	leakcheck.Check(t)
	tr := newTransport(t)
	sk, ck := newKeys(t), newKeys(t)
	_, _, hp := goServer(t, tr, ServerConfig{Keys: sk, Authorizer: AllowList(newKeys(t).Public)})
	nc, err := net.Dial("tcp", hp)
	require.NoError(t, err)
	defer nc.Close()
	c := newConn(nc, false, nopOwner{}, slog.New(slog.DiscardHandler), 5*time.Second, 1<<20)
	h, err := newClientHandshake(nil, ck, sk.Public, meta("Socket-Type", "DEALER"))
	require.NoError(t, err)
	g := makeGreeting("CURVE", 3, 1, 0)
	require.NoError(t, c.exchangeGreetings(t.Context(), appendCommandFrame(g[:], h.hello())))
	body, err := c.readCommand(t.Context(), "WELCOME")
	require.NoError(t, err)
	init, _, err := h.step(body)
	require.NoError(t, err)
	_, err = nc.Write(appendCommandFrame(nil, init))
	require.NoError(t, err)
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c.br)
	require.NoError(t, err)
	require.Equal(t, "040a054552524f5203343030", hex.EncodeToString(rest), "ERROR 400 then close")
}

// A libzmq client completes its handshake with a Go server that holds more
// idle connections than the old cap of 1024 pending handshakes.
func TestInteropHandshakeFlood(t *testing.T) {
	requirePeer(t)
	leakcheck.Check(t)
	tr := newTransport(t)
	sk, ck := newKeys(t), newKeys(t)
	_, srv, hp := goServer(t, tr, ServerConfig{Keys: sk, AllowAnyClient: true})
	flood := floodConns(t, hp, 1100)
	c := startPeer(t, "client", "--endpoint", "tcp://"+hp, "--server-key="+sk.Public.String(),
		"--public="+ck.Public.String(), "--secret="+ck.Secret.String(), "--timeout", "5", "--monitor", "x")
	require.Equal(t, "EVENT HANDSHAKE_SUCCEEDED 0", c.line(t, "EVENT", 20*time.Second))
	require.Eventually(t, func() bool { return len(srv.Peers()) == 1 }, 10*time.Second, 10*time.Millisecond)
	stillOpen(t, flood[0])
}
