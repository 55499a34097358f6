// Package handletest is a conformance suite for implementations of
// fluxkit.Handle: the in-process test broker runs it, and so does any real
// broker (flub's overlay), so that components behave the same over both.
package handletest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
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

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErrno(t *testing.T, err error, errno syscall.Errno, what string) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Errorf("%s: got %v, want %v", what, err, errno)
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
	must(t, err)
}

func routingByRank(t *testing.T, in Instance) {
	ctx := ctxT(t)
	n := uint32(in.Size())
	for r := uint32(0); r < n; r++ {
		serveWhoami(t, in.Owner(t, r), "conf", 0)
	}
	for _, from := range []uint32{0, n - 1} {
		c := in.Owner(t, from)
		for r := uint32(0); r < n; r++ {
			var out whoami
			must(t, fluxkit.RPC(ctx, c, "conf.whoami", r, nil, &out))
			if out.Rank != r {
				t.Errorf("request from %d to rank %d served by %d", from, r, out.Rank)
			}
		}
	}
	wantErrno(t, fluxkit.RPC(ctx, in.Owner(t, 0), "conf.whoami", n+5, nil, nil), syscall.EHOSTUNREACH, "rank outside the instance")
}

func routingAny(t *testing.T, in Instance) {
	ctx := ctxT(t)
	serveWhoami(t, in.Owner(t, 0), "conf", 0)
	var out whoami
	must(t, fluxkit.RPC(ctx, in.Owner(t, 2), "conf.whoami", fluxkit.NodeidAny, nil, &out))
	if out.Rank != 0 {
		t.Errorf("ANY from rank 2 with the service only on 0 reached %d", out.Rank)
	}
	serveWhoami(t, in.Owner(t, 2), "conf", 0)
	must(t, fluxkit.RPC(ctx, in.Owner(t, 2), "conf.whoami", fluxkit.NodeidAny, nil, &out))
	if out.Rank != 2 {
		t.Errorf("ANY from rank 2 with a local service reached %d", out.Rank)
	}
	must(t, fluxkit.RPC(ctx, in.Owner(t, 2), "conf.whoami", fluxkit.NodeidUpstream, nil, &out))
	if out.Rank == 2 {
		t.Errorf("UPSTREAM from rank 2 was served by rank 2")
	}
}

func unknownService(t *testing.T, in Instance) {
	ctx := ctxT(t)
	wantErrno(t, fluxkit.RPC(ctx, in.Owner(t, 1), "nosuchservice.x", 0, nil, nil), syscall.ENOSYS, "unknown service on a rank")
	wantErrno(t, fluxkit.RPC(ctx, in.Owner(t, 1), "nosuchservice.x", fluxkit.NodeidAny, nil, nil), syscall.ENOSYS, "unknown service, ANY")
	serveWhoami(t, in.Owner(t, 0), "conf", 0)
	wantErrno(t, fluxkit.RPC(ctx, in.Owner(t, 1), "conf.nomethod", 0, nil, nil), syscall.ENOSYS, "unknown method of a known service")
}

func streaming(t *testing.T, in Instance) {
	ctx := ctxT(t)
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
	must(t, err)
	c := in.Owner(t, 2)
	call, err := fluxkit.Stream(ctx, c, "conf.count", 1, map[string]int{"N": 300})
	must(t, err)
	defer call.Close()
	for i := 0; i < 300; i++ {
		m, err := call.Recv(ctx)
		must(t, err)
		var got struct{ I int }
		must(t, json.Unmarshal(m.Payload, &got))
		if got.I != i {
			t.Fatalf("response %d carries %d: out of order", i, got.I)
		}
	}
	_, err = call.Recv(ctx)
	wantErrno(t, err, syscall.ENODATA, "end of stream")
	wantErrno(t, fluxkit.RPC(ctx, c, "conf.count", 1, map[string]int{"N": 1}, nil), syscall.EPROTO, "streaming service without the streaming flag")
}

func roles(t *testing.T, in Instance) {
	ctx := ctxT(t)
	srv := in.Owner(t, 0)
	serveWhoami(t, srv, "ownly", 0)
	serveWhoami(t, srv, "open", fluxkit.RoleUser)
	g := in.Guest(t, 2, 4242)
	err := fluxkit.RPC(ctx, g, "ownly.whoami", 0, nil, nil)
	wantErrno(t, err, syscall.EPERM, "guest calling an owner-only service")
	if err != nil && err.Error() != fluxkit.TextOwnerRequired {
		t.Errorf("EPERM text %q, want %q", err.Error(), fluxkit.TextOwnerRequired)
	}
	var out whoami
	must(t, fluxkit.RPC(ctx, g, "open.whoami", 0, nil, &out))
	if out.Userid != 4242 {
		t.Errorf("guest request arrived with userid %d", out.Userid)
	}
	if g.Cred().IsOwner() || !in.Owner(t, 0).Cred().IsOwner() {
		t.Errorf("Cred(): guest %+v, owner %+v", g.Cred(), in.Owner(t, 0).Cred())
	}
}

func events(t *testing.T, in Instance) {
	ctx := ctxT(t)
	sub, err := in.Owner(t, 2).Subscribe(ctx, "conf-ev.")
	must(t, err)
	defer sub.Close()
	pub := in.Owner(t, 1)
	for i := 0; i < 20; i++ {
		topic := "conf-ev.a"
		if i%3 == 0 {
			topic = "other.b"
		}
		must(t, pub.Publish(ctx, topic, []byte(fmt.Sprintf(`{"i":%d}`, i)), 0))
	}
	var last uint32
	for i := 0; i < 20; i++ {
		if i%3 == 0 {
			continue
		}
		m, err := sub.Recv(ctx)
		must(t, err)
		var got struct{ I int }
		must(t, json.Unmarshal(m.Payload, &got))
		if got.I != i || m.Topic != "conf-ev.a" {
			t.Fatalf("event %d: got %s %s", i, m.Topic, m.Payload)
		}
		if m.Seq <= last {
			t.Errorf("sequence %d after %d", m.Seq, last)
		}
		last = m.Seq
	}
}

func disconnect(t *testing.T, in Instance) {
	ctx := ctxT(t)
	srv := in.Owner(t, 0)
	senders := make(chan string, 1)
	_, err := srv.Register("conf.hold", fluxkit.RoleUser, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	must(t, err)
	_, err = srv.Register("conf.disconnect", fluxkit.RoleUser, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
		senders <- req.Sender()
	})
	must(t, err)
	c := in.Guest(t, 2, 99)
	closer, ok := c.(interface{ Close() error })
	if !ok {
		t.Skip("handle has no Close")
	}
	call, err := fluxkit.Stream(ctx, c, "conf.hold", 0, nil)
	must(t, err)
	defer call.Close()
	// Make sure the request arrived before closing.
	var out struct{}
	must(t, fluxkit.RPC(ctx, c, "attr.get", 0, map[string]string{"name": "rank"}, &out))
	must(t, closer.Close())
	select {
	case s := <-senders:
		if s == "" {
			t.Error("disconnect message without a sender")
		}
	case <-ctx.Done():
		t.Fatal("no <service>.disconnect after the client closed")
	}
}

// serviceNames: a service belongs to one client per rank (a second
// registrant gets EEXIST), and guests may register only services named
// after their userid ("4242-..."), as flux-core's broker allows.
func serviceNames(t *testing.T, in Instance) {
	ctx := ctxT(t)
	nop := func(context.Context, fluxkit.Responder, *fluxkit.Message) {}
	_, err := in.Owner(t, 1).Register("taken.x", 0, nop)
	must(t, err)
	_, err = in.Owner(t, 1).Register("taken.y", 0, nop)
	wantErrno(t, err, syscall.EEXIST, "a service another client holds")
	g := in.Guest(t, 1, 4242)
	_, err = g.Register("guestsvc.x", fluxkit.RoleUser, nop)
	wantErrno(t, err, syscall.EPERM, "a guest registering a service not named after it")
	_, err = g.Register("4242-guestsvc.x", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.Respond([]byte(`{}`))
	})
	must(t, err)
	must(t, fluxkit.RPC(ctx, in.Owner(t, 0), "4242-guestsvc.x", 1, nil, nil))
}

// refusalTexts: the texts of the refusals clients print, as flux-core
// words them.
func refusalTexts(t *testing.T, in Instance) {
	ctx := ctxT(t)
	srv := in.Owner(t, 0)
	serveWhoami(t, srv, "texts", fluxkit.RoleUser)
	_, err := srv.Register("texts.admin", fluxkit.RoleAdmin, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	must(t, err)
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
		wantErrno(t, err, tc.errno, tc.topic)
		if err != nil && err.Error() != tc.text {
			t.Errorf("%s: text %q, want %q", tc.topic, err.Error(), tc.text)
		}
	}
}
