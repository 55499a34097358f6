package modprobe

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Plan is a set of tasks and, for each, the tasks that must finish before
// it starts.
type Plan struct {
	entries []*entry
	preds   [][]int32
}

// Len is the number of tasks.
func (p *Plan) Len() int { return len(p.entries) }

// Names returns the task names in plan order.
func (p *Plan) Names() []string {
	out := make([]string, len(p.entries))
	for i, e := range p.entries {
		out[i] = e.name
	}
	return out
}

// Predecessors returns the predecessor map, each list sorted.
func (p *Plan) Predecessors() map[string][]string {
	m := make(map[string][]string, len(p.entries))
	for i, e := range p.entries {
		l := make([]string, 0, len(p.preds[i]))
		for _, j := range p.preds[i] {
			l = append(l, p.entries[j].name)
		}
		slices.Sort(l)
		m[e.name] = slices.Compact(l)
	}
	return m
}

// DepsJSON is --show-deps: one JSON object, keys sorted, lists sorted and
// free of duplicates.
func (p *Plan) DepsJSON() string {
	b, _ := json.Marshal(p.Predecessors()) // maps marshal with sorted keys
	return string(b)
}

// Dot renders the plan as a Graphviz digraph, edges from predecessor to
// successor.
func (p *Plan) Dot() string {
	var b strings.Builder
	b.WriteString("digraph modprobe {\n  rankdir=LR;\n")
	names := p.Names()
	order := make([]int, len(names))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, c int) int { return strings.Compare(names[a], names[c]) })
	for _, i := range order {
		e := p.entries[i]
		shape := "box"
		if !e.isModule() {
			shape = "ellipse"
		}
		fmt.Fprintf(&b, "  %q [shape=%s];\n", e.name, shape)
	}
	for _, i := range order {
		preds := make([]string, 0, len(p.preds[i]))
		for _, j := range p.preds[i] {
			preds = append(preds, names[j])
		}
		slices.Sort(preds)
		for _, q := range slices.Compact(preds) {
			fmt.Fprintf(&b, "  %q -> %q;\n", q, names[i])
		}
	}
	b.WriteString("}\n")
	return b.String()
}

// Check reports a cycle, if any, as a *CycleError.
func (p *Plan) Check() error {
	n := len(p.entries)
	indeg := make([]int32, n)
	succ := p.successors()
	for i := range p.preds {
		indeg[i] = int32(len(p.preds[i]))
	}
	queue := make([]int32, 0, n)
	for i := range indeg {
		if indeg[i] == 0 {
			queue = append(queue, int32(i))
		}
	}
	done := 0
	for len(queue) > 0 {
		i := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		done++
		for _, s := range succ[i] {
			if indeg[s]--; indeg[s] == 0 {
				queue = append(queue, s)
			}
		}
	}
	if done == n {
		return nil
	}
	// Every node left has a predecessor that is also left. Walk
	// predecessors from the first left node until one repeats.
	start := int32(-1)
	for i := range indeg {
		if indeg[i] > 0 {
			start = int32(i)
			break
		}
	}
	pos := map[int32]int{}
	var path []int32
	cur := start
	for {
		if k, ok := pos[cur]; ok {
			path = path[k:]
			break
		}
		pos[cur] = len(path)
		path = append(path, cur)
		for _, q := range p.preds[cur] {
			if indeg[q] > 0 {
				cur = q
				break
			}
		}
	}
	// path follows predecessors; reverse it into execution order and
	// rotate so that it starts at its lowest plan position.
	slices.Reverse(path)
	lo := 0
	for i := range path {
		if path[i] < path[lo] {
			lo = i
		}
	}
	path = append(path[lo:], path[:lo]...)
	names := make([]string, 0, len(path)+1)
	for _, i := range path {
		names = append(names, p.entries[i].name)
	}
	names = append(names, names[0])
	return &CycleError{Nodes: names}
}

func (p *Plan) successors() [][]int32 {
	succ := make([][]int32, len(p.entries))
	for i, ps := range p.preds {
		for _, q := range ps {
			succ[q] = append(succ[q], int32(i))
		}
	}
	return succ
}
