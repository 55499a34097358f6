package curve

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// maxCertLine is the longest certificate line accepted. Flux reads lines
// into a 256-byte buffer; anything longer is not a certificate Flux wrote.
const maxCertLine = 255

// maxCertSize bounds how much of a reader ParseCert consumes, so a
// certificate path pointing at something huge cannot exhaust memory.
const maxCertSize = 1 << 20

// CertError reports why a certificate was rejected. It unwraps to
// syscall.EINVAL for a malformed certificate and to syscall.EEXIST for a
// repeated metadata key, the errno values Flux's reader sets.
type CertError struct {
	Line int    // 1-based line number, 0 when not tied to a line
	Msg  string // what was wrong
	Err  error  // syscall.EINVAL or syscall.EEXIST
}

func (e *CertError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("curve: certificate line %d: %s", e.Line, e.Msg)
	}
	return "curve: certificate: " + e.Msg
}

func (e *CertError) Unwrap() error { return e.Err }

func certInval(line int, format string, args ...any) error {
	return &CertError{Line: line, Msg: fmt.Sprintf(format, args...), Err: syscall.EINVAL}
}

// Cert is a CURVE certificate: a key pair plus metadata, stored in the ZPL
// subset that Flux (src/common/libzmqutil/cert.c) and CZMQ's zcert use.
type Cert struct {
	Keys KeyPair
	// Meta holds the metadata section. Keys are alphanumerics, '-' and '.';
	// values use the Z85 alphabet's punctuation plus space and tab.
	Meta map[string]string
}

// GenerateCert returns a certificate with a fresh key pair and, when name is
// not empty, the metadata name. A nil rand means crypto/rand.
func GenerateCert(rand io.Reader, name string) (*Cert, error) {
	kp, err := GenerateKeyPair(rand)
	if err != nil {
		return nil, err
	}
	c := &Cert{Keys: kp, Meta: map[string]string{}}
	if name != "" {
		c.Meta["name"] = name
	}
	return c, nil
}

// Name returns the certificate's name metadata.
func (c *Cert) Name() string { return c.Meta["name"] }

// Equal reports whether c and o hold the same keys and metadata.
func (c *Cert) Equal(o *Cert) bool {
	if c == nil || o == nil {
		return c == o
	}
	return c.Keys == o.Keys && maps.Equal(c.Meta, o.Meta)
}

// ReadCertFile reads a certificate file.
func ReadCertFile(path string) (*Cert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("curve: read certificate: %w", err)
	}
	defer f.Close()
	return ParseCert(f)
}

// ParseCert parses a certificate with Flux's rules: blank and '#' lines are
// skipped; the section headers "metadata" and "curve" start in column 0;
// key = "value" lines are indented and belong to the current section; keys
// are alphanumerics, '-' and '.'; values are double-quoted and restricted to
// alphanumerics, ".-:+=^!/*?&<>()[]{}@%$#", space and tab; under curve only
// public-key and secret-key may appear; a metadata key appears at most once
// (EEXIST); both keys are required and must form a valid pair. Every other
// violation is EINVAL.
func ParseCert(r io.Reader) (*Cert, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCertSize+1))
	if err != nil {
		return nil, fmt.Errorf("curve: read certificate: %w", err)
	}
	if len(data) > maxCertSize {
		return nil, certInval(0, "larger than %d bytes", maxCertSize)
	}
	return parseCert(data)
}

func parseCert(data []byte) (*Cert, error) {
	c := &Cert{Meta: map[string]string{}}
	var havePub, haveSec bool
	section := ""
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		if len(line) > maxCertLine {
			return nil, certInval(n, "line longer than %d bytes", maxCertLine)
		}
		if bytes.IndexByte(line, 0) >= 0 {
			return nil, certInval(n, "NUL byte")
		}
		indented := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
		s := strings.TrimSpace(string(line))
		switch {
		case s == "" || s[0] == '#':
			continue
		case !indented && (s == "metadata" || s == "curve"):
			section = s
			continue
		case !indented || section == "":
			return nil, certInval(n, "expected an indented key = \"value\" line inside a section, or a section header in column 0")
		}
		key, val, err := parseKeyValue(n, s)
		if err != nil {
			return nil, err
		}
		if section == "metadata" {
			if _, dup := c.Meta[key]; dup {
				return nil, &CertError{Line: n, Msg: fmt.Sprintf("metadata key %q repeated", key), Err: syscall.EEXIST}
			}
			c.Meta[key] = val
			continue
		}
		var dst *Key
		switch key {
		case "public-key":
			dst, havePub = &c.Keys.Public, true
		case "secret-key":
			dst, haveSec = &c.Keys.Secret, true
		default:
			return nil, certInval(n, "key %q not allowed under curve", key)
		}
		k, err := ParseKey(val)
		if err != nil {
			return nil, certInval(n, "%s: %v", key, err)
		}
		*dst = k
	}
	if !havePub || !haveSec {
		return nil, certInval(0, "both public-key and secret-key are required")
	}
	if err := c.Keys.check(); err != nil {
		return nil, certInval(0, "%v", err)
	}
	return c, nil
}

func parseKeyValue(n int, s string) (key, val string, err error) {
	key, val, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", certInval(n, "missing '='")
	}
	key = strings.TrimSpace(key)
	if !validCertKey(key) {
		return "", "", certInval(n, "invalid key %q", key)
	}
	val = strings.TrimSpace(val)
	if len(val) < 2 || val[0] != '"' || val[len(val)-1] != '"' {
		return "", "", certInval(n, "value of %q is not double-quoted", key)
	}
	val = val[1 : len(val)-1]
	if !validCertValue(val) {
		return "", "", certInval(n, "value of %q has a character outside the allowed set", key)
	}
	return key, val, nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func validCertKey(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

func validCertValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && !strings.ContainsRune(".-:+=^!/*?&<>()[]{}@%$# \t", rune(c)) {
			return false
		}
	}
	return true
}

// Encode writes the certificate in Flux's layout. Metadata is written with
// "name" first and the rest sorted, so output is deterministic. It refuses
// metadata the reader would reject, so that Encode followed by ParseCert
// always gives back an equal certificate.
func (c *Cert) Encode(w io.Writer) error {
	if err := c.Keys.check(); err != nil {
		return certInval(0, "%v", err)
	}
	keys := make([]string, 0, len(c.Meta))
	for k, v := range c.Meta {
		if !validCertKey(k) {
			return certInval(0, "invalid metadata key %q", k)
		}
		// Leading or trailing blanks would be trimmed away on reading.
		if !validCertValue(v) || strings.TrimSpace(v) != v {
			return certInval(0, "invalid metadata value for %q", k)
		}
		if len(k)+len(v)+10 > maxCertLine {
			return certInval(0, "metadata %q too long for one line", k)
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "name":
			return -1
		case b == "name":
			return 1
		}
		return strings.Compare(a, b)
	})
	bw := bufio.NewWriter(w)
	bw.WriteString("#   ZeroMQ CURVE **Secret** Certificate\n#   DO NOT DISTRIBUTE\n\nmetadata\n")
	for _, k := range keys {
		fmt.Fprintf(bw, "    %s = \"%s\"\n", k, c.Meta[k])
	}
	fmt.Fprintf(bw, "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", c.Keys.Public, c.Keys.Secret)
	return bw.Flush()
}

// WriteFile writes the certificate to path with mode 0600. It writes a
// temporary file in the same directory and renames it into place, so a
// reader never sees a partial certificate and the secret key never sits in a
// file with looser permissions.
func (c *Cert) WriteFile(path string) (err error) {
	var buf bytes.Buffer
	if err := c.Encode(&buf); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("curve: write certificate: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("curve: write certificate: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("curve: write certificate: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("curve: write certificate: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("curve: write certificate: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("curve: write certificate: %w", err)
	}
	return nil
}
