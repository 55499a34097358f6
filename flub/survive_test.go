package flub

import (
	"context"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tcpProxy forwards TCP connections to a target: a network link the test
// can break. cut drops the connections open now (a flap); while blocked,
// new connections are accepted and dropped at once (the peer unreachable,
// but not refusing).
type tcpProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	blocked bool
	stalled bool
	wg      sync.WaitGroup
}

func newProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &tcpProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) uri() string { return "tcp://" + p.ln.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		blocked, stalled := p.blocked, p.stalled
		if stalled {
			p.conns[c] = struct{}{} // held, silent, until cut
		}
		p.mu.Unlock()
		if blocked {
			c.Close()
		}
		if blocked || stalled {
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// cut drops every connection through the proxy.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *tcpProxy) block(on bool) {
	p.mu.Lock()
	p.blocked = on
	p.mu.Unlock()
}

// stall makes new connections hang silently: a parent host that went
// dark, which a handshake timeout, not a refusal, gives away.
func (p *tcpProxy) stall(on bool) {
	p.mu.Lock()
	p.stalled = on
	p.mu.Unlock()
}

func (p *tcpProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}

// joinVia joins with the link to the parent routed through a new proxy.
func (in *instance) joinVia(t *testing.T, host string, adjust func(*JoinConfig)) (*Broker, *tcpProxy) {
	t.Helper()
	var px *tcpProxy
	cfg := in.joinConfig(host)
	cfg.hooks = &joinHooks{parentURI: func(uri string) string {
		px = newProxy(t, strings.TrimPrefix(uri, "tcp://"))
		return px.uri()
	}}
	if adjust != nil {
		adjust(&cfg)
	}
	b, err := Join(testutil.Context(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b, px
}

func attrRank(t *testing.T, h fluxkit.Handle, nodeid uint32) string {
	t.Helper()
	var out struct{ Value string }
	require.NoError(t, fluxkit.RPC(testutil.Context(t), h, "attr.get", nodeid, map[string]string{"name": "rank"}, &out), "attr.get on rank %d", nodeid)
	return out.Value
}

func alive(t *testing.T, bs ...*Broker) {
	t.Helper()
	for _, b := range bs {
		select {
		case <-b.Done():
			require.FailNow(t, "broker stopped", "rank %d: %v", b.Rank(), b.Err())
		default:
		}
	}
}

// A child whose parent connection drops reconnects, with backoff, and
// comes back with its subtree: its child, which never lost its own link,
// is back in broker.online with it, and requests cross the link again.
func TestChildReconnectsAfterLinkFlap(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	ctx := testutil.Context(t)
	b1, px := in.joinVia(t, "node1", nil)
	b2 := in.mustJoin(ctx, "node2")
	b3 := in.mustJoin(ctx, "node3")
	require.Equal(t, int64(1), b3.Parent(), "rank 3 is under rank 1")
	testutil.WaitFor(t, "0-3 online", func() bool { return in.root.Online().String() == "0-3" })
	before := b1.UUID()
	// Requests in flight across the link when it drops fail at once,
	// whichever way they were going.
	hang := func(context.Context, fluxkit.Responder, *fluxkit.Message) {}
	for _, h := range []fluxkit.Handle{in.root, b1} {
		un, err := h.Register("hang.forever", fluxkit.RoleOwner, hang)
		require.NoError(t, err)
		defer un()
	}
	up, err := fluxkit.Stream(ctx, b3, "hang.forever", 0, map[string]any{})
	require.NoError(t, err)
	defer up.Close()
	down, err := fluxkit.Stream(ctx, in.root, "hang.forever", 1, map[string]any{})
	require.NoError(t, err)
	defer down.Close()
	time.Sleep(100 * time.Millisecond) // both on their way

	px.cut()
	for what, call := range map[string]fluxkit.Call{"rank 3 to rank 0": up, "rank 0 to rank 1": down} {
		_, err := call.Recv(testutil.Context(t))
		require.ErrorIs(t, err, fluxkit.EHOSTUNREACH, "request %s in flight across the cut link", what)
	}
	testutil.WaitFor(t, "rank 1 back on a new connection", func() bool {
		return b1.UUID() != before && in.root.Online().String() == "0-3"
	})
	alive(t, b1, b2, b3)
	assert.Equal(t, "3", attrRank(t, in.root, 3))
	assert.Equal(t, "0", attrRank(t, b3, 0))
	states, _ := ask(in.root, func() []RankState { return []RankState{in.root.p.pool.State(1), in.root.p.pool.State(3)} })
	assert.Equal(t, []RankState{Online, Online}, states, "the pool's ranks 1 and 3")
}

// When the parent is gone for good, the orphaned child rejoins through
// the boot server: it keeps its rank (rank 0 holds it for the lease,
// nobody else gets it), waits for a replacement parent and connects to it.
func TestOrphanRejoinsThroughTheBootServer(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	ctx := testutil.Context(t)
	var bs [4]*Broker
	for r := 1; r <= 3; r++ {
		bs[r] = in.mustJoin(ctx, "node")
		require.Equal(t, uint32(r), bs[r].Rank())
	}
	testutil.WaitFor(t, "0-3 online", func() bool { return in.root.Online().String() == "0-3" })
	before := bs[3].UUID()
	bs[1].Close() // a crash: its port now refuses connections

	testutil.WaitFor(t, "rank 3 orphaned", func() bool {
		st, _ := ask(in.root, func() RankState { return in.root.p.pool.State(3) })
		return st == Orphaned || st == Leased // leased: already reclaimed
	})
	avail, _ := ask(in.root, func() string { return in.root.p.pool.Available().String() })
	require.Equal(t, "1,4-6", avail, "the lost rank 1 is available, never the orphan 3")
	require.Equal(t, uint32(1), in.mustJoin(ctx, "new1").Rank(), "the replacement's rank")
	testutil.WaitFor(t, "rank 3 back under the new rank 1", func() bool {
		return bs[3].UUID() != before && in.root.Online().String() == "0-3"
	})
	alive(t, bs[2], bs[3])
	assert.Equal(t, "3", attrRank(t, in.root, 3))
	requireRank(t, in.ownerClient(t), 4, "getinfo after the rejoin")
}

// A broker cut off long enough to be replaced does not displace its
// replacement when its link comes back: the parent refuses its hello, as
// the key that holds the rank now is another, and the broker stops.
func TestReplacedBrokerDoesNotComeBack(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	ctx := testutil.Context(t)
	old, px := in.joinVia(t, "old1", func(c *JoinConfig) { c.ReconnectTimeout = new(time.Minute) })
	testutil.WaitFor(t, "rank 1 online", func() bool { return in.root.Online().Contains(1) })
	px.block(true)
	px.cut()
	testutil.WaitFor(t, "rank 1 lost", func() bool { return !in.root.Online().Contains(1) })
	nb := in.mustJoin(ctx, "new1")
	require.Equal(t, uint32(1), nb.Rank(), "the replacement's rank")
	px.block(false)
	select {
	case <-old.Done():
	case <-ctx.Done():
		require.FailNow(t, "the replaced broker is still running")
	}
	require.ErrorIs(t, old.Err(), ErrReplaced)
	alive(t, nb)
	ri, _ := in.root.Lookup(1)
	assert.True(t, ri.Online)
	assert.Equal(t, "new1", ri.Hostname)
}

// Idle connections beyond the old cap of 1024 pending handshakes, on the
// boot server and on rank 0's overlay socket, from the joiners' own
// address: joiners still get in.
func TestHandshakeFloodDoesNotLockJoinersOut(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	ep, _, err := ParseBootURI(in.root.BootURI())
	require.NoError(t, err)
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for _, target := range []string{strings.TrimPrefix(ep, "tcp://"), strings.TrimPrefix(in.root.Endpoint(), "tcp://")} {
		for range 1100 {
			c, err := net.Dial("tcp", target)
			require.NoError(t, err)
			flood = append(flood, c)
		}
	}
	// Each connection has been taken up once the server greets it.
	for _, c := range flood {
		require.NoError(t, c.SetReadDeadline(time.Now().Add(testutil.DefaultTimeout)))
		_, err := io.ReadFull(c, make([]byte, 64))
		require.NoError(t, err, "a flood connection's greeting")
	}
	ctx := testutil.Context(t)
	for r := uint32(1); r <= 2; r++ {
		require.Equal(t, r, in.mustJoin(ctx, "node").Rank(), "joined during the flood")
	}
	testutil.WaitFor(t, "both online", func() bool { return in.root.Online().String() == "0-2" })
}

// Overlay links carry a TCP user timeout, so a child on a dead host is
// lost within it instead of lingering torpid: rank 0's default 20 s on the
// links it accepts, the joiner's own on the link it dials.
func TestOverlayLinksHaveTCPUserTimeout(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("TCP_USER_TIMEOUT is Linux's")
	}
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	cfg := in.joinConfig("n1")
	cfg.TCPUserTimeout = 2500 * time.Millisecond
	b, err := Join(testutil.Context(t), cfg)
	require.NoError(t, err)
	defer b.Close()
	testutil.WaitFor(t, "rank 1 online", func() bool { return in.root.Online().Contains(1) })
	peers := in.root.srv.Peers()
	require.Len(t, peers, 1)
	assert.Equal(t, DefaultTCPUserTimeout, peers[0].UserTimeout, "rank 0's side")
	up, _ := ask(b, func() []curve.Peer { return b.up.cl.Peers() })
	require.Len(t, up, 1)
	assert.Equal(t, 2500*time.Millisecond, up[0].UserTimeout, "the joiner's side")
}

// A zero ReconnectTimeout gives up on the old parent after one failed
// attempt (here a handshake that timed out) and rejoins through the boot
// server, where the default keeps trying the old parent for 10 s.
func TestZeroReconnectTimeoutRejoinsAfterOneAttempt(t *testing.T) {
	leakcheck.Check(t)
	logger, logs := testutil.Logger()
	in := startInstance(t, Config{Size: 3})
	b, px := in.joinVia(t, "n1", func(c *JoinConfig) {
		c.ReconnectTimeout, c.HandshakeTimeout, c.Logger = new(time.Duration(0)), time.Second, logger
	})
	testutil.WaitFor(t, "rank 1 online", func() bool { return in.root.Online().Contains(1) })
	before := b.UUID()
	px.stall(true)
	px.cut()
	testutil.WaitFor(t, "rank 1 back through the boot server", func() bool {
		return b.UUID() != before && in.root.Online().Contains(1)
	})
	alive(t, b)
	lines := testutil.Lines(logs.String())
	gone := slices.IndexFunc(lines, func(l string) bool {
		return strings.Contains(l, `msg="parent gone, rejoining through the boot server"`)
	})
	require.GreaterOrEqual(t, gone, 0, "no rejoin logged:\n%s", logs)
	failed := 0
	for _, l := range lines[:gone] {
		if strings.Contains(l, `msg="reconnect to parent failed"`) {
			failed++
			assert.Contains(t, l, "handshake timed out")
		}
	}
	assert.Equal(t, 1, failed, "reconnection attempts before the rejoin:\n%s", logs)
}
