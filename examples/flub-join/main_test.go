package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/flub"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCmd(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb testutil.Buffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// oneLine checks a usage error: exit 2 and one line on stderr, never the
// flag list.
func oneLine(t *testing.T, args []string, code int, stdout, stderr, want string) {
	t.Helper()
	require.Equal(t, 2, code, "%q: exit code", args)
	require.Empty(t, stdout, "%q: stdout", args)
	require.Len(t, testutil.Lines(stderr), 1, "%q: stderr %q", args, stderr)
	require.True(t, strings.HasPrefix(stderr, "flub-join: "), "%q: stderr %q", args, stderr)
	require.Contains(t, stderr, want, "%q", args)
}

func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"start", "-h"}, {"start", "--help"}, {"join", "-h"}, {"join", "--help"}} {
		code, out, errOut := runCmd(t, context.Background(), args...)
		require.Equal(t, 0, code, "%q: exit code", args)
		require.Empty(t, errOut, "%q: stderr", args)
		require.True(t, strings.HasPrefix(out, "usage: flub-join"), "%q: stdout %q", args, out)
		if args[0] != "-h" && args[0] != "--help" {
			require.Contains(t, out, "-handshake-timeout", "%q: the command's flags", args)
		}
	}
}

func TestUsageErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "owner.cert")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "missing command"},
		{[]string{"grow"}, `unknown command "grow"`},
		{[]string{"start", "--size", "0", "--cert", cert}, "--size 0: an instance has 1 to 2147483648 ranks"},
		{[]string{"start", "--size", "2147483649", "--cert", cert}, "--size 2147483649: an instance has 1 to 2147483648 ranks"},
		{[]string{"start", "--size", "-3"}, `invalid value "-3" for flag -size`},
		{[]string{"start", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"start", "--fanout", "0"}, "flag provided but not defined: -fanout"},
		{[]string{"start", "--topo", "kary:x"}, `--topo "kary:x"`},
		{[]string{"start", "--lease", "-1s"}, "--lease -1s: a duration cannot be negative"},
		{[]string{"start", "--heartbeat", "2s", "--torpid-max", "1s"}, "--heartbeat 2s must be less than --torpid-max 1s"},
		{[]string{"start", "extra"}, `unexpected argument "extra"`},
		{[]string{"join"}, "--boot is required"},
		{[]string{"join", "--boot", "tcp://127.0.0.1:1"}, "--boot: boot uri"},
		{[]string{"join", "--boot", "flub://127.0.0.1:1/x", "--topo", "ring"}, "--boot: boot uri"},
		{[]string{"join", "--handshake-timeout", "-1s"}, "--handshake-timeout -1s: a duration cannot be negative"},
	} {
		code, out, errOut := runCmd(t, context.Background(), tc.args...)
		oneLine(t, tc.args, code, out, errOut, tc.want)
	}
}

// startCmd runs "start" until the test ends; it returns the boot URI.
func startCmd(t *testing.T, args ...string) (uri string, out *testutil.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &testutil.Buffer{}
	var errb testutil.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"start"}, args...), out, &errb) }()
	t.Cleanup(func() {
		cancel()
		assert.Equal(t, 0, <-done, "start's exit code; stderr %q", errb.String())
	})
	testutil.WaitFor(t, "the boot URI", func() bool {
		for _, l := range testutil.Lines(out.String()) {
			if u, ok := strings.CutPrefix(l, "boot-uri: "); ok {
				uri = u
				return true
			}
		}
		return false
	})
	return uri, out
}

// The largest size starts and reports in what the ranks in use cost.
func TestStartAtMaxSize(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	_, out := startCmd(t, "--size", "2147483648", "--topo", "kary:0", "--cert", filepath.Join(dir, "owner.cert"), "--hostname", "h0")
	testutil.WaitFor(t, "the report of rank 0 alone", func() bool {
		return strings.Contains(out.String(), "status: partial online=0\n  0 h0: online\n")
	})
}

// The handshake honours the user's timeouts, --handshake-timeout and
// --timeout, not a fixed 30 s.
func TestJoinHonoursTimeouts(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	cert, err := curve.GenerateCert(nil, "owner")
	require.NoError(t, err)
	certPath := filepath.Join(dir, "owner.cert")
	require.NoError(t, cert.WriteFile(certPath))
	uri := flub.FormatBootURI(testutil.SilentListener(t), cert.Keys.Public)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--handshake-timeout", "300ms"}, "handshake timed out after 300ms"},
		{[]string{"--timeout", "300ms"}, "context deadline exceeded"},
	} {
		// Bounded well beyond the flags: their error can only be theirs.
		ctx := testutil.ContextTimeout(t, 20*time.Second)
		code, _, errOut := runCmd(t, ctx, append([]string{"join", "--boot", uri, "--cert", certPath}, tc.flags...)...)
		require.Equal(t, 1, code, "%v: exit code; stderr %q", tc.flags, errOut)
		require.Contains(t, errOut, tc.want, "%v", tc.flags)
		require.Len(t, testutil.Lines(errOut), 1, "%v: stderr %q", tc.flags, errOut)
	}
}

// A key mismatch says which key: a boot URI with another server's key, or
// a certificate the instance does not know; one line, no zmq4 layers.
func TestJoinKeyMismatch(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	ownerPath, otherPath := filepath.Join(dir, "owner.cert"), filepath.Join(dir, "other.cert")
	uri, _ := startCmd(t, "--size", "3", "--cert", ownerPath)
	other, err := curve.GenerateCert(nil, "other")
	require.NoError(t, err)
	require.NoError(t, other.WriteFile(otherPath))
	ep, _, err := flub.ParseBootURI(uri)
	require.NoError(t, err)
	hostport := strings.TrimPrefix(ep, "tcp://")
	for _, tc := range []struct {
		uri, cert, want string
	}{
		{flub.FormatBootURI(hostport, other.Keys.Public), ownerPath, "flub-join: boot-flub: boot server " + hostport + ": handshake failed: server key mismatch: "},
		{uri, otherPath, "flub-join: boot-flub: boot server " + hostport + ": client key not authorized (the server answered ERROR 400)\n"},
	} {
		code, _, errOut := runCmd(t, context.Background(), "join", "--boot", tc.uri, "--cert", tc.cert, "--handshake-timeout", "5s")
		require.Equal(t, 1, code, "exit code; stderr %q", errOut)
		require.True(t, strings.HasPrefix(errOut, tc.want), "stderr %q, want %q", errOut, tc.want)
		require.Len(t, testutil.Lines(errOut), 1, "stderr %q", errOut)
		require.NotContains(t, errOut, "zmq4")
	}
}

// A joiner without --topo adopts the instance's; one with another is
// refused, clearly.
func TestJoinTopology(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	certPath := filepath.Join(dir, "owner.cert")
	uri, _ := startCmd(t, "--size", "3", "--topo", "kary:2", "--cert", certPath)
	// Bounded: a joiner that is wrongly accepted stays up until ctx ends.
	mctx, mcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer mcancel()
	code, _, errOut := runCmd(t, mctx, "join", "--boot", uri, "--cert", certPath, "--topo", "kary:32")
	require.Equal(t, 1, code, "a kary:32 joiner's exit code")
	require.Equal(t, "flub-join: boot-flub: tbon.topo mismatch: the joiner is configured with kary:32, the instance uses kary:2\n", errOut)
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb testutil.Buffer
	code = -1
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		code = run(ctx, []string{"join", "--boot", uri, "--cert", certPath, "--hostname", "n1"}, &out, &errb)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	testutil.WaitFor(t, "the joiner online", func() bool { return strings.Contains(out.String(), "state: online") })
	cancel()
	<-finished
	require.Equal(t, 0, code, "the leaving joiner's exit code; stderr %q", errb.String())
	assert.Contains(t, out.String(), "rank: 1\nparent: 0\ntopo: kary:2\n")
	assert.Contains(t, out.String(), "state: left")
}
