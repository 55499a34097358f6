package journal

import (
	"fmt"
	"strconv"
	"strings"
)

// State is an RFC 21 job state, a single bit; masks combine them.
type State uint32

// RFC 21 states and the virtual masks.
const (
	StateNew      State = 1
	StateDepend   State = 2
	StatePriority State = 4
	StateSched    State = 8
	StateRun      State = 16
	StateCleanup  State = 32
	StateInactive State = 64

	StatePending = StateDepend | StatePriority | StateSched
	StateRunning = StateRun | StateCleanup
	StateActive  = StatePending | StateRunning
	stateAll     = StateNew | StateActive | StateInactive
)

var stateNames = []struct {
	s           State
	long, short string
}{
	{StateNew, "NEW", "N"}, {StateDepend, "DEPEND", "D"}, {StatePriority, "PRIORITY", "P"},
	{StateSched, "SCHED", "S"}, {StateRun, "RUN", "R"}, {StateCleanup, "CLEANUP", "C"},
	{StateInactive, "INACTIVE", "I"}, {StatePending, "PENDING", "PD"},
	{StateRunning, "RUNNING", "RU"}, {StateActive, "ACTIVE", "A"},
}

func (s State) String() string {
	for _, n := range stateNames {
		if n.s == s {
			return n.long
		}
	}
	return "0x" + strconv.FormatUint(uint64(s), 16)
}

// ParseState accepts the long and short names in upper or lower case.
func ParseState(s string) (State, error) {
	for _, n := range stateNames {
		if s == n.long || s == n.short || s == strings.ToLower(n.long) || s == strings.ToLower(n.short) {
			return n.s, nil
		}
	}
	return 0, fmt.Errorf("unknown job state %q", s)
}

// Result is an RFC 21 job result.
type Result uint32

// Job results.
const (
	ResultCompleted Result = 1
	ResultFailed    Result = 2
	ResultCanceled  Result = 4
	ResultTimeout   Result = 8
	resultAll              = ResultCompleted | ResultFailed | ResultCanceled | ResultTimeout
)

var resultNames = []struct {
	r           Result
	long, short string
}{
	{ResultCompleted, "COMPLETED", "CD"}, {ResultFailed, "FAILED", "F"},
	{ResultCanceled, "CANCELED", "CA"}, {ResultTimeout, "TIMEOUT", "TO"},
}

func (r Result) String() string {
	for _, n := range resultNames {
		if n.r == r {
			return n.long
		}
	}
	return "0x" + strconv.FormatUint(uint64(r), 16)
}

// ParseResult accepts the long and short names in upper or lower case.
func ParseResult(s string) (Result, error) {
	for _, n := range resultNames {
		if s == n.long || s == n.short || s == strings.ToLower(n.long) || s == strings.ToLower(n.short) {
			return n.r, nil
		}
	}
	return 0, fmt.Errorf("unknown job result %q", s)
}

// after is the state an event moves a job in state s to under RFC 21, as
// flux-core's job manager applies it (event_job_update); fatal tells a
// severity 0 exception. It is s itself for an event that moves the job
// nowhere from s. Every transition names the states it leaves, all of
// them before the one it enters but for SCHED back to PRIORITY (urgency,
// jobspec-update, flux-restart), RFC 21's one way back; so a duplicate or
// late event cannot move a job backwards.
func (s State) after(event string, fatal bool) State {
	var from, to State
	switch event {
	case "validate":
		from, to = StateNew, StateDepend
	case "depend":
		from, to = StateDepend, StatePriority
	case "priority":
		from, to = StatePriority, StateSched
	case "alloc":
		from, to = StateSched, StateRun
	case "finish":
		from, to = StateRun, StateCleanup
	case "exception":
		if fatal {
			from, to = StatePending|StateRun, StateCleanup
		}
	case "clean":
		from, to = StateCleanup, StateInactive
	case "urgency", "jobspec-update", "flux-restart":
		from, to = StateSched, StatePriority
	}
	if s&from != 0 {
		return to
	}
	return s
}
