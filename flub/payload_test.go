package flub

import (
	"context"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
)

func msg(topic, payload string) *fluxkit.Message {
	return &fluxkit.Message{Type: fluxkit.TypeRequest, Topic: topic, Payload: []byte(payload)}
}

// F18 and F20 (validation parts), D1.
func TestParseGetinfoResponse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		errno    error
		text     string
	}{
		{"ref shape without config", `{"rank":3,"size":7,"attrs":{"hostlist":"h,extra[1-6]","instance-level":"0"}}`, nil, ""},
		{"rfc shape with config", `{"rank":1,"size":7,"attrs":{},"config":{"a":1}}`, nil, ""},
		{"unknown keys ignored", `{"rank":1,"size":2,"attrs":{},"x":[1],"config":null}`, nil, ""},
		{"rank 0", `{"rank":0,"size":7,"attrs":{}}`, fluxkit.EPROTO, "invalid rank 0 for size 7"},
		{"rank = size", `{"rank":7,"size":7,"attrs":{}}`, fluxkit.EPROTO, "invalid rank 7 for size 7"},
		{"rank > size", `{"rank":9,"size":7,"attrs":{}}`, fluxkit.EPROTO, "invalid rank 9 for size 7"},
		{"negative rank", `{"rank":-1,"size":7,"attrs":{}}`, fluxkit.EPROTO, "invalid rank -1 for size 7"},
		{"size 0", `{"rank":1,"size":0,"attrs":{}}`, fluxkit.EPROTO, "invalid rank 1 for size 0"},
		{"missing rank", `{"size":3}`, fluxkit.EPROTO, "rank and size are required"},
		{"non-string attr", `{"rank":1,"size":3,"attrs":{"instance-level":5}}`, fluxkit.EPROTO, "error setting attributes: "},
		{"config not object", `{"rank":1,"size":3,"attrs":{},"config":[1]}`, fluxkit.EPROTO, "config is not an object"},
		{"not json", `x`, fluxkit.EPROTO, "malformed getinfo response"},
		{"fractional rank", `{"rank":1.5,"size":3}`, fluxkit.EPROTO, "malformed getinfo response"},
	} {
		r, err := parseGetinfoResponse([]byte(tc.in))
		if tc.errno == nil {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if fluxkit.Errno(err) != tc.errno || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: got %+v, %v; want %v %q", tc.name, r, err, tc.errno, tc.text)
		}
	}
	r, _ := parseGetinfoResponse([]byte(`{"rank":3,"size":7,"attrs":{"hostlist":"h"},"config":{"a":1}}`))
	if r.Rank != 3 || r.Size != 7 || r.Attrs["hostlist"] != "h" || string(r.Config) != `{"a":1}` {
		t.Errorf("decoded %+v", r)
	}
}

// F18: getinfo payloads that are not objects.
func TestDecodeGetinfoRequest(t *testing.T) {
	for _, p := range []string{"[]", "", `"x"`, "{", "1"} {
		if _, err := decodeGetinfoRequest(msg(topicGetinfo, p)); fluxkit.Errno(err) != fluxkit.EPROTO {
			t.Errorf("payload %q: %v, want EPROTO", p, err)
		}
	}
	for p, host := range map[string]string{`{}`: "", `{"hostname":"n1","x":2}`: "n1", `{"hostname":3}`: ""} {
		r, err := decodeGetinfoRequest(msg(topicGetinfo, p))
		if err != nil || r.Hostname != host {
			t.Errorf("payload %s: %+v %v", p, r, err)
		}
	}
}

// F8: missing and ill-typed kex fields are EPROTO; key problems are the
// key store's (EINVAL), tested below.
func TestDecodeKexRequest(t *testing.T) {
	for _, p := range []string{`{"name":"3"}`, `{"pubkey":"k"}`, `{"name":3,"pubkey":"k"}`, `{"name":"3","pubkey":5}`, `[]`, ``} {
		if _, err := decodeKexRequest(msg(topicKex, p)); fluxkit.Errno(err) != fluxkit.EPROTO {
			t.Errorf("payload %q: %v, want EPROTO", p, err)
		}
	}
	r, err := decodeKexRequest(msg(topicKex, `{"name":"3","pubkey":"abc","extra":1}`))
	if err != nil || r.Name != "3" || r.Pubkey != "abc" {
		t.Errorf("%+v %v", r, err)
	}
}

func TestKeyStore(t *testing.T) {
	kp, _ := curve.GenerateKeyPair(nil)
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
		if fluxkit.Errno(err) != fluxkit.Errno(tc.errno) || tc.errno != nil && err.Error() != textAuthorizeKey {
			t.Errorf("%s: %v, want %v %q", tc.name, err, tc.errno, textAuthorizeKey)
		}
	}
	if r, ok := ks.bound(kp.Public); !ok || r != 3 {
		t.Errorf("bound = %d %v, want 3", r, ok)
	}
	other, _ := curve.GenerateKeyPair(nil)
	if err := ks.authorize(other.Public.String(), "test100"); err != nil {
		t.Fatal(err)
	}
	if r, ok := ks.bound(other.Public); !ok || r != -1 {
		t.Errorf("non-rank name bound to %d", r)
	}
	if d := ks.authorizer(context.Background(), curve.AuthRequest{Key: kp.Public}); d.Verdict != curve.Allow || d.UserID != good {
		t.Errorf("authorizer on a stored key: %+v", d)
	}
	unknown, _ := curve.GenerateKeyPair(nil)
	if d := ks.authorizer(context.Background(), curve.AuthRequest{Key: unknown.Public}); d.Verdict != curve.Deny {
		t.Errorf("authorizer on an unknown key: %+v", d)
	}
}

func TestRankName(t *testing.T) {
	for in, want := range map[string]int64{"3": 3, "0": 0, "4294967295": 4294967295, "03": -1, "+3": -1, "-1": -1, "test100": -1, "": -1, "4294967296": -1} {
		if got := rankName(in); got != want {
			t.Errorf("rankName(%q) = %d, want %d", in, got, want)
		}
	}
}

// F17 (hello without uuid) and §16 hello checks, F21's binding.
func TestHelloChecks(t *testing.T) {
	for _, p := range []string{`{"rank":3,"version":256,"status":1}`, `{"rank":"3","version":256,"uuid":"u","status":1}`, `{}`, `[]`, `{"rank":-3,"version":256,"uuid":"u","status":1}`, `{"rank":3,"version":256,"uuid":"u","status":9}`} {
		if _, err := decodeHello(msg(topicHello, p)); fluxkit.Errno(err) != fluxkit.EPROTO {
			t.Errorf("hello %s: %v, want EPROTO", p, err)
		}
	}
	topo, _ := ParseTopology("kary:2")
	owner := fluxkit.Cred{Userid: 1, Roles: fluxkit.RoleOwner}
	base := helloCheck{me: 1, size: 7, topo: topo, version: 1<<16 | 2<<8 | 3, bound: -1}
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
		{"bound to another rank", helloCheck{me: 1, size: 7, topo: topo, version: base.version, bound: 3}, helloPayload{Rank: 4, Version: base.version}, owner, fluxkit.EPERM, "key is bound to rank 3, not rank 4"},
		{"bound to this rank", helloCheck{me: 1, size: 7, topo: topo, version: base.version, bound: 3}, ok, owner, nil, ""},
		{"not my child", base, helloPayload{Rank: 5, Version: base.version}, owner, fluxkit.EINVAL, "rank 5 is not a child of rank 1: mismatched config?"},
		{"beyond size", base, helloPayload{Rank: 4, Version: base.version}, owner, nil, ""},
		{"beyond size 2", helloCheck{me: 1, size: 4, topo: topo, version: base.version, bound: -1}, helloPayload{Rank: 4, Version: base.version}, owner, fluxkit.EINVAL, "mismatched config?"},
		{"minor differs", base, helloPayload{Rank: 3, Version: 1<<16 | 3<<8}, owner, fluxkit.EINVAL, "client (1.3.0) version mismatched with server (1.2.3)"},
		{"major differs", base, helloPayload{Rank: 3, Version: 2<<16 | 2<<8 | 3}, owner, fluxkit.EINVAL, "client (2.2.3) version mismatched with server (1.2.3)"},
	} {
		err := tc.chk.check(tc.h, tc.cred)
		if fluxkit.Errno(err) != fluxkit.Errno(tc.errno) || tc.text != "" && (err == nil || !strings.Contains(err.Error(), tc.text)) {
			t.Errorf("%s: %v, want %v %q", tc.name, err, tc.errno, tc.text)
		}
	}
}

// F12.
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
			if err == nil || !strings.Contains(err.Error(), "instance size may only be increased") {
				t.Errorf("SizeOverride(%d,%q) = %d, %v", tc.initial, tc.attr, got, err)
			}
		} else if err != nil || got != tc.want {
			t.Errorf("SizeOverride(%d,%q) = %d, %v; want %d", tc.initial, tc.attr, got, err, tc.want)
		}
	}
	for attr, ok := range map[string]bool{"": true, "1": true, "7": true, "8": false, "0": false, "x": false} {
		_, err := Quorum(7, attr)
		if ok != (err == nil) || err != nil && !strings.Contains(err.Error(), "Error parsing broker.quorum attribute") {
			t.Errorf("Quorum(7,%q) = %v", attr, err)
		}
	}
}

func TestBootURI(t *testing.T) {
	kp, _ := curve.GenerateKeyPair(nil)
	uri := FormatBootURI("127.0.0.1:4567", kp.Public)
	ep, key, err := ParseBootURI(uri)
	if err != nil || ep != "tcp://127.0.0.1:4567" || key != kp.Public {
		t.Fatalf("round trip %q: %q %v %v", uri, ep, key, err)
	}
	for _, bad := range []string{
		"tcp://127.0.0.1:4567/" + kp.Public.String(),
		"flub://127.0.0.1:4567",
		"flub://127.0.0.1/" + kp.Public.String(),
		"flub://127.0.0.1:4567/" + kp.Public.String()[:39],
		"local://noexist/path",
	} {
		if _, _, err := ParseBootURI(bad); fluxkit.Errno(err) != fluxkit.EINVAL {
			t.Errorf("ParseBootURI(%q) = %v", bad, err)
		}
	}
}

func TestParseKexResponse(t *testing.T) {
	kp, _ := curve.GenerateKeyPair(nil)
	k, uri, err := parseKexResponse([]byte(`{"name":"1","pubkey":"` + kp.Public.String() + `","uri":"tcp://127.0.0.1:5"}`))
	if err != nil || k != kp.Public || uri != "tcp://127.0.0.1:5" {
		t.Fatalf("%v %q %v", k, uri, err)
	}
	for _, bad := range []string{`{}`, `{"pubkey":"x","uri":"tcp://a:1"}`, `{"pubkey":"` + kp.Public.String() + `","uri":"ipc://x"}`, `[`} {
		if _, _, err := parseKexResponse([]byte(bad)); fluxkit.Errno(err) != fluxkit.EPROTO {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
