package modprobe

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Selection adjusts the configuration before show and list-dependencies:
// -S NAME=MODULE alternatives, then -D disable lists (comma-separated)
// together with FLUX_MODPROBE_DISABLE.
type Selection struct {
	SetAlternative []string
	Disable        []string
}

func (s *Session) applySelection(sel Selection) error {
	for _, entry := range sel.SetAlternative {
		svc, mod, ok := strings.Cut(entry, "=")
		if !ok {
			return fmt.Errorf("--set-alternative: invalid value %s", pyQuote(entry))
		}
		if err := s.db.setAlternative(svc, mod); err != nil {
			return err
		}
	}
	return s.applyDisable(sel.Disable)
}

// Show resolves name on this rank (ranks, needs-*, needs and
// alternatives considered) and returns flux-core's one-line JSON for it:
// keys name, module, args, ranks, provides, requires, needs, before,
// after, priority, disabled, exec, with Python's separators. The
// needs-attrs, needs-config and needs-env keys are not shown, as in
// flux-core. Only modules are known here; rc files are not read.
func (m *Modprobe) Show(ctx context.Context, name string, sel Selection) (string, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return "", err
	}
	if err := s.applySelection(sel); err != nil {
		return "", err
	}
	if err := s.gather(ctx); err != nil {
		return "", err
	}
	e, err := newPlanner(s.db, s.facts).resolve(name, false)
	if err != nil {
		return "", err
	}
	return showJSON(e), nil
}

func showJSON(e *entry) string {
	var b strings.Builder
	b.WriteString("{")
	field := func(k, v string) {
		if b.Len() > 1 {
			b.WriteString(", ")
		}
		b.WriteString(pyJSONString(k) + ": " + v)
	}
	list := func(l []string) string {
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = pyJSONString(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	field("name", pyJSONString(e.name))
	field("module", pyJSONString(e.module))
	field("args", list(e.args))
	field("ranks", pyJSONString(e.ranks.String()))
	field("provides", list(e.provides))
	field("requires", list(e.requires))
	field("needs", list(e.needs))
	field("before", list(e.before))
	field("after", list(e.after))
	field("priority", fmt.Sprint(e.priority))
	field("disabled", fmt.Sprint(e.disabled))
	field("exec", fmt.Sprint(e.exec))
	b.WriteString("}")
	return b.String()
}

// pyJSONString encodes s as Python's json.dumps does by default: ASCII
// only, non-ASCII as \uXXXX escapes.
func pyJSONString(s string) string {
	raw, _ := json.Marshal(s)
	if isASCII(raw) {
		// json.Marshal escapes <, >, & as \u003c etc.; Python does not.
		r := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&")
		return r.Replace(string(raw))
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, r)
		case r < 0x7f:
			b.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// DefaultTreeWidth is the width list-dependencies cuts lines at.
const DefaultTreeWidth = 132

// maxTreeNodes bounds --full trees, which grow exponentially with shared
// requirements.
const maxTreeNodes = 100000

type depNode struct {
	label    string
	children []*depNode
}

// ListDependencies draws the requires tree of name breadth-first, using
// the configured provider of each service (the disabled flag only; no
// rank or broker conditions). Without full each dependency appears once,
// at its shallowest position; with full every occurrence is drawn, except
// that a requires cycle stops at the repeated name, marked "(cycle)".
// Lines longer than width (0: DefaultTreeWidth) end in "+".
func (m *Modprobe) ListDependencies(ctx context.Context, name string, full bool, width int, sel Selection) (string, error) {
	s := m.newSession()
	if err := s.configure(ctx); err != nil {
		return "", err
	}
	if err := s.applySelection(sel); err != nil {
		return "", err
	}
	return dependencyTree(s.db, name, full, width)
}

func dependencyTree(d *db, name string, full bool, width int) (string, error) {
	if width <= 0 {
		width = DefaultTreeWidth
	}
	type item struct {
		n         *depNode
		ancestors map[string]bool
	}
	root := &depNode{label: name}
	queue := []item{{n: root, ancestors: map[string]bool{}}}
	visited := map[string]bool{}
	nodes := 1
	for len(queue) > 0 {
		it := queue[0]
		queue = queue[1:]
		label := it.n.label
		t, err := d.get(label)
		if err != nil {
			return "", err
		}
		if t.name != label {
			it.n.label = fmt.Sprintf("%s (%s)", label, t.name)
		}
		if full && it.ancestors[t.name] {
			it.n.label += " (cycle)"
			continue
		}
		visited[t.name] = true
		anc := it.ancestors
		if full {
			anc = make(map[string]bool, len(it.ancestors)+1)
			for k := range it.ancestors {
				anc[k] = true
			}
			anc[t.name] = true
		}
		for _, r := range t.requires {
			if !full && visited[r] {
				continue
			}
			visited[r] = true
			if nodes++; nodes > maxTreeNodes {
				return "", fmt.Errorf("dependency tree of %s has more than %d nodes", name, maxTreeNodes)
			}
			c := &depNode{label: r}
			it.n.children = append(it.n.children, c)
			queue = append(queue, item{n: c, ancestors: anc})
		}
	}
	var b strings.Builder
	emit := func(line string) {
		if utf8.RuneCountInString(line) > width {
			r := []rune(line)
			line = string(r[:width-1]) + "+"
		}
		b.WriteString(line + "\n")
	}
	emit(root.label)
	var walk func(n *depNode, prefix string)
	walk = func(n *depNode, prefix string) {
		for i, c := range n.children {
			last := i == len(n.children)-1
			branch, cont := "├── ", "│   "
			if last {
				branch, cont = "└── ", "    "
			}
			emit(prefix + branch + c.label)
			walk(c, prefix+cont)
		}
	}
	walk(root, "")
	return b.String(), nil
}
