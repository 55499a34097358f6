package modprobe

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chainDB is a requires chain m0 -> m1 -> ... -> m(n-1).
func chainDB(n int) *db {
	d := newDB()
	for i := range n {
		e := &entry{name: fmt.Sprintf("m%d", i), kind: kindModule, priority: DefaultPriority}
		e.module = e.name
		if i+1 < n {
			e.requires = []string{fmt.Sprintf("m%d", i+1)}
		}
		d.add(e)
	}
	return d
}

// referenceTree draws the tree the obvious way: build it, then render each
// line in full and cut it. It is what list-dependencies must print.
func referenceTree(d *db, name string, full bool, width int) (string, error) {
	if width <= 0 {
		width = DefaultTreeWidth
	}
	type node struct {
		label    string
		children []*node
	}
	nodes := 0
	var build func(label string, ancestors []*entry) (*node, error)
	visited := map[string]bool{}
	build = func(label string, ancestors []*entry) (*node, error) {
		t, err := d.get(label)
		if err != nil {
			return nil, err
		}
		n := &node{label: label}
		if t.name != label {
			n.label = label + " (" + t.name + ")"
		}
		for _, a := range ancestors {
			if a == t {
				n.label += " (cycle)"
				return n, nil
			}
		}
		if nodes++; nodes > maxTreeNodes {
			return nil, fmt.Errorf("dependency tree of %s has more than %d nodes", name, maxTreeNodes)
		}
		for _, r := range t.requires {
			c, err := build(r, append(ancestors[:len(ancestors):len(ancestors)], t))
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
		}
		return n, nil
	}
	var root *node
	if full {
		var err error
		if root, err = build(name, nil); err != nil {
			return "", err
		}
	} else {
		// Breadth-first: each name once, at its shallowest position.
		root = &node{label: name}
		queue := []*node{root}
		for len(queue) > 0 {
			n := queue[0]
			queue = queue[1:]
			t, err := d.get(n.label)
			if err != nil {
				return "", err
			}
			if t.name != n.label {
				n.label += " (" + t.name + ")"
			}
			visited[t.name] = true
			for _, r := range t.requires {
				if !visited[r] {
					visited[r] = true
					c := &node{label: r}
					n.children = append(n.children, c)
					queue = append(queue, c)
				}
			}
		}
	}
	var b strings.Builder
	emit := func(line string) {
		if utf8.RuneCountInString(line) > width {
			line = string([]rune(line)[:width-1]) + "+"
		}
		b.WriteString(line + "\n")
	}
	emit(root.label)
	var walk func(n *node, prefix string)
	walk = func(n *node, prefix string) {
		for i, c := range n.children {
			branch, cont := "├── ", "│   "
			if i == len(n.children)-1 {
				branch, cont = "└── ", "    "
			}
			emit(prefix + branch + c.label)
			walk(c, prefix+cont)
		}
	}
	walk(root, "")
	return b.String(), nil
}

// randomGraph is a configuration whose requires form cycles, repeat names
// and go through services with several providers, some with non-ASCII
// names.
func randomGraph(r *rand.Rand, n int) *db {
	d := newDB()
	name := func(i int) string {
		if i%5 == 0 {
			return fmt.Sprintf("mödule-%d", i)
		}
		return fmt.Sprintf("m%d", i)
	}
	for i := range n {
		e := &entry{name: name(i), kind: kindModule, priority: DefaultPriority}
		e.module = e.name
		for range r.IntN(4) {
			e.requires = append(e.requires, name(r.IntN(n)))
		}
		if r.IntN(3) == 0 {
			e.requires = append(e.requires, fmt.Sprintf("svc%d", r.IntN(3)))
		}
		if i < 6 {
			e.provides = []string{fmt.Sprintf("svc%d", i%3)}
			e.priority = r.IntN(200)
		}
		d.add(e)
	}
	return d
}

func TestDependencyTreeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	for round := range 300 {
		d := randomGraph(r, 3+r.IntN(12))
		start := d.entries[r.IntN(len(d.entries))].name
		full := round%2 == 1
		width := []int{0, 1, 7, 12, 30}[r.IntN(5)]
		want, wantErr := referenceTree(d, start, full, width)
		got, err := dependencyTree(d, start, full, width)
		if wantErr != nil {
			require.EqualError(t, err, wantErr.Error())
			continue
		}
		require.NoError(t, err)
		require.Equal(t, want, got, "round %d: %s full=%v width=%d", round, start, full, width)
	}
}

// heapGrowth returns the bytes fn allocates.
func heapGrowth(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A deep chain's tree is streamed: what it allocates grows with the depth,
// not with the (quadratic) width of its indentation.
func TestDeepChainAllocatesInProportionToDepth(t *testing.T) {
	const depth = 5000
	d := chainDB(depth)
	for _, full := range []bool{false, true} {
		var lines int
		allocated := heapGrowth(func() {
			var w countingWriter
			require.NoError(t, writeDependencyTree(&w, d, "m0", full, 0))
			lines = w.lines
		})
		assert.Equal(t, depth, lines)
		assert.Less(t, allocated, uint64(depth*1024), "full=%v: bytes allocated for a %d-deep chain", full, depth)
	}
	var b strings.Builder
	require.NoError(t, writeDependencyTree(&b, d, "m0", true, 40))
	out := strings.Split(b.String(), "\n")
	assert.Equal(t, "└── m1", out[1])
	assert.Equal(t, "    └── m2", out[2])
	assert.Equal(t, strings.Repeat(" ", 39)+"+", out[depth-1], "the last line is cut at the width")
}

type countingWriter struct{ lines int }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after < len(p) {
		n := w.after
		w.after = 0
		return n, io.ErrShortWrite
	}
	w.after -= len(p)
	return len(p), nil
}

func TestDependencyTreeWriteError(t *testing.T) {
	d := chainDB(5000)
	err := writeDependencyTree(&failingWriter{after: 10000}, d, "m0", false, 0)
	assert.ErrorIs(t, err, io.ErrShortWrite)
}

// BenchmarkDeepChain writes the requires tree of a deep chain to
// io.Discard. Compare B/op (and the process's peak RSS) across depths:
// memory grows with the depth, time with the bytes written.
func BenchmarkDeepChain(b *testing.B) {
	for _, depth := range []int{5000, 20000, 50000} {
		for _, full := range []bool{false, true} {
			name := fmt.Sprintf("%d", depth)
			if full {
				name += "-full"
			}
			b.Run(name, func(b *testing.B) {
				d := chainDB(depth)
				b.ReportAllocs()
				b.ResetTimer()
				var err error
				for b.Loop() {
					err = writeDependencyTree(io.Discard, d, "m0", full, 0)
				}
				require.NoError(b, err)
			})
		}
	}
}
