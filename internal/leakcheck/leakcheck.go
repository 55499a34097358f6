// Package leakcheck fails a test that leaves goroutines or child processes
// behind.
//
// It compares goroutine counts rather than stacks, so it is meant for tests
// that do not run in parallel with others of the same package.
package leakcheck

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check records the current goroutine count and, when the test ends (after
// cleanups registered later, which run first), waits up to ten seconds for
// the count to come back and for every child process the test started to be
// gone (reaped, not merely killed). On failure it reports the extra
// goroutines' stacks and the children's pids.
func Check(t testing.TB) {
	t.Helper()
	check(t, 10*time.Second)
}

func check(t testing.TB, grace time.Duration) {
	before := runtime.NumGoroutine()
	kidsBefore := len(Children())
	t.Cleanup(func() {
		deadline := time.Now().Add(grace)
		for {
			n, kids := runtime.NumGoroutine(), Children()
			if n <= before && len(kids) <= kidsBefore {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("leakcheck: goroutines %d before the test, %d after; child processes %v:\n%s", before, n, kids, stacks())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// Children returns the pids of this process's children, zombies included,
// from /proc (empty where /proc is not available).
func Children() []string {
	var out []string
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil {
			out = append(out, strings.Fields(string(b))...)
		}
	}
	return out
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
