//go:build !linux

package exec

import (
	"errors"
	"syscall"
)

// descendants would walk the process tree; without /proc, task kills reach
// no process, and the shell kills that follow end the job.
func descendants(int) []int { return nil }

// procStart is unknown without /proc: a pid is taken to be the same
// process as long as it exists.
func procStart(int) (uint64, error) { return 0, nil }

func procAlive(pid int, _ uint64) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
