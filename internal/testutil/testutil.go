// Package testutil holds the small helpers every package's tests need: a
// context bounded by the test, polling for a condition, raw RPCs, a
// goroutine-safe buffer and a logger that records what it is told. Test
// fakes with a lifecycle (the in-process broker, a real flux-core) live in
// their own packages; this one has no state of its own.
package testutil

import (
	"bytes"
	"context"
	"encoding/hex"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// DefaultTimeout bounds a test's context and waits unless told otherwise:
// generous, so that a loaded machine does not fail a correct test, and
// finite, so that a broken one fails instead of hanging.
const DefaultTimeout = 30 * time.Second

// Context returns a context that ends after DefaultTimeout or when the
// test ends.
func Context(t testing.TB) context.Context {
	return ContextTimeout(t, DefaultTimeout)
}

// ContextTimeout returns a context that ends after d or when the test ends.
func ContextTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// WaitFor polls cond until it holds, failing the test with what after
// DefaultTimeout.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	WaitForWithin(t, what, DefaultTimeout, cond)
}

// WaitForWithin polls cond until it holds, failing the test after d.
func WaitForWithin(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// RawRPC sends payload, as given, to topic on nodeid and returns the
// payload of the single response.
func RawRPC(ctx context.Context, h fluxkit.Handle, topic string, nodeid uint32, payload string) ([]byte, error) {
	var p []byte
	if payload != "" {
		p = []byte(payload)
	}
	call, err := h.Request(ctx, fluxkit.NewRequest(topic, nodeid, p))
	if err != nil {
		return nil, err
	}
	defer call.Close()
	m, err := call.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return m.Payload, nil
}

// RPCMap sends in (see fluxkit.EncodePayload) and decodes the response
// object into a map.
func RPCMap(ctx context.Context, h fluxkit.Handle, topic string, nodeid uint32, in any) (map[string]any, error) {
	var out map[string]any
	err := fluxkit.RPC(ctx, h, topic, nodeid, in, &out)
	return out, err
}

// Unhex decodes s, hex digits that may be grouped with spaces, failing
// the test when s is not hex.
func Unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("testutil.Unhex: %v", err)
	}
	return b
}

// WireEqual reports whether a and b are the same RFC 3 message as a round
// trip through the wire keeps it: an empty payload equals none, and
// payloads and topics compare without trailing NULs (flux-core payloads
// never end in one of their own, and a payload that ended in two loses one
// per trip).
func WireEqual(a, b *fluxkit.Message) bool {
	ap, bp := bytes.TrimRight(a.Payload, "\x00"), bytes.TrimRight(b.Payload, "\x00")
	at, bt := strings.TrimRight(a.Topic, "\x00"), strings.TrimRight(b.Topic, "\x00")
	return a.Type == b.Type && a.Flags == b.Flags && at == bt && bytes.Equal(ap, bp) &&
		a.Userid == b.Userid && a.Rolemask == b.Rolemask && a.Nodeid == b.Nodeid &&
		a.Matchtag == b.Matchtag && a.Errnum == b.Errnum && a.Seq == b.Seq &&
		a.ControlType == b.ControlType && a.ControlStatus == b.ControlStatus &&
		slices.Equal(a.Route, b.Route)
}

// BenchParse measures parse of in, reporting bytes per second and
// allocations. No assertion runs on the clock: the error of the last
// iteration is checked after the loop (parsers are deterministic).
func BenchParse(b *testing.B, in string, parse func(string) error) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	var err error
	for b.Loop() {
		err = parse(in)
	}
	if err != nil {
		b.Fatalf("parsing the benchmark input: %v", err)
	}
}

// Buffer is a bytes.Buffer safe for concurrent use, for the output of
// commands and goroutines a test reads while they write.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what has been written.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Reset forgets what has been written.
func (b *Buffer) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.Reset()
}

// Logger returns a logger that writes text records, at every level, to the
// returned buffer.
func Logger() (*slog.Logger, *Buffer) {
	var b Buffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// Lines returns the lines of s without the empty last one.
func Lines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
