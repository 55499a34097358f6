package journal

import (
	"sort"
	"strconv"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Attributes, in list-attrs order.
const (
	aUserid = iota
	aUrgency
	aPriority
	aTSubmit
	aTDepend
	aTPriority
	aTSched
	aTRun
	aTCleanup
	aTInactive
	aState
	aName
	aCwd
	aQueue
	aProject
	aBank
	aNtasks
	aNcores
	aDuration
	aNnodes
	aRanks
	aNodelist
	aSuccess
	aExcOccurred
	aExcType
	aExcSeverity
	aExcNote
	aResult
	aExpiration
	aAnnotations
	aWaitstatus
	aDependencies
	nAttrs
)

// AttrNames is the list-attrs answer, in flux-core's order ("all" last).
var AttrNames = []string{"userid", "urgency", "priority", "t_submit", "t_depend", "t_priority",
	"t_sched", "t_run", "t_cleanup", "t_inactive", "state", "name", "cwd", "queue", "project", "bank",
	"ntasks", "ncores", "duration", "nnodes", "ranks", "nodelist", "success", "exception_occurred",
	"exception_type", "exception_severity", "exception_note", "result", "expiration",
	"annotations", "waitstatus", "dependencies", "all"}

var attrIndex = func() map[string]uint8 {
	m := map[string]uint8{}
	for i, n := range AttrNames[:nAttrs] {
		m[n] = uint8(i)
	}
	return m
}()

// allAttrs is "all": every attribute, in order.
var allAttrs = func() []uint8 {
	o := make([]uint8, nAttrs)
	for i := range o {
		o[i] = uint8(i)
	}
	return o
}()

// attrSet is a parsed attrs array: the attributes in the order a job
// object shows them, which is the request's (flux-core adds them to the
// object in that order; one asked again keeps its first place). err, when
// set, is raised only when a job is serialised: flux-core checks
// attributes as it adds them to a matched job.
type attrSet struct {
	order []uint8
	err   error
}

// parseAttrs decodes the attrs array; a non-array is an immediate EPROTO.
func parseAttrs(raw []byte) (attrSet, error) {
	var as attrSet
	if jsonscan.KindOf(raw) != jsonscan.Array {
		return as, fluxkit.Errorf(fluxkit.EPROTO, "invalid payload: attrs must be an array")
	}
	var have [nAttrs]bool
	add := func(a uint8) {
		if !have[a] {
			have[a] = true
			as.order = append(as.order, a)
		}
	}
	err := jsonscan.Elems(raw, func(v []byte) error {
		if as.err != nil {
			return nil
		}
		s, err := jsonscan.Unquote(v)
		if err != nil {
			as.err = fluxkit.Errorf(fluxkit.EINVAL, "attr has no string value")
			return nil
		}
		if s == "all" {
			for _, a := range allAttrs {
				add(a)
			}
			return nil
		}
		a, ok := attrIndex[s]
		if !ok {
			as.err = fluxkit.Errorf(fluxkit.EINVAL, "%s is not a valid attribute", s)
			return nil
		}
		add(a)
		return nil
	})
	if err != nil {
		return as, fluxkit.Errorf(fluxkit.EPROTO, "invalid payload: attrs: %v", err)
	}
	return as, nil
}

func appendKey(b []byte, k string) []byte {
	b = append(b, ',', '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

func appendInt(b []byte, k string, v int64) []byte {
	return strconv.AppendInt(appendKey(b, k), v, 10)
}

func appendF(b []byte, k string, v float64) []byte {
	return jsonscan.AppendFloat(appendKey(b, k), v)
}

func appendS(b []byte, k, v string) []byte {
	return jsonscan.AppendString(appendKey(b, k), v)
}

func appendBool(b []byte, k string, v bool) []byte {
	return strconv.AppendBool(appendKey(b, k), v)
}

// appendJob serialises j with the attributes in order (job_to_json).
func appendJob(b []byte, j *jobRec, order []uint8) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(j.id), 10)
	for _, a := range order {
		b = appendAttr(b, j, a)
	}
	return append(b, '}')
}

// appendAttr appends attribute a of j when j has it (store_attr).
func appendAttr(b []byte, j *jobRec, a uint8) []byte {
	k := AttrNames[a]
	switch a {
	case aUserid:
		return appendInt(b, k, int64(j.userid))
	case aUrgency:
		return appendInt(b, k, int64(j.urgency))
	case aPriority:
		if j.mask&StateSched != 0 {
			return appendInt(b, k, j.priority)
		}
	case aTSubmit:
		return appendF(b, k, j.tSubmit)
	case aTDepend, aTPriority, aTSched, aTRun, aTCleanup, aTInactive:
		if t, ok := j.t(attrState[a]); ok {
			return appendF(b, k, t)
		}
	case aState:
		return appendInt(b, k, int64(j.state))
	case aName, aCwd, aQueue, aProject, aBank:
		if v := *attrString(j, a); v != "" {
			return appendS(b, k, v)
		}
	case aNtasks, aNcores, aNnodes:
		if v := attrCount(j, a); v >= 0 {
			return appendInt(b, k, int64(v))
		}
	case aDuration:
		if j.js.duration >= 0 {
			return appendF(b, k, j.js.duration)
		}
	case aRanks:
		if j.mask&StateRun != 0 && j.r.ok {
			return appendS(b, k, j.r.ranks)
		}
	case aNodelist:
		if j.mask&StateRun != 0 && j.r.hasNodelist {
			return appendS(b, k, j.r.nodelist)
		}
	case aExpiration:
		if e := j.expiration(); j.mask&StateRun != 0 && e >= 0 {
			return appendF(b, k, e)
		}
	case aWaitstatus:
		if j.waitstatus >= 0 {
			return appendInt(b, k, int64(j.waitstatus))
		}
	case aSuccess:
		if j.mask&StateInactive != 0 {
			return appendBool(b, k, j.success)
		}
	case aExcOccurred:
		if j.mask&StateInactive != 0 {
			return appendBool(b, k, j.excOccurred)
		}
	case aExcSeverity:
		if j.mask&StateInactive != 0 && j.excOccurred {
			return appendInt(b, k, int64(j.excSeverity))
		}
	case aExcType:
		if j.mask&StateInactive != 0 && j.excOccurred {
			return appendS(b, k, j.excType())
		}
	case aExcNote:
		if j.mask&StateInactive != 0 && j.excOccurred && j.excNoteSet {
			return appendS(b, k, j.excNote())
		}
	case aResult:
		if j.mask&StateInactive != 0 {
			return appendInt(b, k, int64(j.result))
		}
	case aAnnotations:
		if ann := j.annotations(); ann != nil {
			return append(appendKey(b, k), ann...)
		}
	case aDependencies:
		if j.depsEverAdded {
			b = append(appendKey(b, k), '[')
			for i, d := range j.deps() {
				if i > 0 {
					b = append(b, ',')
				}
				b = jsonscan.AppendString(b, d)
			}
			return append(b, ']')
		}
	}
	return b
}

// attrState maps the timestamp attributes to their states.
var attrState = [nAttrs]State{aTDepend: StateDepend, aTPriority: StatePriority, aTSched: StateSched,
	aTRun: StateRun, aTCleanup: StateCleanup, aTInactive: StateInactive}

func attrString(j *jobRec, a uint8) *string {
	switch a {
	case aName:
		return &j.js.name
	case aCwd:
		return &j.js.cwd
	case aQueue:
		return &j.js.queue
	case aProject:
		return &j.js.project
	}
	return &j.js.bank
}

func attrCount(j *jobRec, a uint8) int32 {
	switch a {
	case aNtasks:
		return j.ntasks()
	case aNcores:
		return j.ncores()
	}
	return j.nnodes()
}

func (c *counts) appendJSON(b []byte, name string) []byte {
	total := c.depend + c.priority + c.sched + c.run + c.cleanup + c.inactive
	b = fmtAppend(b, `{"job_states":{"depend":%d,"priority":%d,"sched":%d,"run":%d,"cleanup":%d,"inactive":%d,"total":%d},"successful":%d,"failed":%d,"canceled":%d,"timeout":%d,"inactive_purged":%d`,
		c.depend, c.priority, c.sched, c.run, c.cleanup, c.inactive, total,
		c.successful, c.failed, c.canceled, c.timeout, c.purged)
	if name != "" {
		b = appendS(b, "name", name)
	}
	return b
}

func (x *Index) statsJSON() []byte {
	b := x.stats.appendJSON(nil, "")
	b = append(b, `,"queues":[`...)
	names := make([]string, 0, len(x.queues))
	for q := range x.queues {
		names = append(names, q)
	}
	sort.Strings(names)
	for i, q := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = x.queues[q].appendJSON(b, q)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
