package curve

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/secretbox"
	"golang.org/x/crypto/salsa20"
)

// KeySize is the size of a CURVE public or secret key.
const KeySize = 32

// z85KeyLen is the length of a key in Z85 text.
const z85KeyLen = 40

// Key is a 32-byte Curve25519 key, public or secret. Its text form is Z85.
type Key [KeySize]byte

// String returns the Z85 text of k.
func (k Key) String() string {
	s, _ := Z85Encode(k[:]) // 32 is a multiple of 4: cannot fail
	return s
}

// IsZero reports whether k is all zeros (an unset key).
func (k Key) IsZero() bool {
	var zero Key
	return subtle.ConstantTimeCompare(k[:], zero[:]) == 1
}

// ParseKey parses the 40-character Z85 text of a key. Like Flux's key copy,
// it first requires exactly 40 characters from the alphabet and then a
// libzmq decode.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != z85KeyLen {
		return k, fmt.Errorf("%w: key text must be %d characters, got %d", ErrZ85, z85KeyLen, len(s))
	}
	b, err := Z85Decode(s)
	if err != nil {
		return k, err
	}
	copy(k[:], b)
	return k, nil
}

// KeyPair is a permanent (long-term) CURVE key pair.
type KeyPair struct {
	Public Key
	Secret Key
}

// String shows only the public half, so that logging a KeyPair never leaks
// the secret.
func (kp KeyPair) String() string { return "KeyPair{Public:" + kp.Public.String() + "}" }

// GenerateKeyPair returns a fresh key pair, as zmq_curve_keypair does. A nil
// rand means crypto/rand.
func GenerateKeyPair(rand io.Reader) (KeyPair, error) {
	pub, sec, err := generateKey(rand)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{Public: pub, Secret: sec}, nil
}

// KeyPairFromSecret derives the public key from secret (zmq_curve_public).
func KeyPairFromSecret(secret Key) (KeyPair, error) {
	pub, err := curve25519.X25519(secret[:], curve25519.Basepoint)
	if err != nil {
		return KeyPair{}, fmt.Errorf("curve: derive public key: %w", err)
	}
	kp := KeyPair{Secret: secret}
	copy(kp.Public[:], pub)
	return kp, nil
}

// check verifies that the public half matches the secret half, catching a
// configuration that pairs keys from two different certificates.
func (kp KeyPair) check() error {
	if kp.Secret.IsZero() {
		return errors.New("key pair has no secret key")
	}
	d, err := KeyPairFromSecret(kp.Secret)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare(d.Public[:], kp.Public[:]) != 1 {
		return errors.New("public key does not match secret key")
	}
	return nil
}

func generateKey(r io.Reader) (pub, sec Key, err error) {
	if r == nil {
		r = rand.Reader
	}
	if _, err = io.ReadFull(r, sec[:]); err != nil {
		return pub, sec, fmt.Errorf("curve: read random key: %w", err)
	}
	p, err := curve25519.X25519(sec[:], curve25519.Basepoint)
	if err != nil {
		return pub, sec, fmt.Errorf("curve: derive public key: %w", err)
	}
	copy(pub[:], p)
	return pub, sec, nil
}

// boxKey is a NaCl crypto_box shared key (crypto_box_beforenm): HSalsa20 of
// the X25519 shared point. Sealing with secretbox under it gives the exact
// bytes of crypto_box. It is built here rather than with nacl/box because
// that package drags in blake2b and golang.org/x/sys, which this module's
// go.sum does not carry.
type boxKey [32]byte

var errLowOrder = errors.New("curve: peer public key is a low-order point")

// precompute returns the shared key of (peer, mine). X25519 rejects an
// all-zero shared point, as libsodium's crypto_box does, so a low-order
// peer key fails instead of yielding a predictable key.
func precompute(peer, mine *Key) (boxKey, error) {
	var k boxKey
	shared, err := curve25519.X25519(mine[:], peer[:])
	if err != nil {
		return k, errLowOrder
	}
	var point [32]byte
	copy(point[:], shared)
	hsalsa20Zero(&k, &point)
	clear(point[:])
	clear(shared)
	return k, nil
}

// hsalsa20Zero sets out to HSalsa20(key, 0¹⁶), crypto_box_beforenm's
// second step. HSalsa20 is the Salsa20 core without its final feed-forward
// addition, so it is read off the first Salsa20 block for this key with
// nonce and counter zero: words 0, 5, 10, 15 and 6–9 of that block, less
// the input words the feed-forward added (the "expand 32-byte k" constants
// and zeros). This avoids the deprecated salsa20/salsa package.
func hsalsa20Zero(out *boxKey, key *[32]byte) {
	var block [64]byte
	salsa20.XORKeyStream(block[:], block[:], make([]byte, 8), key)
	word := func(i int) uint32 { return binary.LittleEndian.Uint32(block[4*i:]) }
	sigma := [4]uint32{0x61707865, 0x3320646e, 0x79622d32, 0x6b206574}
	for i, w := range [8]uint32{
		word(0) - sigma[0], word(5) - sigma[1], word(10) - sigma[2], word(15) - sigma[3],
		word(6), word(7), word(8), word(9),
	} {
		binary.LittleEndian.PutUint32(out[4*i:], w)
	}
	clear(block[:])
}

func (k *boxKey) seal(out, msg []byte, nonce *[24]byte) []byte {
	return secretbox.Seal(out, msg, nonce, (*[32]byte)(k))
}

func (k *boxKey) open(out, box []byte, nonce *[24]byte) ([]byte, bool) {
	return secretbox.Open(out, box, nonce, (*[32]byte)(k))
}
