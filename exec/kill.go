package exec

import "time"

// escStep is one step of the termination schedule.
type escStep uint8

const (
	stepTaskKill  escStep = iota + 1 // kill-signal to the shells' tasks
	stepShellKill                    // kill-signal to the shells themselves
	stepDrain                        // drain the ranks still holding processes, force them complete
)

// escalation walks the termination schedule, as offsets from its start
// (the first fatal exception). The job machine follows it step by step and
// KillSchedule lists it, so the schedule documented and shown in stats is
// the one the coordinator carries out.
//
// The schedule is flux-core's as its timers run it: task kills every
// kill-timeout (kto) until 5·kto; from 5·kto shell kills, after each of
// which the job's kill-timeout doubles (capped at 300 s) and becomes the
// wait before the next; with max-kill-timeout set, the drain comes at that
// time, otherwise one (doubled) kill-timeout after the max-kill-count'th
// shell kill, so that the last kill gets the same grace as the others where
// flux-core drains at the instant it sends it.
type escalation struct {
	kto, maxTimeout time.Duration
	maxCount        int

	tasks, shells int           // task and shell kills taken
	timeout       time.Duration // the job's kill-timeout: the wait after the last shell kill
	nextShell     time.Duration
	done          bool // drained
}

func newEscalation(s Settings) escalation {
	return escalation{kto: s.KillTimeout, maxTimeout: s.MaxKillTimeout, maxCount: s.MaxKillCount,
		timeout: s.KillTimeout, nextShell: 5 * s.KillTimeout}
}

// tasksBefore is how many task kills precede the first shell kill.
const tasksBefore = 4

// peek returns the next step and its offset; ok is false once drained.
func (e *escalation) peek() (at time.Duration, step escStep, ok bool) {
	if e.done {
		return 0, 0, false
	}
	drain, counted := e.drainAt()
	next, step := e.nextShell, stepShellKill
	if counted && e.shells == e.maxCount {
		next, step = drain, stepDrain
	}
	if e.shells == 0 && e.tasks < tasksBefore {
		if t := time.Duration(e.tasks+1) * e.kto; t < next {
			next, step = t, stepTaskKill
		}
	}
	if !counted && drain <= next {
		next, step = drain, stepDrain
	}
	return next, step, true
}

// drainAt is the drain's offset when max-kill-timeout fixes it (counted is
// false), or the offset after the last counted shell kill.
func (e *escalation) drainAt() (at time.Duration, counted bool) {
	if e.maxTimeout > 0 {
		return e.maxTimeout, false
	}
	return e.nextShell, true
}

// advance takes the step peek returned.
func (e *escalation) advance() {
	_, step, ok := e.peek()
	if !ok {
		return
	}
	switch step {
	case stepTaskKill:
		e.tasks++
	case stepShellKill:
		e.shells++
		e.timeout = min(2*e.timeout, maxShellKillInterval)
		e.nextShell += e.timeout
	case stepDrain:
		e.done = true
	}
}

// KillSchedule returns the termination schedule (see escalation), as
// offsets from the first fatal exception: the task kills, the shell kills,
// and the drain, at which the ranks still holding processes are drained
// and forced complete. It is the schedule the coordinator follows.
func (s Settings) KillSchedule() (tasks, shells []time.Duration, drain time.Duration) {
	e := newEscalation(s)
	for {
		at, step, ok := e.peek()
		if !ok {
			return tasks, shells, drain
		}
		switch step {
		case stepTaskKill:
			tasks = append(tasks, at)
		case stepShellKill:
			shells = append(shells, at)
		case stepDrain:
			drain = at
		}
		e.advance()
	}
}

// EffectiveMaxKillTimeout is the estimate shown in stats: the drain offset
// of KillSchedule, computed without listing the schedule.
func (s Settings) EffectiveMaxKillTimeout() time.Duration {
	if s.MaxKillTimeout > 0 {
		return s.MaxKillTimeout
	}
	e := newEscalation(s)
	for e.shells < e.maxCount && e.timeout < maxShellKillInterval {
		e.shells++
		e.timeout = min(2*e.timeout, maxShellKillInterval)
		e.nextShell += e.timeout
	}
	// Past the cap, the shell kills and the drain are 300 s apart.
	return e.nextShell + time.Duration(e.maxCount-e.shells)*maxShellKillInterval
}
