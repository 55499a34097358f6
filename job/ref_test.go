package job_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/job"
)

// The reference decoders read the same documents into the same types with
// encoding/json, object by object (maps, so that keys match exactly and
// the last of a repeated key counts, as in jansson): the paired benchmarks
// measure the scanner against them, and the fuzz tests check that both
// accept the same documents and read the same values.

type obj map[string]json.RawMessage

func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(b[d.InputOffset():])) != 0 {
		return errors.New("trailing data")
	}
	return nil
}

func isNull(b json.RawMessage) bool { return string(bytes.TrimSpace(b)) == "null" }

func refObj(b json.RawMessage) (obj, error) {
	if isNull(b) {
		return nil, errors.New("null")
	}
	var o obj
	return o, decodeStrict(b, &o)
}

func refArr(b json.RawMessage) ([]json.RawMessage, error) {
	if isNull(b) {
		return nil, errors.New("null")
	}
	var a []json.RawMessage
	if err := decodeStrict(b, &a); err != nil {
		return nil, err
	}
	if a == nil {
		a = []json.RawMessage{}
	}
	return a, nil
}

func refStr(b json.RawMessage) (string, error) {
	if isNull(b) {
		return "", errors.New("null")
	}
	var s string
	return s, json.Unmarshal(b, &s)
}

func refNum(b json.RawMessage) (float64, error) {
	if isNull(b) {
		return 0, errors.New("null")
	}
	var f float64
	return f, json.Unmarshal(b, &f)
}

func refBool(b json.RawMessage) (bool, error) {
	if isNull(b) {
		return false, errors.New("null")
	}
	var v bool
	return v, json.Unmarshal(b, &v)
}

func refInt(b json.RawMessage) (int, error) {
	var n json.Number
	if isNull(b) || decodeStrict(b, &n) != nil || strings.ContainsAny(n.String(), ".eE") {
		return 0, errors.New("not an integer")
	}
	v, err := n.Int64()
	if err != nil || v < -1<<31 || v > 1<<31-1 {
		return 0, errors.New("out of range")
	}
	return int(v), nil
}

func refResources(b json.RawMessage) ([]job.Resource, error) {
	a, err := refArr(b)
	if err != nil {
		return nil, err
	}
	out := []job.Resource{}
	for _, e := range a {
		o, err := refObj(e)
		if err != nil {
			return nil, err
		}
		var r job.Resource
		if o["type"] == nil || o["count"] == nil {
			return nil, errors.New("missing")
		}
		if r.Type, err = refStr(o["type"]); err != nil {
			return nil, err
		}
		if r.Count, err = refInt(o["count"]); err != nil {
			return nil, err
		}
		if v := o["exclusive"]; v != nil {
			if r.Exclusive, err = refBool(v); err != nil {
				return nil, err
			}
		}
		if v := o["label"]; v != nil {
			if r.Label, err = refStr(v); err != nil {
				return nil, err
			}
		}
		if v := o["with"]; v != nil {
			if r.With, err = refResources(v); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func refTasks(b json.RawMessage) ([]job.Task, error) {
	a, err := refArr(b)
	if err != nil {
		return nil, err
	}
	out := []job.Task{}
	for _, e := range a {
		o, err := refObj(e)
		if err != nil {
			return nil, err
		}
		var t job.Task
		if v := o["command"]; v != nil {
			args, err := refArr(v)
			if err != nil {
				return nil, err
			}
			t.Command = []string{}
			for _, a := range args {
				s, err := refStr(a)
				if err != nil {
					return nil, err
				}
				t.Command = append(t.Command, s)
			}
		}
		if v := o["slot"]; v != nil {
			if t.Slot, err = refStr(v); err != nil {
				return nil, err
			}
		}
		if v := o["count"]; v != nil {
			c, err := refObj(v)
			if err != nil {
				return nil, err
			}
			if v := c["per_slot"]; v != nil {
				if t.Count.PerSlot, err = refInt(v); err != nil {
					return nil, err
				}
			}
			if v := c["total"]; v != nil {
				if t.Count.Total, err = refInt(v); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, t)
	}
	return out, nil
}

func refJobspec(b []byte) (*job.Jobspec, error) {
	top, err := refObj(b)
	if err != nil {
		return nil, err
	}
	js := &job.Jobspec{}
	if top["version"] == nil || top["resources"] == nil {
		return nil, errors.New("missing")
	}
	if js.Version, err = refInt(top["version"]); err != nil {
		return nil, err
	}
	if js.Resources, err = refResources(top["resources"]); err != nil {
		return nil, err
	}
	if v := top["tasks"]; v != nil {
		if js.Tasks, err = refTasks(v); err != nil {
			return nil, err
		}
	}
	if top["attributes"] == nil {
		return nil, errors.New("duration missing")
	}
	attrs, err := refObj(top["attributes"])
	if err != nil {
		return nil, err
	}
	if v := attrs["user"]; v != nil {
		if _, err := refObj(v); err != nil {
			return nil, err
		}
		js.Attributes.User = v
	}
	if attrs["system"] == nil {
		return nil, errors.New("duration missing")
	}
	sysObj, err := refObj(attrs["system"])
	if err != nil {
		return nil, err
	}
	sys := &js.Attributes.System
	if sysObj["duration"] == nil {
		return nil, errors.New("duration missing")
	}
	for k, v := range sysObj {
		var err error
		switch k {
		case "duration":
			sys.Duration, err = refNum(v)
		case "cwd":
			sys.Cwd, err = refStr(v)
		case "queue":
			sys.Queue, err = refStr(v)
		case "project":
			sys.Project, err = refStr(v)
		case "bank":
			sys.Bank, err = refStr(v)
		case "environment":
			var env obj
			if env, err = refObj(v); err == nil {
				sys.Environment = map[string]string{}
				for ek, ev := range env {
					if sys.Environment[ek], err = refStr(ev); err != nil {
						break
					}
				}
			}
		default:
			if sys.Other == nil {
				sys.Other = map[string]json.RawMessage{}
			}
			sys.Other[k] = v
		}
		if err != nil {
			return nil, err
		}
		switch k {
		case "job":
			o, err := refObj(v)
			if err != nil {
				return nil, err
			}
			if n := o["name"]; n != nil {
				if sys.JobName, err = refStr(n); err != nil {
					return nil, err
				}
			}
		case "shell":
			o, err := refObj(v)
			if err != nil {
				return nil, err
			}
			if o["options"] == nil {
				continue
			}
			opts, err := refObj(o["options"])
			if err != nil {
				return nil, err
			}
			if opts["per-resource"] == nil {
				continue
			}
			pr, err := refObj(opts["per-resource"])
			if err != nil {
				return nil, err
			}
			if pr["type"] == nil {
				return nil, errors.New("per-resource type missing")
			}
			sys.PerResource = &job.PerResource{Count: 1}
			if sys.PerResource.Type, err = refStr(pr["type"]); err != nil {
				return nil, err
			}
			if c := pr["count"]; c != nil {
				if sys.PerResource.Count, err = refInt(c); err != nil {
					return nil, err
				}
				if sys.PerResource.Count < 1 {
					return nil, errors.New("per-resource count < 1")
				}
			}
		}
	}
	return js, nil
}

func refR(b []byte) (*job.R, error) {
	top, err := refObj(b)
	if err != nil {
		return nil, err
	}
	r := &job.R{}
	if top["version"] == nil {
		return nil, errors.New("version missing")
	}
	if r.Version, err = refInt(top["version"]); err != nil || r.Version != 1 {
		return nil, fmt.Errorf("version: %v", err)
	}
	r.Scheduling = top["scheduling"]
	if top["execution"] == nil {
		return nil, errors.New("execution missing")
	}
	ex, err := refObj(top["execution"])
	if err != nil {
		return nil, err
	}
	for k, p := range map[string]*float64{"starttime": &r.Execution.Starttime, "expiration": &r.Execution.Expiration} {
		if v := ex[k]; v != nil {
			if *p, err = refNum(v); err != nil {
				return nil, err
			}
		}
	}
	if v := ex["nslots"]; v != nil {
		if r.Execution.NSlots, err = refInt(v); err != nil {
			return nil, err
		}
	}
	if ex["R_lite"] == nil {
		return nil, errors.New("R_lite missing")
	}
	rl, err := refArr(ex["R_lite"])
	if err != nil {
		return nil, err
	}
	r.Execution.RLite = []job.RLite{}
	for _, e := range rl {
		o, err := refObj(e)
		if err != nil {
			return nil, err
		}
		if o["rank"] == nil || o["children"] == nil {
			return nil, errors.New("rank or children missing")
		}
		s, err := refStr(o["rank"])
		if err != nil {
			return nil, err
		}
		var ent job.RLite
		if ent.Rank, err = idset.Parse(s); err != nil {
			return nil, err
		}
		ch, err := refObj(o["children"])
		if err != nil {
			return nil, err
		}
		for k, v := range ch {
			s, err := refStr(v)
			if err != nil {
				return nil, err
			}
			set, err := idset.Parse(s)
			if err != nil {
				return nil, err
			}
			if ent.Children == nil {
				ent.Children = map[string]idset.Set{}
			}
			ent.Children[k] = set
		}
		r.Execution.RLite = append(r.Execution.RLite, ent)
	}
	if v := ex["nodelist"]; v != nil {
		a, err := refArr(v)
		if err != nil {
			return nil, err
		}
		r.Execution.Nodelist = []string{}
		for _, e := range a {
			s, err := refStr(e)
			if err != nil {
				return nil, err
			}
			r.Execution.Nodelist = append(r.Execution.Nodelist, s)
		}
		h, err := r.Hosts()
		if err != nil {
			return nil, err
		}
		if h.Len() != r.Ranks().Len() {
			return nil, errors.New("nodelist length")
		}
	}
	if v := ex["properties"]; v != nil {
		props, err := refObj(v)
		if err != nil {
			return nil, err
		}
		r.Execution.Properties = map[string]idset.Set{}
		for k, v := range props {
			s, err := refStr(v)
			if err != nil {
				return nil, err
			}
			set, err := idset.Parse(s)
			if err != nil {
				return nil, err
			}
			if !set.Difference(r.Ranks()).IsEmpty() || strings.ContainsAny(k, "^&'\"`|()") {
				return nil, errors.New("bad property")
			}
			r.Execution.Properties[k] = set
		}
	}
	return r, nil
}
