package modprobe

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"unicode/utf8"
)

// DefaultTreeWidth is the width list-dependencies cuts lines at.
const DefaultTreeWidth = 132

// maxTreeNodes bounds --full trees, which grow exponentially with shared
// requirements.
const maxTreeNodes = 100000

// ListDependencies writes the requires tree of name to w, using the
// configured provider of each service (the disabled flag only; no rank or
// broker conditions). Without full each dependency appears once, at its
// shallowest position (breadth-first); with full every occurrence is
// drawn, except that a requires cycle stops at the repeated name, marked
// "(cycle)", and a tree of more than 100000 nodes is refused before
// anything is written. Lines longer than width (0: DefaultTreeWidth) end
// in "+".
//
// The tree is streamed: working memory grows with its depth (and, without
// full, with the number of names), and time with the bytes written, however
// deep the tree. A write error stops the walk and is returned.
func (m *Modprobe) ListDependencies(ctx context.Context, w io.Writer, name string, full bool, width int, sel Selection) error {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return err
	}
	if err := s.applySelection(sel); err != nil {
		return err
	}
	return writeDependencyTree(w, s.db, name, full, width)
}

func writeDependencyTree(w io.Writer, d *db, name string, full bool, width int) error {
	if width <= 0 {
		width = DefaultTreeWidth
	}
	walk := walkShallowest
	if full {
		walk = walkEvery
		nodes := 0
		err := walk(d, name, func(string, int, bool) error {
			if nodes++; nodes > maxTreeNodes {
				return fmt.Errorf("dependency tree of %s has more than %d nodes", name, maxTreeNodes)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	tw := &treeWriter{w: bufio.NewWriter(w), width: width}
	if err := walk(d, name, tw.line); err != nil {
		return err
	}
	return tw.w.Flush()
}

// A tree walk calls visit for every node in depth-first preorder with its
// label, its depth (0 for the root) and whether it is its parent's last
// child; an error from visit ends the walk.
type treeVisit func(label string, depth int, last bool) error

// nodeLabel is how a required name is drawn: "NAME" or "NAME (PROVIDER)".
func nodeLabel(name string, t *entry) string {
	if t.name != name {
		return name + " (" + t.name + ")"
	}
	return name
}

// walkShallowest visits the tree in which each dependency appears once, at
// its shallowest position: breadth-first discovery fixes the tree (each
// node's children are contiguous in discovery order), then it is visited
// depth-first.
func walkShallowest(d *db, name string, visit treeVisit) error {
	type node struct {
		label        string
		first, count int // children are nodes[first : first+count]
	}
	nodes := []node{{label: name}}
	visited := map[string]bool{}
	for i := 0; i < len(nodes); i++ {
		t, err := d.get(nodes[i].label)
		if err != nil {
			return err
		}
		nodes[i].label = nodeLabel(nodes[i].label, t)
		visited[t.name] = true
		first := len(nodes)
		for _, r := range t.requires {
			if !visited[r] {
				visited[r] = true
				nodes = append(nodes, node{label: r})
			}
		}
		nodes[i].first, nodes[i].count = first, len(nodes)-first
	}
	type frame struct{ node, next int }
	if err := visit(nodes[0].label, 0, true); err != nil {
		return err
	}
	stack := []frame{{node: 0}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		n := nodes[f.node]
		if f.next == n.count {
			stack = stack[:len(stack)-1]
			continue
		}
		c := n.first + f.next
		f.next++
		if err := visit(nodes[c].label, len(stack), f.next == n.count); err != nil {
			return err
		}
		stack = append(stack, frame{node: c})
	}
	return nil
}

// walkEvery visits every path of the requires graph from name, stopping a
// path at a provider already on it ("(cycle)").
func walkEvery(d *db, name string, visit treeVisit) error {
	root, err := d.get(name)
	if err != nil {
		return err
	}
	if err := visit(nodeLabel(name, root), 0, true); err != nil {
		return err
	}
	type frame struct {
		e    *entry
		next int
	}
	onPath := make([]bool, len(d.entries)) // by entry index
	onPath[root.index] = true
	stack := []frame{{e: root}}
	for len(stack) > 0 {
		f := &stack[len(stack)-1]
		if f.next == len(f.e.requires) {
			onPath[f.e.index] = false
			stack = stack[:len(stack)-1]
			continue
		}
		r := f.e.requires[f.next]
		f.next++
		t, err := d.get(r)
		if err != nil {
			return err
		}
		label := nodeLabel(r, t)
		cycle := onPath[t.index]
		if cycle {
			label += " (cycle)"
		}
		if err := visit(label, len(stack), f.next == len(f.e.requires)); err != nil {
			return err
		}
		if !cycle {
			onPath[t.index] = true
			stack = append(stack, frame{e: t})
		}
	}
	return nil
}

// treeWriter draws visited nodes as list-dependencies lines. Only the part
// of a line that fits the width is produced, so a line costs what is
// written, not its depth.
type treeWriter struct {
	w     *bufio.Writer
	width int
	last  []bool // for each ancestor below the root: was it a last child?
}

const (
	segWidth = 4 // runes in each of the segments below
	segMore  = "│   "
	segNone  = "    "
	segTee   = "├── "
	segEll   = "└── "
)

func (t *treeWriter) line(label string, depth int, last bool) error {
	if depth > 0 {
		t.last = t.last[:depth-1]
	}
	budget := t.width
	if depth*segWidth+utf8.RuneCountInString(label) > t.width {
		budget = t.width - 1 // room for the "+"
	}
	put := func(s string) {
		if budget <= 0 {
			return
		}
		if n := utf8.RuneCountInString(s); n <= budget {
			t.w.WriteString(s)
			budget -= n
			return
		}
		for _, r := range s {
			if budget == 0 {
				break
			}
			t.w.WriteRune(r)
			budget--
		}
		budget = 0
	}
	if depth > 0 {
		for _, l := range t.last {
			if budget <= 0 {
				break
			}
			if l {
				put(segNone)
			} else {
				put(segMore)
			}
		}
		if last {
			put(segEll)
		} else {
			put(segTee)
		}
		t.last = append(t.last, last)
	}
	put(label)
	if depth*segWidth+utf8.RuneCountInString(label) > t.width {
		t.w.WriteByte('+')
	}
	_, err := t.w.WriteString("\n")
	return err
}
