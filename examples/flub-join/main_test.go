package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/flub"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// syncBuffer is a bytes.Buffer safe for a running command and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func runCmd(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb syncBuffer
	code = run(ctx, args, &out, &errb)
	return code, out.String(), errb.String()
}

// oneLine checks a usage error: exit 2 and one line on stderr, never the
// flag list.
func oneLine(t *testing.T, args []string, code int, stdout, stderr, want string) {
	t.Helper()
	if code != 2 || stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "flub-join: ") || !strings.Contains(stderr, want) {
		t.Fatalf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", args, code, stdout, stderr, want)
	}
}

func TestHelpGoesToStdout(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"start", "-h"}, {"start", "--help"}, {"join", "-h"}, {"join", "--help"}} {
		code, out, errOut := runCmd(t, context.Background(), args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, "usage: flub-join") {
			t.Fatalf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
		if args[0] != "-h" && args[0] != "--help" && !strings.Contains(out, "-handshake-timeout") {
			t.Fatalf("%q: flags missing from %q", args, out)
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
func startCmd(t *testing.T, args ...string) (uri string, out *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &syncBuffer{}
	var errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"start"}, args...), out, &errb) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("start exited %d: %s", code, errb.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(out.String(), "\n") {
			if u, ok := strings.CutPrefix(l, "boot-uri: "); ok {
				return u, out
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no boot URI: stdout %q stderr %q", out.String(), errb.String())
	return "", nil
}

// The largest size starts and reports in what the ranks in use cost.
func TestStartAtMaxSize(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	_, out := startCmd(t, "--size", "2147483648", "--topo", "kary:0", "--cert", filepath.Join(dir, "owner.cert"), "--hostname", "h0")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "status: partial online=0\n  0 h0: online\n") {
		if time.Now().After(deadline) {
			t.Fatalf("report %q", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tarpit accepts TCP connections and never answers.
func tarpit(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range held {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// The handshake honours the user's timeouts, --handshake-timeout and
// --timeout, not a fixed 30 s.
func TestJoinHonoursTimeouts(t *testing.T) {
	leakcheck.Check(t)
	dir := t.TempDir()
	cert, err := curve.GenerateCert(nil, "owner")
	if err != nil {
		t.Fatal(err)
	}
	certPath := filepath.Join(dir, "owner.cert")
	if err := cert.WriteFile(certPath); err != nil {
		t.Fatal(err)
	}
	uri := flub.FormatBootURI(tarpit(t), cert.Keys.Public)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{[]string{"--handshake-timeout", "300ms"}, "handshake timed out after 300ms"},
		{[]string{"--timeout", "300ms"}, "context deadline exceeded"},
	} {
		start := time.Now()
		code, _, errOut := runCmd(t, context.Background(), append([]string{"join", "--boot", uri, "--cert", certPath}, tc.flags...)...)
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Fatalf("%v: exit %d, stderr %q", tc.flags, code, errOut)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%v: gave up after %v", tc.flags, d)
		}
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
	if err != nil {
		t.Fatal(err)
	}
	if err := other.WriteFile(otherPath); err != nil {
		t.Fatal(err)
	}
	ep, _, err := flub.ParseBootURI(uri)
	if err != nil {
		t.Fatal(err)
	}
	hostport := strings.TrimPrefix(ep, "tcp://")
	for _, tc := range []struct {
		uri, cert, want string
	}{
		{flub.FormatBootURI(hostport, other.Keys.Public), ownerPath, "flub-join: boot-flub: boot server " + hostport + ": handshake failed: server key mismatch: "},
		{uri, otherPath, "flub-join: boot-flub: boot server " + hostport + ": client key not authorized (the server answered ERROR 400)\n"},
	} {
		code, _, errOut := runCmd(t, context.Background(), "join", "--boot", tc.uri, "--cert", tc.cert, "--handshake-timeout", "5s")
		if code != 1 || !strings.HasPrefix(errOut, tc.want) || strings.Count(errOut, "\n") != 1 || strings.Contains(errOut, "zmq4") {
			t.Fatalf("exit %d, stderr %q; want %q", code, errOut, tc.want)
		}
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
	if code != 1 || errOut != "flub-join: boot-flub: tbon.topo mismatch: the joiner is configured with kary:32, the instance uses kary:2\n" {
		t.Fatalf("kary:32 joiner: exit %d, stderr %q", code, errOut)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"join", "--boot", uri, "--cert", certPath, "--hostname", "n1"}, &out, &errb)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "state: online") {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("join: stdout %q stderr %q", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("leave: exit %d, %s", code, errb.String())
	}
	if got := out.String(); !strings.Contains(got, "rank: 1\nparent: 0\ntopo: kary:2\n") || !strings.Contains(got, "state: left") {
		t.Fatalf("join output %q", got)
	}
}
