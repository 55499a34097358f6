package exec

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
