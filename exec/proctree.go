// Process trees and identities, from /proc: the exec package runs where
// Flux runs, on Linux.

package exec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxDescendants bounds a walk of the process tree.
const maxDescendants = 1 << 16

// descendants returns the pids of the processes below pid, children before
// grandchildren, from /proc/<pid>/task/*/children. A process that forks
// during the walk may be missed: task kills repeat.
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 && len(out) < maxDescendants {
		p := queue[0]
		queue = queue[1:]
		files, _ := filepath.Glob("/proc/" + strconv.Itoa(p) + "/task/*/children")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // the thread or the process is gone
			}
			for _, field := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(field); err == nil && c > 0 {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// procStart returns the start time of process pid (field 22 of
// /proc/<pid>/stat, in clock ticks since boot), which tells a process from
// a later one that reuses its pid.
func procStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain
	// anything; the fields after the last ')' are plain.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// procAlive reports whether process pid exists and is the one that
// started at start (0: any).
func procAlive(pid int, start uint64) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if start == 0 {
		return true
	}
	now, err := procStart(pid)
	return err == nil && now == start
}
