package journal

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Constraint is a compiled RFC 31 job constraint with the RFC 43
// operators flux-core's job-list supports (match.c), and the states a
// matching job can be in (state_match.c), which tell which lists a query
// may skip.
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
	opHostlist
	opRanks
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
	hosts []string // the hostlist constraint's hosts, in order
	ranks idset.Set
	field State // the timestamp's state (StateNew: t_submit)
	cmp   tcmp
	t     float64
}

// ErrConstraint is matched by every constraint compilation error.
var ErrConstraint = errors.New("constraint object invalid")

func cerr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConstraint, fmt.Sprintf(format, args...))
}

// minMaxHosts is the least number of hosts (or ranks) a hostlist (ranks)
// constraint may name; an instance of more brokers allows its size.
const minMaxHosts = 1024

// ParseConstraint compiles a constraint; nil, empty input or {} matches
// every job. Error texts are flux-core's. A hostlist or ranks constraint
// may name at most 1024 hosts or ranks.
func ParseConstraint(b []byte) (*Constraint, error) { return parseConstraint(b, minMaxHosts) }

func parseConstraint(b []byte, maxHosts int) (*Constraint, error) {
	b = jsonscan.Trim(b)
	if len(b) == 0 {
		return &Constraint{root: &cnode{op: opTrue}}, nil
	}
	if err := jsonscan.Check(b); err != nil {
		return nil, cerr("%v", err)
	}
	n, err := compile(b, 0, maxHosts)
	if err != nil {
		return nil, err
	}
	return &Constraint{root: n}, nil
}

func compile(b []byte, depth, maxHosts int) (*cnode, error) {
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
			k, err := compile(e, depth+1, maxHosts)
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
			if err != nil {
				return nil, cerr("userid value must be an integer")
			}
			// flux-core keeps the value's low 32 bits, so -1 is "any".
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
		return compileMask(op, elems)
	case "hostlist":
		var hb hostlist.Builder
		for _, e := range elems {
			s, err := jsonscan.Unquote(e)
			if err != nil {
				return nil, cerr("host value must be a string")
			}
			h, err := hostlist.Parse(s)
			if err != nil || h.Len() == 0 {
				return nil, cerr("host value not in valid Hostlist format")
			}
			hb.AppendList(h)
		}
		hl := hb.Hostlist()
		if hl.Len() > maxHosts {
			return nil, cerr("too many hosts specified")
		}
		c := &cnode{op: opHostlist}
		for h := range hl.All() {
			c.hosts = append(c.hosts, h)
		}
		return c, nil
	case "ranks":
		var sb idset.Builder
		for _, e := range elems {
			s, err := jsonscan.Unquote(e)
			if err != nil {
				return nil, cerr("ranks value must be a string")
			}
			set, err := idset.Parse(s)
			if err != nil {
				return nil, cerr("ranks value '%s': %s", s, idsetDetail(err))
			}
			sb.AddSet(set)
		}
		set := sb.Set()
		if set.Len() > maxHosts {
			return nil, cerr("too many ranks specified")
		}
		return &cnode{op: opRanks, ranks: set}, nil
	case "t_submit", "t_depend", "t_priority", "t_sched", "t_run", "t_cleanup", "t_inactive":
		return compileTime(op, elems)
	}
	return nil, cerr("unknown constraint operator: %s", op)
}

func compileMask(op string, elems [][]byte) (*cnode, error) {
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
			// flux-core reads the value as a C int.
			if v < math.MinInt32 || v > math.MaxInt32 || uint32(v)&^all != 0 {
				return nil, cerr("invalid %s value '%Xh' specified", op, uint32(v))
			}
			c.mask |= uint32(v)
		default:
			return nil, cerr("%s value invalid type", op)
		}
	}
	return c, nil
}

var timeFields = map[string]State{"t_submit": StateNew, "t_depend": StateDepend, "t_priority": StatePriority,
	"t_sched": StateSched, "t_run": StateRun, "t_cleanup": StateCleanup, "t_inactive": StateInactive}

// compileTime reads a timestamp comparison; flux-core reads only the
// first value.
func compileTime(op string, elems [][]byte) (*cnode, error) {
	if len(elems) == 0 {
		return nil, cerr("timestamp value not specified")
	}
	s, err := jsonscan.Unquote(elems[0])
	if err != nil {
		return nil, cerr("%s value must be a string", op)
	}
	t := &cnode{op: opTime, field: timeFields[op]}
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
	// strtod: leading white space allowed, nothing after the number.
	f, err := strconv.ParseFloat(strings.TrimLeft(s, " \t\n\v\f\r"), 64)
	if err != nil {
		return nil, cerr("Invalid timestamp value specified")
	}
	if f < 0 {
		return nil, cerr("timestamp value must be >= 0.0")
	}
	t.t = f
	return t, nil
}

// idsetDetail is libidset's wording of an idset parse error.
func idsetDetail(err error) string {
	var pe *idset.ParseError
	if !errors.As(err, &pe) {
		return err.Error()
	}
	switch {
	case errors.Is(pe.Err, idset.ErrSyntax) && pe.Token == "":
		return "mismatched or nested brackets"
	case errors.Is(pe.Err, idset.ErrSyntax):
		return "error parsing range '" + pe.Token + "'"
	case errors.Is(pe.Err, idset.ErrOrder):
		return "range '" + pe.Token + "' is out of order"
	}
	return fluxkit.Strerror(fluxkit.ERANGE)
}

// matcher evaluates a constraint over the jobs of one query, counting
// comparisons as flux-core does, against its cap (0: none).
type matcher struct {
	c           *Constraint
	max         uint64
	comparisons uint64
	hosts       func(j *jobRec) (hostlist.Hostlist, bool)
	ranks       func(j *jobRec) (idset.Set, bool)
}

// errComparisons is flux-core's error, in its words.
//
//lint:ignore ST1005 flux-core's text, which clients show
var errComparisons = errors.New("Excessive comparisons made, limit search via states or since")

func (m *matcher) inc(n uint64) error {
	m.comparisons += n
	if m.max > 0 && m.comparisons > m.max {
		return errComparisons
	}
	return nil
}

// match reports whether j satisfies the constraint.
func (m *matcher) match(j *jobRec) (bool, error) { return m.node(m.c.root, j) }

func (m *matcher) node(n *cnode, j *jobRec) (bool, error) {
	switch n.op {
	case opTrue:
		return true, m.inc(1)
	case opAnd:
		for _, k := range n.kids {
			if ok, err := m.node(k, j); !ok || err != nil {
				return false, err
			}
		}
		return true, nil
	case opOr:
		if len(n.kids) == 0 {
			return true, nil
		}
		for _, k := range n.kids {
			if ok, err := m.node(k, j); ok || err != nil {
				return ok, err
			}
		}
		return false, nil
	case opNot:
		for _, k := range n.kids {
			ok, err := m.node(k, j)
			if err != nil {
				return false, err
			}
			if !ok {
				return true, nil
			}
		}
		return false, nil
	case opUserid:
		for _, u := range n.ids {
			if err := m.inc(1); err != nil {
				return false, err
			}
			if u == fluxkit.UseridUnknown || u == j.userid {
				return true, nil
			}
		}
		return false, nil
	case opName, opQueue:
		v := j.js.name
		if n.op == opQueue {
			v = j.js.queue
		}
		for _, s := range n.strs {
			if err := m.inc(1); err != nil {
				return false, err
			}
			if v != "" && s == v {
				return true, nil
			}
		}
		return false, nil
	case opStates:
		return uint32(j.state)&n.mask != 0, m.inc(1)
	case opResults:
		if err := m.inc(1); err != nil {
			return false, err
		}
		return j.state == StateInactive && uint32(j.result)&n.mask != 0, nil
	case opHostlist:
		hl, ok := m.hosts(j)
		if !ok {
			return false, nil
		}
		for _, h := range n.hosts {
			if err := m.inc(1); err != nil {
				return false, err
			}
			if hl.Find(h) >= 0 {
				return true, nil
			}
		}
		return false, nil
	case opRanks:
		rs, ok := m.ranks(j)
		if !ok {
			return false, nil
		}
		// flux-core counts the smaller of the two sets' sizes.
		if err := m.inc(uint64(max(min(rs.Len(), n.ranks.Len()), 1))); err != nil {
			return false, err
		}
		return !rs.Intersect(n.ranks).IsEmpty(), nil
	case opTime:
		if err := m.inc(1); err != nil {
			return false, err
		}
		t, ok := j.t(n.field)
		if !ok {
			return false, nil
		}
		switch n.cmp {
		case cmpGE:
			return t >= n.t, nil
		case cmpLE:
			return t <= n.t, nil
		case cmpGT:
			return t > n.t, nil
		}
		return t < n.t, nil
	}
	return false, nil
}

// How a constraint matches the jobs in one state (state_match.c).
type smatch uint8

const (
	smNotSet smatch = iota
	smAlways
	smMaybe
	smNever
)

// inState tells how n matches jobs in state s (a single state).
func (n *cnode) inState(s State) smatch {
	switch n.op {
	case opTrue:
		return smAlways
	case opUserid, opName, opQueue, opHostlist, opRanks:
		return smMaybe
	case opResults:
		if s == StateInactive {
			return smMaybe
		}
		return smNever
	case opStates:
		if n.mask == 0 || uint32(s)&n.mask != 0 {
			return smAlways
		}
		return smNever
	case opTime:
		var from State
		switch n.field {
		case StateNew:
			return smMaybe
		case StateDepend:
			from = StateDepend
		case StatePriority, StateSched:
			// SCHED may have been reached and left for PRIORITY.
			from = StatePriority
		default:
			from = n.field
		}
		if s >= from {
			return smMaybe
		}
		return smNever
	case opAnd, opNot:
		rv := smNotSet
		for _, k := range n.kids {
			m := k.inState(s)
			switch {
			case m == smNever:
				rv = smNever
			case rv == smNotSet:
				rv = m
			case rv == smAlways && m == smMaybe:
				rv = smMaybe
			}
			if rv == smNever {
				break
			}
		}
		if rv == smNotSet {
			rv = smAlways
		}
		if n.op == opNot {
			switch rv {
			case smAlways:
				return smNever
			case smNever:
				return smAlways
			}
			return smMaybe
		}
		return rv
	case opOr:
		rv := smNotSet
		for _, k := range n.kids {
			m := k.inState(s)
			switch {
			case m == smAlways:
				return smAlways
			case rv == smNotSet:
				rv = m
			case rv == smNever && m == smMaybe:
				rv = smMaybe
			}
		}
		if rv == smNotSet {
			return smAlways
		}
		return rv
	}
	return smMaybe
}

// mayMatch tells whether any job in the states of mask (one state, or
// PENDING, RUNNING) may match: the lists a query walks.
func (c *Constraint) mayMatch(mask State) bool {
	for s := StateDepend; s <= StateInactive; s <<= 1 {
		if mask&s != 0 && c.root.inState(s) != smNever {
			return true
		}
	}
	return false
}
