package testutil

import (
	"net"
	"sync"
	"testing"
)

// SilentListener listens on a loopback TCP port, accepts every connection
// and never reads or writes a byte: a peer that lets a client connect and
// then says nothing, so that the client's handshake timeout is what ends
// the attempt. It returns the listener's "127.0.0.1:port". The listener,
// the connections it accepted and its goroutine are gone when the test
// ends.
func SilentListener(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("silent listener: %v", err)
	}
	var (
		mu   sync.Mutex
		held []net.Conn
		done = make(chan struct{})
	)
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
		_ = ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}
