package flub

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The overlay broker as a fluxkit.Handle across a real 7-broker tree:
// services registered on one rank are reached from any other by nodeid,
// NodeidAny and NodeidUpstream; streaming RPCs; access rules; disconnect
// notices.
func TestHandleAcrossTheTree(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	brokers[0] = in.root
	ctx := testutil.Context(t)

	// An "echo" service on every rank answers with its rank.
	for r, b := range brokers {
		un, err := b.Register("echo.rank", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			_ = fluxkit.Respond(w, map[string]any{"rank": r, "sender": req.Sender(), "userid": req.Userid})
		})
		require.NoError(t, err)
		defer un()
	}
	_, err := brokers[3].Register("echo.rank", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	require.ErrorIs(t, err, fluxkit.EEXIST, "a second provider on one rank")
	var out struct {
		Rank   int
		Userid uint32
	}
	echo := func(h fluxkit.Handle, nodeid uint32) int {
		t.Helper()
		require.NoError(t, fluxkit.RPC(ctx, h, "echo.rank", nodeid, map[string]any{}, &out))
		return out.Rank
	}
	for from := uint32(0); from < 7; from++ {
		for to := uint32(0); to < 7; to++ {
			require.Equal(t, int(to), echo(brokers[from], to), "%d → %d", from, to)
		}
	}
	assert.Equal(t, 5, echo(brokers[5], fluxkit.NodeidAny), "NodeidAny is served here when the service is here")
	assert.Equal(t, 2, echo(brokers[5], fluxkit.NodeidUpstream), "NodeidUpstream skips this rank: rank 5's parent is 2")
	// A service only on rank 0 is found from a leaf with NodeidAny.
	un, err := in.root.Register("only0.ping", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) { _ = w.Respond([]byte(`{}`)) })
	require.NoError(t, err)
	defer un()
	require.NoError(t, fluxkit.RPC(ctx, brokers[6], "only0.ping", fluxkit.NodeidAny, nil, nil))
	var cfg map[string]any
	require.NoError(t, fluxkit.RPC(ctx, brokers[6], "config.get", 6, map[string]any{}, &cfg))
	assert.NotNil(t, cfg)
	err = fluxkit.RPC(ctx, brokers[4], "nosuch.topic", 6, nil, nil)
	requireError(t, err, fluxkit.ENOSYS, "", "unknown service")
	err = fluxkit.RPC(ctx, brokers[4], "echo.rank", 9, nil, nil)
	requireError(t, err, fluxkit.EHOSTUNREACH, "", "rank beyond size")

	// Credentials travel: a guest on rank 4 reaches echo (RoleUser allowed)
	// but not the owner-only only0.ping.
	guest, err := brokers[4].Connect(fluxkit.Cred{Userid: 777, Roles: fluxkit.RoleUser})
	require.NoError(t, err)
	defer guest.Close()
	echo(guest, 6)
	assert.Equal(t, uint32(777), out.Userid)
	err = fluxkit.RPC(ctx, guest, "only0.ping", 0, nil, nil)
	requireError(t, err, fluxkit.EPERM, fluxkit.TextOwnerRequired, "guest to owner-only")

	// Streaming: broker.online watch from rank 6 ends with ENODATA when
	// "until" is met.
	call, err := fluxkit.Stream(ctx, brokers[6], topicGroups, 0, map[string]any{"name": "broker.online", "until": 6})
	require.NoError(t, err)
	defer call.Close()
	m, err := call.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, `{"members":"0-6"}`, string(m.Payload))
	_, err = call.Recv(ctx)
	require.ErrorIs(t, err, fluxkit.ENODATA, "end of stream")

	// Disconnect notices reach the service the client used.
	gotDisconnect := make(chan string, 1)
	un2, err := brokers[3].Register("echo.disconnect", fluxkit.RoleUser, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
		gotDisconnect <- req.Sender()
	})
	require.NoError(t, err)
	defer un2()
	client, err := brokers[6].Connect(fluxkit.Cred{Userid: 5, Roles: fluxkit.RoleUser})
	require.NoError(t, err)
	echo(client, 3)
	client.Close()
	select {
	case <-gotDisconnect:
	case <-ctx.Done():
		require.FailNow(t, "no echo.disconnect")
	}
}

// Events published anywhere reach every subscriber in rank 0's sequence.
func TestEventsAcrossTheTree(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	brokers[0] = in.root
	ctx := testutil.Context(t)
	subs := map[uint32]fluxkit.Subscription{}
	for r, b := range brokers {
		s, err := b.Subscribe(ctx, "test.")
		require.NoError(t, err)
		defer s.Close()
		subs[r] = s
	}
	// Subscriptions are registered through the loop; a round trip on
	// each broker makes sure they are in place.
	for _, b := range brokers {
		_ = fluxkit.RPC(ctx, b, "attr.get", b.Rank(), map[string]string{"name": "rank"}, nil)
	}
	for i, from := range []uint32{6, 0, 3} {
		require.NoError(t, brokers[from].Publish(ctx, fmt.Sprintf("test.e%d", i), []byte(`{}`), 0))
		// Wait for delivery everywhere before the next publish so the
		// order is defined.
		for r, s := range subs {
			m, err := s.Recv(ctx)
			require.NoError(t, err, "rank %d", r)
			assert.Equal(t, fmt.Sprintf("test.e%d", i), m.Topic, "rank %d", r)
			assert.Equal(t, uint32(i+1), m.Seq, "rank %d", r)
		}
	}
	require.NoError(t, brokers[2].Publish(ctx, "other.x", nil, 0))
	require.NoError(t, brokers[2].Publish(ctx, "test.last", nil, 0))
	m, err := subs[5].Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "test.last", m.Topic, "the prefix filters")
}

// A child silent for longer than TorpidMax is torpid, not lost, as in
// flux-core: it stays online, its rank is not handed out again, it is
// listed in broker.torpid until it speaks again, and it keeps running.
func TestSilentChildIsTorpidNotLost(t *testing.T) {
	leakcheck.Check(t)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	logger, logs := testutil.Logger()
	in := startInstance(t, Config{Size: 3, Now: now, Heartbeat: time.Second, TorpidMax: time.Minute, Logger: logger})
	ctx := testutil.Context(t)
	cfg := in.joinConfig("node1")
	cfg.Heartbeat, cfg.TorpidMax = time.Hour, 2*time.Hour // never heartbeat
	b, err := Join(ctx, cfg)
	require.NoError(t, err)
	defer b.Close()
	testutil.WaitFor(t, "rank 1 online", func() bool { return in.root.Online().Contains(1) })
	time.Sleep(600 * time.Millisecond) // a few ticks: not torpid yet
	require.True(t, in.root.Torpid().IsEmpty(), "torpid %s before TorpidMax", in.root.Torpid())
	skew.Store(int64(2 * time.Minute))
	testutil.WaitFor(t, "rank 1 torpid", func() bool { return in.root.Torpid().Contains(1) })
	require.True(t, in.root.Online().Contains(1), "a torpid rank left broker.online")
	requireRank(t, in.ownerClient(t), 2, "rank 1 must stay held while torpid")
	select {
	case <-b.Done():
		require.FailNow(t, "the torpid child stopped", "%v", b.Err())
	default:
	}
	ri, _ := in.root.Lookup(1)
	assert.Equal(t, RankInfo{Rank: 1, Hostname: "node1", Online: true, Torpid: true, State: Online}, ri)
	// It speaks: responsive again.
	require.NoError(t, fluxkit.RPC(ctx, b, "attr.get", 0, map[string]string{"name": "size"}, nil))
	testutil.WaitFor(t, "rank 1 responsive", func() bool { return in.root.Torpid().IsEmpty() })
	assert.Contains(t, logs.String(), "(rank 1) has been unresponsive for")
	assert.Contains(t, logs.String(), "(rank 1) is responsive now")
}

// A version mismatch at hello makes the joiner fail with the parent's text.
func TestHelloRefusesAnotherProtocolVersion(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	cfg := in.joinConfig("node1")
	cfg.hooks = &joinHooks{version: 9 << 16}
	_, err := Join(testutil.Context(t), cfg)
	requireError(t, err, fluxkit.EINVAL, "overlay.hello: client (9.0.0) version mismatched with server (0.1.0)")
}

// A joiner configured with another topology than the instance's is
// refused at getinfo, before it costs a rank (a kary:32 joiner given rank 1
// of a kary:2 instance would be a leaf whose children never find it); one
// configured with none adopts the instance's.
func TestTopologyCheckedAtGetinfo(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7, Topo: "kary:2"})
	ctx := testutil.Context(t)
	cfg := in.joinConfig("wrong")
	cfg.Topo = "kary:32"
	_, err := Join(ctx, cfg)
	requireError(t, err, fluxkit.EINVAL,
		"boot-flub: tbon.topo mismatch: the joiner is configured with kary:32, the instance uses kary:2")
	for want := uint32(1); want <= 2; want++ {
		b := in.mustJoin(ctx, fmt.Sprintf("n%d", want)) // configured kary:2
		require.Equal(t, want, b.Rank(), "the refused joiner cost a rank")
	}
	cfg = in.joinConfig("n3")
	cfg.Topo = ""
	b, err := Join(ctx, cfg)
	require.NoError(t, err)
	defer b.Close()
	v, _ := b.Attr("tbon.topo")
	assert.Equal(t, "kary:2", v)
	assert.Equal(t, uint32(3), b.Rank())
	assert.Equal(t, int64(1), b.Parent())
}

// Against a boot server that does not report tbon.topo (flux-core's), a
// joiner uses its own, and a mismatch is still caught at hello: a wrong
// parent refuses a rank that is not its child.
func TestTopologyMismatchWithoutTopoInGetinfo(t *testing.T) {
	leakcheck.Check(t)
	hook := func(m map[string]any) { delete(m["attrs"].(map[string]string), "tbon.topo") }
	in := startInstance(t, Config{Size: 5, Topo: "kary:1", hooks: &startHooks{getinfo: hook}}) // chain 0-1-2-3-4
	ctx := testutil.Context(t)
	in.mustJoin(ctx, "n1")
	// The default kary:32 computes parent 0 for rank 2, but in the chain
	// rank 2 is rank 1's child: hello at rank 0 fails "not a child".
	cfg := in.joinConfig("n2")
	cfg.Topo = ""
	_, err := Join(ctx, cfg)
	requireError(t, err, fluxkit.EINVAL, "rank 2 is not a child of rank 0: mismatched config?")
}

// Close ends every goroutine and socket even with calls in flight, which
// fail; a closed broker takes no more requests.
func TestCloseEndsCallsInFlight(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 2})
	ctx := testutil.Context(t)
	b := in.mustJoin(ctx, "n1")
	block := make(chan struct{})
	un, err := b.Register("slow.op", 0, func(ctx context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		<-ctx.Done()
		close(block)
	})
	require.NoError(t, err)
	defer un()
	call, err := fluxkit.Stream(ctx, in.root, "slow.op", 1, map[string]any{})
	require.NoError(t, err)
	var wg sync.WaitGroup
	wg.Go(func() {
		_, err := call.Recv(ctx)
		assert.Error(t, err, "Recv after close")
	})
	time.Sleep(100 * time.Millisecond)
	b.Close()
	<-block
	in.root.Close()
	wg.Wait()
	call.Close()
	var v json.RawMessage
	assert.Error(t, fluxkit.RPC(ctx, in.root, "attr.get", 0, map[string]string{"name": "rank"}, &v), "RPC on a closed broker")
}

// groups.get streams broker.online on every change; its refusals.
func TestGroupsGetStreamsMembership(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	ctx := testutil.Context(t)
	call, err := fluxkit.Stream(ctx, in.root, topicGroups, 0, map[string]any{"name": "broker.online"})
	require.NoError(t, err)
	defer call.Close()
	next := func() string {
		m, err := call.Recv(ctx)
		require.NoError(t, err)
		return string(m.Payload)
	}
	assert.Equal(t, `{"members":"0"}`, next(), "first")
	b := in.mustJoin(ctx, "n1")
	assert.Equal(t, `{"members":"0-1"}`, next(), "after the join")
	b.Close()
	assert.Equal(t, `{"members":"0"}`, next(), "after the loss")
	err = fluxkit.RPC(ctx, in.root, topicGroups, 0, map[string]any{"name": "broker.online"}, nil)
	requireError(t, err, fluxkit.EPROTO, "requires the streaming flag", "not streaming")
	for payload, want := range map[string]fluxkit.Error{
		`{"name":"nope"}`:                      {Errnum: fluxkit.ENOENT, Text: `unknown group "nope"`},
		`{"name":"broker.online","until":3}`:   {Errnum: fluxkit.EINVAL, Text: "until: rank 3"},
		`{"name":"broker.online","until":"x"}`: {Errnum: fluxkit.EPROTO},
	} {
		c, err := fluxkit.Stream(ctx, in.root, topicGroups, 0, json.RawMessage(payload))
		require.NoError(t, err)
		_, err = c.Recv(ctx)
		c.Close()
		requireError(t, err, want.Errnum, want.Text, payload)
	}
}

// Error responses keep errno and text across the tree and through the
// boot server; a Conn refuses what is not a request.
func TestErrorsKeepErrnoAndTextAcrossTheTree(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 2})
	ctx := testutil.Context(t)
	b := in.mustJoin(ctx, "n1")
	un, err := b.Register("fail.now", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EBUSY, "busy on rank 1"))
	})
	require.NoError(t, err)
	defer un()
	err = fluxkit.RPC(ctx, in.root, "fail.now", 1, nil, nil)
	requireError(t, err, fluxkit.EBUSY, "busy on rank 1", "remote error")

	// A boot client's requests reach the whole tree with the owner
	// credentials its key earned; requests are all it sends.
	c := in.ownerClient(t)
	err = rpc(ctx, c, "fail.now", 1, nil, nil)
	requireError(t, err, fluxkit.EBUSY, "busy on rank 1", "remote error through the boot server")
	_, err = c.Request(ctx, &fluxkit.Message{Type: fluxkit.TypeEvent})
	require.ErrorIs(t, err, fluxkit.EINVAL, "boot client Request with an event")

	conn, err := b.Connect(fluxkit.Cred{Userid: 3, Roles: fluxkit.RoleUser})
	require.NoError(t, err)
	defer conn.Close()
	assert.Equal(t, uint32(1), conn.Rank())
	assert.Equal(t, uint32(2), conn.Size())
	assert.Equal(t, uint32(3), conn.Cred().Userid)
	_, err = conn.Request(ctx, &fluxkit.Message{Type: fluxkit.TypeEvent})
	require.ErrorIs(t, err, fluxkit.EINVAL, "Request with an event")
	require.ErrorIs(t, b.Disconnect(ctx, 5), fluxkit.ENOENT, "Disconnect of a non-child")
}

// A joiner learns the instance owner's userid from getinfo, so owner
// credentials carry the same userid on every rank, and security.owner is
// immutable.
func TestJoinerLearnsTheOwner(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3, OwnerUserid: new(uint32(4321))})
	ctx := testutil.Context(t)
	b := in.mustJoin(ctx, "node1")
	v, _ := b.Attr("security.owner")
	assert.Equal(t, "4321", v)
	assert.Equal(t, uint32(4321), b.Cred().Userid)
	assert.True(t, b.Cred().IsOwner())
	// A request from the joiner's own connection reaches rank 0 as the owner.
	got := make(chan uint32, 1)
	_, err := in.root.Register("who.ami", 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		got <- req.Userid
		_ = w.Respond(nil)
	})
	require.NoError(t, err)
	require.NoError(t, fluxkit.RPC(ctx, b, "who.ami", 0, nil, nil))
	assert.Equal(t, uint32(4321), <-got)
	err = fluxkit.RPC(ctx, b, "attr.set", b.Rank(), map[string]string{"name": "security.owner", "value": "0"}, nil)
	require.ErrorIs(t, err, fluxkit.EPERM)
}
