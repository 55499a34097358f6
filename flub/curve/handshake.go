package curve

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strconv"
)

// This file holds the CURVE handshake as pure state machines: they consume
// command bodies and produce command bodies, with no I/O, clocks or
// goroutines, so every check can be exercised without sockets. conn.go and
// transport.go drive them over the network.

// Nonce prefixes (RFC 26, libzmq curve_*.cpp).
const (
	prefixHello    = "CurveZMQHELLO---"
	prefixWelcome  = "WELCOME-"
	prefixCookie   = "COOKIE--"
	prefixInitiate = "CurveZMQINITIATE"
	prefixVouch    = "VOUCH---"
	prefixReady    = "CurveZMQREADY---"
	prefixMessageC = "CurveZMQMESSAGEC"
	prefixMessageS = "CurveZMQMESSAGES"
)

// Command sizes (ZeroMQ RFC 26, CurveZMQ).
const (
	helloLen       = 200
	welcomeLen     = 168
	cookieLen      = 96
	vouchLen       = 96
	initiateMinLen = 257
	readyMinLen    = 30
	messageMinLen  = 33
	errorMinLen    = 7
	boxOverhead    = 16
)

// Short nonces libzmq uses; the peer accepts any strictly increasing value,
// but matching libzmq keeps traces byte-comparable.
const (
	clientHelloNonce    = 1
	clientInitiateNonce = 2
	clientFirstMessage  = 3
	serverReadyNonce    = 1
	serverFirstMessage  = 2
)

func shortNonce(prefix string, n uint64) [24]byte {
	var nonce [24]byte
	copy(nonce[:16], prefix)
	binary.BigEndian.PutUint64(nonce[16:], n)
	return nonce
}

func longNonce(prefix string, l []byte) [24]byte {
	var nonce [24]byte
	copy(nonce[:8], prefix)
	copy(nonce[8:], l[:16])
	return nonce
}

func randomBytes(r io.Reader, b []byte) error {
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("curve: read random bytes: %w", err)
	}
	return nil
}

// session is the post-handshake state of one direction pair: the shared
// transient key and the short-nonce counters. Callers serialise access to
// the send half and to the receive half separately.
type session struct {
	key        boxKey
	sendPrefix string
	recvPrefix string
	sendNonce  uint64 // next short nonce to send
	recvNonce  uint64 // last short nonce accepted
	plain      []byte // scratch for flags ‖ data before sealing
}

// appendMessage appends one complete ZMTP frame carrying a MESSAGE command
// for data: wire flags never carry MORE (libzmq's curve_encoding_t); MORE
// and COMMAND travel as the first plaintext byte.
func (s *session) appendMessage(dst []byte, innerFlags byte, data []byte) ([]byte, error) {
	if s.sendNonce == math.MaxUint64 {
		return dst, protocolErr("send nonce exhausted")
	}
	n := s.sendNonce
	s.sendNonce++
	bodyLen := messageMinLen + len(data)
	dst = appendFrameHeader(dst, 0, bodyLen)
	dst = append(dst, "\x07MESSAGE"...)
	dst = binary.BigEndian.AppendUint64(dst, n)
	s.plain = append(append(s.plain[:0], innerFlags), data...)
	nonce := shortNonce(s.sendPrefix, n)
	dst = s.key.seal(dst, s.plain, &nonce)
	if cap(s.plain) > retainLimit {
		s.plain = nil
	}
	return dst, nil
}

// openMessage authenticates and decrypts a MESSAGE body into dst[:0],
// returning the plaintext: inner flags ‖ data, at least one byte. The nonce
// must be strictly greater than the last one accepted; the counter moves
// only once the box opens, so a forged frame cannot advance it.
func (s *session) openMessage(dst, body []byte) ([]byte, error) {
	if len(body) < messageMinLen || !hasCommandName(body, "MESSAGE") {
		return nil, protocolErr("malformed MESSAGE (%d bytes)", len(body))
	}
	n := binary.BigEndian.Uint64(body[8:16])
	if n <= s.recvNonce {
		return nil, protocolErr("MESSAGE nonce %d not greater than %d", n, s.recvNonce)
	}
	nonce := shortNonce(s.recvPrefix, n)
	pt, ok := s.key.open(dst[:0], body[16:], &nonce)
	if !ok {
		return nil, protocolErr("MESSAGE box does not open")
	}
	s.recvNonce = n
	return pt, nil
}

func (s *session) wipe() {
	clear(s.key[:])
	clear(s.plain)
}

// clientHandshake is the client side: HELLO, then WELCOME → INITIATE, then
// READY (or ERROR at either step).
type clientHandshake struct {
	rand     io.Reader
	perm     KeyPair // C, c
	server   Key     // S
	tpub     Key     // C′
	tsec     Key     // c′
	helloKey boxKey  // (S, c′): HELLO and WELCOME boxes
	meta     []byte  // our metadata for INITIATE
	peerMeta []byte  // the server's metadata from READY
	sess     session
	state    int
}

const (
	clientStart = iota
	clientSentHello
	clientSentInitiate
	clientDone
	clientFailed
)

func newClientHandshake(rnd io.Reader, perm KeyPair, server Key, meta []byte) (*clientHandshake, error) {
	h := &clientHandshake{rand: rnd, perm: perm, server: server, meta: meta}
	var err error
	if h.tpub, h.tsec, err = generateKey(rnd); err != nil {
		return nil, err
	}
	if h.helloKey, err = precompute(&h.server, &h.tsec); err != nil {
		return nil, handshakeErr("server key: %v", err)
	}
	return h, nil
}

// hello returns the HELLO command body.
func (h *clientHandshake) hello() []byte {
	b := make([]byte, 0, helloLen)
	b = append(b, "\x05HELLO\x01\x00"...)
	b = append(b, make([]byte, 72)...)
	b = append(b, h.tpub[:]...)
	b = binary.BigEndian.AppendUint64(b, clientHelloNonce)
	nonce := shortNonce(prefixHello, clientHelloNonce)
	var zeros [64]byte
	b = h.helloKey.seal(b, zeros[:], &nonce)
	h.state = clientSentHello
	return b
}

// step consumes one server command. After WELCOME it returns the INITIATE
// body; after READY it returns nil and done is true.
func (h *clientHandshake) step(body []byte) (reply []byte, done bool, err error) {
	reply, done, err = h.stepInner(body)
	if err != nil {
		h.state = clientFailed
	}
	return reply, done, err
}

func (h *clientHandshake) stepInner(body []byte) ([]byte, bool, error) {
	if h.state == clientSentHello || h.state == clientSentInitiate {
		if hasCommandName(body, "ERROR") {
			return nil, false, parseErrorCommand(body)
		}
	}
	switch h.state {
	case clientSentHello:
		init, err := h.onWelcome(body)
		return init, false, err
	case clientSentInitiate:
		if err := h.onReady(body); err != nil {
			return nil, false, err
		}
		return nil, true, nil
	}
	return nil, false, handshakeErr("unexpected command in client state %d", h.state)
}

func (h *clientHandshake) onWelcome(body []byte) ([]byte, error) {
	if len(body) != welcomeLen || !hasCommandName(body, "WELCOME") {
		return nil, handshakeErr("malformed WELCOME (%d bytes)", len(body))
	}
	nonce := longNonce(prefixWelcome, body[8:24])
	var pt [128]byte
	if _, ok := h.helloKey.open(pt[:0], body[24:], &nonce); !ok {
		return nil, handshakeErr("WELCOME box does not open")
	}
	var serverT Key
	copy(serverT[:], pt[:32])
	cookie := pt[32:128]
	var err error
	if h.sess.key, err = precompute(&serverT, &h.tsec); err != nil {
		return nil, handshakeErr("server transient key: %v", err)
	}
	vouchKey, err := precompute(&serverT, &h.perm.Secret)
	if err != nil {
		return nil, handshakeErr("server transient key: %v", err)
	}
	defer clear(vouchKey[:])

	// vouch = long nonce ‖ Box[C′ ‖ S](C→S′)
	vouch := make([]byte, 16, vouchLen)
	if err := randomBytes(h.rand, vouch); err != nil {
		return nil, err
	}
	vnonce := longNonce(prefixVouch, vouch)
	var vpt [64]byte
	copy(vpt[:32], h.tpub[:])
	copy(vpt[32:], h.server[:])
	vouch = vouchKey.seal(vouch, vpt[:], &vnonce)

	plain := make([]byte, 0, 32+vouchLen+len(h.meta))
	plain = append(plain, h.perm.Public[:]...)
	plain = append(plain, vouch...)
	plain = append(plain, h.meta...)

	b := make([]byte, 0, initiateMinLen+len(h.meta))
	b = append(b, "\x08INITIATE"...)
	b = append(b, cookie...)
	b = binary.BigEndian.AppendUint64(b, clientInitiateNonce)
	inonce := shortNonce(prefixInitiate, clientInitiateNonce)
	b = h.sess.key.seal(b, plain, &inonce)
	clear(pt[:])
	h.state = clientSentInitiate
	return b, nil
}

func (h *clientHandshake) onReady(body []byte) error {
	if len(body) < readyMinLen || !hasCommandName(body, "READY") {
		return handshakeErr("malformed READY (%d bytes)", len(body))
	}
	n := binary.BigEndian.Uint64(body[6:14])
	nonce := shortNonce(prefixReady, n)
	meta, ok := h.sess.key.open(nil, body[14:], &nonce)
	if !ok {
		return handshakeErr("READY box does not open")
	}
	h.peerMeta = meta
	h.sess.sendPrefix = prefixMessageC
	h.sess.recvPrefix = prefixMessageS
	h.sess.sendNonce = clientFirstMessage
	h.sess.recvNonce = n
	h.state = clientDone
	return nil
}

// peerMetadata returns the server's raw metadata once READY was accepted.
func (h *clientHandshake) peerMetadata() []byte { return h.peerMeta }

func (h *clientHandshake) wipe() {
	clear(h.tsec[:])
	clear(h.helloKey[:])
}

// parseErrorCommand turns an ERROR body into a RefusedError, or a handshake
// error when the body is malformed.
func parseErrorCommand(body []byte) error {
	if len(body) < errorMinLen {
		return handshakeErr("malformed ERROR (%d bytes)", len(body))
	}
	n := int(body[6])
	if n > len(body)-errorMinLen {
		return handshakeErr("malformed ERROR: reason length %d exceeds body", n)
	}
	reason := string(body[7 : 7+n])
	for i := 0; i < len(reason); i++ {
		if reason[i] < 0x20 || reason[i] > 0x7E {
			reason = strconv.Quote(reason)
			break
		}
	}
	return &RefusedError{Reason: reason}
}

// errorCommand builds an ERROR body for a reason of at most 255 bytes.
func errorCommand(reason string) []byte {
	if len(reason) > 255 {
		reason = reason[:255]
	}
	b := append([]byte("\x05ERROR"), byte(len(reason)))
	return append(b, reason...)
}

// serverHandshake is the server side: HELLO → WELCOME, INITIATE verified
// (the caller then authorises the key and checks metadata), then READY.
type serverHandshake struct {
	rand      io.Reader
	perm      KeyPair // S, s
	cookieKey [32]byte
	clientT   Key    // C′
	tpub      Key    // S′
	tsec      Key    // s′
	helloKey  boxKey // (C′, s)
	client    Key    // C, once INITIATE is verified
	sess      session
	state     int
}

const (
	serverStart = iota
	serverSentWelcome
	serverVerified
	serverDone
	serverFailed
)

func newServerHandshake(rnd io.Reader, perm KeyPair) *serverHandshake {
	return &serverHandshake{rand: rnd, perm: perm}
}

// onHello checks HELLO and returns the WELCOME body.
func (h *serverHandshake) onHello(body []byte) ([]byte, error) {
	w, err := h.onHelloInner(body)
	if err != nil {
		h.state = serverFailed
	}
	return w, err
}

func (h *serverHandshake) onHelloInner(body []byte) ([]byte, error) {
	if h.state != serverStart {
		return nil, handshakeErr("HELLO out of order")
	}
	if len(body) != helloLen || !hasCommandName(body, "HELLO") {
		return nil, handshakeErr("malformed HELLO (%d bytes)", len(body))
	}
	if body[6] != 1 || body[7] != 0 {
		return nil, handshakeErr("CurveZMQ version %d.%d, want 1.0", body[6], body[7])
	}
	copy(h.clientT[:], body[80:112])
	var err error
	if h.helloKey, err = precompute(&h.clientT, &h.perm.Secret); err != nil {
		return nil, handshakeErr("client transient key: %v", err)
	}
	nonce := shortNonce(prefixHello, binary.BigEndian.Uint64(body[112:120]))
	var pt [64]byte
	if _, ok := h.helloKey.open(pt[:0], body[120:200], &nonce); !ok {
		return nil, handshakeErr("HELLO box does not open (wrong server key?)")
	}

	if h.tpub, h.tsec, err = generateKey(h.rand); err != nil {
		return nil, err
	}
	if err := randomBytes(h.rand, h.cookieKey[:]); err != nil {
		return nil, err
	}
	// cookie = long nonce ‖ secretbox[C′ ‖ s′](K)
	cookie := make([]byte, 16, cookieLen)
	if err := randomBytes(h.rand, cookie); err != nil {
		return nil, err
	}
	var cpt [64]byte
	copy(cpt[:32], h.clientT[:])
	copy(cpt[32:], h.tsec[:])
	cnonce := longNonce(prefixCookie, cookie)
	ck := boxKey(h.cookieKey)
	cookie = ck.seal(cookie, cpt[:], &cnonce)
	clear(cpt[:])

	var wpt [128]byte
	copy(wpt[:32], h.tpub[:])
	copy(wpt[32:], cookie)
	b := make([]byte, 24, welcomeLen)
	copy(b, "\x07WELCOME")
	if err := randomBytes(h.rand, b[8:24]); err != nil {
		return nil, err
	}
	wnonce := longNonce(prefixWelcome, b[8:24])
	b = h.helloKey.seal(b, wpt[:], &wnonce)
	h.state = serverSentWelcome
	return b, nil
}

// onInitiate verifies INITIATE in libzmq's order (cookie, box, vouch) and
// returns the client's permanent key and its raw metadata. Authorisation
// and metadata checks are the caller's next steps.
func (h *serverHandshake) onInitiate(body []byte) (Key, []byte, error) {
	k, md, err := h.onInitiateInner(body)
	if err != nil {
		h.state = serverFailed
	}
	return k, md, err
}

func (h *serverHandshake) onInitiateInner(body []byte) (Key, []byte, error) {
	var none Key
	if h.state != serverSentWelcome {
		return none, nil, handshakeErr("INITIATE out of order")
	}
	if len(body) < initiateMinLen || !hasCommandName(body, "INITIATE") {
		return none, nil, handshakeErr("malformed INITIATE (%d bytes)", len(body))
	}
	cookie := body[9:105]
	cnonce := longNonce(prefixCookie, cookie[:16])
	ck := boxKey(h.cookieKey)
	var cpt [64]byte
	if _, ok := ck.open(cpt[:0], cookie[16:], &cnonce); !ok {
		return none, nil, handshakeErr("cookie does not open")
	}
	// The cookie key is single-use: discard it as soon as it has served.
	clear(h.cookieKey[:])
	sameC := subtle.ConstantTimeCompare(cpt[:32], h.clientT[:])
	sameS := subtle.ConstantTimeCompare(cpt[32:], h.tsec[:])
	clear(cpt[:])
	if sameC&sameS != 1 {
		return none, nil, handshakeErr("cookie does not match this connection")
	}

	var err error
	if h.sess.key, err = precompute(&h.clientT, &h.tsec); err != nil {
		return none, nil, handshakeErr("client transient key: %v", err)
	}
	n := binary.BigEndian.Uint64(body[105:113])
	inonce := shortNonce(prefixInitiate, n)
	pt, ok := h.sess.key.open(nil, body[113:], &inonce)
	if !ok {
		return none, nil, handshakeErr("INITIATE box does not open")
	}
	var client Key
	copy(client[:], pt[:32])
	vouch := pt[32 : 32+vouchLen]
	vouchKey, err := precompute(&client, &h.tsec)
	if err != nil {
		return none, nil, handshakeErr("client permanent key: %v", err)
	}
	vnonce := longNonce(prefixVouch, vouch[:16])
	var vpt [64]byte
	_, ok = vouchKey.open(vpt[:0], vouch[16:], &vnonce)
	clear(vouchKey[:])
	if !ok {
		return none, nil, handshakeErr("vouch does not open")
	}
	// libzmq compares only C′; checking S too binds the vouch to this
	// server, as RFC 26 intends.
	if subtle.ConstantTimeCompare(vpt[:32], h.clientT[:])&subtle.ConstantTimeCompare(vpt[32:], h.perm.Public[:]) != 1 {
		return none, nil, handshakeErr("vouch does not match")
	}
	h.client = client
	h.sess.recvNonce = n
	h.state = serverVerified
	return client, pt[32+vouchLen:], nil
}

// ready returns the READY body carrying meta. It may only follow a verified
// INITIATE.
func (h *serverHandshake) ready(meta []byte) ([]byte, error) {
	if h.state != serverVerified {
		return nil, handshakeErr("READY before INITIATE was verified")
	}
	b := make([]byte, 0, readyMinLen+len(meta))
	b = append(b, "\x05READY"...)
	b = binary.BigEndian.AppendUint64(b, serverReadyNonce)
	nonce := shortNonce(prefixReady, serverReadyNonce)
	b = h.sess.key.seal(b, meta, &nonce)
	h.sess.sendPrefix = prefixMessageS
	h.sess.recvPrefix = prefixMessageC
	h.sess.sendNonce = serverFirstMessage
	h.state = serverDone
	return b, nil
}

func (h *serverHandshake) wipe() {
	clear(h.cookieKey[:])
	clear(h.tsec[:])
	clear(h.helloKey[:])
}
