package flub

import (
	"context"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func msg(topic, payload string) *fluxkit.Message {
	return &fluxkit.Message{Type: fluxkit.TypeRequest, Topic: topic, Payload: []byte(payload)}
}

// A joiner takes getinfo's answer only when rank and size are integers
// with 0 < rank < size, attrs are strings and config, when present, an
// object; unknown keys are ignored and a missing config is flux-core's
// shape.
func TestParseGetinfoResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		text     string
	}{
		{"flux-core's shape, without config", `{"rank":3,"size":7,"attrs":{"hostlist":"h,extra[1-6]","instance-level":"0"}}`, ""},
		{"with config", `{"rank":1,"size":7,"attrs":{},"config":{"a":1}}`, ""},
		{"unknown keys ignored", `{"rank":1,"size":2,"attrs":{},"x":[1],"config":null}`, ""},
		{"rank 0", `{"rank":0,"size":7,"attrs":{}}`, "invalid rank 0 for size 7"},
		{"rank = size", `{"rank":7,"size":7,"attrs":{}}`, "invalid rank 7 for size 7"},
		{"rank > size", `{"rank":9,"size":7,"attrs":{}}`, "invalid rank 9 for size 7"},
		{"negative rank", `{"rank":-1,"size":7,"attrs":{}}`, "invalid rank -1 for size 7"},
		{"size 0", `{"rank":1,"size":0,"attrs":{}}`, "invalid rank 1 for size 0"},
		{"missing rank", `{"size":3}`, "rank and size are required"},
		{"non-string attr", `{"rank":1,"size":3,"attrs":{"instance-level":5}}`, "error setting attributes: "},
		{"config not object", `{"rank":1,"size":3,"attrs":{},"config":[1]}`, "config is not an object"},
		{"not json", `x`, "malformed getinfo response"},
		{"fractional rank", `{"rank":1.5,"size":3}`, "malformed getinfo response"},
	} {
		_, err := parseGetinfoResponse([]byte(tc.in))
		if tc.text == "" {
			assert.NoError(t, err, tc.name)
		} else {
			requireError(t, err, fluxkit.EPROTO, tc.text, tc.name)
		}
	}
	r, err := parseGetinfoResponse([]byte(`{"rank":3,"size":7,"attrs":{"hostlist":"h"},"config":{"a":1}}`))
	require.NoError(t, err)
	assert.Equal(t, instanceInfo{Rank: 3, Size: 7, Attrs: map[string]string{"hostlist": "h"}, Config: []byte(`{"a":1}`)}, r)
}

// getinfo takes any JSON object, ignoring unknown keys and a hostname that
// is not a string, and refuses anything else with EPROTO.
func TestDecodeGetinfoRequest(t *testing.T) {
	for _, p := range []string{"[]", "", `"x"`, "{", "1"} {
		_, err := decodeGetinfoRequest(msg(topicGetinfo, p))
		assert.ErrorIs(t, err, fluxkit.EPROTO, "payload %q", p)
	}
	for p, host := range map[string]string{`{}`: "", `{"hostname":"n1","x":2}`: "n1", `{"hostname":3}`: ""} {
		r, err := decodeGetinfoRequest(msg(topicGetinfo, p))
		require.NoError(t, err, p)
		assert.Equal(t, host, r.Hostname, p)
	}
}

// Missing and ill-typed kex fields are EPROTO; key problems are the key
// store's (EINVAL), tested below.
func TestDecodeKexRequest(t *testing.T) {
	for _, p := range []string{`{"name":"3"}`, `{"pubkey":"k"}`, `{"name":3,"pubkey":"k"}`, `{"name":"3","pubkey":5}`, `[]`, ``} {
		_, err := decodeKexRequest(msg(topicKex, p))
		assert.ErrorIs(t, err, fluxkit.EPROTO, "payload %q", p)
	}
	r, err := decodeKexRequest(msg(topicKex, `{"name":"3","pubkey":"abc","extra":1}`))
	require.NoError(t, err)
	assert.Equal(t, kexRequest{Name: "3", Pubkey: "abc"}, r)
}

// The key store authorizes a key once, binds it to the rank its name
// spells, and answers the CURVE server for it.
func TestKeyStore(t *testing.T) {
	kp := mustKeyPair(t)
	ks := newKeyStore()
	good := kp.Public.String()
	for _, tc := range []struct {
		name, key, kname string
		errno            error
	}{
		{"39 chars", good[:39], "3", fluxkit.EINVAL},
		{"bad alphabet", "~" + good[1:], "3", fluxkit.EINVAL},
		{"overflow", strings.Repeat("#####", 8), "3", fluxkit.EINVAL},
		{"ok", good, "3", nil},
		{"duplicate", good, "4", fluxkit.EEXIST},
	} {
		err := ks.authorize(tc.key, tc.kname)
		if tc.errno == nil {
			assert.NoError(t, err, tc.name)
			continue
		}
		assert.ErrorIs(t, err, tc.errno, tc.name)
		assert.EqualError(t, err, textAuthorizeKey, tc.name)
	}
	r, ok := ks.bound(kp.Public)
	assert.True(t, ok)
	assert.Equal(t, int64(3), r)
	other := mustKey(t)
	require.NoError(t, ks.authorize(other.String(), "test100"))
	r, ok = ks.bound(other)
	assert.True(t, ok)
	assert.Equal(t, int64(-1), r, "a name that is not a rank binds nothing")
	d := ks.authorizer(context.Background(), curve.AuthRequest{Key: kp.Public})
	assert.Equal(t, curve.Allow, d.Verdict)
	assert.Equal(t, good, d.UserID)
	assert.Equal(t, curve.Deny, ks.authorizer(context.Background(), curve.AuthRequest{Key: mustKey(t)}).Verdict, "an unknown key")
}

// A kex name binds a rank only when it is the canonical decimal of one.
func TestRankName(t *testing.T) {
	for in, want := range map[string]int64{"3": 3, "0": 0, "4294967295": 4294967295, "03": -1, "+3": -1, "-1": -1, "test100": -1, "": -1, "4294967296": -1} {
		assert.Equal(t, want, rankName(in), "rankName(%q)", in)
	}
}

// A parent refuses a hello that lacks a field or is out of range (EPROTO),
// that does not come from the owner or from the key bound to its rank
// (EPERM), that names a rank which is not its child, or another major or
// minor version (EINVAL); a patch level may differ.
func TestHelloChecks(t *testing.T) {
	for _, p := range []string{`{"rank":3,"version":256,"status":1}`, `{"rank":"3","version":256,"uuid":"u","status":1}`, `{}`, `[]`, `{"rank":-3,"version":256,"uuid":"u","status":1}`, `{"rank":3,"version":256,"uuid":"u","status":9}`} {
		_, err := decodeHello(msg(topicHello, p))
		assert.ErrorIs(t, err, fluxkit.EPROTO, "hello %s", p)
	}
	topo, _ := ParseTopology("kary:2")
	owner := fluxkit.Cred{Userid: 1, Roles: fluxkit.RoleOwner}
	base := helloCheck{me: 1, size: 7, topo: topo, version: 1<<16 | 2<<8 | 3, bound: -1}
	bound3 := base
	bound3.bound = 3
	size4 := base
	size4.size = 4
	ok := helloPayload{Rank: 3, Version: 1<<16 | 2<<8 | 9, UUID: "u", Status: StatusFull}
	for _, tc := range []struct {
		name  string
		chk   helloCheck
		h     helloPayload
		cred  fluxkit.Cred
		errno error
		text  string
	}{
		{"accepted, patch differs", base, ok, owner, nil, ""},
		{"not owner", base, ok, fluxkit.Cred{Roles: fluxkit.RoleUser}, fluxkit.EPERM, ""},
		{"bound to another rank", bound3, helloPayload{Rank: 4, Version: base.version}, owner, fluxkit.EPERM, "key is bound to rank 3, not rank 4"},
		{"bound to this rank", bound3, ok, owner, nil, ""},
		{"not my child", base, helloPayload{Rank: 5, Version: base.version}, owner, fluxkit.EINVAL, "rank 5 is not a child of rank 1: mismatched config?"},
		{"beyond size", base, helloPayload{Rank: 4, Version: base.version}, owner, nil, ""},
		{"beyond size 2", size4, helloPayload{Rank: 4, Version: base.version}, owner, fluxkit.EINVAL, "mismatched config?"},
		{"minor differs", base, helloPayload{Rank: 3, Version: 1<<16 | 3<<8}, owner, fluxkit.EINVAL, "client (1.3.0) version mismatched with server (1.2.3)"},
		{"major differs", base, helloPayload{Rank: 3, Version: 2<<16 | 2<<8 | 3}, owner, fluxkit.EINVAL, "client (2.2.3) version mismatched with server (1.2.3)"},
	} {
		err := tc.chk.check(tc.h, tc.cred)
		if tc.errno == nil {
			assert.NoError(t, err, tc.name)
		} else {
			requireError(t, err, tc.errno, tc.text, tc.name)
		}
	}
}

// A size override must grow the instance; broker.quorum must lie in
// 1..size.
func TestSizeOverrideAndQuorum(t *testing.T) {
	for _, tc := range []struct {
		initial uint32
		attr    string
		want    uint32
		err     bool
	}{
		{1, "", 1, false}, {1, "7", 7, false}, {2, "3", 3, false},
		{1, "1", 0, true}, {2, "1", 0, true}, {2, "2", 0, true}, {1, "abc", 0, true}, {1, "-5", 0, true},
	} {
		got, err := SizeOverride(tc.initial, tc.attr)
		if tc.err {
			assert.ErrorContains(t, err, "instance size may only be increased", "SizeOverride(%d,%q)", tc.initial, tc.attr)
		} else if assert.NoError(t, err) {
			assert.Equal(t, tc.want, got, "SizeOverride(%d,%q)", tc.initial, tc.attr)
		}
	}
	for attr, ok := range map[string]bool{"": true, "1": true, "7": true, "8": false, "0": false, "x": false} {
		_, err := Quorum(7, attr)
		if ok {
			assert.NoError(t, err, "Quorum(7,%q)", attr)
		} else {
			assert.ErrorContains(t, err, "Error parsing broker.quorum attribute", "Quorum(7,%q)", attr)
		}
	}
}

func TestBootURIRoundTrip(t *testing.T) {
	kp := mustKeyPair(t)
	uri := FormatBootURI("127.0.0.1:4567", kp.Public)
	ep, key, err := ParseBootURI(uri)
	require.NoError(t, err)
	assert.Equal(t, "tcp://127.0.0.1:4567", ep)
	assert.Equal(t, kp.Public, key)
	for _, bad := range []string{
		"tcp://127.0.0.1:4567/" + kp.Public.String(),
		"flub://127.0.0.1:4567",
		"flub://127.0.0.1/" + kp.Public.String(),
		"flub://127.0.0.1:4567/" + kp.Public.String()[:39],
		"local://noexist/path",
	} {
		_, _, err := ParseBootURI(bad)
		assert.ErrorIs(t, err, fluxkit.EINVAL, bad)
	}
}

func TestParseKexResponse(t *testing.T) {
	kp := mustKeyPair(t)
	k, uri, err := parseKexResponse([]byte(`{"name":"1","pubkey":"` + kp.Public.String() + `","uri":"tcp://127.0.0.1:5"}`))
	require.NoError(t, err)
	assert.Equal(t, kp.Public, k)
	assert.Equal(t, "tcp://127.0.0.1:5", uri)
	for _, bad := range []string{`{}`, `{"pubkey":"x","uri":"tcp://a:1"}`, `{"pubkey":"` + kp.Public.String() + `","uri":"ipc://x"}`, `[`} {
		_, _, err := parseKexResponse([]byte(bad))
		assert.ErrorIs(t, err, fluxkit.EPROTO, bad)
	}
}
