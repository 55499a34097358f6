package curve

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/curve25519"
)

func TestTestKeysHex(t *testing.T) {
	for z85, h := range map[string]string{
		testClientPublic: "BB88471D65E2659B30C55A5321CEBB5AAB2B70A398645C26DCA2B2FCB43FC518",
		testClientSecret: "7BB864B489AFA3671FBE69101F94B38972F24816DFB01B51656B3FEC8DFD0888",
		testServerPublic: "54FCBA24E93249969316FB617C872BB0C1D1FF14800427C594CBFACF1BC2D652",
		testServerSecret: "8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7",
	} {
		k := mustKey(t, z85)
		require.Equal(t, strings.ToLower(h), hex.EncodeToString(k[:]))
		require.Equal(t, z85, k.String())
	}
}

// The public key derived from a secret is libzmq's (zmq_curve_public).
func TestKeyDerivation(t *testing.T) {
	for secret, public := range map[string]string{
		testServerSecret: testServerPublic,
		testClientSecret: testClientPublic,
	} {
		kp, err := KeyPairFromSecret(mustKey(t, secret))
		require.NoError(t, err)
		require.Equal(t, public, kp.Public.String())
		s := mustKey(t, secret)
		p, err := curve25519.X25519(s[:], curve25519.Basepoint)
		require.NoError(t, err)
		require.Equal(t, public, Key(p).String())
	}
}

func TestGenerateKeyPair(t *testing.T) {
	a, err := GenerateKeyPair(nil)
	require.NoError(t, err)
	b, err := GenerateKeyPair(nil)
	require.NoError(t, err)
	require.NotEqual(t, a, b)
	require.NoError(t, a.check())
	d, err := KeyPairFromSecret(a.Secret)
	require.NoError(t, err)
	require.Equal(t, a, d)
	// A deterministic source gives a deterministic pair.
	seed := bytes.Repeat([]byte{7}, 32)
	c1, err := GenerateKeyPair(bytes.NewReader(seed))
	require.NoError(t, err)
	c2, err := GenerateKeyPair(bytes.NewReader(seed))
	require.NoError(t, err)
	require.Equal(t, c1, c2)
	_, err = GenerateKeyPair(bytes.NewReader(seed[:5]))
	require.Error(t, err)
	require.NotContains(t, a.String(), a.Secret.String(), "String must not leak the secret")
}

func TestKeyPairCheck(t *testing.T) {
	require.Error(t, KeyPair{Public: mustKey(t, testServerPublic), Secret: mustKey(t, testClientSecret)}.check())
	require.Error(t, KeyPair{Public: mustKey(t, testServerPublic)}.check())
	require.NoError(t, testServerKeys(t).check())
}

func TestPrecomputeMatchesBothSides(t *testing.T) {
	c, s := testClientKeys(t), testServerKeys(t)
	k1, err := precompute(&s.Public, &c.Secret)
	require.NoError(t, err)
	k2, err := precompute(&c.Public, &s.Secret)
	require.NoError(t, err)
	require.Equal(t, k1, k2)
	var zero Key // a low-order point yields an all-zero secret: rejected
	_, err = precompute(&zero, &c.Secret)
	require.Error(t, err)
}
