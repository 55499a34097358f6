package journal

import (
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// An ordered JSON object, for the memo event: flux-core merges a memo
// into annotations.user with jansson, whose objects keep their keys in
// insertion order, so clients see annotations in that order.
type member struct {
	key string
	raw []byte   // a value other than an object
	obj *ordered // an object
}

type ordered struct{ m []member }

func parseOrdered(b []byte) *ordered {
	o := &ordered{}
	_ = jsonscan.Members(b, func(k string, v []byte) error {
		o.set(k, valueOf(v))
		return nil
	})
	return o
}

func valueOf(v []byte) member {
	if jsonscan.KindOf(v) == jsonscan.Object {
		return member{obj: parseOrdered(v)}
	}
	return member{raw: append([]byte(nil), v...)}
}

func (o *ordered) get(k string) *member {
	for i := range o.m {
		if o.m[i].key == k {
			return &o.m[i]
		}
	}
	return nil
}

// set replaces k's value in place, or appends k (json_object_set).
func (o *ordered) set(k string, v member) {
	v.key = k
	if p := o.get(k); p != nil {
		*p = v
		return
	}
	o.m = append(o.m, v)
}

// update merges v into o as jpath's update_object_recursive does: objects
// merge, anything else (null too) replaces.
func (o *ordered) update(v *ordered) {
	for _, e := range v.m {
		if e.obj == nil {
			o.set(e.key, member{raw: e.raw})
			continue
		}
		p := o.get(e.key)
		if p == nil || p.obj == nil {
			o.set(e.key, member{obj: &ordered{}})
			p = o.get(e.key)
		}
		p.obj.update(e.obj)
	}
}

// clearNull removes null members and objects left empty, at every depth
// (jpath_clear_null).
func (o *ordered) clearNull() {
	keep := o.m[:0]
	for _, e := range o.m {
		if e.obj != nil {
			e.obj.clearNull()
			if len(e.obj.m) == 0 {
				continue
			}
		} else if jsonscan.KindOf(e.raw) == jsonscan.Null {
			continue
		}
		keep = append(keep, e)
	}
	o.m = keep
}

func (o *ordered) appendJSON(b []byte) []byte {
	b = append(b, '{')
	for i, e := range o.m {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonscan.AppendString(b, e.key)
		b = append(b, ':')
		if e.obj != nil {
			b = e.obj.appendJSON(b)
		} else {
			b = append(b, e.raw...)
		}
	}
	return append(b, '}')
}

// mergeMemo is job-list's memo_update: the memo merged into
// annotations.user, nulls (and objects left empty) removed everywhere,
// and no annotations when nothing is left.
func mergeMemo(ann, memo []byte) []byte {
	a := &ordered{}
	if ann != nil {
		a = parseOrdered(ann)
	}
	m := parseOrdered(memo)
	switch u := a.get("user"); {
	case u == nil:
		a.set("user", member{obj: m})
	case u.obj != nil:
		u.obj.update(m)
	}
	// A "user" that is not an object takes nothing, as jansson iterates
	// no members of a non-object.
	a.clearNull()
	if len(a.m) == 0 {
		return nil
	}
	return a.appendJSON(nil)
}
