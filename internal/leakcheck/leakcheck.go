// Package leakcheck fails a test that leaves goroutines behind.
//
// It compares goroutine counts rather than stacks, so it is meant for tests
// that do not run in parallel with others of the same package.
package leakcheck

import (
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check records the current goroutine count and, when the test ends (after
// cleanups registered later, which run first), waits up to five seconds for
// the count to come back, failing the test with the stacks of the extra
// goroutines if it does not.
func Check(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leakcheck: %d goroutines before the test, %d after:\n%s", before, n, stacks())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func stacks() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var keep []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "leakcheck.stacks") || strings.Contains(g, "testing.tRunner") && !strings.Contains(g, "created by") {
			continue
		}
		keep = append(keep, g)
	}
	return strings.Join(keep, "\n\n")
}
