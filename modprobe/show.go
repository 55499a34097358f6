package modprobe

import (
	"context"
	"fmt"
	"strings"
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
