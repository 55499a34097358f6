package testutil_test

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
)

func TestSilentListenerAcceptsAndSaysNothing(t *testing.T) {
	leakcheck.Check(t)
	var c net.Conn
	t.Run("inner", func(t *testing.T) {
		var err error
		c, err = net.Dial("tcp", testutil.SilentListener(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("hello?")); err != nil {
			t.Fatalf("write to the silent peer: %v", err)
		}
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read %d bytes, %v; want silence until the deadline", n, err)
		}
	})
	defer c.Close()
	// The test is over: the listener closed the connection it held.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after the test ended: %v; want the connection closed", err)
	}
}
