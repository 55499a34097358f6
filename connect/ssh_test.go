package connect

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMain lets the test binary stand in for "flux relay PATH" when it is
// run through the fake ssh below, so the ssh connector is tested without a
// flux-core installation: it connects to PATH, passes the broker's
// handshake byte on, and copies bytes both ways.
func TestMain(m *testing.M) {
	if os.Getenv("FLUXKIT_TEST_RELAY") == "1" && len(os.Args) == 3 && os.Args[1] == "relay" {
		os.Exit(fakeRelay(os.Args[2]))
	}
	os.Exit(m.Run())
}

func fakeRelay(path string) int {
	c, err := net.Dial("unix", path)
	if err != nil {
		os.Stderr.WriteString("relay: " + err.Error() + "\n")
		return 1
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(os.Stdout, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, os.Stdin); done <- struct{}{} }()
	<-done
	return 0
}

// writeScript writes an executable shell script and returns its path.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "script")
	require.NoError(t, os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755))
	return p
}

// Drops [-p port] and [user@]host and runs the rest here, as an ssh to
// localhost would.
const localSSH = "while [ \"$1\" = -p ]; do shift 2; done\nshift\nexec \"$@\"\n"

func TestSSHThroughRelay(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("FLUXKIT_TEST_RELAY", "1")
	f := newFakeBroker(t)
	f.rank = 1
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		if m.Type == fluxkit.TypeRequest {
			_ = c.respond(m, `{"echo":`+quote(m.Topic)+`}`, 0)
		}
	}
	f.uri()
	ssh := writeScript(t, localSSH)
	env := func(k string) string {
		switch k {
		case "FLUX_SSH":
			return ssh
		case "FLUX_SSH_RCMD":
			return os.Args[0]
		}
		return ""
	}
	h, err := New(testutil.Context(t), Config{URI: "ssh://someone@node7:2222" + f.path, Getenv: env})
	require.NoError(t, err)
	assert.Equal(t, uint32(1), h.Rank())
	assert.Equal(t, "ssh://someone@node7:2222"+f.path, h.URI())
	var out struct{ Echo string }
	require.NoError(t, fluxkit.RPC(testutil.Context(t), h, "a.b", 0, nil, &out))
	assert.Equal(t, "a.b", out.Echo)
	require.NoError(t, h.Close())
}

func TestSSHFailuresExplainThemselves(t *testing.T) {
	leakcheck.Check(t)
	for _, tc := range []struct {
		name, script, want string
	}{
		{"remote error on stderr", "echo 'ssh: Could not resolve hostname node7' >&2; exit 255\n", "Could not resolve hostname node7"},
		{"shell init noise on stdout", "echo Welcome; sleep 1\n", "unable to establish a clean ssh connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ssh := writeScript(t, tc.script)
			env := func(k string) string {
				if k == "FLUX_SSH" {
					return ssh
				}
				return ""
			}
			_, err := New(testutil.Context(t), Config{URI: "ssh://node7/tmp/x/local", Getenv: env})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	env := func(k string) string {
		if k == "FLUX_SSH" {
			return "/nonexistent/ssh"
		}
		return ""
	}
	_, err := New(testutil.Context(t), Config{URI: "ssh://node7/tmp/x/local", Getenv: env})
	assert.ErrorContains(t, err, "set FLUX_SSH")
}
