package curve

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

func readGoodCert(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("testdata/flux-keygen.cert")
	require.NoError(t, err)
	return string(b)
}

// A certificate written by flux keygen reads back with its keys and
// metadata.
func TestReadFluxKeygenCert(t *testing.T) {
	c, err := ReadCertFile("testdata/flux-keygen.cert")
	require.NoError(t, err)
	require.Equal(t, "3", c.Name())
	require.Equal(t, "node17", c.Meta["keygen.hostname"])
	require.Equal(t, "2024-05-01T12:34:56-07:00", c.Meta["keygen.time"])
	require.Len(t, c.Meta, 6)
	require.Equal(t, testServerKeys(t), c.Keys)
}

// Variants of a good certificate that Flux's reader refuses are refused
// with EINVAL naming the line.
func TestCertVariantsRejected(t *testing.T) {
	good := readGoodCert(t)
	pub := `    public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"`
	sec := `    secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"`
	replace := func(old, new string) string {
		require.Contains(t, good, old)
		return strings.Replace(good, old, new, 1)
	}
	for name, text := range map[string]string{
		"unindented public-key": replace(pub, strings.TrimSpace(pub)),
		"unquoted value":        replace(`name = "3"`, `name = 3`),
		"half-quoted value":     replace(`name = "3"`, `name = "3`),
		"extra key under curve": replace(sec, sec+"\n    extra-key = \"x\""),
		"missing secret key":    replace(sec+"\n", ""),
		"missing public key":    replace(pub+"\n", ""),
		"mismatched pair":       replace(sec, `    secret-key = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"`),
		"short key":             replace(sec, `    secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh"`),
		"key with space":        replace(sec, `    secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{L 6"`),
		"key with tilde":        replace(sec, `    secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{L~6"`),
		"indented section":      replace("\ncurve\n", "\n  curve\n"),
		"unknown section":       replace("\ncurve\n", "\ncurve\nother\n"),
		"pair before section":   "    name = \"x\"\n" + good,
		"bad key character":     replace(`name = "3"`, `na_me = "3"`),
		"empty key":             replace(`name = "3"`, ` = "3"`),
		"bad value character":   replace(`name = "3"`, `name = "a,b"`),
		"quote inside value":    replace(`name = "3"`, `name = "a"b"`),
		"missing equals":        replace(`name = "3"`, `name "3"`),
		"line too long":         replace(`name = "3"`, `name = "`+strings.Repeat("a", 300)+`"`),
		"NUL byte":              replace(`name = "3"`, "name = \"3\x00\""),
		"empty file":            "",
		"comments only":         "# nothing\n\n",
	} {
		_, err := ParseCert(strings.NewReader(text))
		require.Error(t, err, name)
		require.True(t, errors.Is(err, syscall.EINVAL), "%s: %v", name, err)
		var ce *CertError
		require.True(t, errors.As(err, &ce), name)
	}
}

func TestCertDuplicateMetadata(t *testing.T) {
	good := readGoodCert(t)
	_, err := ParseCert(strings.NewReader(strings.Replace(good, `    name = "3"`, "    name = \"3\"\n    name = \"4\"", 1)))
	require.ErrorIs(t, err, syscall.EEXIST)
}

func TestCertAccepts(t *testing.T) {
	good := readGoodCert(t)
	for name, text := range map[string]string{
		"tab indent":        strings.ReplaceAll(good, "\n    ", "\n\t"),
		"CRLF":              strings.ReplaceAll(good, "\n", "\r\n"),
		"indented comment":  strings.Replace(good, "metadata\n", "metadata\n    # a comment\n", 1),
		"no trailing NL":    strings.TrimSuffix(good, "\n"),
		"spaces around '='": strings.Replace(good, `name = "3"`, `name   =   "3"  `, 1),
		"empty value":       strings.Replace(good, `name = "3"`, `name = ""`, 1),
		"value with space":  strings.Replace(good, `name = "3"`, "name = \"a b\tc\"", 1),
	} {
		c, err := ParseCert(strings.NewReader(text))
		require.NoError(t, err, name)
		require.Equal(t, testServerKeys(t), c.Keys, name)
	}
}

// A written certificate reads back equal.
func TestCertWriteReadRoundTrip(t *testing.T) {
	c, err := GenerateCert(nil, "rank0")
	require.NoError(t, err)
	c.Meta["keygen.hostname"] = "node-1.example"
	c.Meta["keygen.time"] = "2024-05-01T12:34:56+02:00"
	c.Meta["zz"] = ""
	path := filepath.Join(t.TempDir(), "curve.cert")
	require.NoError(t, c.WriteFile(path))
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	back, err := ReadCertFile(path)
	require.NoError(t, err)
	require.True(t, c.Equal(back))
	require.Equal(t, "rank0", back.Name())

	// Overwriting keeps mode 0600 even if the old file was looser.
	require.NoError(t, os.Chmod(path, 0o644))
	require.NoError(t, c.WriteFile(path))
	st, err = os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	entries, err := os.ReadDir(filepath.Dir(path))
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left behind")

	// The good Flux file re-encodes to an equal certificate.
	fluxCert, err := ReadCertFile("testdata/flux-keygen.cert")
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, fluxCert.Encode(&buf))
	back, err = ParseCert(&buf)
	require.NoError(t, err)
	require.True(t, fluxCert.Equal(back))
}

func TestCertEncodeRefusesUnreadable(t *testing.T) {
	c, err := GenerateCert(nil, "")
	require.NoError(t, err)
	for k, v := range map[string]string{"bad key": "v", "k": "a\"b", "k2": " lead", "k3": "nl\n"} {
		c.Meta = map[string]string{k: v}
		require.ErrorIs(t, c.Encode(&bytes.Buffer{}), syscall.EINVAL, "%q=%q", k, v)
	}
	c.Meta = nil
	c.Keys.Secret[5] ^= 1 // not byte 0: X25519 clamps its low bits away
	require.ErrorIs(t, c.Encode(&bytes.Buffer{}), syscall.EINVAL)
}

func FuzzParseCert(f *testing.F) {
	good, err := os.ReadFile("testdata/flux-keygen.cert")
	require.NoError(f, err)
	f.Add(good)
	f.Add([]byte("metadata\ncurve\n    public-key = \"\"\n"))
	f.Add([]byte("curve\n    public-key = \"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7\"\n"))
	f.Add([]byte("metadata\n    a = \"1\"\n    a = \"2\"\n"))
	f.Add([]byte("\n#\n  \t\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCert(bytes.NewReader(data))
		if err != nil {
			require.True(t, errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EEXIST), "error %v is neither EINVAL nor EEXIST", err)
			return
		}
		require.NoError(t, c.Keys.check(), "accepted a certificate with a bad pair")
		// Whatever parses must survive Encode → ParseCert unchanged.
		var buf bytes.Buffer
		require.NoError(t, c.Encode(&buf), "encode an accepted certificate")
		back, err := ParseCert(&buf)
		require.NoError(t, err, "round trip:\n%s", buf.String())
		require.True(t, c.Equal(back), "round trip:\n%s", buf.String())
	})
}
