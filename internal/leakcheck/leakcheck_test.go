package leakcheck

import (
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeT records failures instead of failing the real test.
type fakeT struct {
	testing.TB
	cleanups []func()
	failed   bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
func (f *fakeT) finish() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestCatchesGoroutine(t *testing.T) {
	ft := &fakeT{TB: t}
	check(ft, 200*time.Millisecond)
	// Many goroutines, so that unrelated ones ending meanwhile (left over
	// from earlier tests) cannot hide the leak from a count.
	stop := make(chan struct{})
	for range 100 {
		go func() { <-stop }()
	}
	ft.finish()
	close(stop)
	assert.True(t, ft.failed, "a goroutine left running was not reported")
}

func TestCatchesChild(t *testing.T) {
	ft := &fakeT{TB: t}
	check(ft, 200*time.Millisecond)
	cmd := exec.Command("sleep", "30")
	require.NoError(t, cmd.Start())
	ft.finish()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	assert.True(t, ft.failed, "a child process left running was not reported")
}

func TestCleanPasses(t *testing.T) {
	ft := &fakeT{TB: t}
	check(ft, 200*time.Millisecond)
	require.NoError(t, exec.Command("true").Run())
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
	ft.finish()
	assert.False(t, ft.failed, "a clean test was reported as leaking")
}
