package journal

import (
	"github.com/fluxkit/fluxkit"
)

// jobRec is the consumer's record of one job: flux-core's job-list struct
// job. What the jobspec and R give is kept apart (js, r) and combined when
// shown, as flux-core's fields stand after it parses the jobspec and then
// R: so a jobspec-update repeated after R (a duplicate a live stream
// carries where it overlaps the backlog) changes nothing, where flux-core
// would show the jobspec's node count until R is parsed again.
type jobRec struct {
	id            fluxkit.JobID
	userid        uint32
	urgency       int32
	submitVersion int32
	waitstatus    int32
	excSeverity   int32
	state         State
	mask          State // states reached (states_mask)
	result        Result
	success       bool
	excOccurred   bool
	excNoteSet    bool
	depsEverAdded bool
	priority      int64 // last priority event's value; 0 before any
	tSubmit       float64
	tDepend       float64
	tPriority     float64 // first entry to PRIORITY, 0 before
	tSched        float64 // first entry to SCHED, 0 before
	tRun          float64
	tCleanup      float64
	tInactive     float64
	js            jsFields
	r             rFields
	cold          *jobCold // nil until an exception, annotation or dependency
	jobspec       []byte
	rRaw          []byte
	list          *slist
	listP         int64 // the priority the job is sorted under on the pending list
}

// jsFields are what job-list derives from the jobspec (parse_jobspec).
type jsFields struct {
	duration                  float64 // -1 unset
	nnodes, ntasks, ncores    int32   // -1 unset
	perNode                   int32   // >0: ntasks = nodes in R × perNode
	perCore                   int32   // >0: ntasks = cores in R × perCore
	name, cwd, queue, project string
	bank                      string
}

// rFields are what job-list derives from R (parse_R).
type rFields struct {
	expiration  float64
	nnodes      int32
	ncores      int32
	ranks       string
	nodelist    string
	ok          bool // librlist read R: expiration, nnodes and ranks are set
	hasNodelist bool // and R named the hosts: nodelist and ncores are set
}

func (j *jobRec) nnodes() int32 {
	if j.r.ok {
		return j.r.nnodes
	}
	return j.js.nnodes
}

func (j *jobRec) ncores() int32 {
	if j.r.hasNodelist {
		return j.r.ncores
	}
	return j.js.ncores
}

func (j *jobRec) ntasks() int32 {
	switch {
	case j.r.ok && j.js.perNode > 0:
		return j.r.nnodes * j.js.perNode
	case j.r.hasNodelist && j.js.perCore > 0:
		return j.r.ncores * j.js.perCore
	}
	return j.js.ntasks
}

func (j *jobRec) expiration() float64 {
	if j.r.ok {
		return j.r.expiration
	}
	return -1
}

// jobCold holds what most jobs never get, out of line: it keeps jobRec
// small (a backlog is millions of them).
type jobCold struct {
	excType     string
	excNote     string
	annotations []byte
	deps        []string // current, in order of addition
	depsHeld    []string // every value ever held
}

func (j *jobRec) coldFor() *jobCold {
	if j.cold == nil {
		j.cold = &jobCold{}
	}
	return j.cold
}

func (j *jobRec) excType() string {
	if j.cold == nil {
		return ""
	}
	return j.cold.excType
}

func (j *jobRec) excNote() string {
	if j.cold == nil {
		return ""
	}
	return j.cold.excNote
}

func (j *jobRec) annotations() []byte {
	if j.cold == nil {
		return nil
	}
	return j.cold.annotations
}

func (j *jobRec) deps() []string {
	if j.cold == nil {
		return nil
	}
	return j.cold.deps
}

func newJob(id fluxkit.JobID) *jobRec {
	return &jobRec{id: id, urgency: -1, submitVersion: -1, waitstatus: -1, excSeverity: -1,
		result: ResultFailed, js: jsFields{duration: -1, nnodes: -1, ntasks: -1, ncores: -1}}
}

// t returns a state timestamp by state bit, ok false when never reached.
// PRIORITY and SCHED may be entered more than once: theirs is the first
// entry's, present once it is set.
func (j *jobRec) t(s State) (float64, bool) {
	switch s {
	case StateDepend:
		if j.submitVersion < 1 {
			return j.tSubmit, true
		}
		return j.tDepend, j.mask&StateDepend != 0
	case StatePriority:
		return j.tPriority, j.tPriority != 0
	case StateSched:
		return j.tSched, j.tSched != 0
	case StateRun:
		return j.tRun, j.mask&StateRun != 0
	case StateCleanup:
		return j.tCleanup, j.mask&StateCleanup != 0
	case StateInactive:
		return j.tInactive, j.mask&StateInactive != 0
	}
	return j.tSubmit, true
}

// finalResult is the job's result as job-list fixes it on the job's
// transition to INACTIVE.
func (j *jobRec) finalResult() Result {
	switch {
	case j.success:
		return ResultCompleted
	case j.excOccurred && j.excType() == "cancel":
		return ResultCanceled
	case j.excOccurred && j.excType() == "timeout":
		return ResultTimeout
	}
	return ResultFailed
}
