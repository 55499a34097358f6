package curve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	mrand "math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/curve25519"
)

func detRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

func meta(props ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(props); i += 2 {
		b = appendProperty(b, props[i], props[i+1])
	}
	return b
}

// handshakePair runs both machines in memory and returns every command.
type handshakePair struct {
	c                                 *clientHandshake
	s                                 *serverHandshake
	hello, welcome, initiate, ready   []byte
	clientKeyAtServer                 Key
	clientMetaAtServer, serverMetaOut []byte
}

func runHandshake(t *testing.T, ck, sk KeyPair, cmeta, smeta []byte) *handshakePair {
	t.Helper()
	p := &handshakePair{}
	var err error
	p.c, err = newClientHandshake(detRand(1), ck, sk.Public, cmeta)
	require.NoError(t, err)
	p.s = newServerHandshake(detRand(2), sk)
	p.hello = p.c.hello()
	p.welcome, err = p.s.onHello(p.hello)
	require.NoError(t, err)
	var done bool
	p.initiate, done, err = p.c.step(p.welcome)
	require.NoError(t, err)
	require.False(t, done)
	p.clientKeyAtServer, p.clientMetaAtServer, err = p.s.onInitiate(p.initiate)
	require.NoError(t, err)
	p.ready, err = p.s.ready(smeta)
	require.NoError(t, err)
	reply, done, err := p.c.step(p.ready)
	require.NoError(t, err)
	require.True(t, done)
	require.Nil(t, reply)
	p.serverMetaOut = p.c.peerMetadata()
	return p
}

func TestHandshakeLayouts(t *testing.T) {
	ck, sk := testClientKeys(t), testServerKeys(t)
	cmeta := meta("Socket-Type", "DEALER", "Identity", "9")
	smeta := meta("Socket-Type", "ROUTER", "Identity", "")
	p := runHandshake(t, ck, sk, cmeta, smeta)

	// HELLO: 200 bytes, version 1.0, 72 zero bytes, C′, short nonce 1.
	require.Len(t, p.hello, 200)
	require.Equal(t, "\x05HELLO\x01\x00", string(p.hello[:8]))
	require.Equal(t, make([]byte, 72), p.hello[8:80])
	require.Equal(t, p.c.tpub[:], p.hello[80:112])
	require.Equal(t, uint64(1), binary.BigEndian.Uint64(p.hello[112:120]))

	require.Len(t, p.welcome, 168)
	require.Equal(t, "\x07WELCOME", string(p.welcome[:8]))

	require.Len(t, p.initiate, 257+len(cmeta))
	require.Equal(t, "\x08INITIATE", string(p.initiate[:9]))
	require.Equal(t, uint64(2), binary.BigEndian.Uint64(p.initiate[105:113]))

	require.Len(t, p.ready, 30+len(smeta))
	require.Equal(t, "\x05READY", string(p.ready[:6]))
	require.Equal(t, uint64(1), binary.BigEndian.Uint64(p.ready[6:14]))

	require.Equal(t, ck.Public, p.clientKeyAtServer)
	require.Equal(t, cmeta, p.clientMetaAtServer)
	require.Equal(t, smeta, p.serverMetaOut)
	md, err := parseMetadata(p.clientMetaAtServer)
	require.NoError(t, err)
	v, ok := md.get("socket-type")
	require.True(t, ok)
	require.Equal(t, "DEALER", v)

	// Nonce counters continue as libzmq's: client 3, server 2.
	require.Equal(t, uint64(3), p.c.sess.sendNonce)
	require.Equal(t, uint64(2), p.s.sess.sendNonce)
	require.Equal(t, uint64(2), p.s.sess.recvNonce)
	require.Equal(t, uint64(1), p.c.sess.recvNonce)
}

func TestErrorCommandBytes(t *testing.T) {
	body := errorCommand("400")
	frame := appendCommandFrame(nil, body)
	require.Equal(t, "040a054552524f5203343030", hex.EncodeToString(frame))
	err := parseErrorCommand(body)
	var re *RefusedError
	require.ErrorAs(t, err, &re)
	require.Equal(t, "400", re.Reason)
	require.ErrorIs(t, err, ErrHandshake)
	require.Contains(t, err.Error(), "ERROR 400")

	for _, bad := range [][]byte{
		[]byte("\x05ERROR"),        // no length
		[]byte("\x05ERROR\x04400"), // length beyond body
		[]byte("\x05ERROR\xff"),    // length beyond body
	} {
		err := parseErrorCommand(bad)
		require.ErrorIs(t, err, ErrHandshake)
		require.False(t, errors.As(err, &re), "%q", bad)
	}
	require.ErrorAs(t, parseErrorCommand([]byte("\x05ERROR\x00")), &re)
	require.ErrorAs(t, parseErrorCommand([]byte("\x05ERROR\x02\x1b[")), &re)
	require.Equal(t, `"\x1b["`, re.Reason, "control bytes are quoted, not printed raw")
}

func TestMessageFraming(t *testing.T) {
	p := runHandshake(t, testClientKeys(t), testServerKeys(t), meta("Socket-Type", "DEALER"), nil)
	// ["", "hello", 400 × 'y'] from a DEALER: the frames, wire sizes
	// and flags libzmq produces.
	frames := [][]byte{nil, []byte("hello"), bytes.Repeat([]byte("y"), 400)}
	wantBody := []int{33, 38, 433}
	wantWire := []byte{0x00, 0x00, 0x02}
	wantInner := []byte{0x01, 0x01, 0x00}
	var stream []byte
	for i, f := range frames {
		inner := byte(0)
		if i < len(frames)-1 {
			inner = innerMore
		}
		before := len(stream)
		var err error
		stream, err = p.c.sess.appendMessage(stream, inner, f)
		require.NoError(t, err)
		frame := stream[before:]
		require.Equal(t, wantWire[i], frame[0], "frame %d wire flags", i)
	}
	fr := frameReader{r: bufio.NewReader(bytes.NewReader(stream)), max: 1 << 20}
	for i := range frames {
		flags, body, err := fr.next()
		require.NoError(t, err)
		require.Equal(t, wantWire[i], flags)
		require.Len(t, body, wantBody[i])
		require.Equal(t, uint64(3+i), binary.BigEndian.Uint64(body[8:16]))
		pt, err := p.s.sess.openMessage(nil, body)
		require.NoError(t, err)
		require.Equal(t, wantInner[i], pt[0])
		require.Equal(t, string(frames[i]), string(pt[1:]))
	}
}

func TestMessageNonceRules(t *testing.T) {
	p := runHandshake(t, testClientKeys(t), testServerKeys(t), nil, nil)
	seal := func(n uint64, data string) []byte {
		p.c.sess.sendNonce = n
		f, err := p.c.sess.appendMessage(nil, 0, []byte(data))
		require.NoError(t, err)
		return f[2:] // short header
	}
	m5 := seal(5, "a")
	m4 := seal(4, "b")
	m9 := seal(9, "c")
	_, err := p.s.sess.openMessage(nil, m5)
	require.NoError(t, err, "a gap is fine")
	_, err = p.s.sess.openMessage(nil, m5)
	require.ErrorIs(t, err, ErrProtocol, "replay")
	_, err = p.s.sess.openMessage(nil, m4)
	require.ErrorIs(t, err, ErrProtocol, "decreasing")

	forged := bytes.Clone(m9)
	forged[len(forged)-1] ^= 1
	_, err = p.s.sess.openMessage(nil, forged)
	require.ErrorIs(t, err, ErrProtocol)
	require.Equal(t, uint64(5), p.s.sess.recvNonce, "a forged frame must not advance the nonce")
	_, err = p.s.sess.openMessage(nil, m9)
	require.NoError(t, err)

	_, err = p.s.sess.openMessage(nil, m9[:32])
	require.ErrorIs(t, err, ErrProtocol, "shorter than 33 bytes")
	wrongName := bytes.Clone(m9)
	wrongName[1] = 'N'
	_, err = p.s.sess.openMessage(nil, wrongName)
	require.ErrorIs(t, err, ErrProtocol)

	// Server→client traffic uses the other prefix: a client frame does
	// not open as a server frame.
	_, err = p.c.sess.openMessage(nil, seal(20, "x"))
	require.ErrorIs(t, err, ErrProtocol)

	p.c.sess.sendNonce = ^uint64(0)
	_, err = p.c.sess.appendMessage(nil, 0, nil)
	require.ErrorIs(t, err, ErrProtocol, "a wrapping counter closes instead of reusing a nonce")
}

func TestServerRejectsBadHandshakes(t *testing.T) {
	ck, sk := testClientKeys(t), testServerKeys(t)
	fresh := func() *handshakePair { return runHandshake(t, ck, sk, nil, nil) }

	helloCase := func(name string, mutate func([]byte) []byte) {
		t.Helper()
		p := fresh()
		s := newServerHandshake(detRand(2), sk)
		_, err := s.onHello(mutate(bytes.Clone(p.hello)))
		require.ErrorIs(t, err, ErrHandshake, name)
		// Once failed, nothing else is accepted.
		_, _, err = s.onInitiate(p.initiate)
		require.ErrorIs(t, err, ErrHandshake, name)
	}
	helloCase("short HELLO", func(b []byte) []byte { return b[:199] })
	helloCase("long HELLO", func(b []byte) []byte { return append(b, 0) })
	helloCase("version 1.1", func(b []byte) []byte { b[7] = 1; return b })
	helloCase("version 2.0", func(b []byte) []byte { b[6] = 2; return b })
	helloCase("wrong name", func(b []byte) []byte { b[1] = 'J'; return b })
	helloCase("tampered box", func(b []byte) []byte { b[150] ^= 1; return b })
	helloCase("tampered nonce", func(b []byte) []byte { b[119] ^= 1; return b })

	// Wrong server key: the client encrypted HELLO to someone else.
	other := newKeys(t)
	c, err := newClientHandshake(nil, ck, other.Public, nil)
	require.NoError(t, err)
	_, err = newServerHandshake(nil, sk).onHello(c.hello())
	require.ErrorIs(t, err, ErrHandshake)

	initiateCase := func(name string, mutate func(*handshakePair) []byte) {
		t.Helper()
		p := fresh()
		s := newServerHandshake(detRand(2), sk)
		_, err := s.onHello(p.hello)
		require.NoError(t, err)
		_, _, err = s.onInitiate(mutate(p))
		require.ErrorIs(t, err, ErrHandshake, name)
		_, err = s.ready(nil)
		require.ErrorIs(t, err, ErrHandshake, name+": READY after a failed INITIATE")
	}
	initiateCase("short", func(p *handshakePair) []byte { return p.initiate[:256] })
	initiateCase("wrong name", func(p *handshakePair) []byte { b := bytes.Clone(p.initiate); b[1] = 'X'; return b })
	initiateCase("tampered cookie", func(p *handshakePair) []byte { b := bytes.Clone(p.initiate); b[50] ^= 1; return b })
	initiateCase("tampered box", func(p *handshakePair) []byte { b := bytes.Clone(p.initiate); b[200] ^= 1; return b })
	initiateCase("tampered nonce", func(p *handshakePair) []byte { b := bytes.Clone(p.initiate); b[112] ^= 1; return b })
	initiateCase("cookie from another connection", func(p *handshakePair) []byte {
		// Same deterministic server state (so the cookie opens), but a
		// client with another transient key: the cookie does not
		// describe this connection.
		c, err := newClientHandshake(detRand(7), ck, sk.Public, nil)
		require.NoError(t, err)
		w, err := newServerHandshake(detRand(2), sk).onHello(c.hello())
		require.NoError(t, err)
		init, _, err := c.step(w)
		require.NoError(t, err)
		return init
	})

	// A vouch naming another server, or another transient key.
	forge := func(name string, edit func(c *clientHandshake)) {
		t.Helper()
		c, err := newClientHandshake(detRand(3), ck, sk.Public, nil)
		require.NoError(t, err)
		s := newServerHandshake(detRand(4), sk)
		w, err := s.onHello(c.hello())
		require.NoError(t, err)
		edit(c)
		init, _, err := c.step(w)
		require.NoError(t, err)
		_, _, err = s.onInitiate(init)
		require.ErrorIs(t, err, ErrHandshake, name)
	}
	forge("vouch for another server", func(c *clientHandshake) { c.server = newKeys(t).Public })
	forge("vouch for another transient key", func(c *clientHandshake) { c.tpub = newKeys(t).Public })
	forge("INITIATE naming another client key", func(c *clientHandshake) { c.perm.Public = newKeys(t).Public })

	// INITIATE replayed on a new connection: the cookie key differs.
	p := fresh()
	s := newServerHandshake(nil, sk)
	_, err = s.onHello(p.hello)
	require.NoError(t, err)
	_, _, err = s.onInitiate(p.initiate)
	require.ErrorIs(t, err, ErrHandshake)

	// A second INITIATE after success is out of order.
	p = fresh()
	_, _, err = p.s.onInitiate(p.initiate)
	require.ErrorIs(t, err, ErrHandshake)
}

func TestClientRejectsBadReplies(t *testing.T) {
	ck, sk := testClientKeys(t), testServerKeys(t)
	cases := map[string]func(p *handshakePair) (stage int, body []byte){
		"short WELCOME":    func(p *handshakePair) (int, []byte) { return 0, p.welcome[:167] },
		"tampered WELCOME": func(p *handshakePair) (int, []byte) { b := bytes.Clone(p.welcome); b[100] ^= 1; return 0, b },
		"READY as WELCOME": func(p *handshakePair) (int, []byte) { return 0, p.ready },
		"short READY":      func(p *handshakePair) (int, []byte) { return 1, p.ready[:29] },
		"tampered READY":   func(p *handshakePair) (int, []byte) { b := bytes.Clone(p.ready); b[20] ^= 1; return 1, b },
		"WELCOME as READY": func(p *handshakePair) (int, []byte) { return 1, p.welcome },
		"bad ERROR":        func(p *handshakePair) (int, []byte) { return 1, []byte("\x05ERROR\x09400") },
	}
	for name, mk := range cases {
		p := runHandshake(t, ck, sk, nil, nil)
		stage, body := mk(p)
		c, err := newClientHandshake(detRand(1), ck, sk.Public, nil)
		require.NoError(t, err)
		c.hello()
		if stage == 1 {
			_, _, err = c.step(p.welcome)
			require.NoError(t, err)
		}
		_, done, err := c.step(body)
		require.ErrorIs(t, err, ErrHandshake, name)
		require.False(t, done)
		_, _, err = c.step(p.ready)
		require.Error(t, err, "%s: a failed client stays failed", name)
	}

	// ERROR is accepted while waiting for WELCOME or READY.
	for stage := range 2 {
		c, err := newClientHandshake(detRand(1), ck, sk.Public, nil)
		require.NoError(t, err)
		c.hello()
		if stage == 1 {
			p := runHandshake(t, ck, sk, nil, nil)
			_, _, err = c.step(p.welcome)
			require.NoError(t, err)
		}
		_, _, err = c.step(errorCommand("400"))
		var re *RefusedError
		require.ErrorAs(t, err, &re)
		require.Equal(t, "400", re.Reason)
	}
}

func TestNaClBoxVector(t *testing.T) {
	// The classic NaCl crypto_box vector (as in x/crypto's nacl/box tests):
	// it pins precompute + secretbox to crypto_box's exact bytes.
	var sk1, sk2 Key
	for i := range sk1 {
		sk1[i], sk2[i] = 1, 2
	}
	pub1, err := curve25519.X25519(sk1[:], curve25519.Basepoint)
	require.NoError(t, err)
	msg := bytes.Repeat([]byte{3}, 64)
	var nonce [24]byte
	for i := range nonce {
		nonce[i] = 4
	}
	k, err := precompute((*Key)(pub1), &sk2)
	require.NoError(t, err)
	got := k.seal(nil, msg, &nonce)
	require.Equal(t, "78ea30b19d2341ebbdba54180f821eec265cf86312549bea8a37652a8bb94f07b78a73ed1708085e6ddd0e943bbdeb8755079a37eb31d86163ce241164a47629c0539f330b4914cd135b3855bc2a2dfc", hex.EncodeToString(got))
}

func TestMetadataParser(t *testing.T) {
	md, err := parseMetadata(meta("Socket-Type", "DEALER", "Identity", "", "X-Foo", "bar"))
	require.NoError(t, err)
	require.Len(t, md, 3)
	v, ok := md.get("IDENTITY")
	require.True(t, ok)
	require.Empty(t, v)
	for name, b := range map[string][]byte{
		"empty name":         {0, 0, 0, 0, 0},
		"name beyond end":    {5, 'a', 'b'},
		"no value length":    {1, 'a', 0, 0},
		"value beyond end":   {1, 'a', 0, 0, 0, 5, 'x'},
		"huge value length":  {1, 'a', 0xff, 0xff, 0xff, 0xff},
		"trailing name byte": append(meta("a", "b"), 3),
	} {
		_, err := parseMetadata(b)
		require.Error(t, err, name)
	}
}

func TestGreetingChecks(t *testing.T) {
	g := makeGreeting("CURVE", 3, 1, 0)
	require.Equal(t, "ff00000000000000017f0301435552564500", hex.EncodeToString(g[:18]))
	require.Equal(t, byte(0), g[32], "as-server is 0, as libzmq sends")
	require.NoError(t, checkGreeting(g[:], "CURVE"))
	g30 := makeGreeting("CURVE", 3, 0, 0)
	require.NoError(t, checkGreeting(g30[:], "CURVE"))
	g40 := makeGreeting("CURVE", 4, 0, 0)
	require.NoError(t, checkGreeting(g40[:], "CURVE"))
	asServer := g
	asServer[32] = 1
	require.NoError(t, checkGreeting(asServer[:], "CURVE"), "as-server is never validated")
	for name, bad := range map[string][64]byte{
		"NULL":        makeGreeting("NULL", 3, 1, 0),
		"CURVEX":      makeGreeting("CURVEX", 3, 1, 0),
		"version 2.0": makeGreeting("CURVE", 2, 0, 0),
		"signature": func() [64]byte {
			b := g
			b[0] = 0
			return b
		}(),
	} {
		require.Error(t, checkGreeting(bad[:], "CURVE"), name)
	}
}

// fakeConn is a net.Conn reading a fixed stream and discarding writes.
type fakeConn struct {
	r io.Reader
	w bytes.Buffer
}

func (f *fakeConn) Read(p []byte) (int, error)         { return f.r.Read(p) }
func (f *fakeConn) Write(p []byte) (int, error)        { return f.w.Write(p) }
func (f *fakeConn) Close() error                       { return nil }
func (f *fakeConn) LocalAddr() net.Addr                { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (f *fakeConn) RemoteAddr() net.Addr               { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (f *fakeConn) SetDeadline(t time.Time) error      { return nil }
func (f *fakeConn) SetReadDeadline(t time.Time) error  { return nil }
func (f *fakeConn) SetWriteDeadline(t time.Time) error { return nil }

// fuzzServer feeds stream to a server handshake with deterministic
// randomness, then, if the client is accepted, plays zmq4's part and reads
// data until the stream ends. It reports whether the handshake succeeded.
func fuzzServer(t testing.TB, stream []byte) bool {
	tr := &Transport{scheme: "fuzz", ends: map[string]any{}}
	srv, err := tr.NewServer(ServerConfig{
		Keys:         testServerKeys(t),
		Authorizer:   AllowList(testClientKeys(t).Public),
		MaxFrameSize: 1 << 20,
	})
	require.NoError(t, err)
	defer srv.Close()
	fc := &fakeConn{r: bytes.NewReader(stream)}
	c := newConn(fc, true, srv, srv.log, time.Second, srv.maxFrame)
	require.True(t, srv.track(c), "server closed")
	defer c.Close()
	if err := srv.verify(context.Background(), c, newServerHandshake(detRand(9), srv.cfg.Keys)); err != nil {
		require.ErrorIs(t, err, ErrHandshake)
		return false
	}
	zg := makeGreeting("NULL", 3, 0, 0)
	if _, err := c.Write(append(zg[:], zmq4Ready("ROUTER", "")...)); err != nil {
		return true // e.g. incompatible socket type
	}
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return true
		}
	}
}

// fuzzSeed builds a valid client stream for fuzzServer: greeting, HELLO
// and INITIATE carrying clientMeta (valid against fuzzServer's
// deterministic server), then one MESSAGE per item of plain, an item being
// inner flags (1 byte), length (1 byte) and that many data bytes, the last
// item taking what remains.
func fuzzSeed(t testing.TB, clientMeta, plain []byte) []byte {
	ck, sk := testClientKeys(t), testServerKeys(t)
	c, err := newClientHandshake(detRand(5), ck, sk.Public, clientMeta)
	require.NoError(t, err)
	s := newServerHandshake(detRand(9), sk)
	g := makeGreeting("CURVE", 3, 1, 1)
	stream := append([]byte(nil), g[:]...)
	hello := c.hello()
	stream = appendCommandFrame(stream, hello)
	w, err := s.onHello(hello)
	require.NoError(t, err)
	init, _, err := c.step(w)
	require.NoError(t, err)
	stream = appendCommandFrame(stream, init)
	_, _, err = s.onInitiate(init)
	require.NoError(t, err)
	r, err := s.ready(meta("Socket-Type", "ROUTER", "Identity", ""))
	require.NoError(t, err)
	_, _, err = c.step(r)
	require.NoError(t, err)
	for len(plain) > 0 {
		flags := plain[0]
		plain = plain[1:]
		n := len(plain)
		if n > 0 {
			n = min(int(plain[0]), n-1)
			plain = plain[1:]
		}
		stream, _ = c.sess.appendMessage(stream, flags, plain[:n])
		plain = plain[n:]
	}
	return stream
}

// seedItems encodes MESSAGE items for fuzzSeed.
func seedItems(items ...string) []byte {
	var b []byte
	for i := 0; i+1 < len(items); i += 2 {
		b = append(b, items[i][0], byte(len(items[i+1])))
		b = append(b, items[i+1]...)
	}
	return b
}

func TestFuzzSeedIsAccepted(t *testing.T) {
	msgs := seedItems("\x01", "hello", "\x02", "\x04PING\x00\x0actx", "\x00", "bye")
	require.True(t, fuzzServer(t, fuzzSeed(t, meta("Socket-Type", "DEALER", "Identity", "x"), msgs)))
	require.True(t, fuzzServer(t, fuzzSeed(t, meta("Socket-Type", "DEALER"), nil)))
	require.False(t, fuzzServer(t, fuzzSeed(t, meta("Socket-Type", "BOGUS"), nil)))
	require.False(t, fuzzServer(t, fuzzSeed(t, meta("Identity", "\x00reserved", "Socket-Type", "DEALER"), nil)))
	require.False(t, fuzzServer(t, fuzzSeed(t, []byte{7, 'b', 'r', 'o', 'k', 'e', 'n'}, nil)))
}

// FuzzServerHandshake feeds a server connection, with deterministic keys
// and randomness, either a raw byte stream (when meta and plain are empty),
// or a valid handshake whose INITIATE carries meta as the client's
// metadata and whose MESSAGEs carry plain (see fuzzSeed), followed by
// stream. Mutating inside the boxes would only ever fail the MAC; the
// second form lets the fuzzer reach the metadata parser, the identity and
// socket-type checks, and command handling after the handshake.
func FuzzServerHandshake(f *testing.F) {
	dealer := meta("Socket-Type", "DEALER", "Identity", "fuzz")
	msgs := seedItems("\x01", "", "\x00", "data", "\x02", "\x04PING\x00\x01c", "\x02", "\x04PONG", "\x03", "\x09SUBSCRIBE")
	good := fuzzSeed(f, dealer, msgs)
	f.Add(good, []byte(nil), []byte(nil))
	f.Add([]byte(nil), dealer, msgs)
	f.Add([]byte(nil), meta("Socket-Type", "DEALER"), []byte(nil))
	f.Add([]byte(nil), meta("Socket-Type", "PUB", "Identity", "x"), seedItems("\x02", "\x04PING"))
	f.Add([]byte{0x00, 0x05, 'x'}, dealer, seedItems("\x02", ""))
	f.Add(good[:64], []byte(nil), []byte(nil))
	f.Add(good[:64+2+200], []byte(nil), []byte(nil))
	null := makeGreeting("NULL", 3, 0, 0)
	f.Add(null[:], []byte(nil), []byte(nil))
	v2 := makeGreeting("CURVE", 2, 0, 0)
	f.Add(v2[:], []byte(nil), []byte(nil))
	huge := append(append([]byte(nil), good[:64]...), 0x06, 0x80, 0, 0, 0, 0, 0, 0, 0)
	f.Add(huge, []byte(nil), []byte(nil))
	f.Add(append(append([]byte(nil), good[:64]...), bytes.Repeat([]byte{0xAB}, 300)...), []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, stream, meta, plain []byte) {
		if len(meta) > 0 || len(plain) > 0 {
			stream = append(fuzzSeed(t, meta, plain), stream...)
		}
		fuzzServer(t, stream)
	})
}
