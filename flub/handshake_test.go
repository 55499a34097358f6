package flub

import (
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// tarpit accepts TCP connections and never says a word.
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
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().String()
}

// The boot handshake honours the joiner's HandshakeTimeout, not a fixed
// 30 s, and says so.
func TestJoinHonoursHandshakeTimeout(t *testing.T) {
	leakcheck.Check(t)
	owner := mustKeyPair(t)
	uri := FormatBootURI(tarpit(t), mustKey(t))
	start := time.Now()
	_, err := Join(ctxT(t, time.Minute), JoinConfig{BootURI: uri, Owner: owner, HandshakeTimeout: 300 * time.Millisecond})
	if !errors.Is(err, curve.ErrHandshakeTimeout) || !strings.Contains(err.Error(), "handshake timed out after 300ms") {
		t.Fatalf("join against a silent boot server: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v", d)
	}
	// A deadline on ctx bounds it as well.
	start = time.Now()
	_, err = Join(ctxT(t, 300*time.Millisecond), JoinConfig{BootURI: uri, Owner: owner})
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("join under a 300ms deadline: %v after %v", err, time.Since(start))
	}
	t.Logf("%v", err)
}

// Key mismatches say which key is wrong, in one line without zmq4's
// layers: a boot URI holding another server's key, an owner certificate
// the instance does not know.
func TestJoinKeyMismatchesSaySo(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3})
	ep, _, err := ParseBootURI(in.root.BootURI())
	if err != nil {
		t.Fatal(err)
	}
	hostport := strings.TrimPrefix(ep, "tcp://")
	ctx := ctxT(t, 30*time.Second)

	cfg := in.joinConfig("n1")
	cfg.BootURI = FormatBootURI(hostport, mustKey(t))
	_, err = Join(ctx, cfg)
	want := "boot-flub: boot server " + hostport + ": handshake failed: server key mismatch: "
	if !errors.Is(err, curve.ErrServerKeyMismatch) || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "zmq4") {
		t.Fatalf("wrong server key: %v", err)
	}

	cfg = in.joinConfig("n1")
	cfg.Owner = mustKeyPair(t)
	_, err = Join(ctx, cfg)
	want = "boot-flub: boot server " + hostport + ": client key not authorized (the server answered ERROR 400)"
	if !errors.Is(err, curve.ErrClientKeyNotAuthorized) || err.Error() != want {
		t.Fatalf("unknown owner key: %v", err)
	}
}
