package job

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Jobspec is an RFC 14 jobspec in the version 1 form RFC 25 defines.
type Jobspec struct {
	// Version is the jobspec version; flux-core reads any integer here
	// (RFC 25 requires 1, which job-ingest's validator enforces).
	Version    int
	Resources  []Resource
	Tasks      []Task
	Attributes Attributes
}

// Resource is one vertex of the resource graph.
type Resource struct {
	Type      string
	Count     int
	Exclusive bool
	Label     string
	With      []Resource
}

// Task is one element of the tasks array.
type Task struct {
	Command []string
	Slot    string
	Count   TaskCount
}

// TaskCount is a task's count; zero means not given.
type TaskCount struct {
	PerSlot int
	Total   int
}

// Attributes are the jobspec's attributes: the system ones RFC 25 and
// flux-core define, and the user's, raw.
type Attributes struct {
	System System
	User   json.RawMessage
}

// System is attributes.system. An empty string is an absent key.
type System struct {
	// Duration is the time limit in seconds, 0 for none. Required.
	Duration float64
	Cwd      string
	Queue    string
	Project  string
	Bank     string
	// Environment is the job's environment (the job manager's journal
	// leaves it out).
	Environment map[string]string
	// JobName is attributes.system.job.name.
	JobName string
	// PerResource is attributes.system.shell.options.per-resource: tasks
	// per node or per core, nil when not given.
	PerResource *PerResource
	// Other holds the other attributes.system keys, raw: "shell" and "job"
	// whole, "dependencies", "constraints", "exec" and the rest.
	Other map[string]json.RawMessage
}

// PerResource is the per-resource shell option.
type PerResource struct {
	Type  string
	Count int // at least 1; 1 when not given
}

// ParseJobspec decodes a jobspec. Its errors name the member at fault.
func ParseJobspec(b []byte) (*Jobspec, error) {
	var d Decoder
	js := new(Jobspec)
	if err := d.Jobspec(cloneBytes(b), js); err != nil {
		return nil, err
	}
	return js, nil
}

func cloneBytes(b []byte) []byte { return append([]byte(nil), b...) }

// Counts are a jobspec's resource counts as flux-core's libjob
// (jj_get_counts) derives them.
type Counts struct {
	// Nodes is the node count, multiplied by the counts of the vertices
	// enclosing the node vertex; 0 when the jobspec names no nodes.
	Nodes int
	// Slots is the number of task slots, multiplied by Nodes when there
	// are nodes.
	Slots int
	// SlotSize is the cores per slot, SlotGPUs the GPUs per slot.
	SlotSize, SlotGPUs int
	// Exclusive is set when a node vertex asks for whole nodes.
	Exclusive bool
}

// Counts walks the resources as libjob does: the last node, slot, core and
// gpu vertex on the way counts, other types are ignored, and a jobspec
// without a slot count or slot size is refused.
func (js *Jobspec) Counts() (Counts, error) {
	var c Counts
	if err := c.walk(js.Resources, 0, 1); err != nil {
		return Counts{}, err
	}
	if c.Slots <= 0 {
		return Counts{}, errors.New("jobspec: unable to determine slot count")
	}
	if c.SlotSize <= 0 {
		return Counts{}, errors.New("jobspec: unable to determine slot size")
	}
	if c.Nodes > 0 {
		c.Slots *= c.Nodes
	}
	return c, nil
}

func (c *Counts) walk(rs []Resource, level, factor int) error {
	for _, r := range rs {
		if r.Count <= 0 {
			return fmt.Errorf("jobspec: invalid count %d for type '%s'", r.Count, r.Type)
		}
		f := factor * r.Count
		switch r.Type {
		case "node":
			c.Nodes = f
			if r.Exclusive {
				c.Exclusive = true
			}
		case "slot":
			c.Slots = r.Count
		case "core":
			c.SlotSize = r.Count
		case "gpu":
			c.SlotGPUs = r.Count
		}
		if r.With != nil {
			if err := c.walk(r.With, level+1, f); err != nil {
				return err
			}
		}
	}
	return nil
}
