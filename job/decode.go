package job

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Decoder decodes many events, jobspecs and Rs. It keeps one copy of the
// strings and idsets they repeat (bounded: past a few thousand distinct
// values it decodes without remembering), so that a million jobs from a
// handful of queues, directories and node sets cost one string each. Raw
// values it returns (contexts, unmodelled members) alias the input.
//
// A Decoder is not safe for concurrent use. The zero Decoder is ready.
type Decoder struct {
	// Trusted tells that every input is known to be one well-formed JSON
	// value, checked by a walk over a larger message: the Decoder then
	// reads without checking again. On malformed input it still returns
	// an error or some value, and never panics.
	Trusted bool

	strs  map[string]string
	sets  map[string]setMemo
	hosts map[string]hostsMemo
	path  []pathStep
}

type hostsMemo struct {
	h   hostlist.Hostlist
	err error
}

// Hosts is [R.Hosts], remembering the hostlists it parses.
func (d *Decoder) Hosts(r *R) (hostlist.Hostlist, error) {
	return hostsOf(r, d.hostlist)
}

func (d *Decoder) hostlist(s string) (hostlist.Hostlist, error) {
	if m, ok := d.hosts[s]; ok {
		return m.h, m.err
	}
	h, err := hostlist.Parse(s)
	if len(d.hosts) < maxInterned {
		if d.hosts == nil {
			d.hosts = map[string]hostsMemo{}
		}
		d.hosts[s] = hostsMemo{h, err}
	}
	return h, err
}

type setMemo struct {
	set idset.Set
	err error
}

// maxInterned bounds each of the Decoder's tables.
const maxInterned = 4096

func (d *Decoder) check(b []byte) ([]byte, error) {
	b = jsonscan.Trim(b)
	if d.Trusted {
		return b, nil
	}
	return b, jsonscan.Check(b)
}

// Event is [ParseEvent] on the Decoder: the context aliases b.
func (d *Decoder) Event(b []byte) (Event, error) {
	b, err := d.check(b)
	if err != nil {
		return Event{}, eventErr("%v", err)
	}
	return parseCheckedEvent(b)
}

// str decodes the raw JSON string v, remembering it.
func (d *Decoder) str(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return jsonscan.Unquote(v)
	}
	if s, ok := d.strs[string(v[1:len(v)-1])]; ok {
		return s, nil
	}
	s, err := jsonscan.Unquote(v)
	if err == nil && len(d.strs) < maxInterned {
		if d.strs == nil {
			d.strs = map[string]string{}
		}
		d.strs[s] = s
	}
	return s, err
}

// set decodes the RFC 22 idset in the raw JSON string v, remembering it.
func (d *Decoder) set(v []byte) (idset.Set, error) {
	plain := len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0
	if plain {
		if m, ok := d.sets[string(v[1:len(v)-1])]; ok {
			return m.set, m.err
		}
	}
	s, err := jsonscan.Unquote(v)
	if err != nil {
		return idset.Set{}, errors.New("not a string")
	}
	set, err := idset.Parse(s)
	if plain && len(d.sets) < maxInterned {
		if d.sets == nil {
			d.sets = map[string]setMemo{}
		}
		d.sets[s] = setMemo{set, err}
	}
	return set, err
}

// pathStep is a step of the path to the member being decoded: the
// Decoder keeps the path on a stack it reuses, and makes it a string only
// for an error.
type pathStep struct {
	key string // a member, when idx < 0
	idx int    // an array element
}

func (d *Decoder) push(key string, idx int) { d.path = append(d.path, pathStep{key, idx}) }
func (d *Decoder) pop()                     { d.path = d.path[:len(d.path)-1] }

// at is the current path with suffix (".member") appended.
func (d *Decoder) at(suffix string) string {
	var b strings.Builder
	for _, p := range d.path {
		if p.idx >= 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.idx))
			b.WriteByte(']')
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p.key)
	}
	if b.Len() == 0 {
		return strings.TrimPrefix(suffix, ".")
	}
	b.WriteString(suffix)
	return b.String()
}

// pathError is a decoding error naming the member at fault.
type pathError struct {
	doc, path string
	err       error
}

func (e *pathError) Error() string {
	if e.path == "" {
		return e.doc + ": " + e.err.Error()
	}
	return e.doc + ": " + e.path + ": " + e.err.Error()
}

func (e *pathError) Unwrap() error { return e.err }

var (
	errMissing  = errors.New("missing")
	errNotInt   = errors.New("not an integer")
	errNotNum   = errors.New("not a number")
	errNotStr   = errors.New("not a string")
	errNotBool  = errors.New("not a boolean")
	errNotObj   = errors.New("not an object")
	errNotArray = errors.New("not an array")
	errRange    = errors.New("out of range")
)

// field typing as jansson's unpack formats type them.

func asInt32(v []byte) (int, error) {
	n, err := jsonscan.Int(v)
	if err != nil {
		return 0, errNotInt
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return 0, errRange
	}
	return int(n), nil
}

func asNum(v []byte) (float64, error) {
	f, err := jsonscan.Float(v)
	if err != nil {
		return 0, errNotNum
	}
	return f, nil
}

func asBool(v []byte) (bool, error) {
	b, err := jsonscan.Bool(v)
	if err != nil {
		return false, errNotBool
	}
	return b, nil
}

func (d *Decoder) asStr(v []byte) (string, error) {
	if jsonscan.KindOf(v) != jsonscan.String {
		return "", errNotStr
	}
	return d.str(v)
}

func isObj(v []byte) bool   { return jsonscan.KindOf(v) == jsonscan.Object }
func isArray(v []byte) bool { return jsonscan.KindOf(v) == jsonscan.Array }

// Jobspec decodes b into *js, reusing its storage. See [ParseJobspec].
func (d *Decoder) Jobspec(b []byte, js *Jobspec) error {
	b, err := d.check(b)
	if err != nil {
		return &pathError{"jobspec", "", err}
	}
	if err := d.jobspec(b, js); err != nil {
		var pe *pathError
		if errors.As(err, &pe) {
			return err
		}
		return &pathError{"jobspec", "", err}
	}
	return nil
}

func jsErr(path string, err error) error { return &pathError{"jobspec", path, err} }

func (d *Decoder) jobspec(b []byte, js *Jobspec) error {
	if !isObj(b) {
		return errNotObj
	}
	var version, resources, tasks, attrs []byte
	if err := jsonscan.FastMembers(b, func(k string, v []byte) error {
		switch k {
		case "version":
			version = v
		case "resources":
			resources = v
		case "tasks":
			tasks = v
		case "attributes":
			attrs = v
		}
		return nil
	}); err != nil {
		return err
	}
	var err error
	if version == nil {
		return jsErr("version", errMissing)
	}
	if js.Version, err = asInt32(version); err != nil {
		return jsErr("version", err)
	}
	if resources == nil {
		return jsErr("resources", errMissing)
	}
	d.path = append(d.path[:0], pathStep{"resources", -1})
	if js.Resources, err = d.resources(resources, js.Resources, 0); err != nil {
		return err
	}
	js.Tasks = js.Tasks[:0]
	if tasks != nil {
		if js.Tasks, err = d.tasks(tasks, js.Tasks); err != nil {
			return err
		}
	}
	return d.attributes(attrs, &js.Attributes)
}

// resources decodes the array v (the path names it) into dst.
func (d *Decoder) resources(v []byte, dst []Resource, depth int) ([]Resource, error) {
	if !isArray(v) {
		return dst, jsErr(d.at(""), errNotArray)
	}
	if depth > jsonscan.MaxDepth {
		return dst, jsErr(d.at(""), jsonscan.ErrTooDeep)
	}
	dst = dst[:0]
	if dst == nil {
		dst = []Resource{}
	}
	i := 0
	err := jsonscan.FastElems(v, func(e []byte) error {
		d.push("", i)
		i++
		if !isObj(e) {
			return jsErr(d.at(""), errNotObj)
		}
		// The storage of a vertex decoded here before is reused.
		var r Resource
		if len(dst) < cap(dst) {
			r = dst[:len(dst)+1][len(dst)]
		}
		with := r.With
		r = Resource{}
		var typ, count, excl, label, withv []byte
		if err := jsonscan.FastMembers(e, func(k string, v []byte) error {
			switch k {
			case "type":
				typ = v
			case "count":
				count = v
			case "exclusive":
				excl = v
			case "label":
				label = v
			case "with":
				withv = v
			}
			return nil
		}); err != nil {
			return err
		}
		var err error
		if typ == nil {
			return jsErr(d.at(".type"), errMissing)
		}
		if r.Type, err = d.asStr(typ); err != nil {
			return jsErr(d.at(".type"), err)
		}
		if count == nil {
			return jsErr(d.at(".count"), errMissing)
		}
		if r.Count, err = asInt32(count); err != nil {
			return jsErr(d.at(".count"), err)
		}
		if excl != nil {
			if r.Exclusive, err = asBool(excl); err != nil {
				return jsErr(d.at(".exclusive"), err)
			}
		}
		if label != nil {
			if r.Label, err = d.asStr(label); err != nil {
				return jsErr(d.at(".label"), err)
			}
		}
		if withv != nil {
			d.push("with", -1)
			if r.With, err = d.resources(withv, with, depth+1); err != nil {
				return err
			}
			d.pop()
		}
		dst = append(dst, r)
		d.pop()
		return nil
	})
	return dst, err
}

func (d *Decoder) tasks(v []byte, dst []Task) ([]Task, error) {
	if !isArray(v) {
		return dst, jsErr("tasks", errNotArray)
	}
	if dst == nil {
		dst = []Task{}
	}
	i := 0
	err := jsonscan.FastElems(v, func(e []byte) error {
		d.path = append(d.path[:0], pathStep{"tasks", -1}, pathStep{"", i})
		i++
		if !isObj(e) {
			return jsErr(d.at(""), errNotObj)
		}
		var t Task
		if len(dst) < cap(dst) {
			t = dst[:len(dst)+1][len(dst)]
		}
		cmd := t.Command[:0]
		t = Task{}
		var cmdv, slot, count []byte
		if err := jsonscan.FastMembers(e, func(k string, v []byte) error {
			switch k {
			case "command":
				cmdv = v
			case "slot":
				slot = v
			case "count":
				count = v
			}
			return nil
		}); err != nil {
			return err
		}
		var err error
		if cmdv != nil {
			if !isArray(cmdv) {
				return jsErr(d.at(".command"), errNotArray)
			}
			if cmd == nil {
				cmd = []string{}
			}
			j := 0
			if err := jsonscan.FastElems(cmdv, func(a []byte) error {
				s, err := d.asStr(a)
				if err != nil {
					return jsErr(fmt.Sprintf("%s.command[%d]", d.at(""), j), err)
				}
				j++
				cmd = append(cmd, s)
				return nil
			}); err != nil {
				return err
			}
			t.Command = cmd
		}
		if slot != nil {
			if t.Slot, err = d.asStr(slot); err != nil {
				return jsErr(d.at(".slot"), err)
			}
		}
		if count != nil {
			if !isObj(count) {
				return jsErr(d.at(".count"), errNotObj)
			}
			if err := jsonscan.FastMembers(count, func(k string, v []byte) error {
				var err error
				switch k {
				case "per_slot":
					t.Count.PerSlot, err = asInt32(v)
				case "total":
					t.Count.Total, err = asInt32(v)
				}
				if err != nil {
					return jsErr(d.at(".count."+k), err)
				}
				return nil
			}); err != nil {
				return err
			}
		}
		dst = append(dst, t)
		return nil
	})
	return dst, err
}

func (d *Decoder) attributes(v []byte, a *Attributes) error {
	sys := &a.System
	// The maps are reused, but only where the new document has the key,
	// so that a reused destination reads as a fresh one.
	env, other := sys.Environment, sys.Other
	clear(env)
	clear(other)
	*a = Attributes{}
	if v == nil {
		return jsErr("attributes.system.duration", errMissing)
	}
	if !isObj(v) {
		return jsErr("attributes", errNotObj)
	}
	var sysv []byte
	if err := jsonscan.FastMembers(v, func(k string, v []byte) error {
		switch k {
		case "system":
			sysv = v
		case "user":
			a.User = v
		}
		return nil
	}); err != nil {
		return err
	}
	if a.User != nil && !isObj(a.User) {
		return jsErr("attributes.user", errNotObj)
	}
	if sysv == nil {
		return jsErr("attributes.system.duration", errMissing)
	}
	if !isObj(sysv) {
		return jsErr("attributes.system", errNotObj)
	}
	haveDuration := false
	err := jsonscan.FastMembers(sysv, func(k string, v []byte) error {
		var err error
		switch k {
		case "duration":
			sys.Duration, err = asNum(v)
			haveDuration = true
		case "cwd":
			sys.Cwd, err = d.asStr(v)
		case "queue":
			sys.Queue, err = d.asStr(v)
		case "project":
			sys.Project, err = d.asStr(v)
		case "bank":
			sys.Bank, err = d.asStr(v)
		case "environment":
			if sys.Environment == nil {
				sys.Environment = env
			}
			err = d.environment(v, sys)
		default:
			if sys.Other == nil {
				sys.Other = other
			}
			d.other(sys, k, v)
			switch k {
			case "job":
				sys.JobName, err = d.jobName(v)
			case "shell":
				sys.PerResource, err = d.perResource(v)
			}
		}
		if err != nil {
			var pe *pathError
			if errors.As(err, &pe) {
				return err
			}
			return jsErr("attributes.system."+k, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !haveDuration {
		return jsErr("attributes.system.duration", errMissing)
	}
	return nil
}

func (d *Decoder) other(sys *System, k string, v []byte) {
	if sys.Other == nil {
		sys.Other = map[string]json.RawMessage{}
	}
	sys.Other[d.key(k)] = v
}

// key returns a copy of k, which aliases the input, remembered.
func (d *Decoder) key(k string) string {
	if s, ok := d.strs[k]; ok {
		return s
	}
	s := strings.Clone(k)
	if len(d.strs) < maxInterned {
		if d.strs == nil {
			d.strs = map[string]string{}
		}
		d.strs[s] = s
	}
	return s
}

func (d *Decoder) environment(v []byte, sys *System) error {
	if !isObj(v) {
		return errNotObj
	}
	if sys.Environment == nil {
		sys.Environment = map[string]string{}
	}
	return jsonscan.FastMembers(v, func(k string, v []byte) error {
		s, err := d.asStr(v)
		if err != nil {
			return jsErr("attributes.system.environment."+k, err)
		}
		sys.Environment[d.key(k)] = s
		return nil
	})
}

func (d *Decoder) jobName(v []byte) (string, error) {
	if !isObj(v) {
		return "", errNotObj
	}
	name := jsonscan.FastMember(v, "name")
	if name == nil {
		return "", nil
	}
	s, err := d.asStr(name)
	if err != nil {
		return "", jsErr("attributes.system.job.name", err)
	}
	return s, nil
}

func (d *Decoder) perResource(v []byte) (*PerResource, error) {
	if !isObj(v) {
		return nil, errNotObj
	}
	opts := jsonscan.FastMember(v, "options")
	if opts == nil {
		return nil, nil
	}
	if !isObj(opts) {
		return nil, jsErr("attributes.system.shell.options", errNotObj)
	}
	pr := jsonscan.FastMember(opts, "per-resource")
	if pr == nil {
		return nil, nil
	}
	const p = "attributes.system.shell.options.per-resource"
	if !isObj(pr) {
		return nil, jsErr(p, errNotObj)
	}
	r := &PerResource{Count: 1}
	typ := jsonscan.FastMember(pr, "type")
	if typ == nil {
		return nil, jsErr(p+".type", errMissing)
	}
	var err error
	if r.Type, err = d.asStr(typ); err != nil {
		return nil, jsErr(p+".type", err)
	}
	if c := jsonscan.FastMember(pr, "count"); c != nil {
		if r.Count, err = asInt32(c); err != nil {
			return nil, jsErr(p+".count", err)
		}
		if r.Count < 1 {
			return nil, jsErr(p+".count", errRange)
		}
	}
	return r, nil
}

func rErr(path string, err error) error { return &pathError{"R", path, err} }

// R decodes b into *r, reusing its storage. See [ParseR].
func (d *Decoder) R(b []byte, r *R) error {
	b, err := d.check(b)
	if err != nil {
		return rErr("", err)
	}
	if err := d.r(b, r); err != nil {
		var pe *pathError
		if errors.As(err, &pe) {
			return err
		}
		return rErr("", err)
	}
	return nil
}

func (d *Decoder) r(b []byte, r *R) error {
	ex := &r.Execution
	rl, nl, props := ex.RLite[:0], ex.Nodelist[:0], ex.Properties
	clear(props)
	*r = R{}
	if !isObj(b) {
		return errNotObj
	}
	var version, exec []byte
	if err := jsonscan.FastMembers(b, func(k string, v []byte) error {
		switch k {
		case "version":
			version = v
		case "execution":
			exec = v
		case "scheduling":
			r.Scheduling = v
		}
		return nil
	}); err != nil {
		return err
	}
	if version == nil {
		return rErr("version", errMissing)
	}
	var err error
	if r.Version, err = asInt32(version); err != nil {
		return rErr("version", err)
	}
	if r.Version != 1 {
		return rErr("version", fmt.Errorf("%d is not 1", r.Version))
	}
	if exec == nil {
		return rErr("execution", errMissing)
	}
	if !isObj(exec) {
		return rErr("execution", errNotObj)
	}
	var rlv, nlv, propv []byte
	if err := jsonscan.FastMembers(exec, func(k string, v []byte) error {
		var err error
		switch k {
		case "R_lite":
			rlv = v
		case "nodelist":
			nlv = v
		case "properties":
			propv = v
		case "starttime":
			ex.Starttime, err = asNum(v)
		case "expiration":
			ex.Expiration, err = asNum(v)
		case "nslots":
			ex.NSlots, err = asInt32(v)
		}
		if err != nil {
			return rErr("execution."+k, err)
		}
		return nil
	}); err != nil {
		return err
	}
	if rlv == nil {
		return rErr("execution.R_lite", errMissing)
	}
	if ex.RLite, err = d.rlite(rlv, rl); err != nil {
		return err
	}
	ranks := r.Ranks()
	if nlv != nil {
		if ex.Nodelist, err = d.nodelist(nlv, nl); err != nil {
			return err
		}
		h, err := d.Hosts(r)
		if err != nil {
			return err
		}
		if h.Len() != ranks.Len() {
			return rErr("execution.nodelist", fmt.Errorf("%d hosts for %d ranks", h.Len(), ranks.Len()))
		}
	}
	if propv != nil {
		ex.Properties = props
		if err := d.properties(propv, ex, ranks); err != nil {
			return err
		}
	}
	return nil
}

func (d *Decoder) rlite(v []byte, dst []RLite) ([]RLite, error) {
	if !isArray(v) {
		return dst, rErr("execution.R_lite", errNotArray)
	}
	if dst == nil {
		dst = []RLite{}
	}
	i := 0
	err := jsonscan.FastElems(v, func(e []byte) error {
		d.path = append(d.path[:0], pathStep{"execution", -1}, pathStep{"R_lite", -1}, pathStep{"", i})
		i++
		if !isObj(e) {
			return rErr(d.at(""), errNotObj)
		}
		var ent RLite
		if len(dst) < cap(dst) {
			ent = dst[:len(dst)+1][len(dst)]
		}
		children := ent.Children
		clear(children)
		ent = RLite{}
		var rank, ch []byte
		if err := jsonscan.FastMembers(e, func(k string, v []byte) error {
			switch k {
			case "rank":
				rank = v
			case "children":
				ch = v
			}
			return nil
		}); err != nil {
			return err
		}
		if rank == nil {
			return rErr(d.at(".rank"), errMissing)
		}
		var err error
		if ent.Rank, err = d.set(rank); err != nil {
			return rErr(d.at(".rank"), err)
		}
		if ch == nil {
			return rErr(d.at(".children"), errMissing)
		}
		if !isObj(ch) {
			return rErr(d.at(".children"), errNotObj)
		}
		if err := jsonscan.FastMembers(ch, func(k string, v []byte) error {
			s, err := d.set(v)
			if err != nil {
				return rErr(d.at(".children."+k), err)
			}
			if children == nil {
				children = map[string]idset.Set{}
			}
			children[d.key(k)] = s
			return nil
		}); err != nil {
			return err
		}
		if len(children) > 0 {
			ent.Children = children
		}
		dst = append(dst, ent)
		return nil
	})
	return dst, err
}

func (d *Decoder) nodelist(v []byte, dst []string) ([]string, error) {
	if !isArray(v) {
		return dst, rErr("execution.nodelist", errNotArray)
	}
	i := 0
	if dst == nil {
		dst = []string{}
	}
	err := jsonscan.FastElems(v, func(e []byte) error {
		s, err := d.asStr(e)
		if err != nil {
			return rErr(fmt.Sprintf("execution.nodelist[%d]", i), err)
		}
		i++
		dst = append(dst, s)
		return nil
	})
	return dst, err
}

func (d *Decoder) properties(v []byte, ex *Execution, ranks idset.Set) error {
	if !isObj(v) {
		return rErr("execution.properties", errNotObj)
	}
	if ex.Properties == nil {
		ex.Properties = map[string]idset.Set{}
	}
	return jsonscan.FastMembers(v, func(k string, v []byte) error {
		p := "execution.properties." + k
		if i := strings.IndexAny(k, "^&'\"`|()"); i >= 0 {
			return rErr(p, fmt.Errorf("invalid character '%c' in property name", k[i]))
		}
		s, err := d.set(v)
		if err != nil {
			return rErr(p, err)
		}
		if extra := s.Difference(ranks); !extra.IsEmpty() {
			return rErr(p, fmt.Errorf("ranks %s not found in R", extra))
		}
		ex.Properties[d.key(k)] = s
		return nil
	})
}
