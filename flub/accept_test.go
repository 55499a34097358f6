package flub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/go-zeromq/zmq4"
)

// ownerClient opens a boot-server client with the owner's key.
func (in *instance) ownerClient(t testing.TB) *Client {
	t.Helper()
	c, err := DialBoot(ctxT(t, 10*time.Second), ClientConfig{BootURI: in.root.BootURI(), Keys: in.owner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type getinfoReply struct {
	Rank   int               `json:"rank"`
	Size   int               `json:"size"`
	Attrs  map[string]string `json:"attrs"`
	Config json.RawMessage   `json:"config"`
}

func getinfo(t testing.TB, h Requester, nodeid uint32) (getinfoReply, error) {
	t.Helper()
	var r getinfoReply
	err := rpc(ctxT(t, 10*time.Second), h, topicGetinfo, nodeid, map[string]any{}, &r)
	return r, err
}

func wantErr(t testing.TB, what string, err error, errno error, text string) {
	t.Helper()
	if err == nil || fluxkit.Errno(err) != fluxkit.Errno(errno) || !strings.Contains(err.Error(), text) {
		t.Fatalf("%s: got %v (errno %v), want %v %q", what, err, fluxkit.Errno(err), errno, text)
	}
}

// fullInstance is F3's instance: kary:2, size 7, six joiners.
func fullInstance(t *testing.T) (*instance, map[uint32]*Broker) {
	in := startInstance(t, Config{Size: 7})
	ctx := ctxT(t, 60*time.Second)
	brokers := map[uint32]*Broker{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 1; i <= 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := in.join(ctx, fmt.Sprintf("node%d", i))
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			brokers[b.Rank()] = b
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "overlay full", 10*time.Second, func() bool { return in.root.Status() == StatusFull })
	return in, brokers
}

// F1 — size override.
func TestF1SizeOverride(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	if v, _ := in.root.Attr("size"); v != "7" || in.root.Size() != 7 {
		t.Fatalf("size attr %q, Size %d", v, in.root.Size())
	}
	if got := in.root.Hostlist(); got != "host0,extra[1-6]" {
		t.Fatalf("hostlist %q", got)
	}
	done := make(chan string, 1)
	in.root.post(func() { done <- in.root.p.pool.Available().String() })
	if got := <-done; got != "1-6" {
		t.Fatalf("pool %s", got)
	}
	for r := uint32(1); r < 7; r++ {
		ri, ok := in.root.Lookup(r)
		if !ok || ri.Rank != r || ri.Online || ri.Hostname != fmt.Sprintf("extra%d", r) || ri.State != Available {
			t.Fatalf("rank %+v, want offline available extra%d", ri, r)
		}
	}
	if _, ok := in.root.Lookup(7); ok {
		t.Fatal("Lookup of a rank beyond the size")
	}
	if rs := in.root.Ranks(); len(rs) != 1 || rs[0].Rank != 0 || !rs[0].Online || rs[0].Hostname != "host0" {
		t.Fatalf("ranks in use %+v, want rank 0 alone", rs)
	}
	if in.root.Status() != StatusPartial {
		t.Fatalf("status %v, want partial", in.root.Status())
	}
}

// F2 — allocation order and exhaustion; D1 config present.
func TestF2AllocationOrder(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7, InstanceConfig: json.RawMessage(`{"resource":{"noverify":true}}`)})
	c := in.ownerClient(t)
	for want := 1; want <= 6; want++ {
		r, err := getinfo(t, c, 0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rank != want || r.Size != 7 || r.Attrs["hostlist"] != "host0,extra[1-6]" || r.Attrs["instance-level"] != "0" {
			t.Fatalf("getinfo %d: %+v", want, r)
		}
		if string(r.Config) != `{"resource":{"noverify":true}}` {
			t.Fatalf("config %s", r.Config)
		}
	}
	_, err := getinfo(t, c, 0)
	wantErr(t, "7th getinfo", err, fluxkit.ENOENT, "there are no available ranks")
}

// F3 — join in any order (children before parents), F4 — interior vs
// leaf, and the hostname replacement of D6.
func TestF3JoinInAnyOrder(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	ctx := ctxT(t, 60*time.Second)
	var mu sync.Mutex
	startedAt := map[uint32]time.Time{} // when a joiner's delay ended
	kexAt := map[uint32]time.Time{}
	brokers := map[uint32]*Broker{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	delays := map[uint32]time.Duration{}
	for r := uint32(1); r <= 6; r++ {
		delays[r] = time.Duration(rng.IntN(300)) * time.Millisecond
	}
	// Parents (1, 2) start last: after every child got its rank.
	delays[1] += 400 * time.Millisecond
	delays[2] += 400 * time.Millisecond
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := 1; i <= 6; i++ {
		cfg := in.joinConfig(fmt.Sprintf("node%d", i))
		cfg.hooks = &joinHooks{
			afterGetinfo: func(r uint32) {
				time.Sleep(delays[r])
				mu.Lock()
				startedAt[r] = time.Now()
				mu.Unlock()
			},
			beforeKex: func(r, parent uint32) {
				mu.Lock()
				kexAt[r] = time.Now()
				mu.Unlock()
				if parent != 0 && !in.root.Online().Contains(parent) {
					errs <- fmt.Errorf("rank %d sends kex before parent %d is online", r, parent)
				}
			},
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := Join(ctx, cfg)
			if err != nil {
				errs <- err
				return
			}
			t.Cleanup(func() { b.Close() })
			mu.Lock()
			brokers[b.Rank()] = b
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "overlay full", 10*time.Second, func() bool { return in.root.Status() == StatusFull })
	for r := uint32(1); r <= 6; r++ {
		b := brokers[r]
		if b == nil {
			t.Fatalf("no broker got rank %d", r)
		}
		if want := int64((r - 1) / 2); b.Parent() != want {
			t.Errorf("rank %d parent %d, want %d", r, b.Parent(), want)
		}
		if p := b.Parent(); p > 0 && !kexAt[r].After(startedAt[uint32(p)]) {
			t.Errorf("rank %d kex at %v before its parent started joining at %v", r, kexAt[r], startedAt[uint32(p)])
		}
	}
	if got := in.root.Online().String(); got != "0-6" {
		t.Errorf("online %s", got)
	}
	if got := in.root.Hostlist(); strings.Contains(got, "extra") {
		t.Errorf("hostlist %q still has placeholders", got)
	}
	for _, ri := range in.root.Ranks() {
		if ri.Rank > 0 {
			host := brokers[ri.Rank].p.hostname
			if ri.Hostname != host {
				t.Errorf("rank %d hostlist entry %q, want %q", ri.Rank, ri.Hostname, host)
			}
		}
	}

	// F4: interior joiners bind and publish tbon.endpoint; leaves do not.
	for r := uint32(1); r <= 6; r++ {
		ep, _ := brokers[r].Attr("tbon.endpoint")
		if interior := r <= 2; interior != strings.HasPrefix(ep, "tcp://127.0.0.1:") || !interior && ep != "" {
			t.Errorf("rank %d tbon.endpoint %q", r, ep)
		}
		if hl, _ := brokers[r].Attr("hostlist"); !strings.HasPrefix(hl, "host0,") {
			t.Errorf("rank %d hostlist attr %q", r, hl)
		}
	}
	c := in.ownerClient(t)
	k, _ := curve.GenerateKeyPair(nil)
	var kr map[string]any
	if err := rpc(ctx, c, topicKex, 1, kexRequest{Name: "9", Pubkey: k.Public.String()}, &kr); err != nil {
		t.Fatal(err)
	}
	if kr["uri"] != brokers[1].Endpoint() || kr["pubkey"] != brokers[1].PublicKey().String() || len(kr["pubkey"].(string)) != 40 {
		t.Errorf("kex reply %v; rank 1 endpoint %s", kr, brokers[1].Endpoint())
	}
}

// F5 — kex response shape, F21 — key bound to rank (D3), F7 — duplicate.
func TestF5F21KexAndBinding(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	ctx := ctxT(t, 30*time.Second)
	r1, err := in.join(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	c := in.ownerClient(t)
	k, _ := curve.GenerateKeyPair(nil)
	var raw json.RawMessage
	if err := rpc(ctx, c, topicKex, 1, kexRequest{Name: "3", Pubkey: k.Public.String()}, &raw); err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	_ = json.Unmarshal(raw, &shape)
	if len(shape) != 3 {
		t.Fatalf("kex reply keys %v", shape)
	}
	for _, key := range []string{"name", "pubkey", "uri"} {
		if _, ok := shape[key].(string); !ok {
			t.Fatalf("kex reply %s not a string: %s", key, raw)
		}
	}
	bin, err := curve.Z85Decode(shape["pubkey"].(string))
	if err != nil || len(bin) != 32 {
		t.Fatalf("pubkey decodes to %d bytes, %v", len(bin), err)
	}
	err = rpc(ctx, c, topicKex, 1, kexRequest{Name: "3", Pubkey: k.Public.String()}, nil)
	wantErr(t, "F7 duplicate key", err, fluxkit.EEXIST, textAuthorizeKey)

	// A DEALER presenting K completes CURVE with rank 1's key.
	pk, uri, _ := parseKexResponse(raw)
	d := dialChild(t, k, pk, uri)
	resp := d.hello(t, 4)
	if resp.Errnum != uint32(fluxkit.EPERM) || string(resp.Payload) != "key is bound to rank 3, not rank 4" {
		t.Fatalf("hello rank 4: errnum %d %q", resp.Errnum, resp.Payload)
	}
	if in.root.Online().Contains(4) {
		t.Fatal("rank 4 marked online")
	}
	resp = d.hello(t, 3)
	if resp.Errnum != 0 {
		t.Fatalf("hello rank 3: %d %q", resp.Errnum, resp.Payload)
	}
	var hr struct{ UUID string }
	_ = json.Unmarshal(resp.Payload, &hr)
	if hr.UUID != r1.UUID() {
		t.Fatalf("hello response uuid %q, want rank 1's %q", hr.UUID, r1.UUID())
	}
	waitFor(t, "rank 3 online", 5*time.Second, func() bool { return in.root.Online().Contains(3) })
}

// testChild is a hand-driven child DEALER.
type testChild struct {
	sock  zmq4.Socket
	uuid  string
	close func() // idempotent; also run at cleanup
}

func dialChild(t testing.TB, keys curve.KeyPair, server curve.Key, uri string) *testChild {
	t.Helper()
	tr, _ := DefaultTransport()
	cl, err := tr.NewClient(curve.ClientConfig{Keys: keys, ServerKey: server})
	if err != nil {
		t.Fatal(err)
	}
	ep, err := cl.Endpoint(uri)
	if err != nil {
		t.Fatal(err)
	}
	uuid := newUUID()
	ctx, cancel := context.WithCancel(context.Background())
	s := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(uuid)), zmq4.WithDialerMaxRetries(2))
	closeAll := sync.OnceFunc(func() { cancel(); s.Close(); cl.Close() })
	t.Cleanup(closeAll)
	if err := s.Dial(ep); err != nil {
		t.Fatal(err)
	}
	return &testChild{sock: s, uuid: uuid, close: closeAll}
}

func (c *testChild) send(t testing.TB, frames ...[]byte) {
	t.Helper()
	if err := c.sock.Send(zmq4.NewMsgFrom(frames...)); err != nil {
		t.Fatal(err)
	}
}

func (c *testChild) recv(t testing.TB) *fluxkit.Message {
	t.Helper()
	got := make(chan zmq4.Msg, 1)
	go func() {
		m, err := c.sock.Recv()
		if err == nil {
			got <- m
		}
		close(got)
	}()
	select {
	case m, ok := <-got:
		if !ok {
			t.Fatal("recv failed")
		}
		msg, err := fluxkit.DecodeFrames(m.Frames)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	case <-time.After(10 * time.Second):
		t.Fatal("no message from parent")
	}
	return nil
}

func (c *testChild) hello(t testing.TB, rank uint32) *fluxkit.Message {
	t.Helper()
	p, _ := json.Marshal(helloPayload{Rank: rank, Version: protocolVersion, UUID: c.uuid, Status: StatusFull})
	m := fluxkit.NewRequest(topicHello, fluxkit.NodeidAny, p)
	m.Rolemask = fluxkit.RoleOwner
	c.send(t, m.Frames()...)
	return c.recv(t)
}

// F6, F8, F9, F18 — kex and getinfo errors over the network.
func TestF6F8F9F18Errors(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	c := in.ownerClient(t)
	ctx := ctxT(t, 30*time.Second)
	k, _ := curve.GenerateKeyPair(nil)
	good := k.Public.String()
	kex := func(nodeid uint32, payload string) error {
		return rpc(ctx, c, topicKex, nodeid, json.RawMessage(payload), nil)
	}
	// F6
	wantErr(t, "kex to leaf", kex(5, `{"name":"9","pubkey":"`+good+`"}`), fluxkit.EINVAL, textNoChildren)
	if n := brokers[5].keystore.len(); n != 0 {
		t.Fatalf("leaf authorized %d keys", n)
	}
	// F8
	for _, p := range []string{good[:39], "~" + good[1:], strings.Repeat("#####", 8)} {
		wantErr(t, "kex key "+p, kex(1, `{"name":"9","pubkey":"`+p+`"}`), fluxkit.EINVAL, textAuthorizeKey)
	}
	wantErr(t, "kex without pubkey", kex(1, `{"name":"9"}`), fluxkit.EPROTO, "")
	wantErr(t, "kex numeric name", kex(1, `{"name":9,"pubkey":"`+good+`"}`), fluxkit.EPROTO, "")
	if err := kex(1, `{"name":"9","pubkey":"`+good+`"}`); err != nil {
		t.Fatalf("broker unusable after bad input: %v", err)
	}
	// F9
	_, err := getinfo(t, c, 1)
	wantErr(t, "getinfo to rank 1", err, fluxkit.EINVAL, textNoRanks)
	// F18: the pool is full here, so re-run on a fresh instance below.
	in2 := startInstance(t, Config{Size: 3})
	c2 := in2.ownerClient(t)
	for _, p := range []string{"[]", "", `"x"`} {
		req := fluxkit.NewRequest(topicGetinfo, 0, []byte(p))
		call, err := c2.Request(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		_, err = call.Recv(ctx)
		call.Close()
		wantErr(t, "getinfo payload "+p, err, fluxkit.EPROTO, "")
	}
	if r, err := getinfo(t, c2, 0); err != nil || r.Rank != 1 {
		t.Fatalf("pool changed by bad getinfo: %+v %v", r, err)
	}
}

// F10 — non-owner refused, over the network and through a local
// connection; the pool is untouched.
func TestF10NonOwner(t *testing.T) {
	leakcheck.Check(t)
	guest, _ := curve.GenerateKeyPair(nil)
	in := startInstance(t, Config{Size: 7, Guests: map[curve.Key]uint32{guest.Public: 4242}})
	ctx := ctxT(t, 30*time.Second)
	gc, err := DialBoot(ctx, ClientConfig{BootURI: in.root.BootURI(), Keys: guest})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	local, err := in.root.Connect(fluxkit.Cred{Userid: 4242, Roles: fluxkit.RoleUser | fluxkit.RoleLocal})
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	k, _ := curve.GenerateKeyPair(nil)
	for name, h := range map[string]Requester{"network": gc, "local": local} {
		_, err := getinfo(t, h, 0)
		wantErr(t, name+" guest getinfo", err, fluxkit.EPERM, "Request requires owner credentials")
		err = rpc(ctx, h, topicKex, 0, kexRequest{Name: "1", Pubkey: k.Public.String()}, nil)
		wantErr(t, name+" guest kex", err, fluxkit.EPERM, "Request requires owner credentials")
	}
	// An unknown key does not even get through CURVE.
	stranger, _ := curve.GenerateKeyPair(nil)
	if c, err := DialBoot(ctx, ClientConfig{BootURI: in.root.BootURI(), Keys: stranger}); err == nil {
		c.Close()
		t.Fatal("boot server accepted an unknown key")
	}
	r, err := getinfo(t, in.ownerClient(t), 0)
	if err != nil || r.Rank != 1 {
		t.Fatalf("owner getinfo after refusals: %+v %v", r, err)
	}
	// The guest's key was never authorized at rank 0 by the refused kex.
	if _, ok := in.root.keystore.bound(k.Public); ok {
		t.Fatal("refused kex authorized its key")
	}
}

// F11 — no free rank.
func TestF11NoFreeRank(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 1})
	_, err := in.join(ctxT(t, 10*time.Second), "node1")
	wantErr(t, "join size 1", err, fluxkit.ENOENT, "boot-flub: there are no available ranks")
}

// F13 — replacement of a lost rank.
func TestF13Replacement(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	ctx := ctxT(t, 30*time.Second)
	oldKey := brokers[6].PublicKey()
	if err := brokers[2].Disconnect(ctx, 6); err != nil {
		t.Fatal(err)
	}
	select {
	case <-brokers[6].Done():
	case <-ctx.Done():
		t.Fatal("rank 6 did not stop on DISCONNECT")
	}
	if !errors.Is(brokers[6].Err(), ErrDisconnected) {
		t.Fatalf("rank 6 stopped with %v", brokers[6].Err())
	}
	waitFor(t, "degraded", 5*time.Second, func() bool { return in.root.Status() == StatusDegraded })
	if in.root.Online().Contains(6) {
		t.Fatal("rank 6 still online")
	}
	err := fluxkit.RPC(ctx, in.root, "attr.get", 6, map[string]string{"name": "rank"}, nil)
	wantErr(t, "request to lost rank 6", err, fluxkit.EHOSTUNREACH, "")

	nb, err := in.join(ctx, "replacement6")
	if err != nil {
		t.Fatal(err)
	}
	if nb.Rank() != 6 || nb.Parent() != 2 || nb.PublicKey() == oldKey {
		t.Fatalf("replacement rank %d parent %d", nb.Rank(), nb.Parent())
	}
	waitFor(t, "full again", 5*time.Second, func() bool { return in.root.Status() == StatusFull })
	if _, ok := brokers[2].keystore.bound(oldKey); !ok {
		t.Fatal("old key no longer authorized at rank 2")
	}
	if ri, _ := in.root.Lookup(6); ri.Hostname != "replacement6" {
		t.Fatalf("hostlist entry 6 %q", ri.Hostname)
	}
	var out struct{ Value string }
	if err := fluxkit.RPC(ctx, in.root, "attr.get", 6, map[string]string{"name": "rank"}, &out); err != nil || out.Value != "6" {
		t.Fatalf("attr.get on new rank 6: %v %v", out, err)
	}
}

// F14 — allocation lease; F22 — parent wait timeout. Rank 0's clock is
// moved by hand, so the lease expires exactly when the test says.
func TestF14F22Lease(t *testing.T) {
	leakcheck.Check(t)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	in := startInstance(t, Config{Size: 7, Lease: time.Minute, Now: now, TorpidMax: time.Hour})
	ctx := ctxT(t, 30*time.Second)
	c := in.ownerClient(t)
	if r, err := getinfo(t, c, 0); err != nil || r.Rank != 1 {
		t.Fatalf("first getinfo %+v %v", r, err)
	} // rank 1's joiner "dies" here
	b2, err := in.join(ctx, "node2")
	if err != nil || b2.Rank() != 2 {
		t.Fatalf("joiner 2: %v", err)
	}
	cfg := in.joinConfig("node3")
	cfg.ParentTimeout = 500 * time.Millisecond
	kexSent := false
	cfg.hooks = &joinHooks{beforeKex: func(uint32, uint32) { kexSent = true }}
	t3 := time.Now()
	_, err = Join(ctx, cfg)
	wantErr(t, "joiner 3", err, fluxkit.ETIMEDOUT, "boot-flub: timed out waiting for parent rank 1 to come online")
	if !errors.Is(err, ErrParentTimeout) || kexSent {
		t.Fatalf("parent timeout: %v, kex sent %v", err, kexSent)
	}
	if d := time.Since(t3); d > cfg.ParentTimeout+2*time.Second {
		t.Fatalf("parent timeout took %v", d)
	}
	if r, err := getinfo(t, c, 0); err != nil || r.Rank != 4 {
		t.Fatalf("getinfo during the leases: %+v %v", r, err)
	}
	skew.Store(int64(61 * time.Second))
	waitFor(t, "leases expire", 10*time.Second, func() bool {
		done := make(chan string, 1)
		in.root.post(func() { done <- in.root.p.pool.Available().String() })
		return <-done == "1,3-6"
	})
	if r, err := getinfo(t, c, 0); err != nil || r.Rank != 1 {
		t.Fatalf("getinfo after expiry: %+v %v", r, err)
	}
	if !in.root.Online().Contains(2) {
		t.Fatal("the online rank 2 was affected by lease expiry")
	}
}

// F15 — attribute propagation.
func TestF15Attributes(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7, Attrs: map[string]string{"instance-level": "2"},
		InstanceConfig: json.RawMessage(`{"tbon":{"torpid_max":"30s"}}`)})
	ctx := ctxT(t, 30*time.Second)
	b, err := in.join(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Attr("instance-level"); v != "2" {
		t.Errorf("instance-level %q", v)
	}
	if v, _ := b.Attr("hostlist"); v != "host0,extra[1-6]" {
		t.Errorf("hostlist %q", v)
	}
	if got := string(b.InstanceConfig()); got != `{"tbon":{"torpid_max":"30s"}}` {
		t.Errorf("config %s", got)
	}
	cfg := in.joinConfig("node2")
	cfg.Attrs = map[string]string{"instance-level": "5"}
	_, err = Join(ctx, cfg)
	wantErr(t, "preset instance-level", err, fluxkit.EEXIST, "error setting attributes: File exists")
}

// F16 — hello contents, captured at the parent's ROUTER.
func TestF16HelloFrames(t *testing.T) {
	leakcheck.Check(t)
	first := make(chan [][]byte, 1)
	var once sync.Once
	in := startInstance(t, Config{Size: 3, hooks: &startHooks{frames: func(_ string, f [][]byte) {
		once.Do(func() {
			cp := make([][]byte, len(f))
			for i := range f {
				cp[i] = append([]byte(nil), f[i]...)
			}
			first <- cp
		})
	}}})
	b, err := in.join(ctxT(t, 30*time.Second), "node1")
	if err != nil {
		t.Fatal(err)
	}
	f := <-first
	if len(f) != 5 {
		t.Fatalf("%d frames: %q", len(f), f)
	}
	if string(f[0]) != b.UUID() || len(f[0]) != 36 {
		t.Fatalf("routing id %q, want the 36-char UUID %q", f[0], b.UUID())
	}
	if len(f[1]) != 0 || string(f[2]) != topicHello {
		t.Fatalf("frames %q", f[1:3])
	}
	if p := f[3]; len(p) == 0 || p[len(p)-1] != 0 {
		t.Fatalf("payload %q lacks its NUL", p)
	}
	var h map[string]any
	if err := json.Unmarshal(f[3][:len(f[3])-1], &h); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rank", "version", "uuid", "status"} {
		if _, ok := h[k]; !ok {
			t.Fatalf("hello lacks %s: %v", k, h)
		}
	}
	if h["uuid"] != b.UUID() || h["rank"] != float64(1) {
		t.Fatalf("hello %v", h)
	}
	proto := f[4]
	want := []byte{0x8e, 0x01, 0x01, 0x0b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	if string(proto) != string(want) {
		t.Fatalf("PROTO % x, want % x", proto, want)
	}
}

// F17 — overlay input robustness.
func TestF17MalformedInput(t *testing.T) {
	leakcheck.Check(t)
	logger, logs := newLogRecorder()
	in := startInstance(t, Config{Size: 3, Logger: logger})
	ctx := ctxT(t, 30*time.Second)
	c := in.ownerClient(t)
	k, _ := curve.GenerateKeyPair(nil)
	var raw json.RawMessage
	if err := rpc(ctx, c, topicKex, 0, kexRequest{Name: "1", Pubkey: k.Public.String()}, &raw); err != nil {
		t.Fatal(err)
	}
	pk, uri, _ := parseKexResponse(raw)
	d := dialChild(t, k, pk, uri)

	good := fluxkit.NewRequest("attr.get", 0, []byte(`{"name":"rank"}`)).Frames()
	badMagic := append([]byte(nil), good[len(good)-1]...)
	badMagic[0] = 0x8f
	d.send(t, append(good[:len(good)-1:len(good)-1], []byte{0x8e, 1, 1})...)              // short PROTO
	d.send(t, append(good[:len(good)-1:len(good)-1], badMagic)...)                        // bad magic
	d.send(t, []byte{}, []byte("attr.get"), []byte(`{"name":"rank"}`), good[len(good)-1]) // no NUL
	// A non-hello message from a UUID not online gets DISCONNECT.
	d.send(t, good...)
	m := d.recv(t)
	if m.Type != fluxkit.TypeControl || m.ControlType != fluxkit.ControlDisconnect {
		t.Fatalf("got %v control %d, want DISCONNECT", m.Type, m.ControlType)
	}
	// A hello without uuid gets EPROTO.
	h := fluxkit.NewRequest(topicHello, fluxkit.NodeidAny, []byte(`{"rank":1,"version":256,"status":1}`))
	h.Rolemask = fluxkit.RoleOwner
	d.send(t, h.Frames()...)
	m = d.recv(t)
	if m.Type != fluxkit.TypeResponse || m.Errnum != uint32(fluxkit.EPROTO) {
		t.Fatalf("hello without uuid: %v errnum %d", m.Type, m.Errnum)
	}
	// Still alive and serving.
	if r, err := getinfo(t, c, 0); err != nil || r.Rank != 1 {
		t.Fatalf("getinfo after bad input: %+v %v", r, err)
	}
	malformed := 0
	for _, l := range logs() {
		if l == "malformed message" {
			malformed++
		}
	}
	if malformed != 3 {
		t.Fatalf("%d \"malformed message\" log lines, want 3 (short PROTO, bad magic, no NUL): %q", malformed, logs())
	}
}

// F19 — config optional (D1); F20 — response validation (D2).
func TestF19F20GetinfoShapes(t *testing.T) {
	leakcheck.Check(t)
	ctx := ctxT(t, 60*time.Second)
	for _, tc := range []struct {
		name  string
		hook  func(map[string]any)
		error string
	}{
		{"ref shape", func(m map[string]any) { delete(m, "config") }, ""},
		{"unknown keys", func(m map[string]any) { m["future"] = []int{1}; m["attrs"].(map[string]string)["x"] = "y" }, ""},
		{"rank 0", func(m map[string]any) { m["rank"] = 0 }, "invalid rank 0 for size 7"},
		{"rank = size", func(m map[string]any) { m["rank"] = 7 }, "invalid rank 7 for size 7"},
		{"rank > size", func(m map[string]any) { m["rank"] = 8 }, "invalid rank 8 for size 7"},
		{"negative rank", func(m map[string]any) { m["rank"] = -2 }, "invalid rank -2 for size 7"},
		{"size 0", func(m map[string]any) { m["size"] = 0 }, "invalid rank 1 for size 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := startInstance(t, Config{Size: 7, hooks: &startHooks{getinfo: tc.hook}})
			b, err := in.join(ctx, "node")
			if tc.error == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b.Rank() != 1 {
					t.Fatalf("rank %d", b.Rank())
				}
				if tc.name == "ref shape" && b.InstanceConfig() != nil {
					t.Fatalf("config %s from a server that sent none", b.InstanceConfig())
				}
				return
			}
			wantErr(t, tc.name, err, fluxkit.EPROTO, "boot-flub: "+tc.error)
		})
	}
}

// Shutdown: overlay.goodbye makes the rank offline (partial), not lost.
func TestLeaveGoodbye(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 2})
	ctx := ctxT(t, 30*time.Second)
	b, err := in.join(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "full", 5*time.Second, func() bool { return in.root.Status() == StatusFull })
	if err := b.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "partial", 5*time.Second, func() bool { return in.root.Status() == StatusPartial })
	if in.root.Online().Contains(1) {
		t.Fatal("rank 1 still online after goodbye")
	}
}

// A child whose connection drops (a crash) is detected as lost.
func TestLostChildDetected(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	ctx := ctxT(t, 30*time.Second)
	b, err := in.join(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	waitFor(t, "degraded", 5*time.Second, func() bool { return in.root.Status() == StatusDegraded })
	waitFor(t, "rank 1 back in the pool", 5*time.Second, func() bool {
		r, err := getinfo(t, in.ownerClient(t), 0)
		return err == nil && r.Rank == 1
	})
}

// A joiner that gives up waiting leaves no watcher behind on rank 0.
func TestAbandonedWaitPruned(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	c := in.ownerClient(t)
	getinfo(t, c, 0) // rank 1, never started
	getinfo(t, c, 0) // rank 2
	cfg := in.joinConfig("n3")
	cfg.ParentTimeout = 200 * time.Millisecond
	_, err := Join(ctxT(t, 10*time.Second), cfg)
	wantErr(t, "parent wait", err, fluxkit.ETIMEDOUT, "timed out waiting for parent rank 1")
	waitFor(t, "watcher pruned", 5*time.Second, func() bool {
		n := make(chan int, 1)
		in.root.post(func() { n <- len(in.root.waitFor) + len(in.root.waitAll) })
		return <-n == 0
	})
}
