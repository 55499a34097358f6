package modprobe

import "context"

// RC is a unit of start-up or shut-down work written in Go: the
// equivalent of one flux-core rc file. Its tasks are registered in order,
// then Setup runs (it may load modules, set options and alternatives, or
// enable tasks through the Context).
type RC struct {
	// Name identifies the unit in messages (a file name for rc files).
	Name  string
	Tasks []Task
	Setup func(ctx context.Context, c *Context) error
}

// rcUnit is an RC or a parsed declarative rc file.
type rcUnit struct {
	name  string
	tasks []*entry
	setup func(ctx context.Context, c *Context) error
}

func (r RC) unit() (*rcUnit, error) {
	u := &rcUnit{name: r.Name, setup: r.Setup}
	for _, t := range r.Tasks {
		e, err := newTaskEntry(t)
		if err != nil {
			return nil, err
		}
		if r.Name != "" {
			e.origin = r.Name
		}
		u.tasks = append(u.tasks, e)
	}
	return u, nil
}
