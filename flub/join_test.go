package flub

import (
	"encoding/json"
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
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Rank 0 of an instance started larger than itself reports the size it
// will grow to, offers every other rank to joiners and lists them as
// extra<rank> placeholders; the overlay is partial until they come.
func TestSizeOverrideOffersTheOtherRanks(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	v, _ := in.root.Attr("size")
	assert.Equal(t, "7", v)
	assert.Equal(t, uint32(7), in.root.Size())
	assert.Equal(t, "host0,extra[1-6]", in.root.Hostlist())
	avail, _ := ask(in.root, func() string { return in.root.p.pool.Available().String() })
	assert.Equal(t, "1-6", avail)
	for r := uint32(1); r < 7; r++ {
		ri, ok := in.root.Lookup(r)
		require.True(t, ok)
		assert.Equal(t, RankInfo{Rank: r, Hostname: fmt.Sprintf("extra%d", r), State: Available}, ri)
	}
	_, ok := in.root.Lookup(7)
	assert.False(t, ok, "Lookup of a rank beyond the size")
	assert.Equal(t, []RankInfo{{Rank: 0, Hostname: "host0", Online: true, State: Online}}, in.root.Ranks(), "ranks in use")
	assert.Equal(t, StatusPartial, in.root.Status())
}

// getinfo hands out the lowest free rank with the instance's attributes
// and configuration, until none is left.
func TestGetinfoHandsOutTheLowestRankUntilNoneIsLeft(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7, InstanceConfig: json.RawMessage(`{"resource":{"noverify":true}}`)})
	c := in.ownerClient(t)
	for want := 1; want <= 6; want++ {
		r := requireRank(t, c, want)
		assert.Equal(t, 7, r.Size)
		assert.Equal(t, "host0,extra[1-6]", r.Attrs["hostlist"])
		assert.Equal(t, "0", r.Attrs["instance-level"])
		assert.JSONEq(t, `{"resource":{"noverify":true}}`, string(r.Config))
	}
	_, err := getinfo(t, c, 0)
	requireError(t, err, fluxkit.ENOENT, "there are no available ranks", "7th getinfo")
}

// Joiners may start in any order, children before their parents: each
// waits for its parent to be online before the key exchange. Interior
// brokers bind and publish tbon.endpoint, leaves do not, and rank 0
// replaces each placeholder with the joiner's hostname.
func TestJoinersMayArriveInAnyOrder(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	var mu sync.Mutex
	startedAt := map[uint32]time.Time{} // when a joiner's delay ended
	kexAt := map[uint32]time.Time{}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	delays := map[uint32]time.Duration{}
	for r := uint32(1); r <= 6; r++ {
		delays[r] = time.Duration(rng.IntN(300)) * time.Millisecond
	}
	// Parents (1, 2) start last: after every child got its rank.
	delays[1] += 400 * time.Millisecond
	delays[2] += 400 * time.Millisecond
	early := make(chan error, 6)
	var cfgs []JoinConfig
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
					early <- fmt.Errorf("rank %d sends kex before parent %d is online", r, parent)
				}
			},
		}
		cfgs = append(cfgs, cfg)
	}
	brokers := joinAll(t, cfgs)
	close(early)
	for err := range early {
		assert.NoError(t, err)
	}
	testutil.WaitFor(t, "overlay full", func() bool { return in.root.Status() == StatusFull })
	for r := uint32(1); r <= 6; r++ {
		b := brokers[r]
		require.NotNil(t, b, "no broker got rank %d", r)
		assert.Equal(t, int64((r-1)/2), b.Parent(), "rank %d's parent", r)
		if p := b.Parent(); p > 0 {
			assert.True(t, kexAt[r].After(startedAt[uint32(p)]), "rank %d kex at %v before its parent started joining at %v", r, kexAt[r], startedAt[uint32(p)])
		}
	}
	assert.Equal(t, "0-6", in.root.Online().String())
	assert.NotContains(t, in.root.Hostlist(), "extra", "placeholders left")
	for _, ri := range in.root.Ranks() {
		if ri.Rank > 0 {
			assert.Equal(t, brokers[ri.Rank].p.hostname, ri.Hostname, "rank %d's hostlist entry", ri.Rank)
		}
	}
	for r := uint32(1); r <= 6; r++ {
		ep, _ := brokers[r].Attr("tbon.endpoint")
		if r <= 2 {
			assert.True(t, strings.HasPrefix(ep, "tcp://127.0.0.1:"), "interior rank %d tbon.endpoint %q", r, ep)
		} else {
			assert.Empty(t, ep, "leaf rank %d tbon.endpoint", r)
		}
		hl, _ := brokers[r].Attr("hostlist")
		assert.True(t, strings.HasPrefix(hl, "host0,"), "rank %d hostlist attr %q", r, hl)
	}
	var kr map[string]any
	require.NoError(t, rpc(testutil.Context(t), in.ownerClient(t), topicKex, 1, kexRequest{Name: "9", Pubkey: mustKey(t).String()}, &kr))
	assert.Equal(t, map[string]any{"name": "1", "pubkey": brokers[1].PublicKey().String(), "uri": brokers[1].Endpoint()}, kr)
}

// A kex name that is a decimal rank binds the key to that rank: the key
// completes CURVE with the parent, but a hello for another rank is
// refused. A key is authorized once.
func TestKexBindsTheKeyToTheNamedRank(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	ctx := testutil.Context(t)
	r1 := in.mustJoin(ctx, "node1")
	c := in.ownerClient(t)
	k := mustKeyPair(t)
	var raw json.RawMessage
	require.NoError(t, rpc(ctx, c, topicKex, 1, kexRequest{Name: "3", Pubkey: k.Public.String()}, &raw))
	var shape map[string]any
	require.NoError(t, json.Unmarshal(raw, &shape))
	require.Len(t, shape, 3, "kex reply keys")
	for _, key := range []string{"name", "pubkey", "uri"} {
		require.IsType(t, "", shape[key], "kex reply %s: %s", key, raw)
	}
	bin, err := curve.Z85Decode(shape["pubkey"].(string))
	require.NoError(t, err)
	require.Len(t, bin, 32)
	err = rpc(ctx, c, topicKex, 1, kexRequest{Name: "3", Pubkey: k.Public.String()}, nil)
	requireError(t, err, fluxkit.EEXIST, textAuthorizeKey, "the same key again")

	pk, uri, err := parseKexResponse(raw)
	require.NoError(t, err)
	d := dialChild(t, k, pk, uri)
	resp := d.hello(t, 4)
	assert.Equal(t, uint32(fluxkit.EPERM), resp.Errnum)
	assert.Equal(t, "key is bound to rank 3, not rank 4", string(resp.Payload))
	assert.False(t, in.root.Online().Contains(4), "rank 4 marked online")
	resp = d.hello(t, 3)
	require.Zero(t, resp.Errnum, "hello rank 3: %s", resp.Payload)
	var hr struct{ UUID string }
	require.NoError(t, json.Unmarshal(resp.Payload, &hr))
	assert.Equal(t, r1.UUID(), hr.UUID, "hello answers with the parent's uuid")
	testutil.WaitFor(t, "rank 3 online", func() bool { return in.root.Online().Contains(3) })
}

// kex and getinfo refuse what they cannot serve, with flux-core's texts,
// and change nothing when they do: a leaf has no children to take keys
// for, a key must be a Z85 public key, both fields must be strings, only
// rank 0 hands out ranks, and getinfo takes a JSON object.
func TestKexAndGetinfoRefuseBadRequests(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	c := in.ownerClient(t)
	ctx := testutil.Context(t)
	good := mustKey(t).String()
	kex := func(nodeid uint32, payload string) error {
		return rpc(ctx, c, topicKex, nodeid, json.RawMessage(payload), nil)
	}
	requireError(t, kex(5, `{"name":"9","pubkey":"`+good+`"}`), fluxkit.EINVAL, textNoChildren, "kex to leaf")
	assert.Zero(t, brokers[5].keystore.len(), "keys authorized on a leaf")
	for _, p := range []string{good[:39], "~" + good[1:], strings.Repeat("#####", 8)} {
		requireError(t, kex(1, `{"name":"9","pubkey":"`+p+`"}`), fluxkit.EINVAL, textAuthorizeKey, "kex key "+p)
	}
	requireError(t, kex(1, `{"name":"9"}`), fluxkit.EPROTO, "", "kex without pubkey")
	requireError(t, kex(1, `{"name":9,"pubkey":"`+good+`"}`), fluxkit.EPROTO, "", "kex numeric name")
	require.NoError(t, kex(1, `{"name":"9","pubkey":"`+good+`"}`), "broker unusable after bad input")
	_, err := getinfo(t, c, 1)
	requireError(t, err, fluxkit.EINVAL, textNoRanks, "getinfo to rank 1")

	// The pool is empty here: bad getinfo payloads on a fresh instance
	// must leave rank 1 free.
	c2 := startInstance(t, Config{Size: 3}).ownerClient(t)
	for _, p := range []string{"[]", "", `"x"`} {
		err := rpc(ctx, c2, topicGetinfo, 0, json.RawMessage(p), nil)
		requireError(t, err, fluxkit.EPROTO, "", "getinfo payload %q", p)
	}
	requireRank(t, c2, 1, "pool changed by bad getinfo")
}

// Guests are refused getinfo and kex, over the network and through a
// local connection, before anything changes; a key the instance does not
// know does not get through CURVE.
func TestGuestsCannotJoin(t *testing.T) {
	leakcheck.Check(t)
	guest := mustKeyPair(t)
	in := startInstance(t, Config{Size: 7, Guests: map[curve.Key]uint32{guest.Public: 4242}})
	ctx := testutil.Context(t)
	gc, err := DialBoot(ctx, ClientConfig{BootURI: in.root.BootURI(), Keys: guest})
	require.NoError(t, err)
	defer gc.Close()
	local, err := in.root.Connect(fluxkit.Cred{Userid: 4242, Roles: fluxkit.RoleUser | fluxkit.RoleLocal})
	require.NoError(t, err)
	defer local.Close()
	k := mustKey(t)
	for name, r := range map[string]Requester{"network": gc, "local": local} {
		_, err := getinfo(t, r, 0)
		requireError(t, err, fluxkit.EPERM, "Request requires owner credentials", name+" guest getinfo")
		err = rpc(ctx, r, topicKex, 0, kexRequest{Name: "1", Pubkey: k.String()}, nil)
		requireError(t, err, fluxkit.EPERM, "Request requires owner credentials", name+" guest kex")
	}
	if c, err := DialBoot(ctx, ClientConfig{BootURI: in.root.BootURI(), Keys: mustKeyPair(t)}); err == nil {
		c.Close()
		require.Fail(t, "boot server accepted an unknown key")
	}
	requireRank(t, in.ownerClient(t), 1, "owner getinfo after refusals")
	_, ok := in.root.keystore.bound(k)
	assert.False(t, ok, "a refused kex authorized its key")
}

// A joiner of an instance with no free rank fails with flux-core's text.
func TestJoinFailsWhenNoRankIsFree(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 1})
	_, err := in.join(testutil.Context(t), "node1")
	requireError(t, err, fluxkit.ENOENT, "boot-flub: there are no available ranks")
}

// A rank whose broker was disconnected is lost, unreachable and back in
// the pool; the next joiner takes it, with a key of its own, under the
// same parent, which keeps the old key.
func TestLostRankGoesToAReplacement(t *testing.T) {
	leakcheck.Check(t)
	in, brokers := fullInstance(t)
	ctx := testutil.Context(t)
	oldKey := brokers[6].PublicKey()
	require.NoError(t, brokers[2].Disconnect(ctx, 6))
	select {
	case <-brokers[6].Done():
	case <-ctx.Done():
		require.FailNow(t, "rank 6 did not stop on DISCONNECT")
	}
	require.ErrorIs(t, brokers[6].Err(), ErrDisconnected)
	testutil.WaitFor(t, "degraded", func() bool { return in.root.Status() == StatusDegraded })
	assert.False(t, in.root.Online().Contains(6), "rank 6 still online")
	err := fluxkit.RPC(ctx, in.root, "attr.get", 6, map[string]string{"name": "rank"}, nil)
	requireError(t, err, fluxkit.EHOSTUNREACH, "", "request to lost rank 6")

	nb := in.mustJoin(ctx, "replacement6")
	assert.Equal(t, uint32(6), nb.Rank())
	assert.Equal(t, int64(2), nb.Parent())
	assert.NotEqual(t, oldKey, nb.PublicKey())
	testutil.WaitFor(t, "full again", func() bool { return in.root.Status() == StatusFull })
	_, ok := brokers[2].keystore.bound(oldKey)
	assert.True(t, ok, "old key no longer authorized at rank 2")
	ri, _ := in.root.Lookup(6)
	assert.Equal(t, "replacement6", ri.Hostname)
	var out struct{ Value string }
	require.NoError(t, fluxkit.RPC(ctx, in.root, "attr.get", 6, map[string]string{"name": "rank"}, &out))
	assert.Equal(t, "6", out.Value)
}

// A rank handed out to a joiner that never comes is leased, not lost:
// rank 0 offers the next one until the lease runs out. A joiner whose
// parent is such a rank gives up after ParentTimeout, before the key
// exchange. Rank 0's clock is moved by hand, so the lease expires exactly
// when the test says.
func TestUnusedRanksReturnWhenTheirLeaseEnds(t *testing.T) {
	leakcheck.Check(t)
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	in := startInstance(t, Config{Size: 7, Lease: time.Minute, Now: now, TorpidMax: time.Hour})
	ctx := testutil.Context(t)
	c := in.ownerClient(t)
	requireRank(t, c, 1) // rank 1's joiner "dies" here
	assert.Equal(t, uint32(2), in.mustJoin(ctx, "node2").Rank())
	cfg := in.joinConfig("node3")
	cfg.ParentTimeout = 500 * time.Millisecond
	var kexSent atomic.Bool
	cfg.hooks = &joinHooks{beforeKex: func(uint32, uint32) { kexSent.Store(true) }}
	_, err := Join(ctx, cfg)
	requireError(t, err, fluxkit.ETIMEDOUT, "boot-flub: timed out waiting for parent rank 1 to come online", "joiner 3")
	require.ErrorIs(t, err, ErrParentTimeout)
	assert.False(t, kexSent.Load(), "kex sent to a parent that never came online")
	requireRank(t, c, 4, "getinfo during the leases")
	skew.Store(int64(61 * time.Second))
	testutil.WaitFor(t, "leases expire", func() bool {
		avail, _ := ask(in.root, func() string { return in.root.p.pool.Available().String() })
		return avail == "1,3-6"
	})
	requireRank(t, c, 1, "getinfo after expiry")
	assert.True(t, in.root.Online().Contains(2), "the online rank 2 was affected by lease expiry")
}

// A joiner takes the instance's attributes and configuration from
// getinfo; one whose preset attributes conflict with them is refused.
func TestJoinerTakesTheInstanceAttributes(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7, Attrs: map[string]string{"instance-level": "2"},
		InstanceConfig: json.RawMessage(`{"tbon":{"torpid_max":"30s"}}`)})
	ctx := testutil.Context(t)
	b := in.mustJoin(ctx, "node1")
	v, _ := b.Attr("instance-level")
	assert.Equal(t, "2", v)
	v, _ = b.Attr("hostlist")
	assert.Equal(t, "host0,extra[1-6]", v)
	assert.JSONEq(t, `{"tbon":{"torpid_max":"30s"}}`, string(b.InstanceConfig()))
	cfg := in.joinConfig("node2")
	cfg.Attrs = map[string]string{"instance-level": "5"}
	_, err := Join(ctx, cfg)
	requireError(t, err, fluxkit.EEXIST, "error setting attributes: File exists", "preset instance-level")
}

// hello on the wire, as the parent's ROUTER receives it: the 36-character
// routing id, an empty route delimiter, the topic, a NUL-terminated JSON
// payload with rank, version, uuid and status, and the RFC 3 PROTO frame.
func TestHelloOnTheWire(t *testing.T) {
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
	b := in.mustJoin(testutil.Context(t), "node1")
	f := <-first
	require.Len(t, f, 5, "frames %q", f)
	assert.Equal(t, b.UUID(), string(f[0]))
	assert.Len(t, f[0], 36)
	assert.Empty(t, f[1])
	assert.Equal(t, topicHello, string(f[2]))
	p := f[3]
	require.NotEmpty(t, p)
	require.Zero(t, p[len(p)-1], "payload %q lacks its NUL", p)
	var h map[string]any
	require.NoError(t, json.Unmarshal(p[:len(p)-1], &h))
	for _, k := range []string{"rank", "version", "uuid", "status"} {
		assert.Contains(t, h, k)
	}
	assert.Equal(t, b.UUID(), h["uuid"])
	assert.Equal(t, float64(1), h["rank"])
	want := []byte{0x8e, 0x01, 0x01, 0x0b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
	assert.Equal(t, want, f[4], "PROTO")
}

// Malformed frames from a connected peer are logged and dropped; anything
// but hello from a connection that did not say hello gets DISCONNECT; a
// hello without uuid gets EPROTO; the broker serves on.
func TestMalformedOverlayInputIsDropped(t *testing.T) {
	leakcheck.Check(t)
	logger, logs := testutil.Logger()
	in := startInstance(t, Config{Size: 3, Logger: logger})
	c := in.ownerClient(t)
	d := kexChild(t, c, 0, "1")

	good := fluxkit.NewRequest("attr.get", 0, []byte(`{"name":"rank"}`)).Frames()
	badMagic := append([]byte(nil), good[len(good)-1]...)
	badMagic[0] = 0x8f
	d.send(t, append(good[:len(good)-1:len(good)-1], []byte{0x8e, 1, 1})...)              // short PROTO
	d.send(t, append(good[:len(good)-1:len(good)-1], badMagic)...)                        // bad magic
	d.send(t, []byte{}, []byte("attr.get"), []byte(`{"name":"rank"}`), good[len(good)-1]) // no NUL
	d.send(t, good...)
	m := d.recv(t)
	assert.Equal(t, fluxkit.TypeControl, m.Type)
	assert.Equal(t, fluxkit.ControlDisconnect, m.ControlType)
	h := fluxkit.NewRequest(topicHello, fluxkit.NodeidAny, []byte(`{"rank":1,"version":256,"status":1}`))
	h.Rolemask = fluxkit.RoleOwner
	d.send(t, h.Frames()...)
	m = d.recv(t)
	assert.Equal(t, fluxkit.TypeResponse, m.Type)
	assert.Equal(t, uint32(fluxkit.EPROTO), m.Errnum, "hello without uuid")
	requireRank(t, c, 1, "getinfo after bad input")
	assert.Equal(t, 3, logged(logs, "malformed message"), "short PROTO, bad magic, no NUL:\n%s", logs)
}

// A joiner checks getinfo's answer before it touches anything: a rank
// outside 1..size-1 is refused, unknown keys are ignored, and "config" is
// optional, as flux-core's server sends none.
func TestJoinerChecksGetinfoAnswers(t *testing.T) {
	leakcheck.Check(t)
	ctx := testutil.Context(t)
	for _, tc := range []struct {
		name  string
		hook  func(map[string]any)
		error string
	}{
		{"no config", func(m map[string]any) { delete(m, "config") }, ""},
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
			if tc.error != "" {
				requireError(t, err, fluxkit.EPROTO, "boot-flub: "+tc.error)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, uint32(1), b.Rank())
			if tc.name == "no config" {
				assert.Nil(t, b.InstanceConfig(), "config from a server that sent none")
			}
		})
	}
}

// Shutdown says goodbye: the rank goes offline and the overlay partial,
// not lost and degraded.
func TestShutdownSaysGoodbye(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 2})
	ctx := testutil.Context(t)
	b := in.mustJoin(ctx, "node1")
	testutil.WaitFor(t, "full", func() bool { return in.root.Status() == StatusFull })
	require.NoError(t, b.Shutdown(ctx))
	testutil.WaitFor(t, "partial", func() bool { return in.root.Status() == StatusPartial })
	assert.False(t, in.root.Online().Contains(1), "rank 1 still online after goodbye")
	require.NoError(t, in.root.Shutdown(ctx), "rank 0 has no one to say goodbye to")
	<-in.root.Done()
}

// A child whose connection drops (a crash) is lost, and its rank returns
// to the pool.
func TestCrashedChildIsLost(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	b := in.mustJoin(testutil.Context(t), "node1")
	b.Close()
	testutil.WaitFor(t, "degraded", func() bool { return in.root.Status() == StatusDegraded })
	c := in.ownerClient(t)
	testutil.WaitFor(t, "rank 1 back in the pool", func() bool {
		r, err := getinfo(t, c, 0)
		return err == nil && r.Rank == 1
	})
}

// A joiner that gives up waiting for its parent leaves no watcher behind
// on rank 0.
func TestAbandonedParentWaitLeavesNoWatcher(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 7})
	c := in.ownerClient(t)
	requireRank(t, c, 1) // never started
	requireRank(t, c, 2)
	cfg := in.joinConfig("n3")
	cfg.ParentTimeout = 200 * time.Millisecond
	_, err := Join(testutil.Context(t), cfg)
	requireError(t, err, fluxkit.ETIMEDOUT, "timed out waiting for parent rank 1")
	testutil.WaitFor(t, "watcher pruned", func() bool {
		n, _ := ask(in.root, func() int { return len(in.root.waitFor) + len(in.root.waitAll) })
		return n == 0
	})
}
