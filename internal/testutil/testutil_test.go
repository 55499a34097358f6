package testutil_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/testutil"
)

func TestContextEndsWithTheTest(t *testing.T) {
	var ctx context.Context
	t.Run("inner", func(t *testing.T) { ctx = testutil.ContextTimeout(t, time.Hour) })
	if ctx.Err() == nil {
		t.Fatal("context outlived its test")
	}
}

func TestWaitForPolls(t *testing.T) {
	n := 0
	testutil.WaitFor(t, "three polls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("polled %d times", n)
	}
}

func TestBufferIsSafeForConcurrentWriters(t *testing.T) {
	var b testutil.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&b, "line %d\n", i)
		}()
	}
	wg.Wait()
	if got := len(testutil.Lines(b.String())); got != 8 {
		t.Fatalf("%d lines", got)
	}
	b.Reset()
	if b.String() != "" {
		t.Fatal("Reset kept data")
	}
}

func TestLoggerRecords(t *testing.T) {
	log, b := testutil.Logger()
	log.Debug("hello", "k", 1)
	if !strings.Contains(b.String(), "msg=hello k=1") {
		t.Fatalf("%q", b.String())
	}
}
