package journal

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Constraint is a compiled RFC 31 job constraint with the RFC 43
// operators job-list supports.
type Constraint struct {
	root *cnode
}

type cop uint8

const (
	opTrue cop = iota
	opAnd
	opOr
	opNot
	opUserid
	opName
	opQueue
	opStates
	opResults
	opTime
)

type tcmp uint8

const (
	cmpGE tcmp = iota
	cmpLE
	cmpGT
	cmpLT
)

type cnode struct {
	op    cop
	kids  []*cnode
	ids   []uint32
	strs  []string
	mask  uint32
	field State
	cmp   tcmp
	t     float64
}

// ErrConstraint is matched by every constraint compilation error.
var ErrConstraint = errors.New("constraint object invalid")

func cerr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConstraint, fmt.Sprintf(format, args...))
}

// ParseConstraint compiles a constraint; nil, empty input or {} matches
// every job. Error texts are Flux's.
func ParseConstraint(b []byte) (*Constraint, error) {
	b = jsonscan.Trim(b)
	if len(b) == 0 {
		return &Constraint{root: &cnode{op: opTrue}}, nil
	}
	if err := jsonscan.Check(b); err != nil {
		return nil, cerr("%v", err)
	}
	n, err := compile(b, 0)
	if err != nil {
		return nil, err
	}
	return &Constraint{root: n}, nil
}

func compile(b []byte, depth int) (*cnode, error) {
	if depth > 64 {
		return nil, cerr("constraint nested too deeply")
	}
	if jsonscan.KindOf(b) != jsonscan.Object {
		return nil, cerr("constraint must be JSON object")
	}
	var op string
	var vals []byte
	n := 0
	_ = jsonscan.Members(b, func(k string, v []byte) error {
		op, vals = k, v
		n++
		return nil
	})
	if n == 0 {
		return &cnode{op: opTrue}, nil
	}
	if n > 1 {
		return nil, cerr("constraint must only contain 1 element")
	}
	op = strings.Clone(op)
	if jsonscan.KindOf(vals) != jsonscan.Array {
		return nil, cerr("operator %s values not an array", op)
	}
	var elems [][]byte
	_ = jsonscan.Elems(vals, func(v []byte) error { elems = append(elems, v); return nil })
	switch op {
	case "and", "or", "not":
		c := &cnode{op: map[string]cop{"and": opAnd, "or": opOr, "not": opNot}[op]}
		for _, e := range elems {
			k, err := compile(e, depth+1)
			if err != nil {
				return nil, err
			}
			c.kids = append(c.kids, k)
		}
		return c, nil
	case "userid":
		c := &cnode{op: opUserid}
		for _, e := range elems {
			v, err := jsonscan.Int(e)
			if err != nil || v < 0 || v > math.MaxUint32 {
				return nil, cerr("userid value must be an integer")
			}
			c.ids = append(c.ids, uint32(v))
		}
		return c, nil
	case "name", "queue":
		c := &cnode{op: opName}
		if op == "queue" {
			c.op = opQueue
		}
		for _, e := range elems {
			s, err := jsonscan.Unquote(e)
			if err != nil {
				return nil, cerr("%s value must be a string", op)
			}
			c.strs = append(c.strs, s)
		}
		return c, nil
	case "states", "results":
		c := &cnode{op: opStates}
		all := uint32(stateAll)
		if op == "results" {
			c.op, all = opResults, uint32(resultAll)
		}
		for _, e := range elems {
			switch jsonscan.KindOf(e) {
			case jsonscan.String:
				s, _ := jsonscan.Unquote(e)
				var bit uint32
				if op == "states" {
					st, err := ParseState(s)
					if err != nil {
						return nil, cerr("invalid states value '%s' specified", s)
					}
					bit = uint32(st)
				} else {
					r, err := ParseResult(s)
					if err != nil {
						return nil, cerr("invalid results value '%s' specified", s)
					}
					bit = uint32(r)
				}
				c.mask |= bit
			case jsonscan.Integer:
				v, _ := jsonscan.Int(e)
				if v < 0 || v > math.MaxUint32 || uint32(v)&^all != 0 {
					return nil, cerr("invalid %s value '%Xh' specified", op, v)
				}
				c.mask |= uint32(v)
			default:
				return nil, cerr("%s value invalid type", op)
			}
		}
		return c, nil
	case "t_submit", "t_depend", "t_run", "t_cleanup", "t_inactive":
		field := map[string]State{"t_submit": StateNew, "t_depend": StateDepend, "t_run": StateRun,
			"t_cleanup": StateCleanup, "t_inactive": StateInactive}[op]
		if len(elems) == 0 {
			return nil, cerr("timestamp value not specified")
		}
		c := &cnode{op: opAnd}
		for _, e := range elems {
			s, err := jsonscan.Unquote(e)
			if err != nil {
				return nil, cerr("%s value must be a string", op)
			}
			t := &cnode{op: opTime, field: field}
			switch {
			case strings.HasPrefix(s, ">="):
				t.cmp, s = cmpGE, s[2:]
			case strings.HasPrefix(s, "<="):
				t.cmp, s = cmpLE, s[2:]
			case strings.HasPrefix(s, ">"):
				t.cmp, s = cmpGT, s[1:]
			case strings.HasPrefix(s, "<"):
				t.cmp, s = cmpLT, s[1:]
			default:
				return nil, cerr("timestamp comparison operator not specified")
			}
			f, err := strconv.ParseFloat(s, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, cerr("Invalid timestamp value specified")
			}
			if f < 0 {
				return nil, cerr("timestamp value must be >= 0.0")
			}
			t.t = f
			c.kids = append(c.kids, t)
		}
		if len(c.kids) == 1 {
			return c.kids[0], nil
		}
		return c, nil
	}
	return nil, cerr("unknown constraint operator: %s", op)
}

// match reports whether j satisfies the constraint.
func (c *Constraint) match(j *jobRec) bool { return c.root.match(j) }

func (n *cnode) match(j *jobRec) bool {
	switch n.op {
	case opTrue:
		return true
	case opAnd:
		for _, k := range n.kids {
			if !k.match(j) {
				return false
			}
		}
		return true
	case opOr:
		if len(n.kids) == 0 {
			return true
		}
		for _, k := range n.kids {
			if k.match(j) {
				return true
			}
		}
		return false
	case opNot:
		for _, k := range n.kids {
			if !k.match(j) {
				return true
			}
		}
		return false
	case opUserid:
		for _, u := range n.ids {
			if u == math.MaxUint32 || u == j.userid {
				return true
			}
		}
		return false
	case opName, opQueue:
		v := j.field(j.js.name)
		if n.op == opQueue {
			v = j.field(j.js.queue)
		}
		if v == "" {
			return false
		}
		for _, s := range n.strs {
			if s == v {
				return true
			}
		}
		return false
	case opStates:
		return uint32(j.state)&n.mask != 0
	case opResults:
		return j.state == StateInactive && uint32(j.result)&n.mask != 0
	case opTime:
		t, ok := j.t(n.field)
		if !ok {
			return false
		}
		switch n.cmp {
		case cmpGE:
			return t >= n.t
		case cmpLE:
			return t <= n.t
		case cmpGT:
			return t > n.t
		}
		return t < n.t
	}
	return false
}

// states returns the job states a matching job can be in, used to skip
// whole lists.
func (n *cnode) states() State {
	switch n.op {
	case opAnd:
		s := stateAll
		for _, k := range n.kids {
			s &= k.states()
		}
		return s
	case opOr:
		if len(n.kids) == 0 {
			return stateAll
		}
		var s State
		for _, k := range n.kids {
			s |= k.states()
		}
		return s
	case opStates:
		return State(n.mask) & stateAll
	case opResults:
		return StateInactive
	case opTime:
		switch n.field {
		case StateRun:
			return StateRun | StateCleanup | StateInactive
		case StateCleanup:
			return StateCleanup | StateInactive
		case StateInactive:
			return StateInactive
		}
	}
	return stateAll
}
