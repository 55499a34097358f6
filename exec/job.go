package exec

import (
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset/hostlist"
)

// Event is one entry of the exec eventlog (RFC 18 / RFC 50).
type Event struct {
	Timestamp float64        `json:"timestamp"`
	Name      string         `json:"name"`
	Context   map[string]any `json:"context,omitempty"`
}

// Response is one RFC 32 response to a start request.
type Response struct {
	ID   fluxkit.JobID  `json:"id"`
	Type string         `json:"type"`
	Data map[string]any `json:"data"`
}

type actionKind uint8

const (
	actRespond   actionKind = iota + 1 // send resp to the job manager
	actPost                            // append event to exec.eventlog
	actKill                            // signal ranks' shells (or their tasks)
	actCancel                          // do not spawn shells not yet started
	actDrain                           // drain ranks with reason
	actLostShell                       // tell the leader shell a shell was lost
)

// action is an effect the job machine asks its driver to carry out. The
// machine never performs I/O itself, so every decision is replayable under a
// virtual clock.
type action struct {
	kind      actionKind
	resp      Response
	event     Event
	ranks     []uint32 // broker ranks
	signal    syscall.Signal
	tasks     bool // actKill: the shells' tasks (shell-<id>.kill) rather than the shells
	direct    bool // actKill, actCancel: to each rank, not down the job's tree
	reason    string
	detail    string // actDrain: why, for the log
	shellRank int
	severity  int
}

type rankState uint8

const (
	rsPending rankState = iota // not known to be started
	rsRunning
	rsExited
	rsFailed // never started
	rsLost
	rsForced    // forced complete after unkillable
	rsCancelled // never launched: finalized before any shell started
)

func (s rankState) done() bool { return s >= rsExited }

// job is the pure per-job state machine of the coordinator: RFC 32
// responses, the exec eventlog, expiration, termination and release
// accounting. Every method takes the current time and appends actions; the
// driver drains them with take.
type job struct {
	id     fluxkit.JobID
	userid uint32
	rs     *resourceSet
	sorted bool // rs.ranks is sorted (always, from parseR)
	set    Settings

	st       []rankState
	status   []int
	released []bool
	critical []bool

	reattach    bool
	launched    bool // starting posted (or shells launched by a previous coordinator)
	holdStart   bool // testexec override: start withheld until released by override
	startSent   bool
	finishSent  bool
	finalSent   bool
	recoverable bool // mechanism can reattach; posted at start

	exc       bool // exception in progress
	earlyExit bool // shells exited before the first barrier (exitedBeforeBarrier)
	excSent   bool // our one fatal exception response went out
	excWait   *int // wait_status of the first fatal exception
	excEvent  bool // a fatal exception was seen or raised

	// Termination: the escalation walked from termStart (see kill.go).
	termArmed bool
	termStart time.Time
	esc       escalation
	// restored: the termination was restored from the exec eventlog after a
	// coordinator restart; its steps wait until every rank's state is known
	// again, so that nothing is drained that exited during the downtime.
	restored bool
	saved    termState // the termination state last posted
	// empty marks shell ranks whose agents answered a kill holding no
	// process of the job any more (their exits may still be on the way):
	// escalation no longer targets them and the drain spares them.
	empty []bool

	expiration  time.Time // zero: no limit
	shellExitAt time.Time // zero: not armed

	relBatch []uint32
	out      []action

	// launchService is the service that starts shells on each rank, named
	// when it is missing.
	launchService string

	// answerReattached: the request being answered asked for reattach, so
	// "reattached" answers it rather than "start".
	answerReattached bool
	finishStatus     int

	// doneStatus, when set, is the status of a job a reattach found done.
	doneStatus *int

	posted      map[string]bool // once-only events already in the eventlog (restored on reattach)
	holding     bool            // inputs are being applied as one batch; flush at the end
	signalFatal bool            // a signalled leader is fatal (real shells; not testexec)
	// multiuser: a guest's real shells, run under the IMP, which the
	// instance owner cannot signal directly but through the IMP: a shell
	// kill is SIGUSR1, which RFC 15's IMP turns into SIGKILL of the job's
	// cgroup, and task kills go through the job manager (actKill with
	// tasks, which the driver turns into job-manager.kill).
	multiuser bool
}

// batch applies several inputs as one: finish and releases are decided once
// at the end, so a report carrying exits and releases together yields one
// release response.
func (j *job) batch(now time.Time, fn func()) {
	j.holding = true
	fn()
	j.holding = false
	j.flush(now)
}

// index is the shell rank of broker rank r: its position in rs.ranks,
// which parseR sorts (a map per job cost more than the search).
func (j *job) index(r uint32) (int, bool) {
	if j.sorted {
		return slices.BinarySearch(j.rs.ranks, r)
	}
	i := slices.Index(j.rs.ranks, r)
	return i, i >= 0
}

func ts(now time.Time) float64 { return float64(now.UnixNano()) / 1e9 }

func newJob(now time.Time, id fluxkit.JobID, userid uint32, rs *resourceSet, set Settings, reattach bool) *job {
	n := len(rs.ranks)
	j := &job{
		id: id, userid: userid, rs: rs, set: set, reattach: reattach, answerReattached: reattach, signalFatal: true,
		st:       make([]rankState, n),
		status:   make([]int, n),
		released: make([]bool, n),
		critical: make([]bool, n),
		empty:    make([]bool, n),
		out:      make([]action, 0, actionBuf),
	}
	for i := range rs.ranks {
		j.critical[i] = true
	}
	j.sorted = slices.IsSorted(rs.ranks)
	if reattach {
		j.launched = true
		j.post(now, "reattach", nil)
	} else {
		j.post(now, "init", nil)
	}
	if rs.expiration < 0 {
		j.fatal(now, "exec", "Invalid resource set expiration")
	}
	return j
}

// actionBuf is the capacity of a job's action buffers: the largest normal
// step (shell-exit, complete, finish, done, release) has five actions.
const actionBuf = 8

func (j *job) take() []action {
	a := j.out
	j.out = nil
	return a
}

// swap is take for the driver: it returns the pending actions and continues
// in spare (emptied), which must not be in use. The driver passes back the
// previous step's slice, so two buffers serve a job's whole life: a step's
// actions are large structs, and regrowing a fresh slice on every step was
// the largest allocation per job.
func (j *job) swap(spare []action) []action {
	a := j.out
	clear(spare)
	j.out = spare[:0]
	return a
}

func (j *job) post(now time.Time, name string, ctx map[string]any) {
	switch name {
	case "recoverable", "shell-exit", "complete", "done":
		// At most once per job, across coordinator restarts (I8).
		if j.posted[name] {
			return
		}
		if j.posted == nil {
			j.posted = map[string]bool{}
		}
		j.posted[name] = true
	}
	j.out = append(j.out, action{kind: actPost, event: Event{Timestamp: ts(now), Name: name, Context: ctx}})
}

func (j *job) respond(typ string, data map[string]any) {
	if data == nil {
		data = map[string]any{}
	}
	j.out = append(j.out, action{kind: actRespond, resp: Response{ID: j.id, Type: typ, Data: data}})
}

// activeRanks are the broker ranks whose shells may still run.
func (j *job) activeRanks() []uint32 {
	var r []uint32
	for i, s := range j.st {
		if !s.done() {
			r = append(r, j.rs.ranks[i])
		}
	}
	return r
}

func (j *job) complete() bool {
	for _, s := range j.st {
		if !s.done() {
			return false
		}
	}
	return true
}

// launch records that shells are about to be started. A mechanism that
// recovers shells can from here on (the agents record a shell before they
// fork it), so recoverable goes with starting, in the same commit; the job
// manager asks for a reattach only once the job has started.
func (j *job) launch(now time.Time) {
	if j.launched || j.exc {
		return
	}
	j.launched = true
	j.post(now, "starting", nil)
	if j.recoverable {
		j.post(now, "recoverable", nil)
	}
}

// started marks ranks as running.
func (j *job) started(now time.Time, ranks []uint32) {
	for _, r := range ranks {
		if i, ok := j.index(r); ok && j.st[i] == rsPending {
			j.st[i] = rsRunning
			j.empty[i] = false // a late start after a kill found nothing there
		}
	}
	j.maybeStart(now)
	j.flush(now)
}

// resume answers a start request that took the job over from an earlier
// one: it repeats what that stream had told the job manager (start or
// reattached, finish, the ranks already released), so the new stream alone
// is complete. An exception already sent is not repeated: the job manager
// recorded it when it came.
func (j *job) resume(reattach bool) {
	if j.finalSent {
		return
	}
	j.answerReattached = reattach
	if j.startSent {
		if reattach {
			j.respond("reattached", nil)
		} else {
			j.respond("start", nil)
		}
	}
	if j.finishSent {
		j.respond("finish", map[string]any{"status": j.finishStatus})
	}
	var sent []uint32
	for i, rel := range j.released {
		if rel && !slices.Contains(j.relBatch, j.rs.ranks[i]) {
			sent = append(sent, j.rs.ranks[i])
		}
	}
	if len(sent) > 0 && j.finishSent {
		j.respond("release", map[string]any{"ranks": formatRanks(sent), "final": false})
	}
}

// releaseHold ends a testexec override hold.
func (j *job) releaseHold(now time.Time) {
	j.holdStart = false
	j.maybeStart(now)
	j.flush(now)
}

func (j *job) maybeStart(now time.Time) {
	if j.startSent || j.holdStart || j.exc || !j.launched {
		return
	}
	for _, s := range j.st {
		if s != rsRunning && s != rsExited {
			return
		}
	}
	j.startSent = true
	if j.answerReattached {
		j.respond("reattached", nil)
	} else {
		j.respond("start", nil)
	}
	j.armExpiration(now)
}

func (j *job) armExpiration(now time.Time) {
	exp := j.rs.expiration
	if exp <= 0 {
		j.expiration = time.Time{}
		return
	}
	if st := j.rs.starttime; st > 0 && exp > st && !j.reattach {
		delay := ts(now) - st
		if delay > 0 && delay/(exp-st)*100 > j.set.MaxStartDelayPercent {
			exp += delay
		}
	}
	j.expiration = time.Unix(0, int64(exp*1e9))
}

// setExpiration handles <service>.expiration: 0 disables the timer.
func (j *job) setExpiration(now time.Time, exp float64) {
	j.rs.expiration = exp
	if exp <= 0 {
		j.expiration = time.Time{}
		return
	}
	j.expiration = time.Unix(0, int64(exp*1e9))
}

// exited records a shell's raw wait status.
func (j *job) exited(now time.Time, rank uint32, status int) {
	i, ok := j.index(rank)
	if !ok || j.st[i].done() {
		return // duplicate reports are dropped (I2 is enforced upstream)
	}
	j.st[i] = rsExited
	j.status[i] = status
	if i == 0 {
		ctx := map[string]any{"rank": int(rank), "wait_status": status}
		if act := j.activeRanks(); len(act) > 0 {
			ctx["active_ranks"] = formatRanks(act)
			if !j.exc && j.set.ShellExitTimeout > 0 {
				j.shellExitAt = now.Add(j.set.ShellExitTimeout)
			}
		}
		j.post(now, "shell-exit", ctx)
	}
	if sig := status & 0x7f; sig != 0 && sig != 0x7f && !j.exc && j.signalFatal {
		what := fmt.Sprintf("shell rank %d (on %s): %s", i, j.rs.host(rank), syscall.Signal(sig))
		if i == 0 {
			j.fatal(now, "exec", what)
		} else {
			j.lostShell(i, 2, what)
		}
	}
	j.maybeStart(now)
	j.flush(now)
}

func (j *job) lostShell(shellRank, severity int, msg string) {
	j.out = append(j.out, action{kind: actLostShell, ranks: []uint32{j.rs.ranks[0]},
		shellRank: shellRank, severity: severity, reason: msg})
}

// failed records a launch failure (RFC 42 exec error) on rank.
func (j *job) failed(now time.Time, rank uint32, errno syscall.Errno, msg string) {
	i, ok := j.index(rank)
	if !ok || j.st[i].done() {
		return
	}
	if errno == fluxkit.EHOSTUNREACH {
		j.lost(now, rank)
		return
	}
	j.st[i] = rsFailed
	j.released[i] = true
	j.relBatch = append(j.relBatch, rank)
	switch errno {
	case syscall.EPERM, syscall.EACCES:
		j.status[i] = 126 << 8
	case syscall.ENOENT:
		j.status[i] = 127 << 8
	default:
		j.status[i] = 1 << 8
	}
	host := j.rs.host(rank)
	if errno == syscall.ENOSYS {
		// The service that is missing is the one that launches shells: the
		// agents' (flux-core names its rexec or sdexec here).
		svc := j.launchService
		if svc == "" {
			svc = j.set.Service
		}
		j.fatal(now, "exec", fmt.Sprintf("%s service is not loaded on %s (rank %d)", svc, host, rank))
	} else {
		j.fatal(now, "exec", fmt.Sprintf("job shell exec error on broker %s (rank %d): %s", host, rank, msg))
	}
	j.flush(now)
}

// cancelled records a rank whose shell was never spawned because the job
// was cancelled first: done, status unchanged, released.
func (j *job) cancelled(now time.Time, rank uint32) {
	i, ok := j.index(rank)
	if !ok || j.st[i].done() {
		return
	}
	j.st[i] = rsCancelled
	j.released[i] = true
	j.relBatch = append(j.relBatch, rank)
	j.flush(now)
}

// lost handles an unreachable rank (§2.5): it contributes status 0 and is
// released at once, since nothing on it can be cleaned up from here.
func (j *job) lost(now time.Time, rank uint32) {
	i, ok := j.index(rank)
	if !ok {
		return
	}
	if j.st[i].done() {
		// Its shell had exited, but its release (after its epilog) will
		// never come: release it now, or the job never ends.
		if !j.released[i] {
			j.released[i] = true
			j.relBatch = append(j.relBatch, rank)
			j.flush(now)
		}
		return
	}
	j.st[i] = rsLost
	j.status[i] = 0
	j.released[i] = true
	j.relBatch = append(j.relBatch, rank)
	host := j.rs.host(rank)
	if j.critical[i] {
		j.lostShell(i, 0, fmt.Sprintf("node failure on %s (rank %d)", host, rank))
		j.fatal(now, "node-failure", fmt.Sprintf("node failure on %s (rank %d)", host, rank))
	} else {
		note := fmt.Sprintf("node failure on %s (shell rank %d)", host, i)
		j.respond("exception", map[string]any{"severity": 2, "type": "node-failure", "note": note})
		j.lostShell(i, 2, note)
	}
	j.maybeStart(now)
	j.flush(now)
}

// releasedRanks records ranks whose shells exited and whose epilog finished.
// epilogErr, when set, names ranks whose epilog failed: they are released
// and drained.
func (j *job) releasedRanks(now time.Time, ranks []uint32, failedEpilog []uint32, why string) {
	for _, r := range ranks {
		if i, ok := j.index(r); ok && j.st[i].done() && !j.released[i] {
			j.released[i] = true
			j.relBatch = append(j.relBatch, r)
		}
	}
	if len(failedEpilog) > 0 {
		j.out = append(j.out, action{kind: actDrain, ranks: failedEpilog, reason: "epilog failed for job " + j.id.F58() + ": " + why})
	}
	j.flush(now)
}

// barrierTimedOut handles the first barrier's timeout: pending are the
// ranks whose shells never entered it.
func (j *job) barrierTimedOut(now time.Time, pending []uint32) {
	if j.exc {
		return
	}
	// User-facing texts: flux-core's, which sites match on.
	note := fmt.Sprintf("start barrier timeout waiting for %d/%d nodes (%s)", len(pending), len(j.rs.ranks), rankWords(pending))
	if len(pending) == 0 {
		note = fmt.Sprintf("start barrier timeout waiting for 0/%d nodes", len(j.rs.ranks))
	}
	j.fatal(now, "exec", note)
	if len(pending) > 0 {
		j.out = append(j.out, action{kind: actDrain, ranks: pending, reason: "job " + j.id.F58() + " start timeout: possible node hang"})
	}
}

// exitedBeforeBarrier handles shells that exited before the first barrier
// completed: fatal, and for a guest's job (run under the IMP, where this
// often means a bad node, e.g. its munge key) the ranks among them that
// never entered the barrier are drained, as flux-core drains the
// intersection of the exited and the still pending ranks. As in flux-core,
// later early exits are still handled while the first one's exception is in
// progress, so that each bad node is drained; only the first exception is
// sent.
func (j *job) exitedBeforeBarrier(now time.Time, early, unentered []uint32, guest bool) {
	if len(early) == 0 || (j.exc && !j.earlyExit) {
		return
	}
	j.earlyExit = true
	j.fatal(now, "exec", fmt.Sprintf("%s terminated before first barrier", j.rs.where(early)))
	if drain := intersect(early, unentered); guest && len(drain) > 0 {
		j.out = append(j.out, action{kind: actDrain, ranks: drain, reason: j.id.F58() + " terminated before first barrier"})
	}
}

// intersect returns the sorted ranks in both a and b.
func intersect(a, b []uint32) []uint32 {
	var out []uint32
	for _, r := range a {
		if slices.Contains(b, r) {
			out = append(out, r)
		}
	}
	sortRanks(out)
	return out
}

// setCritical replaces the critical shell ranks.
func (j *job) setCritical(shellRanks []uint32) error {
	for _, r := range shellRanks {
		if int(r) >= len(j.st) {
			return fmt.Errorf("critical-ranks: shell rank %d is not in the job (size %d)", r, len(j.st))
		}
	}
	for i := range j.critical {
		j.critical[i] = false
	}
	for _, r := range shellRanks {
		j.critical[r] = true
	}
	return nil
}

// exception handles the job-exception event published by the job manager.
func (j *job) exception(now time.Time, severity int, waitStatus *int) {
	if severity != 0 {
		return
	}
	if j.excWait == nil && !j.excEvent && waitStatus != nil {
		w := *waitStatus
		j.excWait = &w
	}
	j.excEvent = true
	if j.exc {
		if j.launched && !j.complete() {
			j.kill(j.set.TermSignal, false)
		}
		j.flush(now)
		return
	}
	j.terminate(now, j.set.TermSignal, true)
	j.flush(now)
}

// fatal raises a fatal exception from inside the exec service; only the
// first one is sent to the job manager.
func (j *job) fatal(now time.Time, typ, note string) {
	j.excEvent = true
	if !j.excSent {
		j.excSent = true
		j.respond("exception", map[string]any{"severity": 0, "type": typ, "note": note})
	}
	if !j.exc {
		j.terminate(now, j.set.TermSignal, true)
	}
	j.flush(now)
}

func (j *job) kill(sig syscall.Signal, tasks bool) {
	if hold := j.holdingRanks(); len(hold) > 0 {
		j.out = append(j.out, action{kind: actKill, ranks: hold, signal: sig, tasks: tasks})
	}
}

// holdingRanks are the active ranks not known to be empty: those that may
// still hold processes of the job.
func (j *job) holdingRanks() []uint32 {
	var r []uint32
	for i, s := range j.st {
		if !s.done() && !j.empty[i] {
			r = append(r, j.rs.ranks[i])
		}
	}
	return r
}

// killAcked records what delivering a kill (the driver's actKill or
// actCancel a) found, rank by rank: ranks whose shells still run, ranks
// where nothing of the job runs any more, and ranks the kill did not reach
// through the job's tree, which get it again directly, once.
func (j *job) killAcked(a action, held, empty, unreached []uint32) {
	for _, r := range held {
		if i, ok := j.index(r); ok {
			j.empty[i] = false
		}
	}
	for _, r := range empty {
		if i, ok := j.index(r); ok {
			j.empty[i] = true
		}
	}
	if a.direct {
		return
	}
	var again []uint32
	for _, r := range unreached {
		if i, ok := j.index(r); ok && !j.st[i].done() {
			again = append(again, r)
		}
	}
	if len(again) > 0 {
		a.ranks, a.direct = again, true
		j.out = append(j.out, a)
	}
}

// terminate starts the termination algorithm (§2.6). cancel is false for an
// expired time limit: pending launches go ahead.
func (j *job) terminate(now time.Time, sig syscall.Signal, cancel bool) {
	j.exc = true
	j.shellExitAt = time.Time{}
	if !j.launched {
		// Nothing was started: finalize at once, no finish.
		for i := range j.st {
			if !j.st[i].done() {
				j.st[i] = rsCancelled
				j.released[i] = true
				j.relBatch = append(j.relBatch, j.rs.ranks[i])
			}
		}
		return
	}
	if j.complete() {
		return
	}
	if cancel {
		j.out = append(j.out, action{kind: actCancel, ranks: j.activeRanks()})
	}
	j.kill(sig, false)
	if !j.termArmed {
		j.termArmed = true
		j.termStart = now
		j.esc = newEscalation(j.set)
	}
}

// termNext is the time of the next termination step.
func (j *job) termNext() (time.Time, escStep, bool) {
	if !j.termArmed || j.restored && slices.Contains(j.st, rsPending) {
		return time.Time{}, 0, false
	}
	at, step, ok := j.esc.peek()
	return j.termStart.Add(at), step, ok
}

// killTimeout is the job's kill-timeout as stats show it: the configured
// one, doubled with each shell kill (capped), as in flux-core.
func (j *job) killTimeout() time.Duration {
	if j.esc.kto == 0 { // termination never started
		return j.set.KillTimeout
	}
	return j.esc.timeout
}

// next is the earliest armed deadline.
func (j *job) next() (time.Time, bool) {
	var t time.Time
	consider := func(d time.Time) {
		if !d.IsZero() && (t.IsZero() || d.Before(t)) {
			t = d
		}
	}
	if !j.complete() {
		consider(j.expiration)
		consider(j.shellExitAt)
		if t, _, ok := j.termNext(); ok {
			consider(t)
		}
	}
	return t, !t.IsZero()
}

// tick fires every deadline at or before now, in time order.
func (j *job) tick(now time.Time) {
	for {
		d, ok := j.next()
		if !ok || d.After(now) {
			break
		}
		switch {
		case !j.expiration.IsZero() && d.Equal(j.expiration):
			j.expiration = time.Time{}
			if !j.excSent {
				j.excSent = true
				j.respond("exception", map[string]any{"severity": 0, "type": "timeout", "note": "resource allocation expired"})
			}
			if !j.exc {
				j.terminate(d, syscall.SIGALRM, false)
			}
		case d.Equal(j.shellExitAt):
			j.shellExitAt = time.Time{}
			if !j.exc {
				j.fatal(d, "exec", fmt.Sprintf("job shells still active on %s %s after leader shell exit",
					j.rs.where(j.activeRanks()), formatFSD(j.set.ShellExitTimeout)))
			}
		default:
			_, step, _ := j.termNext()
			j.esc.advance()
			switch step {
			case stepTaskKill:
				j.kill(j.set.KillSignal, true)
			case stepShellKill:
				sig := j.set.KillSignal
				if j.multiuser {
					sig = syscall.SIGUSR1
				}
				j.kill(sig, false)
			case stepDrain:
				why := "exceeded max kill count"
				if j.set.MaxKillTimeout > 0 {
					why = "exceeded max-kill-timeout"
				}
				j.unkillable(d, why)
			}
		}
	}
	j.flush(now)
}

// rankWords names broker ranks as flux-core's notes do when it gets the
// plural right: "rank 5", "ranks 2,7".
func rankWords(ranks []uint32) string {
	if len(ranks) == 1 {
		return "rank " + strconv.FormatUint(uint64(ranks[0]), 10)
	}
	return "ranks " + formatRanks(ranks)
}

// hostsOf is the RFC 29 hostlist of ranks' hosts, "node[2,7]", as
// flux_hostmap_lookup gives it.
func (rs *resourceSet) hostsOf(ranks []uint32) string {
	var b hostlist.Builder
	for _, r := range ranks {
		b.Append(rs.host(r))
	}
	return b.Hostlist().String()
}

// where is "<hosts> (<rank words>)", the way flux-core's notes place a set
// of ranks.
func (rs *resourceSet) where(ranks []uint32) string {
	return rs.hostsOf(ranks) + " (" + rankWords(ranks) + ")"
}

// unkillable forces the ranks still active complete, and drains those of
// them that may still hold processes: a rank whose agent answered the last
// kill with nothing left to kill is not drained, though its exit report
// has not arrived.
func (j *job) unkillable(now time.Time, why string) {
	act := j.activeRanks()
	j.termArmed = false
	if len(act) == 0 {
		return
	}
	// The reason is flux-core's, word for word: sites match on it. Why
	// goes to the log.
	if hold := j.holdingRanks(); len(hold) > 0 {
		j.out = append(j.out, action{kind: actDrain, ranks: hold, reason: "unkillable user processes for job " + j.id.F58(), detail: why})
	}
	for _, r := range act {
		i, _ := j.index(r)
		j.st[i] = rsForced
		j.status[i] = 1 << 8
		j.released[i] = true
		j.relBatch = append(j.relBatch, r)
	}
}

// over takes up a job whose exec eventlog says it is done, with status:
// a coordinator went away after posting done and before release final.
// Every rank counts as exited and released; the responses follow.
func (j *job) over(now time.Time, status int) {
	j.doneStatus = &status
	for i := range j.st {
		if !j.st[i].done() {
			j.st[i], j.status[i] = rsExited, status
		}
		if !j.released[i] {
			j.released[i] = true
			j.relBatch = append(j.relBatch, j.rs.ranks[i])
		}
	}
	j.termArmed = false
	j.maybeStart(now)
	j.flush(now)
}

// finalStatus applies the status rule (I5).
func (j *job) finalStatus() int {
	if j.doneStatus != nil {
		return *j.doneStatus
	}
	if j.excWait != nil {
		w := *j.excWait
		code := (w >> 8) & 0xff
		if sig := w & 0x7f; sig != 0 && sig != 0x7f {
			code = 128 + sig
		}
		return code << 8
	}
	st := 0
	for i, s := range j.st {
		if s != rsLost && j.status[i] > st {
			st = j.status[i]
		}
	}
	if st == 0 && j.excEvent {
		st = 1 << 8
	}
	return st
}

// termState is what of a termination in progress a new coordinator needs:
// it is posted to the exec eventlog ("termination") whenever it changes,
// and restored from the last such event on reattach.
type termState struct {
	start         float64 // timestamp the escalation counts from
	tasks, shells int     // escalation steps taken
	waitStatus    *int    // the first fatal exception's wait_status
	sent          bool    // exec's own exception response went out
	event         bool    // a fatal exception was seen or raised
}

func (t termState) equal(u termState) bool {
	return t.start == u.start && t.tasks == u.tasks && t.shells == u.shells && t.sent == u.sent && t.event == u.event &&
		(t.waitStatus == nil) == (u.waitStatus == nil) && (t.waitStatus == nil || *t.waitStatus == *u.waitStatus)
}

// saveTermination posts the termination state when it changed.
func (j *job) saveTermination(now time.Time) {
	if !j.termArmed {
		return
	}
	st := termState{start: ts(j.termStart), tasks: j.esc.tasks, shells: j.esc.shells, waitStatus: j.excWait, sent: j.excSent, event: j.excEvent}
	if st.equal(j.saved) {
		return
	}
	j.saved = st
	ctx := map[string]any{"start": st.start, "tasks": st.tasks, "shells": st.shells, "sent": st.sent, "exception": st.event}
	if st.waitStatus != nil {
		ctx["wait_status"] = *st.waitStatus
	}
	j.out = append(j.out, action{kind: actPost, event: Event{Timestamp: ts(now), Name: "termination", Context: ctx}})
}

// restoreTermination takes up a termination a previous coordinator started,
// from the context of its last "termination" event: the steps it took are
// not repeated; of those whose time passed during the downtime only the
// last is taken, as soon as the ranks' states are known again: one catch-up
// kill (or the drain) rather than a burst.
func (j *job) restoreTermination(now time.Time, ctx map[string]any) {
	start, ok := ctx["start"].(float64)
	if !ok || start <= 0 {
		return
	}
	num := func(k string) int {
		f, _ := ctx[k].(float64)
		return int(f)
	}
	j.exc, j.excEvent = true, true
	j.excSent, _ = ctx["sent"].(bool)
	if ev, ok := ctx["exception"].(bool); ok {
		j.excEvent = ev
	}
	if ws, ok := ctx["wait_status"].(float64); ok {
		w := int(ws)
		j.excWait = &w
	}
	j.shellExitAt = time.Time{}
	j.termArmed, j.restored = true, true
	j.termStart = time.Unix(0, int64(start*1e9))
	j.esc = newEscalation(j.set)
	tasks, shells := num("tasks"), num("shells")
	for j.esc.tasks < tasks || j.esc.shells < shells {
		if _, step, ok := j.esc.peek(); !ok || step == stepDrain {
			break // the settings changed under a restart: go on from here
		}
		j.esc.advance()
	}
	elapsed := now.Sub(j.termStart)
	for {
		next := j.esc
		next.advance()
		at, _, ok := next.peek()
		if !ok || at > elapsed {
			break
		}
		j.esc = next
	}
	j.saved = termState{start: start, tasks: tasks, shells: shells, waitStatus: j.excWait, sent: j.excSent, event: j.excEvent}
}

// flush emits finish and releases that became due, in RFC 32 order.
func (j *job) flush(now time.Time) {
	if j.holding {
		return
	}
	j.saveTermination(now)
	if j.finalSent {
		j.relBatch = nil
		return
	}
	if j.complete() {
		j.termArmed = false
		j.shellExitAt = time.Time{}
		j.expiration = time.Time{}
		if j.launched && !j.finishSent {
			j.finishSent = true
			st := j.finalStatus()
			j.finishStatus = st
			j.post(now, "complete", map[string]any{"status": st})
			j.respond("finish", map[string]any{"status": st})
		}
	}
	if len(j.relBatch) == 0 {
		return
	}
	final := true
	for _, r := range j.released {
		final = final && r
	}
	if j.launched && !j.finishSent {
		// Releases wait for finish: RFC 32 allows final:false earlier, but
		// holding them keeps the stream start, finish, releases in every
		// normal run and makes finish-before-final trivially true.
		return
	}
	batch := j.relBatch
	j.relBatch = nil
	if final {
		j.finalSent = true
		j.post(now, "done", nil)
	}
	j.respond("release", map[string]any{"ranks": formatRanks(batch), "final": final})
}
