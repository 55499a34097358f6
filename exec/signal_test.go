package exec

import (
	"os"
	"os/signal"
	"syscall"
)

// The first signal.Notify in a process starts os/signal's delivery
// goroutine, which then lives as long as the process. Start it before any
// test counts goroutines, so that the first agent's reaper is not taken
// for a leak.
func init() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGCHLD)
	signal.Stop(c)
}
