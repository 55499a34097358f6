package flub

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// The overlay broker as a fluxkit.Handle across a real 7-broker tree:
// services registered on one rank are reached from any other by nodeid,
// NodeidAny and NodeidUpstream; streaming RPCs; access rules; events.
func TestHandleAcrossTheTree(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	brokers[0] = in.root
	ctx := ctxT(t, 30*time.Second)

	// An "echo" service on every rank answers with its rank.
	for r, b := range brokers {
		un, err := b.Register("echo.rank", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			_ = fluxkit.Respond(w, map[string]any{"rank": r, "sender": req.Sender(), "userid": req.Userid})
		})
		if err != nil {
			t.Fatal(err)
		}
		defer un()
	}
	if _, err := brokers[3].Register("echo.rank", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {}); fluxkit.Errno(err) != fluxkit.EEXIST {
		t.Fatalf("double register: %v", err)
	}
	var out struct {
		Rank   int
		Userid uint32
	}
	for from := uint32(0); from < 7; from++ {
		for to := uint32(0); to < 7; to++ {
			if err := fluxkit.RPC(ctx, brokers[from], "echo.rank", to, map[string]any{}, &out); err != nil || out.Rank != int(to) {
				t.Fatalf("%d → %d: rank %d, %v", from, to, out.Rank, err)
			}
		}
	}
	// NodeidAny is served locally when the service is here.
	if err := fluxkit.RPC(ctx, brokers[5], "echo.rank", fluxkit.NodeidAny, map[string]any{}, &out); err != nil || out.Rank != 5 {
		t.Fatalf("any from 5: %d %v", out.Rank, err)
	}
	// NodeidUpstream skips this rank: rank 5's parent is 2.
	if err := fluxkit.RPC(ctx, brokers[5], "echo.rank", fluxkit.NodeidUpstream, map[string]any{}, &out); err != nil || out.Rank != 2 {
		t.Fatalf("upstream from 5: %d %v", out.Rank, err)
	}
	// A service only on rank 0 is found from a leaf with NodeidAny.
	un, _ := in.root.Register("only0.ping", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) { _ = w.Respond([]byte(`{}`)) })
	defer un()
	if err := fluxkit.RPC(ctx, brokers[6], "only0.ping", fluxkit.NodeidAny, nil, nil); err != nil {
		t.Fatalf("any to rank 0's service: %v", err)
	}
	var cfg map[string]any
	if err := fluxkit.RPC(ctx, brokers[6], "config.get", 6, map[string]any{}, &cfg); err != nil || cfg == nil {
		t.Fatalf("config.get: %v %v", cfg, err)
	}
	err := fluxkit.RPC(ctx, brokers[4], "nosuch.topic", 6, nil, nil)
	wantErr(t, "unknown service", err, fluxkit.ENOSYS, "")
	err = fluxkit.RPC(ctx, brokers[4], "echo.rank", 9, nil, nil)
	wantErr(t, "rank beyond size", err, fluxkit.EHOSTUNREACH, "")

	// Credentials travel: a guest on rank 4 reaches echo (RoleUser allowed)
	// but not the owner-only only0.ping.
	guest, err := brokers[4].Connect(fluxkit.Cred{Userid: 777, Roles: fluxkit.RoleUser})
	if err != nil {
		t.Fatal(err)
	}
	if err := fluxkit.RPC(ctx, guest, "echo.rank", 6, map[string]any{}, &out); err != nil || out.Userid != 777 {
		t.Fatalf("guest echo: %+v %v", out, err)
	}
	err = fluxkit.RPC(ctx, guest, "only0.ping", 0, nil, nil)
	wantErr(t, "guest to owner-only", err, fluxkit.EPERM, fluxkit.TextOwnerRequired)

	// Streaming: broker.online watch from rank 6 ends with ENODATA when
	// "until" is met.
	call, err := fluxkit.Stream(ctx, brokers[6], topicGroups, 0, map[string]any{"name": "broker.online", "until": 6})
	if err != nil {
		t.Fatal(err)
	}
	m, err := call.Recv(ctx)
	if err != nil || string(m.Payload) != `{"members":"0-6"}` {
		t.Fatalf("groups.get: %s %v", m.Payload, err)
	}
	if _, err := call.Recv(ctx); fluxkit.Errno(err) != fluxkit.ENODATA {
		t.Fatalf("end of stream: %v", err)
	}
	call.Close()

	// Disconnect notices reach the service the client used.
	gotDisconnect := make(chan string, 1)
	un2, _ := brokers[3].Register("echo.disconnect", fluxkit.RoleUser, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
		gotDisconnect <- req.Sender()
	})
	defer un2()
	client, _ := brokers[6].Connect(fluxkit.Cred{Userid: 5, Roles: fluxkit.RoleUser})
	if err := fluxkit.RPC(ctx, client, "echo.rank", 3, map[string]any{}, &out); err != nil {
		t.Fatal(err)
	}
	client.Close()
	select {
	case <-gotDisconnect:
	case <-ctx.Done():
		t.Fatal("no echo.disconnect")
	}
	guest.Close()
}

// Events published anywhere reach every subscriber in rank 0's sequence.
func TestEventsAcrossTheTree(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	brokers[0] = in.root
	ctx := ctxT(t, 30*time.Second)
	subs := map[uint32]fluxkit.Subscription{}
	for r, b := range brokers {
		s, err := b.Subscribe(ctx, "test.")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		subs[r] = s
	}
	// Subscriptions are registered through the loop; a round trip on
	// each broker makes sure they are in place.
	for _, b := range brokers {
		_ = fluxkit.RPC(ctx, b, "attr.get", b.Rank(), map[string]string{"name": "rank"}, nil)
	}
	for i, from := range []uint32{6, 0, 3} {
		if err := brokers[from].Publish(ctx, fmt.Sprintf("test.e%d", i), []byte(`{}`), 0); err != nil {
			t.Fatal(err)
		}
		// Wait for delivery everywhere before the next publish so the
		// order is defined.
		for r, s := range subs {
			m, err := s.Recv(ctx)
			if err != nil || m.Topic != fmt.Sprintf("test.e%d", i) || m.Seq != uint32(i+1) {
				t.Fatalf("rank %d: event %v seq %d, %v; want test.e%d seq %d", r, m.Topic, m.Seq, err, i, i+1)
			}
		}
	}
	if err := brokers[2].Publish(ctx, "other.x", nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := brokers[2].Publish(ctx, "test.last", nil, 0); err != nil {
		t.Fatal(err)
	}
	m, err := subs[5].Recv(ctx)
	if err != nil || m.Topic != "test.last" {
		t.Fatalf("prefix filter: %v %v", m, err)
	}
}

// A child silent for longer than TorpidMax is torpid, not lost, as in
// flux-core: it stays online, its rank is not handed out again, it is
// listed in broker.torpid until it speaks again, and it keeps running.
func TestSilentChildIsTorpidNotLost(t *testing.T) {
	leakcheck.Check(t)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	logger, logs := newLogRecorder()
	in := startInstance(t, Config{Size: 3, Now: now, Heartbeat: time.Second, TorpidMax: time.Minute, Logger: logger})
	ctx := ctxT(t, 30*time.Second)
	cfg := in.joinConfig("node1")
	cfg.Heartbeat, cfg.TorpidMax = time.Hour, 2*time.Hour // never heartbeat
	b, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitFor(t, "rank 1 online", 5*time.Second, func() bool { return in.root.Online().Contains(1) })
	time.Sleep(600 * time.Millisecond) // a few ticks: not torpid yet
	if !in.root.Torpid().IsEmpty() {
		t.Fatalf("torpid %s before TorpidMax", in.root.Torpid())
	}
	skew.Store(int64(2 * time.Minute))
	waitFor(t, "rank 1 torpid", 5*time.Second, func() bool { return in.root.Torpid().Contains(1) })
	if !in.root.Online().Contains(1) {
		t.Fatal("a torpid rank left broker.online")
	}
	if r, err := getinfo(t, in.ownerClient(t), 0); err != nil || r.Rank != 2 {
		t.Fatalf("getinfo with rank 1 torpid: %+v %v (rank 1 must stay held)", r, err)
	}
	select {
	case <-b.Done():
		t.Fatalf("the torpid child stopped: %v", b.Err())
	default:
	}
	if ri, _ := in.root.Lookup(1); !ri.Torpid || !ri.Online || ri.State != Online {
		t.Fatalf("rank 1 %+v", ri)
	}
	// It speaks: responsive again.
	var out struct{ Value string }
	if err := fluxkit.RPC(ctx, b, "attr.get", 0, map[string]string{"name": "size"}, &out); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "rank 1 responsive", 5*time.Second, func() bool { return in.root.Torpid().IsEmpty() })
	var unresponsive, responsive bool
	for _, l := range logs() {
		unresponsive = unresponsive || strings.Contains(l, "(rank 1) has been unresponsive for")
		responsive = responsive || strings.Contains(l, "(rank 1) is responsive now")
	}
	if !unresponsive || !responsive {
		t.Fatalf("torpid log lines missing: %q", logs())
	}
}

// A version mismatch at hello makes the joiner fail with the parent's text.
func TestHelloVersionMismatch(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	cfg := in.joinConfig("node1")
	cfg.hooks = &joinHooks{version: 9 << 16}
	_, err := Join(ctxT(t, 30*time.Second), cfg)
	wantErr(t, "version mismatch", err, fluxkit.EINVAL, "overlay.hello: client (9.0.0) version mismatched with server (0.1.0)")
}

// A joiner configured with another topology than the instance's is
// refused at getinfo, before it costs a rank (a kary:32 joiner given rank 1
// of a kary:2 instance would be a leaf whose children never find it); one
// configured with none adopts the instance's.
func TestTopologyCheckedAtGetinfo(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7, Topo: "kary:2"})
	ctx := ctxT(t, 30*time.Second)
	cfg := in.joinConfig("wrong")
	cfg.Topo = "kary:32"
	_, err := Join(ctx, cfg)
	wantErr(t, "kary:32 joiner", err, fluxkit.EINVAL,
		"boot-flub: tbon.topo mismatch: the joiner is configured with kary:32, the instance uses kary:2")
	for want := uint32(1); want <= 2; want++ {
		b, err := in.join(ctx, fmt.Sprintf("n%d", want)) // configured kary:2
		if err != nil {
			t.Fatal(err)
		}
		if b.Rank() != want {
			t.Fatalf("rank %d, want %d: the refused joiner cost a rank", b.Rank(), want)
		}
	}
	cfg = in.joinConfig("n3")
	cfg.Topo = ""
	b, err := Join(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if v, _ := b.Attr("tbon.topo"); v != "kary:2" || b.Rank() != 3 || b.Parent() != 1 {
		t.Fatalf("adopting joiner: tbon.topo %q, rank %d, parent %d", v, b.Rank(), b.Parent())
	}
}

// Against a boot server that does not report tbon.topo (flux-core's), a
// joiner uses its own, and a mismatch is still caught at hello: a wrong
// parent refuses a rank that is not its child.
func TestTopologyMismatchWithoutTopoInGetinfo(t *testing.T) {
	leakcheck.Check(t)
	hook := func(m map[string]any) { delete(m["attrs"].(map[string]string), "tbon.topo") }
	in := startInstance(t, Config{Size: 5, Topo: "kary:1", hooks: &startHooks{getinfo: hook}}) // chain 0-1-2-3-4
	ctx := ctxT(t, 30*time.Second)
	if _, err := in.join(ctx, "n1"); err != nil {
		t.Fatal(err)
	}
	// The default kary:32 computes parent 0 for rank 2, but in the chain
	// rank 2 is rank 1's child: hello at rank 0 fails "not a child".
	cfg := in.joinConfig("n2")
	cfg.Topo = ""
	_, err := Join(ctx, cfg)
	wantErr(t, "wrong parent", err, fluxkit.EINVAL, "rank 2 is not a child of rank 0: mismatched config?")
}

// Close ends every goroutine and socket even with calls in flight.
func TestCloseWithCallsInFlight(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 2})
	ctx := ctxT(t, 30*time.Second)
	b, err := in.join(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	block := make(chan struct{})
	un, _ := b.Register("slow.op", 0, func(ctx context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		<-ctx.Done()
		close(block)
	})
	defer un()
	call, err := fluxkit.Stream(ctx, in.root, "slow.op", 1, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, err := call.Recv(ctx)
		if err == nil {
			t.Error("Recv after close succeeded")
		}
	}()
	time.Sleep(100 * time.Millisecond)
	b.Close()
	<-block
	in.root.Close()
	wg.Wait()
	call.Close()
	var v json.RawMessage
	if err := fluxkit.RPC(ctx, in.root, "attr.get", 0, map[string]string{"name": "rank"}, &v); err == nil {
		t.Fatal("RPC on a closed broker succeeded")
	}
}

// groups.get: the full stream on every change, and its error cases.
func TestGroupsGet(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	ctx := ctxT(t, 30*time.Second)
	call, err := fluxkit.Stream(ctx, in.root, topicGroups, 0, map[string]any{"name": "broker.online"})
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	next := func() string {
		m, err := call.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return string(m.Payload)
	}
	if got := next(); got != `{"members":"0"}` {
		t.Fatalf("first %s", got)
	}
	b, err := in.join(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if got := next(); got != `{"members":"0-1"}` {
		t.Fatalf("after join %s", got)
	}
	b.Close()
	if got := next(); got != `{"members":"0"}` {
		t.Fatalf("after loss %s", got)
	}
	err = fluxkit.RPC(ctx, in.root, topicGroups, 0, map[string]any{"name": "broker.online"}, nil)
	wantErr(t, "not streaming", err, fluxkit.EPROTO, "requires the streaming flag")
	for payload, want := range map[string]fluxkit.Error{
		`{"name":"nope"}`:                      {Errnum: fluxkit.ENOENT, Text: `unknown group "nope"`},
		`{"name":"broker.online","until":3}`:   {Errnum: fluxkit.EINVAL, Text: "until: rank 3"},
		`{"name":"broker.online","until":"x"}`: {Errnum: fluxkit.EPROTO},
	} {
		c, err := fluxkit.Stream(ctx, in.root, topicGroups, 0, json.RawMessage(payload))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Recv(ctx)
		c.Close()
		wantErr(t, payload, err, want.Errnum, want.Text)
	}
}

// Error responses keep errno and text across the tree and through the
// boot server.
func TestErrorsAndClientLimits(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 2})
	ctx := ctxT(t, 30*time.Second)
	b, err := in.join(ctx, "n1")
	if err != nil {
		t.Fatal(err)
	}
	un, err := b.Register("fail.now", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EBUSY, "busy on rank 1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer un()
	err = fluxkit.RPC(ctx, in.root, "fail.now", 1, nil, nil)
	wantErr(t, "remote error", err, fluxkit.EBUSY, "busy on rank 1")

	// A boot client's requests reach the whole tree with the owner
	// credentials its key earned; requests are all it sends.
	c := in.ownerClient(t)
	err = rpc(ctx, c, "fail.now", 1, nil, nil)
	wantErr(t, "remote error through the boot server", err, fluxkit.EBUSY, "busy on rank 1")
	if _, err := c.Request(ctx, &fluxkit.Message{Type: fluxkit.TypeEvent}); fluxkit.Errno(err) != fluxkit.EINVAL {
		t.Fatalf("boot client Request with an event: %v", err)
	}
	conn, _ := b.Connect(fluxkit.Cred{Userid: 3, Roles: fluxkit.RoleUser})
	defer conn.Close()
	if conn.Rank() != 1 || conn.Size() != 2 || conn.Cred().Userid != 3 {
		t.Fatalf("conn identity %d %d %v", conn.Rank(), conn.Size(), conn.Cred())
	}
	if _, err := conn.Request(ctx, &fluxkit.Message{Type: fluxkit.TypeEvent}); fluxkit.Errno(err) != fluxkit.EINVAL {
		t.Fatalf("Request with an event: %v", err)
	}
	if err := b.Disconnect(ctx, 5); fluxkit.Errno(err) != fluxkit.ENOENT {
		t.Fatalf("Disconnect of a non-child: %v", err)
	}
}
