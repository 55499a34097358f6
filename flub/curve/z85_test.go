package curve

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Z85 round-trips the test vectors of its specification, ZeroMQ RFC 32.
func TestZ85RFC32Vectors(t *testing.T) {
	for _, tc := range []struct{ hex, z85 string }{
		{"864FD26FB559F75B", "HelloWorld"},
		{"8E0BDD697628B91D8F245587EE95C5B04D48963F79259877B49CD9063AEAD3B7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"},
	} {
		bin, err := hex.DecodeString(tc.hex)
		require.NoError(t, err)
		enc, err := Z85Encode(bin)
		require.NoError(t, err)
		require.Equal(t, tc.z85, enc)
		dec, err := Z85Decode(tc.z85)
		require.NoError(t, err)
		require.Equal(t, bin, dec)
	}
}

// Z85 agrees with libzmq's tests/test_base85.cpp, valid and invalid input.
func TestZ85LibzmqVectors(t *testing.T) {
	valid := map[string]string{
		"00000": "00000000",
		"%nSc0": "ffffffff",
	}
	for in, want := range valid {
		got, err := Z85Decode(in)
		require.NoError(t, err, in)
		require.Equal(t, want, hex.EncodeToString(got), in)
	}
	const roundTrip = "r^/rM9M=rMToK)63O8dCvd9D<PY<7iGlC+{BiSnG"
	b, err := Z85Decode(roundTrip)
	require.NoError(t, err)
	enc, err := Z85Encode(b)
	require.NoError(t, err)
	require.Equal(t, roundTrip, enc)

	for _, bad := range []string{
		"%nSc1", "#####", // 32-bit overflow
		"0", "01234567", // length
		"", // empty: rejected like libzmq
		"0000\x1f", "0000\x80", "0000\x04", "0000~", "0000 ", "0000\"", "0000\x00", "0000\xff",
	} {
		got, err := Z85Decode(bad)
		require.Error(t, err, "%q", bad)
		require.True(t, errors.Is(err, ErrZ85), "%q", bad)
		require.Nil(t, got, "%q must not yield garbage", bad)
	}
}

func TestZ85EncodeLength(t *testing.T) {
	_, err := Z85Encode([]byte{1, 2, 3}) // not a multiple of 4 bytes
	require.ErrorIs(t, err, ErrZ85)
	// Like libzmq, empty binary encodes to empty text (even though empty
	// text does not decode).
	s, err := Z85Encode(nil)
	require.NoError(t, err)
	require.Empty(t, s)
}

func TestZ85AlphabetBoundaries(t *testing.T) {
	require.Len(t, z85Alphabet, 85)
	for i := 0; i < 256; i++ {
		v := z85Value(byte(i))
		idx := strings.IndexByte(z85Alphabet, byte(i))
		if idx < 0 {
			require.Equal(t, byte(0xFF), v, "byte %#x", i)
		} else {
			require.Equal(t, byte(idx), v, "byte %q", rune(i))
		}
	}
}

// ParseKey takes 40 Z85 characters that decode to 32 bytes, nothing else.
func TestParseKeyRejects(t *testing.T) {
	good := testServerPublic
	_, err := ParseKey(good)
	require.NoError(t, err)
	for _, bad := range []string{
		good[:39] + " ",
		good[:39] + "~",
		" " + good[1:],
		good[:39],
		good + "0",
		strings.Repeat("#", 40), // alphabet only, but overflows
	} {
		_, err := ParseKey(bad)
		require.ErrorIs(t, err, ErrZ85, "%q", bad)
	}
}

func FuzzZ85Decode(f *testing.F) {
	for _, s := range []string{"", "0", "00000", "%nSc0", "%nSc1", "#####", "HelloWorld",
		"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6", "0000\x80", "r^/rM9M=rMToK)63O8dCvd9D<PY<7iGlC+{BiSnG"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Z85Decode(s)
		if err != nil {
			require.Nil(t, b, "output with an error")
			require.ErrorIs(t, err, ErrZ85)
			return
		}
		require.Len(t, b, len(s)/5*4, "bytes decoded from %d characters", len(s))
		// Every group that decodes encodes back to the same digits: Z85
		// has exactly one text per value.
		enc, err := Z85Encode(b)
		require.NoError(t, err, "re-encode %q", s)
		require.Equal(t, s, enc, "re-encode")
		_, err = ParseKey(s)
		require.Equal(t, len(s) == 40, err == nil, "ParseKey(%q): %v", s, err)
	})
}
