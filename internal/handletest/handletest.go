// Package handletest is a conformance suite for implementations of
// fluxkit.Handle: the in-process test broker runs it, and so does any real
// broker (flub's overlay), so that components behave the same over both.
package handletest

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Instance is a running instance of at least three ranks under test, with
// rank 2 a descendant of rank 1 or of rank 0 (any tree shape will do).
type Instance interface {
	Size() int
	// Owner returns a new connection to rank r with the owner's credentials.
	Owner(t *testing.T, r uint32) fluxkit.Handle
	// Guest returns a new connection to rank r as user userid.
	Guest(t *testing.T, r uint32, userid uint32) fluxkit.Handle
}

// Run runs the suite. newInstance is called once per subtest.
func Run(t *testing.T, newInstance func(t *testing.T) Instance) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Instance)
	}{
		{"RoutingByRank", routingByRank},
		{"RoutingAny", routingAny},
		{"UnknownService", unknownService},
		{"Streaming", streaming},
		{"Roles", roles},
		{"Events", events},
		{"Disconnect", disconnect},
		{"ServiceNames", serviceNames},
		{"RefusalTexts", refusalTexts},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newInstance(t)) })
	}
}

type whoami struct {
	Rank   uint32 `json:"rank"`
	Userid uint32 `json:"userid"`
	Sender string `json:"sender"`
}

func serveWhoami(t *testing.T, h fluxkit.Handle, service string, allow fluxkit.Role) {
	t.Helper()
	_, err := h.Register(service+".whoami", allow, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		_ = fluxkit.Respond(w, whoami{Rank: h.Rank(), Userid: req.Userid, Sender: req.Sender()})
	})
	require.NoError(t, err)
}

func routingByRank(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	n := uint32(in.Size())
	for r := uint32(0); r < n; r++ {
		serveWhoami(t, in.Owner(t, r), "conf", 0)
	}
	for _, from := range []uint32{0, n - 1} {
		c := in.Owner(t, from)
		for r := uint32(0); r < n; r++ {
			var out whoami
			require.NoError(t, fluxkit.RPC(ctx, c, "conf.whoami", r, nil, &out))
			assert.Equal(t, r, out.Rank, "request from %d to rank %d", from, r)
		}
	}
	assert.ErrorIs(t, fluxkit.RPC(ctx, in.Owner(t, 0), "conf.whoami", n+5, nil, nil), syscall.EHOSTUNREACH, "rank outside the instance")
}

func routingAny(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	serveWhoami(t, in.Owner(t, 0), "conf", 0)
	var out whoami
	require.NoError(t, fluxkit.RPC(ctx, in.Owner(t, 2), "conf.whoami", fluxkit.NodeidAny, nil, &out))
	assert.Equal(t, uint32(0), out.Rank, "ANY from rank 2 with the service only on 0")
	serveWhoami(t, in.Owner(t, 2), "conf", 0)
	require.NoError(t, fluxkit.RPC(ctx, in.Owner(t, 2), "conf.whoami", fluxkit.NodeidAny, nil, &out))
	assert.Equal(t, uint32(2), out.Rank, "ANY from rank 2 with a local service")
	require.NoError(t, fluxkit.RPC(ctx, in.Owner(t, 2), "conf.whoami", fluxkit.NodeidUpstream, nil, &out))
	assert.NotEqual(t, uint32(2), out.Rank, "UPSTREAM from rank 2 skips rank 2")
}

func unknownService(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	assert.ErrorIs(t, fluxkit.RPC(ctx, in.Owner(t, 1), "nosuchservice.x", 0, nil, nil), syscall.ENOSYS, "unknown service on a rank")
	assert.ErrorIs(t, fluxkit.RPC(ctx, in.Owner(t, 1), "nosuchservice.x", fluxkit.NodeidAny, nil, nil), syscall.ENOSYS, "unknown service, ANY")
	serveWhoami(t, in.Owner(t, 0), "conf", 0)
	assert.ErrorIs(t, fluxkit.RPC(ctx, in.Owner(t, 1), "conf.nomethod", 0, nil, nil), syscall.ENOSYS, "unknown method of a known service")
}

func streaming(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	srv := in.Owner(t, 1)
	_, err := srv.Register("conf.count", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		if !fluxkit.RequireStreaming(w, req) {
			return
		}
		var n struct{ N int }
		if !fluxkit.DecodeRequest(w, req, &n) {
			return
		}
		for i := 0; i < n.N; i++ {
			_ = fluxkit.Respond(w, map[string]int{"i": i})
		}
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENODATA, ""))
	})
	require.NoError(t, err)
	c := in.Owner(t, 2)
	call, err := fluxkit.Stream(ctx, c, "conf.count", 1, map[string]int{"N": 300})
	require.NoError(t, err)
	defer call.Close()
	for i := 0; i < 300; i++ {
		m, err := call.Recv(ctx)
		require.NoError(t, err)
		var got struct{ I int }
		require.NoError(t, json.Unmarshal(m.Payload, &got))
		require.Equal(t, i, got.I, "responses in order")
	}
	_, err = call.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA, "end of stream")
	assert.ErrorIs(t, fluxkit.RPC(ctx, c, "conf.count", 1, map[string]int{"N": 1}, nil), syscall.EPROTO, "streaming service without the streaming flag")
}

func roles(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	srv := in.Owner(t, 0)
	serveWhoami(t, srv, "ownly", 0)
	serveWhoami(t, srv, "open", fluxkit.RoleUser)
	g := in.Guest(t, 2, 4242)
	err := fluxkit.RPC(ctx, g, "ownly.whoami", 0, nil, nil)
	assert.ErrorIs(t, err, syscall.EPERM, "guest calling an owner-only service")
	assert.EqualError(t, err, fluxkit.TextOwnerRequired)
	var out whoami
	require.NoError(t, fluxkit.RPC(ctx, g, "open.whoami", 0, nil, &out))
	assert.Equal(t, uint32(4242), out.Userid, "a guest request arrives with the guest's userid")
	assert.False(t, g.Cred().IsOwner(), "guest Cred %+v", g.Cred())
	assert.True(t, in.Owner(t, 0).Cred().IsOwner(), "owner Cred")
}

func events(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	sub, err := in.Owner(t, 2).Subscribe(ctx, "conf-ev.")
	require.NoError(t, err)
	defer sub.Close()
	pub := in.Owner(t, 1)
	for i := 0; i < 20; i++ {
		topic := "conf-ev.a"
		if i%3 == 0 {
			topic = "other.b"
		}
		require.NoError(t, pub.Publish(ctx, topic, []byte(fmt.Sprintf(`{"i":%d}`, i)), 0))
	}
	var last uint32
	for i := 0; i < 20; i++ {
		if i%3 == 0 {
			continue
		}
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		var got struct{ I int }
		require.NoError(t, json.Unmarshal(m.Payload, &got))
		require.Equal(t, i, got.I, "events in order, the others filtered out")
		require.Equal(t, "conf-ev.a", m.Topic)
		assert.Greater(t, m.Seq, last, "sequence numbers grow")
		last = m.Seq
	}
}

func disconnect(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	srv := in.Owner(t, 0)
	senders := make(chan string, 1)
	_, err := srv.Register("conf.hold", fluxkit.RoleUser, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	require.NoError(t, err)
	_, err = srv.Register("conf.disconnect", fluxkit.RoleUser, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
		senders <- req.Sender()
	})
	require.NoError(t, err)
	c := in.Guest(t, 2, 99)
	closer, ok := c.(interface{ Close() error })
	if !ok {
		t.Skip("handle has no Close")
	}
	call, err := fluxkit.Stream(ctx, c, "conf.hold", 0, nil)
	require.NoError(t, err)
	defer call.Close()
	// Make sure the request arrived before closing.
	var out struct{}
	require.NoError(t, fluxkit.RPC(ctx, c, "attr.get", 0, map[string]string{"name": "rank"}, &out))
	require.NoError(t, closer.Close())
	select {
	case s := <-senders:
		assert.NotEmpty(t, s, "a disconnect message names its sender")
	case <-ctx.Done():
		require.FailNow(t, "no <service>.disconnect after the client closed")
	}
}

// serviceNames: a service belongs to one client per rank (a second
// registrant gets EEXIST), and guests may register only services named
// after their userid ("4242-..."), as flux-core's broker allows.
func serviceNames(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	nop := func(context.Context, fluxkit.Responder, *fluxkit.Message) {}
	_, err := in.Owner(t, 1).Register("taken.x", 0, nop)
	require.NoError(t, err)
	_, err = in.Owner(t, 1).Register("taken.y", 0, nop)
	assert.ErrorIs(t, err, syscall.EEXIST, "a service another client holds")
	g := in.Guest(t, 1, 4242)
	_, err = g.Register("guestsvc.x", fluxkit.RoleUser, nop)
	assert.ErrorIs(t, err, syscall.EPERM, "a guest registering a service not named after it")
	_, err = g.Register("4242-guestsvc.x", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.Respond([]byte(`{}`))
	})
	require.NoError(t, err)
	require.NoError(t, fluxkit.RPC(ctx, in.Owner(t, 0), "4242-guestsvc.x", 1, nil, nil))
}

// refusalTexts: the texts of the refusals clients print, as flux-core
// words them.
func refusalTexts(t *testing.T, in Instance) {
	ctx := testutil.Context(t)
	srv := in.Owner(t, 0)
	serveWhoami(t, srv, "texts", fluxkit.RoleUser)
	_, err := srv.Register("texts.admin", fluxkit.RoleAdmin, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	require.NoError(t, err)
	c := in.Owner(t, 2)
	for _, tc := range []struct {
		h     fluxkit.Handle
		topic string
		errno syscall.Errno
		text  string
	}{
		{c, "nosuchservice.x", syscall.ENOSYS, "No service matching nosuchservice.x is registered"},
		{c, "texts.nomethod", syscall.ENOSYS, "Unknown service method 'texts.nomethod'"},
		{in.Guest(t, 2, 4243), "texts.admin", syscall.EPERM, "Request rejected due to insufficient privilege"},
	} {
		err := fluxkit.RPC(ctx, tc.h, tc.topic, 0, nil, nil)
		assert.ErrorIs(t, err, tc.errno, tc.topic)
		assert.EqualError(t, err, tc.text, tc.topic)
	}
}
