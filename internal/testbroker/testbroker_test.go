package testbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/fluxkit/fluxkit/kvs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveEcho registers "<svc>.echo" on h, answering {"rank":R,"in":payload}.
func serveEcho(t *testing.T, h *Handle, svc string, allow fluxkit.Role) {
	t.Helper()
	_, err := h.Register(svc+".echo", allow, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		_ = fluxkit.Respond(w, map[string]any{"rank": h.Rank(), "in": json.RawMessage(req.Payload), "sender": req.Sender(), "userid": req.Userid})
	})
	require.NoError(t, err)
}

type echoOut struct {
	Rank   uint32          `json:"rank"`
	In     json.RawMessage `json:"in"`
	Sender string          `json:"sender"`
	Userid uint32          `json:"userid"`
}

func TestRoutingByRank(t *testing.T) {
	leakcheck.Check(t)
	b := newBroker(t, Config{Size: 15, Fanout: 2})
	ctx := testutil.Context(t)
	for r := uint32(0); r < 15; r++ {
		serveEcho(t, b.Owner(r), "svc", 0)
	}
	c := b.Owner(9)
	for r := uint32(0); r < 15; r++ {
		var out echoOut
		require.NoError(t, fluxkit.RPC(ctx, c, "svc.echo", r, map[string]int{"x": int(r)}, &out))
		assert.Equal(t, r, out.Rank)
		assert.JSONEq(t, fmt.Sprintf(`{"x":%d}`, r), string(out.In))
		assert.Equal(t, c.UUID(), out.Sender)
	}
	err := fluxkit.RPC(ctx, c, "svc.echo", 15, nil, nil)
	assert.ErrorIs(t, err, syscall.EHOSTUNREACH)
	err = fluxkit.RPC(ctx, c, "nosuch.echo", 3, nil, nil)
	assert.ErrorIs(t, err, syscall.ENOSYS)
	err = fluxkit.RPC(ctx, c, "svc.nomethod", 3, nil, nil)
	assert.ErrorIs(t, err, syscall.ENOSYS)
}

func TestTreeAndPaths(t *testing.T) {
	b := newBroker(t, Config{Size: 15, Fanout: 2})
	p, ok := b.Parent(14)
	assert.True(t, ok)
	assert.Equal(t, uint32(6), p)
	_, ok = b.Parent(0)
	assert.False(t, ok)
	assert.Equal(t, []uint32{9, 4, 1, 0, 2, 6, 14}, b.path(9, 14))
	assert.Equal(t, []uint32{9, 4}, b.path(9, 4))
	assert.Equal(t, []uint32{4, 9}, b.path(4, 9))
	assert.Equal(t, []uint32{3}, b.path(3, 3))
	flat := newBroker(t, Config{Size: 5, Fanout: 4})
	assert.Equal(t, []uint32{3, 0, 4}, flat.path(3, 4))
}

func TestRoutingAnyAndUpstream(t *testing.T) {
	b := newBroker(t, Config{Size: 7, Fanout: 2})
	ctx := testutil.Context(t)
	// The service lives on 0 and 1; rank 3 (child of 1) reaches 1 first.
	serveEcho(t, b.Owner(0), "svc", 0)
	serveEcho(t, b.Owner(1), "svc", 0)
	serveEcho(t, b.Owner(3), "svc", 0)
	var out echoOut
	require.NoError(t, fluxkit.RPC(ctx, b.Owner(3), "svc.echo", fluxkit.NodeidAny, nil, &out))
	assert.Equal(t, uint32(3), out.Rank, "ANY tries the local rank first")
	require.NoError(t, fluxkit.RPC(ctx, b.Owner(3), "svc.echo", fluxkit.NodeidUpstream, nil, &out))
	assert.Equal(t, uint32(1), out.Rank, "UPSTREAM skips the local rank")
	require.NoError(t, fluxkit.RPC(ctx, b.Owner(5), "svc.echo", fluxkit.NodeidAny, nil, &out))
	assert.Equal(t, uint32(0), out.Rank, "5's ancestors are 2 and 0")
	err := fluxkit.RPC(ctx, b.Owner(0), "svc.echo", fluxkit.NodeidUpstream, nil, nil)
	assert.ErrorIs(t, err, syscall.EHOSTUNREACH)
	err = fluxkit.RPC(ctx, b.Owner(6), "other.echo", fluxkit.NodeidAny, nil, nil)
	assert.ErrorIs(t, err, syscall.ENOSYS)
}

func TestRoles(t *testing.T) {
	b := newBroker(t, Config{Size: 2})
	ctx := testutil.Context(t)
	serveEcho(t, b.Owner(1), "owner", 0)
	serveEcho(t, b.Owner(1), "open", fluxkit.RoleUser)
	guest := b.Guest(0, 4242)
	err := fluxkit.RPC(ctx, guest, "owner.echo", 1, nil, nil)
	require.ErrorIs(t, err, syscall.EPERM)
	assert.EqualError(t, err, "Request requires owner credentials")
	var out echoOut
	require.NoError(t, fluxkit.RPC(ctx, guest, "open.echo", 1, nil, &out))
	assert.Equal(t, uint32(4242), out.Userid)
	require.NoError(t, fluxkit.RPC(ctx, b.Owner(0), "owner.echo", 1, nil, &out))
	assert.Equal(t, b.OwnerID(), out.Userid)

	// A guest cannot forge credentials; the owner may act for a user.
	req := fluxkit.NewRequest("open.echo", 1, nil)
	req.Userid, req.Rolemask = b.OwnerID(), fluxkit.RoleOwner
	call, err := guest.Request(ctx, req)
	require.NoError(t, err)
	m, err := call.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(m.Payload, &out))
	assert.Equal(t, uint32(4242), out.Userid)
	call.Close()
	req = fluxkit.NewRequest("open.echo", 1, nil)
	req.Userid, req.Rolemask = 77, fluxkit.RoleUser
	call, err = b.Owner(0).Request(ctx, req)
	require.NoError(t, err)
	m, err = call.Recv(ctx)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(m.Payload, &out))
	assert.Equal(t, uint32(77), out.Userid)
	call.Close()
}

func TestRegisterConflicts(t *testing.T) {
	b := newBroker(t, Config{})
	a, c := b.Owner(0), b.Owner(0)
	un, err := a.Register("svc.one", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	require.NoError(t, err)
	_, err = a.Register("svc.one", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.ErrorIs(t, err, syscall.EEXIST)
	_, err = c.Register("svc.two", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.ErrorIs(t, err, syscall.EEXIST, "another handle on the same rank owns the service")
	_, err = c.Register("attr.mine", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.ErrorIs(t, err, syscall.EEXIST, "built-in services are taken")
	_, err = c.Register("noservice", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.ErrorIs(t, err, syscall.EINVAL)
	un()
	un()
	_, err = c.Register("svc.two", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.NoError(t, err, "unregistering the last topic frees the service")
}

func TestStreamingAndCancel(t *testing.T) {
	leakcheck.Check(t)
	b := newBroker(t, Config{Size: 3})
	ctx := testutil.Context(t)
	srv := b.Owner(2)
	var mu sync.Mutex
	streams := map[string]fluxkit.Responder{} // sender/matchtag -> responder
	key := func(sender string, tag uint32) string { return fmt.Sprintf("%s/%d", sender, tag) }
	_, err := srv.Register("stream.count", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		if !fluxkit.RequireStreaming(w, req) {
			return
		}
		var in struct{ N int }
		_ = fluxkit.DecodePayload(req, &in)
		for i := 0; i < in.N; i++ {
			_ = fluxkit.Respond(w, map[string]int{"i": i})
		}
		if in.N >= 0 {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.ENODATA, ""))
			return
		}
		mu.Lock()
		streams[key(req.Sender(), req.Matchtag)] = w
		mu.Unlock()
	})
	require.NoError(t, err)
	_, err = srv.Register("stream.cancel", fluxkit.RoleUser, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
		var in struct{ Matchtag uint32 }
		_ = fluxkit.DecodePayload(req, &in)
		mu.Lock()
		w := streams[key(req.Sender(), in.Matchtag)]
		delete(streams, key(req.Sender(), in.Matchtag))
		mu.Unlock()
		if w != nil {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.ENODATA, ""))
		}
	})
	require.NoError(t, err)

	c := b.Owner(1)
	call, err := fluxkit.Stream(ctx, c, "stream.count", 2, map[string]int{"N": 5})
	require.NoError(t, err)
	for i := 0; i < 5; i++ {
		m, err := call.Recv(ctx)
		require.NoError(t, err)
		assert.JSONEq(t, fmt.Sprintf(`{"i":%d}`, i), string(m.Payload))
		assert.True(t, m.IsStreaming())
	}
	_, err = call.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA)
	_, err = call.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA, "after the end Recv keeps saying ENODATA")
	call.Close()

	// A streaming service refuses a non-streaming request with EPROTO.
	err = fluxkit.RPC(ctx, c, "stream.count", 2, map[string]int{"N": 1}, nil)
	assert.ErrorIs(t, err, syscall.EPROTO)

	// An open stream ends when the service's cancel method is called with
	// its matchtag.
	open, err := fluxkit.Stream(ctx, c, "stream.count", 2, map[string]int{"N": -1})
	require.NoError(t, err)
	require.NoError(t, fluxkit.Notify(ctx, c, "stream.cancel", 2, map[string]uint32{"Matchtag": open.Matchtag()}))
	_, err = open.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA)
	open.Close()

	// Close abandons a call locally: Recv returns at once and later
	// responses are dropped.
	open, err = fluxkit.Stream(ctx, c, "stream.count", 2, map[string]int{"N": -1})
	require.NoError(t, err)
	open.Close()
	_, err = open.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA)

	// Recv honours its context.
	open, err = fluxkit.Stream(ctx, c, "stream.count", 2, map[string]int{"N": -1})
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	_, err = open.Recv(short)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	open.Close()
}

func TestDisconnect(t *testing.T) {
	leakcheck.Check(t)
	b := newBroker(t, Config{Size: 2})
	ctx := testutil.Context(t)
	srv := b.Owner(0)
	got := make(chan string, 4)
	held := make(chan fluxkit.Responder, 1)
	_, err := srv.Register("svc.hold", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) { held <- w })
	require.NoError(t, err)
	_, err = srv.Register("svc.disconnect", fluxkit.RoleUser, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
		got <- req.Sender()
	})
	require.NoError(t, err)

	client := b.Guest(1, 1000)
	call, err := fluxkit.Stream(ctx, client, "svc.hold", 0, nil)
	require.NoError(t, err)
	w := <-held
	require.NoError(t, client.Close())
	select {
	case s := <-got:
		assert.Equal(t, client.UUID(), s)
	case <-ctx.Done():
		require.FailNow(t, "no disconnect message")
	}
	// The closed client's call ends, and responses to it are dropped.
	_, err = call.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ECONNRESET)
	assert.NoError(t, w.Respond([]byte(`{}`)))
	_, err = client.Request(ctx, fluxkit.NewRequest("svc.hold", 0, nil))
	assert.ErrorIs(t, err, syscall.ECONNRESET)
	assert.NoError(t, client.Close(), "Close is idempotent")

	// A server that goes away fails the requests it held.
	c2 := b.Owner(1)
	call, err = fluxkit.Stream(ctx, c2, "svc.hold", 0, nil)
	require.NoError(t, err)
	<-held
	require.NoError(t, srv.Close())
	_, err = call.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENOSYS)
	call.Close()
}

func TestStopAndStartRank(t *testing.T) {
	leakcheck.Check(t)
	b := newBroker(t, Config{Size: 7, Fanout: 2})
	ctx := testutil.Context(t)
	held := make(chan struct{}, 8)
	for _, r := range []uint32{1, 3, 4} {
		_, err := b.Owner(r).Register("svc.hold", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) { held <- struct{}{} })
		require.NoError(t, err)
		serveEcho(t, b.Owner(r), "echo", 0)
	}
	root := b.Owner(0)
	online, err := fluxkit.Stream(ctx, root, "groups.get", 0, map[string]string{"name": "broker.online"})
	require.NoError(t, err)
	m, err := online.Recv(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"members":"0-6"}`, string(m.Payload))

	inflight, err := fluxkit.Stream(ctx, root, "svc.hold", 3, nil)
	require.NoError(t, err)
	<-held
	b.StopRank(1) // interior: 3 and 4 are behind it
	_, err = inflight.Recv(ctx)
	assert.ErrorIs(t, err, syscall.EHOSTUNREACH, "in-flight request across the stopped rank fails")
	inflight.Close()
	m, err = online.Recv(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"members":"0,2-6"}`, string(m.Payload))
	for _, r := range []uint32{1, 3, 4} {
		err := fluxkit.RPC(ctx, root, "echo.echo", r, nil, nil)
		assert.ErrorIs(t, err, syscall.EHOSTUNREACH, "rank %d", r)
	}
	err = fluxkit.RPC(ctx, b.Owner(3), "attr.get", fluxkit.NodeidAny, map[string]string{"name": "rank"}, nil)
	assert.NoError(t, err, "rank 3 itself is up and serves itself")
	_, err = kvs.Lookup(ctx, b.Owner(3), kvs.Primary, "rank")
	assert.ErrorIs(t, err, syscall.EHOSTUNREACH, "rank 3's way to rank 0 crosses rank 1")
	assert.Equal(t, "0,2-6", b.Online().String())

	b.StartRank(1)
	m, err = online.Recv(ctx)
	require.NoError(t, err)
	assert.JSONEq(t, `{"members":"0-6"}`, string(m.Payload))
	var out echoOut
	require.NoError(t, fluxkit.RPC(ctx, root, "echo.echo", 4, nil, &out))
	assert.Equal(t, uint32(4), out.Rank)
	online.Close()
}

// Link faults in virtual time (testing/synctest): a delay is exact, and a
// dropped message is a wait that only a deadline ends.
func TestLinkFaults(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, Config{Size: 3, Seed: 1})
		ctx := testutil.Context(t)
		serveEcho(t, b.Owner(2), "echo", 0)
		c := b.Owner(0)

		b.SetLink(2, Link{Delay: 30 * time.Millisecond})
		start := time.Now()
		require.NoError(t, fluxkit.RPC(ctx, c, "echo.echo", 2, nil, nil))
		assert.Equal(t, 60*time.Millisecond, time.Since(start), "the request and the response each cross the link")

		b.SetLink(2, Link{DropRate: 1})
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		err := fluxkit.RPC(short, c, "echo.echo", 2, nil, nil)
		assert.ErrorIs(t, err, context.DeadlineExceeded, "a dropped request is never answered")

		// With a seeded RNG, the same seed drops the same messages.
		drops := func(seed int64) []bool {
			b := newBroker(t, Config{Size: 2, Seed: seed})
			serveEcho(t, b.Owner(1), "echo", 0)
			b.SetLink(1, Link{DropRate: 0.5})
			var out []bool
			for i := 0; i < 40; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				err := fluxkit.RPC(ctx, b.Owner(0), "echo.echo", 1, nil, nil)
				cancel()
				out = append(out, err != nil)
			}
			return out
		}
		d1, d2 := drops(7), drops(7)
		assert.Equal(t, d1, d2)
		assert.Contains(t, d1, true)
		assert.Contains(t, d1, false)

		b.SetLink(2, Link{})
		require.NoError(t, fluxkit.RPC(ctx, c, "echo.echo", 2, nil, nil))
	})
}

func TestEvents(t *testing.T) {
	leakcheck.Check(t)
	b := newBroker(t, Config{Size: 4})
	ctx := testutil.Context(t)
	all, err := b.Owner(3).Subscribe(ctx, "job-")
	require.NoError(t, err)
	guest, err := b.Guest(2, 500).Subscribe(ctx, "job-")
	require.NoError(t, err)
	other, err := b.Owner(1).Subscribe(ctx, "heartbeat")
	require.NoError(t, err)

	pub := b.Owner(2)
	require.NoError(t, pub.Publish(ctx, "job-state", []byte(`{"n":1}`), 0))
	require.NoError(t, pub.Publish(ctx, "heartbeat.pulse", nil, 0))
	require.NoError(t, pub.Publish(ctx, "job-secret", nil, fluxkit.FlagPrivate))
	require.NoError(t, b.Guest(1, 500).Publish(ctx, "job-mine", nil, fluxkit.FlagPrivate))

	var seqs []uint32
	for _, want := range []string{"job-state", "job-secret", "job-mine"} {
		m, err := all.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, m.Topic)
		seqs = append(seqs, m.Seq)
	}
	assert.Equal(t, []uint32{1, 3, 4}, seqs)
	for _, want := range []string{"job-state", "job-mine"} {
		m, err := guest.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, m.Topic, "a guest sees public events and its own private ones")
	}
	m, err := other.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, uint32(2), m.Seq)

	// A subscriber behind a stopped rank misses events; the publisher
	// behind one cannot publish.
	b.StopRank(1)
	assert.ErrorIs(t, b.Owner(3).Publish(ctx, "job-x", nil, 0), syscall.EHOSTUNREACH)
	require.NoError(t, pub.Publish(ctx, "job-y", nil, 0))
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = all.Recv(short)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	require.NoError(t, all.Close())
	_, err = all.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA)
}

func TestBuiltins(t *testing.T) {
	b := newBroker(t, Config{
		Size:   2,
		Attrs:  map[string]string{"local-uri": "local:///tmp/x"},
		Config: "[resource]\nnoverify = true\n[modules.sched]\nranks = \"0\"\n",
		Env:    map[string]string{"FOO": "bar"},
	})
	ctx := testutil.Context(t)
	h := b.Owner(1)
	var attr struct {
		Value string `json:"value"`
		Flags int    `json:"flags"`
	}
	require.NoError(t, fluxkit.RPC(ctx, h, "attr.get", 1, map[string]string{"name": "rank"}, &attr))
	assert.Equal(t, "1", attr.Value)
	require.NoError(t, fluxkit.RPC(ctx, h, "attr.get", 0, map[string]string{"name": "local-uri"}, &attr))
	assert.Equal(t, "local:///tmp/x", attr.Value)
	err := fluxkit.RPC(ctx, h, "attr.get", 1, map[string]string{"name": "nope"}, nil)
	assert.ErrorIs(t, err, syscall.ENOENT)
	require.NoError(t, fluxkit.RPC(ctx, h, "attr.set", 1, map[string]string{"name": "x", "value": "y"}, nil))
	v, ok := b.Rank(1).Attr("x")
	assert.True(t, ok)
	assert.Equal(t, "y", v)
	assert.ErrorIs(t, fluxkit.RPC(ctx, h, "attr.set", 1, map[string]string{"name": "rank", "value": "5"}, nil), syscall.EPERM)
	err = fluxkit.RPC(ctx, h, "attr.get", 1, nil, nil)
	assert.ErrorIs(t, err, syscall.EPROTO)

	var conf map[string]any
	require.NoError(t, fluxkit.RPC(ctx, h, "config.get", 1, nil, &conf))
	assert.Equal(t, map[string]any{"resource": map[string]any{"noverify": true}, "modules": map[string]any{"sched": map[string]any{"ranks": "0"}}}, conf)
	require.NoError(t, b.Rank(1).SetConfig("a = 1"))
	conf = nil
	require.NoError(t, fluxkit.RPC(ctx, h, "config.get", 1, nil, &conf))
	assert.Equal(t, map[string]any{"a": float64(1)}, conf)
	assert.Error(t, b.Rank(1).SetConfig("a = "))
	require.NoError(t, b.Rank(1).SetConfigJSON(`{"z":1,"a":{"y":2,"b":3}}`))
	call, err := h.Request(ctx, fluxkit.NewRequest("config.get", 1, nil))
	require.NoError(t, err)
	m, err := call.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, `{"z":1,"a":{"y":2,"b":3}}`, string(m.Payload), "JSON config keeps its key order")
	call.Close()
	assert.Error(t, b.Rank(1).SetConfigJSON(`[1]`))
	_, err = Start(Config{Config: "[x"})
	assert.Error(t, err)
	_, err = Start(Config{Config: "a = 1\n[b]\nc = = 2\n"})
	var ce *ConfigError
	require.ErrorAs(t, err, &ce, "a syntax error is located")
	assert.Equal(t, [2]int{3, 5}, [2]int{ce.Line, ce.Column})
	assert.EqualError(t, err, "config:3:5: unexpected character U+003D '=' at start of value")

	var env struct{ Env map[string]string }
	require.NoError(t, fluxkit.RPC(ctx, h, "broker.setenv", 1, map[string]any{"env": map[string]string{"NEW": "1"}}, nil))
	require.NoError(t, fluxkit.RPC(ctx, h, "broker.getenv", 1, map[string][]string{"names": {"FOO", "NEW", "UNSET"}}, &env))
	assert.Equal(t, map[string]string{"FOO": "bar", "NEW": "1"}, env.Env)
	require.NoError(t, fluxkit.RPC(ctx, h, "broker.setenv", 1, map[string]any{"env": map[string]any{"NEW": nil}}, nil))
	assert.ErrorIs(t, fluxkit.RPC(ctx, h, "broker.setenv", 1, map[string]any{"env": map[string]any{"A=B": "x"}}, nil), syscall.EPROTO, "a name with = is refused")
	assert.ErrorIs(t, fluxkit.RPC(ctx, h, "broker.setenv", 1, map[string]any{"env": map[string]any{"OK": "1", "N": 2}}, nil), syscall.EPROTO, "a value that is not a string or null")
	assert.ErrorIs(t, fluxkit.RPC(ctx, h, "broker.setenv", 1, map[string]any{"name": "NEW", "value": "1"}, nil), syscall.EPROTO, "the old {name, value} form is not flux-core's")
	env.Env = nil
	require.NoError(t, fluxkit.RPC(ctx, h, "broker.getenv", 1, map[string][]string{"names": {"FOO", "NEW"}}, &env))
	assert.Equal(t, map[string]string{"FOO": "bar"}, env.Env, "a null value unsets")

	// Guests may read attributes but not the environment.
	g := b.Guest(1, 99)
	assert.NoError(t, fluxkit.RPC(ctx, g, "attr.get", 1, map[string]string{"name": "rank"}, nil))
	assert.ErrorIs(t, fluxkit.RPC(ctx, g, "broker.getenv", 1, map[string][]string{"names": {"FOO"}}, nil), syscall.EPERM)

	txn := new(kvs.Txn)
	require.NoError(t, txn.PutJSON("a.b", []int{1, 2}))
	require.NoError(t, kvs.Commit(ctx, h, kvs.Primary, txn))
	got, err := kvs.Lookup(ctx, b.Owner(1), kvs.Primary, "a.b")
	require.NoError(t, err, "any rank's client reaches rank 0's KVS")
	assert.JSONEq(t, `[1,2]`, string(got))
	txn = new(kvs.Txn)
	require.NoError(t, txn.PutJSON("x", 1))
	txn.Unlink("a.b")
	require.NoError(t, kvs.Commit(ctx, h, kvs.Primary, txn))
	_, err = kvs.Lookup(ctx, h, kvs.Primary, "a.b")
	assert.ErrorIs(t, err, syscall.ENOENT)
	raw, ok := b.KVSGet("x")
	assert.True(t, ok)
	assert.Equal(t, "1", string(raw))
	_, err = kvs.Lookup(ctx, g, kvs.Primary, "x")
	assert.ErrorIs(t, err, syscall.EPERM, "guests may not read the primary namespace")
}

func TestModules(t *testing.T) {
	leakcheck.Check(t)
	b := newBroker(t, Config{Size: 2})
	ctx := testutil.Context(t)
	h := b.Owner(0)
	r0 := b.Rank(0)
	r0.SetModuleLatency("kvs", 40*time.Millisecond)
	r0.SetModuleLatency("content", 40*time.Millisecond)

	// Two slow loads on one rank overlap, as modules start in their own
	// threads in flux-core.
	start := time.Now()
	var wg sync.WaitGroup
	for _, name := range []string{"kvs", "content"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, fluxkit.RPC(ctx, h, "module.load", 0, map[string]any{"path": name, "args": []string{"a"}}, nil))
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	assert.GreaterOrEqual(t, elapsed, 40*time.Millisecond)
	assert.Equal(t, []string{"content", "kvs"}, r0.Modules())
	log := r0.ModuleLog()
	require.Len(t, log, 2)
	assert.True(t, log[0].Start.Before(log[1].End) && log[1].Start.Before(log[0].End), "the loads overlapped")

	assert.ErrorIs(t, fluxkit.RPC(ctx, h, "module.load", 0, map[string]any{"path": "kvs"}, nil), syscall.EEXIST)
	r0.FailModule("sched-simple", fluxkit.Errorf(fluxkit.EINVAL, "bad config"))
	err := fluxkit.RPC(ctx, h, "module.load", 0, map[string]any{"path": "/lib/flux/sched-simple.so", "name": "sched"}, nil)
	assert.NoError(t, err, "the failure is injected by name, and this load is named sched")
	err = fluxkit.RPC(ctx, h, "module.load", 0, map[string]any{"path": "/lib/flux/sched-simple.so"}, nil)
	assert.ErrorIs(t, err, syscall.EINVAL)
	assert.EqualError(t, err, "bad config")

	var list struct {
		Mods []modEntry `json:"mods"`
	}
	require.NoError(t, fluxkit.RPC(ctx, h, "module.list", 0, nil, &list))
	var names []string
	for _, m := range list.Mods {
		names = append(names, m.Name+":"+m.Path)
	}
	assert.Equal(t, []string{"connector-local:builtin", "content:content", "kvs:kvs", "sched:/lib/flux/sched-simple.so"}, names)

	require.NoError(t, fluxkit.RPC(ctx, h, "module.remove", 0, map[string]string{"name": "kvs"}, nil))
	err = fluxkit.RPC(ctx, h, "module.remove", 0, map[string]string{"name": "kvs"}, nil)
	assert.ErrorIs(t, err, syscall.ENOENT)
	assert.Equal(t, []string{"content", "sched"}, r0.Modules())
	assert.Empty(t, b.Rank(1).Modules())
}

func TestCloseWaits(t *testing.T) {
	leakcheck.Check(t)
	b, err := Start(Config{Size: 4})
	require.NoError(t, err)
	b.Rank(0).SetModuleLatency("slow", time.Hour)
	h := b.Owner(3)
	call, err := h.Request(context.Background(), fluxkit.NewRequest("module.load", 0, []byte(`{"path":"slow"}`)))
	require.NoError(t, err)
	sub, err := h.Subscribe(context.Background(), "")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() {
		_, err := call.Recv(context.Background())
		done <- err
	}()
	require.NoError(t, b.Close())
	assert.ErrorIs(t, <-done, syscall.ECONNRESET)
	_, err = sub.Recv(context.Background())
	assert.ErrorIs(t, err, syscall.ENODATA)
	_, err = b.Connect(0, fluxkit.Cred{})
	assert.Error(t, err)
	assert.NoError(t, b.Close())
}

func TestRequestValidation(t *testing.T) {
	b := newBroker(t, Config{})
	ctx := testutil.Context(t)
	h := b.Owner(0)
	_, err := h.Request(ctx, &fluxkit.Message{Type: fluxkit.TypeEvent, Topic: "x.y"})
	assert.ErrorIs(t, err, syscall.EINVAL)
	_, err = h.Request(ctx, fluxkit.NewRequest("", 0, nil))
	assert.ErrorIs(t, err, syscall.EINVAL)
	bad := fluxkit.NewRequest("x.y", 0, nil)
	bad.Flags |= fluxkit.FlagNoResponse | fluxkit.FlagStreaming
	_, err = h.Request(ctx, bad)
	assert.ErrorIs(t, err, syscall.EINVAL)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = h.Request(cancelled, fluxkit.NewRequest("x.y", 0, nil))
	assert.True(t, errors.Is(err, context.Canceled))
	call, err := h.Request(ctx, func() *fluxkit.Message {
		m := fluxkit.NewRequest("x.y", 0, nil)
		m.Flags |= fluxkit.FlagNoResponse
		return m
	}())
	assert.NoError(t, err)
	assert.Nil(t, call)
}

func TestManyRanks(t *testing.T) {
	b := newBroker(t, Config{Size: 1000, Fanout: 2})
	ctx := testutil.Context(t)
	h := b.Owner(999)
	var attr struct{ Value string }
	for _, r := range []uint32{0, 1, 500, 998} {
		require.NoError(t, fluxkit.RPC(ctx, h, "attr.get", r, map[string]string{"name": "rank"}, &attr))
		assert.Equal(t, fmt.Sprint(r), attr.Value)
	}
}
