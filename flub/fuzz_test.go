package flub

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/require"
)

func FuzzParseGetinfoResponse(f *testing.F) {
	f.Add([]byte(`{"rank":3,"size":7,"attrs":{"hostlist":"h,extra[1-6]","instance-level":"0"},"config":{}}`))
	f.Add([]byte(`{"rank":0,"size":0}`))
	f.Add([]byte(`{"rank":1,"size":2,"attrs":{"a":1}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := parseGetinfoResponse(in)
		if err != nil {
			require.ErrorIs(t, err, fluxkit.EPROTO)
			return
		}
		require.NotZero(t, r.Rank)
		require.Less(t, r.Rank, r.Size)
		if r.Config != nil {
			require.Equal(t, byte('{'), r.Config[0], "accepted config %s", r.Config)
		}
	})
}

func FuzzDecodeHello(f *testing.F) {
	f.Add([]byte(`{"rank":3,"version":256,"uuid":"u","status":1}`))
	f.Add([]byte(`{"rank":3}`))
	f.Add([]byte(`{"rank":1e40,"version":1,"uuid":"","status":0}`))
	f.Add([]byte(`{"rank":3,"version":256,"uuid":"u","status":1,"hostname":"n3","reconnect":true,"subtree":"7-8,15-18"}`))
	f.Add([]byte(`{"rank":3,"version":256,"uuid":"u","status":1,"subtree":"0-2147483648"}`))
	f.Add([]byte(`{"rank":3,"version":256,"uuid":"u","status":1,"reconnect":"yes"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := decodeHello(msg(topicHello, string(in)))
		if err != nil {
			require.ErrorIs(t, err, fluxkit.EPROTO)
			return
		}
		require.LessOrEqual(t, h.Status, StatusOffline)
		if h.Subtree != "" {
			_, err := idset.Parse(h.Subtree)
			require.NoError(t, err, "subtree %q accepted", h.Subtree)
		}
	})
}

func FuzzKex(f *testing.F) {
	f.Add([]byte(`{"name":"3","pubkey":"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"}`))
	f.Add([]byte(`{"name":"3","pubkey":"#########################################"}`))
	f.Add([]byte(`{"name":3}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		req, err := decodeKexRequest(msg(topicKex, string(in)))
		if err != nil {
			require.ErrorIs(t, err, fluxkit.EPROTO)
			return
		}
		ks := newKeyStore()
		if err := ks.authorize(req.Pubkey, req.Name); err != nil {
			require.ErrorIs(t, err, fluxkit.EINVAL, "first authorize")
			return
		}
		require.ErrorIs(t, ks.authorize(req.Pubkey, req.Name), fluxkit.EEXIST, "second authorize of the same key")
	})
}

func FuzzParseBootURI(f *testing.F) {
	f.Add("flub://127.0.0.1:4567/rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
	f.Add("flub://[::1]:1/rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")
	f.Add("flub:///")
	f.Fuzz(func(t *testing.T, uri string) {
		ep, key, err := ParseBootURI(uri)
		if err != nil {
			return
		}
		back := FormatBootURI(ep[len("tcp://"):], key)
		ep2, key2, err := ParseBootURI(back)
		require.NoError(t, err, "%q → %q", uri, back)
		require.Equal(t, ep, ep2)
		require.Equal(t, key, key2)
	})
}

func FuzzParseTopology(f *testing.F) {
	for _, s := range []string{"kary:2", "binomial", "kary:0", "kary:", "x:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		topo, err := ParseTopology(s)
		if err != nil {
			return
		}
		again, err := ParseTopology(topo.String())
		require.NoError(t, err)
		require.Equal(t, topo, again, "%q → %q does not round trip", s, topo)
		for r := uint32(1); r < 50; r++ {
			p := topo.Parent(r)
			require.GreaterOrEqual(t, p, int64(0), "%s: parent(%d)", s, r)
			require.Less(t, p, int64(r), "%s: parent(%d)", s, r)
		}
	})
}

// FuzzOverlayInput feeds arbitrary frames to a live parent's ROUTER input
// path (as if from a connected peer) and checks that the broker survives.
func FuzzOverlayInput(f *testing.F) {
	hello := fluxkit.NewRequest(topicHello, fluxkit.NodeidAny, []byte(`{"rank":1,"version":256,"uuid":"x","status":1}`))
	hello.Rolemask = fluxkit.RoleOwner
	f.Add([]byte("peer-1"), bytes.Join(hello.Frames(), []byte{0xff, 0xfe}))
	f.Add([]byte("peer-2"), []byte{0x8e, 0x01, 0x08})
	f.Add([]byte(""), []byte{})
	in := startInstance(f, Config{Size: 3})
	f.Fuzz(func(t *testing.T, id, wire []byte) {
		frames := [][]byte{id}
		frames = append(frames, bytes.Split(wire, []byte{0xff, 0xfe})...)
		_, ok := ask(in.root, func() bool { in.root.fromChild(frames); return true })
		require.True(t, ok, "broker stopped")
		require.NoError(t, in.root.ctx.Err(), "broker stopped")
	})
}

// FuzzBuiltinServices sends arbitrary payloads to the broker's own
// services (environment, attributes, KVS, modules) on a live rank 0: each
// request gets exactly one answer, the broker survives, and module.list
// stays well formed.
func FuzzBuiltinServices(f *testing.F) {
	topics := []string{"broker.getenv", "broker.setenv", "attr.set", "attr.get", "broker.ping",
		"kvs.lookup", "kvs.commit", "kvs.namespace-create", "module.load", "module.remove", "module.list"}
	for i, p := range []string{`{"names":["A","B"]}`, `{"name":"A","value":null}`, `{"name":"x","value":"1"}`,
		`{"name":"rank"}`, `{"seq":1}`, `{"key":"k"}`, `{"key":"k","value":{"a":[1]}}`,
		`{"ops":[{"key":"a","value":1},{"key":"a","value":null}]}`, `{"path":"/lib/idle.so","args":["x"],"exec":true}`,
		`{"name":"idle"}`, `{}`} {
		f.Add(uint8(i), []byte(p))
	}
	f.Add(uint8(8), []byte(`{"path":"","name":""}`))
	f.Add(uint8(2), []byte(`[1,2]`))
	f.Add(uint8(7), []byte(`{"ops":[{"key":"","value":1}]}`))
	in := startInstance(f, Config{Size: 1, Modules: map[string]ModuleFunc{"idle": idleModule(nil)}, ModuleTimeout: time.Second})
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		ctx := testutil.ContextTimeout(t, 10*time.Second)
		topic := topics[int(which)%len(topics)]
		_, err := testutil.RawRPC(ctx, in.root, topic, 0, string(payload))
		require.NoError(t, ctx.Err(), "%s %q: no answer", topic, payload)
		require.NotErrorIs(t, err, fluxkit.ECONNRESET, "%s %q", topic, payload)
		var list struct {
			Mods []modEntry `json:"mods"`
		}
		require.NoError(t, fluxkit.RPC(ctx, in.root, "module.list", 0, map[string]any{}, &list), "after %s %q", topic, payload)
		require.NotEmpty(t, list.Mods)
		require.Equal(t, builtinModule.Name, list.Mods[0].Name)
		// Keep the state small: unload whatever the input loaded.
		for _, m := range list.Mods[1:] {
			require.NoError(t, fluxkit.RPC(ctx, in.root, "module.remove", 0, map[string]string{"name": m.Name}, nil), "remove %s", m.Name)
		}
	})
}

// FuzzMembership feeds membership reports (overlay.member), reclaims and
// getinfo calls with arbitrary payloads to a live rank 0, one after the
// other, and checks after each that broker.online, broker.torpid and the
// rank pool still agree: a rank is online exactly when the pool says so,
// only online ranks are torpid, and nothing makes rank 0 hold more ranks
// than a report could really name (a bogus "0-2147483647" costs nothing).
func FuzzMembership(f *testing.F) {
	topics := []string{topicMember, topicReclaim, topicGetinfo}
	for _, tc := range []struct {
		which   uint8
		payload string
	}{
		{0, `{"op":"join","rank":1}`},
		{0, `{"op":"join","rank":3,"subtree":"7-8"}`},
		{0, `{"op":"join","rank":1,"subtree":"0-2147483647"}`},
		{0, `{"op":"lost","rank":1}`},
		{0, `{"op":"leave","rank":3}`},
		{0, `{"op":"torpid","rank":3}`},
		{0, `{"op":"responsive","rank":3}`},
		{0, `{"op":"join","rank":4294967295}`},
		{0, `{"op":"x","rank":2}`},
		{1, `{"rank":3,"subtree":"7-8","holder":"k"}`},
		{1, `{"rank":0}`},
		{1, `{"rank":3,"subtree":"x"}`},
		{2, `{"topo":"kary:2"}`},
		{2, `{"topo":"kary:9"}`},
	} {
		f.Add(tc.which, []byte(tc.payload))
	}
	in := startInstance(f, Config{Size: 64, Topo: "kary:2"})
	f.Fuzz(func(t *testing.T, which uint8, payload []byte) {
		ctx := testutil.ContextTimeout(t, 10*time.Second)
		topic := topics[int(which)%len(topics)]
		if topic == topicMember {
			m := fluxkit.NewRequest(topic, 0, payload)
			m.Flags |= fluxkit.FlagNoResponse
			_, err := in.root.Request(ctx, m)
			require.NoError(t, err)
		} else {
			_, err := testutil.RawRPC(ctx, in.root, topic, 0, string(payload))
			require.NoError(t, ctx.Err(), "%s %q: no answer", topic, payload)
			require.NotErrorIs(t, err, fluxkit.ECONNRESET, "%s %q", topic, payload)
		}
		msg, ok := ask(in.root, func() string {
			b := in.root
			if len(b.below) >= int(b.size) {
				return "more online ranks than the instance has"
			}
			for r := uint32(1); r < b.size; r++ {
				if (b.p.pool.State(r) == Online) != b.below.has(r) {
					return fmt.Sprintf("rank %d: pool %v, online %v", r, b.p.pool.State(r), b.below.has(r))
				}
				if b.torpid.has(r) && !b.below.has(r) {
					return fmt.Sprintf("rank %d torpid but offline", r)
				}
			}
			if got := b.onlineIDs(); got.Len() != len(b.below)+1 {
				return fmt.Sprintf("broker.online %s out of date", got)
			}
			return ""
		})
		require.True(t, ok, "broker stopped")
		require.Empty(t, msg, "after %s %q", topic, payload)
	})
}
