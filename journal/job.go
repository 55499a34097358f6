package journal

import (
	"github.com/fluxkit/fluxkit"
)

// job is the consumer's record of one job (job-list's struct job).
type jobRec struct {
	id            fluxkit.JobID
	userid        uint32
	urgency       int32
	submitVersion int32
	waitstatus    int32
	excSeverity   int32
	state         State
	mask          State
	result        Result
	success       bool
	excOccurred   bool
	excNoteSet    bool
	jsParsed      bool
	rParsed       bool
	depsEverAdded bool
	priority      int64 // last priority event's value; 0 before any
	tSubmit       float64
	tDepend       float64
	tRun          float64
	tCleanup      float64
	tInactive     float64
	js            jobspecInfo
	r             rInfo
	cold          *jobCold // nil until an exception, annotation or dependency
	jobspec       []byte
	rRaw          []byte
	list          *slist
	key           entry
}

// jobCold holds what most jobs never get, out of line: it keeps job small
// (one size class less per job; a backlog is millions of them).
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
		result: ResultFailed, js: jobspecInfo{duration: -1, nnodes: -1, ntasks: -1, ncores: -1}}
}

func (j *jobRec) nnodes() int32 {
	if j.rParsed && j.r.nnodes > 0 {
		return j.r.nnodes
	}
	if j.jsParsed {
		return j.js.nnodes
	}
	return -1
}

func (j *jobRec) ncores() int32 {
	if j.rParsed {
		return j.r.ncores
	}
	if j.jsParsed {
		return j.js.ncores
	}
	return -1
}

func (j *jobRec) ntasks() int32 {
	if !j.jsParsed {
		return -1
	}
	if j.js.perCore > 0 {
		if j.rParsed {
			return j.r.ncores * j.js.perCore
		}
		return -1
	}
	return j.js.ntasks
}

func (j *jobRec) field(s string) string {
	if !j.jsParsed {
		return ""
	}
	return s
}

func (j *jobRec) expiration() float64 {
	if j.rParsed && j.mask&StateRun != 0 {
		return j.r.expiration
	}
	return -1
}

// t returns a state timestamp by state bit, ok false when never reached.
func (j *jobRec) t(s State) (float64, bool) {
	switch s {
	case StateDepend:
		if j.submitVersion < 1 {
			return j.tSubmit, true
		}
		return j.tDepend, j.mask&StateDepend != 0
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
