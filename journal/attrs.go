package journal

import (
	"encoding/json"
	"sort"
	"strconv"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// attribute bits, in list-attrs order.
const (
	aUserid = 1 << iota
	aUrgency
	aPriority
	aTSubmit
	aTDepend
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
	aAll = 1<<iota - 1
)

// AttrNames is the list-attrs answer, in Flux's order ("all" last).
var AttrNames = []string{"userid", "urgency", "priority", "t_submit", "t_depend", "t_run",
	"t_cleanup", "t_inactive", "state", "name", "cwd", "queue", "project", "bank", "ntasks",
	"ncores", "duration", "nnodes", "ranks", "nodelist", "success", "exception_occurred",
	"exception_type", "exception_severity", "exception_note", "result", "expiration",
	"annotations", "waitstatus", "dependencies", "all"}

// attrSet is a parsed attrs array. err, when set, is raised only when a
// job is serialised (Flux checks attributes lazily).
type attrSet struct {
	bits uint64
	err  error
}

// parseAttrs decodes the attrs array; a non-array is an immediate EPROTO.
func parseAttrs(raw []byte) (attrSet, error) {
	var as attrSet
	if jsonscan.KindOf(raw) != jsonscan.Array {
		return as, fluxkit.Errorf(fluxkit.EPROTO, "invalid payload: attrs must be an array")
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
		for i, n := range AttrNames {
			if n == s {
				if s == "all" {
					as.bits |= aAll
				} else {
					as.bits |= 1 << i
				}
				return nil
			}
		}
		as.err = fluxkit.Errorf(fluxkit.EINVAL, "%s is not a valid attribute", s)
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

// appendJob serialises j with the attributes in a (job_to_json).
func appendJob(b []byte, j *jobRec, a uint64) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(j.id), 10)
	if a&aUserid != 0 {
		b = appendInt(b, "userid", int64(j.userid))
	}
	if a&aUrgency != 0 {
		b = appendInt(b, "urgency", int64(j.urgency))
	}
	if a&aPriority != 0 && j.mask&StateSched != 0 {
		b = appendInt(b, "priority", j.priority)
	}
	if a&aTSubmit != 0 {
		b = appendF(b, "t_submit", j.tSubmit)
	}
	if a&aTDepend != 0 {
		if t, ok := j.t(StateDepend); ok {
			b = appendF(b, "t_depend", t)
		}
	}
	if a&aTRun != 0 && j.mask&StateRun != 0 {
		b = appendF(b, "t_run", j.tRun)
	}
	if a&aTCleanup != 0 && j.mask&StateCleanup != 0 {
		b = appendF(b, "t_cleanup", j.tCleanup)
	}
	if a&aTInactive != 0 && j.mask&StateInactive != 0 {
		b = appendF(b, "t_inactive", j.tInactive)
	}
	if a&aState != 0 {
		b = appendInt(b, "state", int64(j.state))
	}
	if j.jsParsed {
		if a&aName != 0 && j.js.name != "" {
			b = appendS(b, "name", j.js.name)
		}
		if a&aCwd != 0 && j.js.cwd != "" {
			b = appendS(b, "cwd", j.js.cwd)
		}
		if a&aQueue != 0 && j.js.queue != "" {
			b = appendS(b, "queue", j.js.queue)
		}
		if a&aProject != 0 && j.js.project != "" {
			b = appendS(b, "project", j.js.project)
		}
		if a&aBank != 0 && j.js.bank != "" {
			b = appendS(b, "bank", j.js.bank)
		}
	}
	if a&aNtasks != 0 {
		if n := j.ntasks(); n >= 0 {
			b = appendInt(b, "ntasks", int64(n))
		}
	}
	if a&aNcores != 0 {
		if n := j.ncores(); n >= 0 {
			b = appendInt(b, "ncores", int64(n))
		}
	}
	if a&aDuration != 0 && j.jsParsed && j.js.duration >= 0 {
		b = appendF(b, "duration", j.js.duration)
	}
	if a&aNnodes != 0 {
		if n := j.nnodes(); n >= 0 {
			b = appendInt(b, "nnodes", int64(n))
		}
	}
	if j.mask&StateRun != 0 && j.rParsed {
		if a&aRanks != 0 && j.r.ranks != "" {
			b = appendS(b, "ranks", j.r.ranks)
		}
		if a&aNodelist != 0 && j.r.nodelist != "" {
			b = appendS(b, "nodelist", j.r.nodelist)
		}
	}
	if j.mask&StateInactive != 0 {
		if a&aSuccess != 0 {
			b = appendBool(b, "success", j.success)
		}
		if a&aExcOccurred != 0 {
			b = appendBool(b, "exception_occurred", j.excOccurred)
		}
		if j.excOccurred {
			if a&aExcType != 0 {
				b = appendS(b, "exception_type", j.excType())
			}
			if a&aExcSeverity != 0 {
				b = appendInt(b, "exception_severity", int64(j.excSeverity))
			}
			if a&aExcNote != 0 && j.excNoteSet {
				b = appendS(b, "exception_note", j.excNote())
			}
		}
		if a&aResult != 0 {
			b = appendInt(b, "result", int64(j.result))
		}
	}
	if a&aExpiration != 0 {
		if e := j.expiration(); e >= 0 {
			b = appendF(b, "expiration", e)
		}
	}
	if a&aAnnotations != 0 && j.annotations() != nil {
		b = append(appendKey(b, "annotations"), j.annotations()...)
	}
	if a&aWaitstatus != 0 && j.waitstatus >= 0 {
		b = appendInt(b, "waitstatus", int64(j.waitstatus))
	}
	if a&aDependencies != 0 && j.depsEverAdded {
		b = appendKey(b, "dependencies")
		b = append(b, '[')
		for i, d := range j.deps() {
			if i > 0 {
				b = append(b, ',')
			}
			b = jsonscan.AppendString(b, d)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// marshalSorted encodes a generic map (encoding/json sorts keys, which
// keeps annotations comparable across consumers).
func marshalSorted(m map[string]any) ([]byte, error) {
	return json.Marshal(m)
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
