package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit"
)

// AgentConfig configures the per-rank agent.
type AgentConfig struct {
	// Handle is the agent's connection to its own rank (required). It must
	// carry the owner role.
	Handle fluxkit.Handle
	// Service is the agent's service name. Default "exec-agent".
	Service string
	// OutputBuffer is how many bytes of each stream of each shell are held
	// before the shell is made to wait (back-pressure). Default 1 MiB.
	OutputBuffer int
	// OutputChunk is the largest piece of output sent upstream in one RPC.
	// Default 256 KiB.
	OutputChunk int
	// BatchWindow is how long exits and releases are held to be sent
	// upstream together. Default 10ms, as flux-core batches exits.
	BatchWindow time.Duration
	// Clock drives testexec shells and batching. Default the real clock.
	Clock Clock
	// Logger receives diagnostics. Default discards.
	Logger *slog.Logger
	// OnSpawn, when set, is called once for every shell started (tests use
	// it to check that no rank ever starts a job's shell twice).
	OnSpawn func(id fluxkit.JobID, rank uint32)
}

// Agent runs on every rank: it spawns the shells of its own rank, forwards
// launches to its children in the job's tree and aggregates their reports.
type Agent struct {
	cfg   AgentConfig
	h     fluxkit.Handle
	rank  uint32
	log   *slog.Logger
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	unreg []func()

	mu   sync.Mutex
	jobs map[fluxkit.JobID]*agentJob

	spawned, reaped, msgs atomic.Int64

	// spawnErr, set by tests before any launch, makes a spawn fail.
	spawnErr func(id fluxkit.JobID, rank uint32) error
	// deafTest, set by tests, makes simulated shells ignore signals.
	deafTest bool
	// killFault, set by tests, fails the forwarding of kills to a child.
	killFault func(child uint32) error
}

// AgentStats counts what an agent did.
type AgentStats struct {
	Jobs     int   // jobs with a record
	Spawned  int64 // shells started
	Reaped   int64 // shells waited for
	Messages int64 // requests and responses sent or received
}

type rstat struct {
	started, adopted, exited, released, lost bool
	unentered                                bool // exited before the first barrier without entering it
	status                                   int
	failed                                   *failWire
	epFail                                   string
}

func (s rstat) finished() bool { return s.released || s.lost || s.failed != nil }

type agentJob struct {
	req      launchReq
	ranks    []uint32
	pos      int
	children []uint32          // broker ranks of the tree children
	under    map[uint32]uint32 // subtree rank -> child rank it is reached through (self maps to self)
	sub      []uint32          // subtree ranks

	up        fluxkit.Responder
	upEnded   bool
	st        map[uint32]*rstat
	rep       map[uint32]rstat
	calls     map[uint32]fluxkit.Call
	flushStop func() bool
	cancelled bool
	forgotten bool

	proc    proc
	stopOut chan struct{}

	// Shell barriers (§2.4), reduced up the job's tree and released down
	// it by the leader; rank 0 takes no part unless it is in the job.
	barDone     int                 // barriers completed
	barFail     bool                // a shell exited while a barrier was pending
	barParked   []fluxkit.Responder // the local shell's pending entry
	barEntered  map[uint32]int      // subtree rank -> highest barrier entered
	barUp       int                 // highest barrier the whole subtree entered
	barUpSent   int
	barFailSent bool
	barDoneSent int
	// First-barrier timeout: the leader's timer, then a query reduced up
	// the tree to find exactly which shells never entered.
	barTimer    func() bool
	barQuery    bool
	barWait     map[uint32]bool // children whose answer is awaited
	barPending  []uint32
	barAnswered bool // our answer (or, at the leader, the timeout) is ready to go up
	barAnsSent  bool
}

// Validate checks cfg as NewAgent does. Zero values stand for the
// documented defaults.
func (cfg AgentConfig) Validate() error {
	if cfg.Handle == nil {
		return errors.New("exec agent: AgentConfig.Handle is required")
	}
	if err := checkServiceName(cfg.Service); err != nil {
		return fmt.Errorf("exec agent: AgentConfig.Service: %w", err)
	}
	if cfg.OutputBuffer < 0 || cfg.OutputChunk < 0 {
		return fmt.Errorf("exec agent: AgentConfig.OutputBuffer %d and OutputChunk %d must not be negative", cfg.OutputBuffer, cfg.OutputChunk)
	}
	if cfg.BatchWindow < 0 {
		return fmt.Errorf("exec agent: AgentConfig.BatchWindow %v must not be negative", cfg.BatchWindow)
	}
	return nil
}

// NewAgent validates cfg ([AgentConfig.Validate]) and registers the agent's
// service.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Service == "" {
		cfg.Service = "exec-agent"
	}
	if cfg.OutputBuffer == 0 {
		cfg.OutputBuffer = 1 << 20
	}
	if cfg.OutputChunk == 0 {
		cfg.OutputChunk = 256 << 10
	}
	if cfg.BatchWindow == 0 {
		cfg.BatchWindow = 10 * time.Millisecond
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, h: cfg.Handle, rank: cfg.Handle.Rank(), log: cfg.Logger, jobs: map[fluxkit.JobID]*agentJob{}}
	a.ctx, a.stop = context.WithCancel(context.Background())
	for _, hd := range []struct {
		topic string
		allow fluxkit.Role
		fn    fluxkit.HandlerFunc
	}{
		{"launch", fluxkit.RoleNone, a.handleLaunch},
		{"kill", fluxkit.RoleNone, a.handleKill},
		{"forget", fluxkit.RoleNone, a.handleForget},
		{"barrier-release", fluxkit.RoleNone, a.handleBarrierRelease},
		{"barrier-query", fluxkit.RoleNone, a.handleBarrierQuery},
		// Shells run as the job's user.
		{"barrier-enter", fluxkit.RoleUser, a.handleBarrierEnter},
	} {
		topic := hd.topic
		un, err := a.h.Register(cfg.Service+"."+topic, hd.allow, hd.fn)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("exec agent: register %s.%s: %w", cfg.Service, topic, err)
		}
		a.unreg = append(a.unreg, un)
	}
	return a, nil
}

// Close unregisters the agent, kills every shell it still runs (a closed
// agent must not leave children behind) and waits for its goroutines.
func (a *Agent) Close() error {
	for _, un := range a.unreg {
		un()
	}
	a.mu.Lock()
	for _, j := range a.jobs {
		a.dropLocked(j)
	}
	a.jobs = map[fluxkit.JobID]*agentJob{}
	a.mu.Unlock()
	a.stop()
	a.wg.Wait()
	return nil
}

// Stats returns the agent's counters.
func (a *Agent) Stats() AgentStats {
	a.mu.Lock()
	n := len(a.jobs)
	a.mu.Unlock()
	return AgentStats{Jobs: n, Spawned: a.spawned.Load(), Reaped: a.reaped.Load(), Messages: a.msgs.Load()}
}

func (a *Agent) goOwned(fn func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn()
	}()
}

// dropLocked forgets a job's record: child streams closed, timers stopped,
// and the shell killed if it still runs.
func (a *Agent) dropLocked(j *agentJob) {
	j.forgotten = true
	if j.flushStop != nil {
		j.flushStop()
	}
	if j.barTimer != nil {
		j.barTimer()
	}
	for _, c := range j.calls {
		c.Close()
	}
	j.calls = nil
	if j.proc != nil {
		_ = j.proc.signal(syscall.SIGKILL)
		j.proc.release()
	}
	if j.stopOut != nil {
		close(j.stopOut)
		j.stopOut = nil
	}
}

func (a *Agent) handleLaunch(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	a.msgs.Add(1)
	if !fluxkit.RequireStreaming(w, req) {
		return
	}
	var lr launchReq
	if err := decodeLaunch(req, &lr); err != nil {
		_ = w.RespondError(err)
		return
	}
	ranks, err := parseRanks(lr.Ranks)
	if err != nil || len(ranks) == 0 {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "launch: bad ranks %q", lr.Ranks))
		return
	}
	pos, found := slices.BinarySearch(ranks, a.rank)
	if !found {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "launch: rank %d is not in %s", a.rank, lr.Ranks))
		return
	}
	if err := lr.validate(); err != nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "launch: %v", err))
		return
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	j := a.jobs[lr.ID]
	fresh := j == nil || j.sub == nil // a placeholder left by an early cancel is fresh too
	if fresh {
		cancelled := j != nil && j.cancelled
		j = &agentJob{req: lr, ranks: ranks, pos: pos, st: map[uint32]*rstat{}, under: map[uint32]uint32{}, cancelled: cancelled,
			barEntered: map[uint32]int{}}
		for _, c := range treeChildren(pos, len(ranks), lr.Fanout) {
			child := ranks[c]
			j.children = append(j.children, child)
			for _, p := range subtree(c, len(ranks), lr.Fanout) {
				j.under[ranks[p]] = child
			}
		}
		j.under[a.rank] = a.rank
		for r := range j.under {
			j.sub = append(j.sub, r)
			j.st[r] = &rstat{}
		}
		slices.Sort(j.sub)
		a.jobs[lr.ID] = j
	}
	// A new upstream (a restarted coordinator, or a re-sent start) gets the
	// whole state again; the old stream, if any, is abandoned.
	j.up = w
	j.upEnded = false
	j.rep = map[uint32]rstat{}
	// The barriers too: the coordinator (or parent) behind the new stream
	// knows nothing of those already passed. A barrier timeout the leader
	// reported is not repeated: it ended the job, and that termination is
	// the coordinator's to restore.
	j.barUpSent, j.barDoneSent, j.barFailSent = 0, 0, false
	for _, c := range j.calls {
		c.Close()
	}
	j.calls = map[uint32]fluxkit.Call{}
	// Forward first so that the subtree launches in parallel with our spawn.
	if len(j.children) > 0 {
		fwd := encodeLaunch(&lr)
		for _, child := range j.children {
			a.forwardLocked(j, child, fwd)
		}
	}
	if !fresh && !lr.Reattach {
		// A start re-sent without reattach: whatever already runs in the
		// subtree was started by an earlier launch.
		for _, s := range j.st {
			if s.started {
				s.adopted = true
			}
		}
	}
	self := j.st[a.rank]
	switch {
	case j.proc != nil || self.exited || self.failed != nil:
	case lr.Reattach:
		// Reattach never spawns: a shell we have no record of is lost.
		self.lost = true
	case j.cancelled:
		self.failed = &failWire{Rank: a.rank, Errno: int(syscall.ECANCELED), Msg: "canceled before launch"}
	default:
		a.spawnLocked(j)
	}
	a.evalLocked(j)
}

func (a *Agent) forwardLocked(j *agentJob, child uint32, lr []byte) {
	a.msgs.Add(1)
	call, err := fluxkit.Stream(a.ctx, a.h, a.cfg.Service+".launch", child, lr)
	if err != nil {
		a.childFailedLocked(j, child, err)
		return
	}
	j.calls[child] = call
	a.goOwned(func() { a.readChild(j, child, call) })
}

// readChild merges a child's reports into the job's state until its stream
// ends.
func (a *Agent) readChild(j *agentJob, child uint32, call fluxkit.Call) {
	for {
		m, err := call.Recv(a.ctx)
		a.mu.Lock()
		if j.forgotten || j.calls[child] != call {
			a.mu.Unlock()
			return
		}
		if err != nil {
			delete(j.calls, child)
			if !errors.Is(err, fluxkit.ENODATA) {
				a.childFailedLocked(j, child, err)
			}
			a.evalLocked(j)
			a.mu.Unlock()
			return
		}
		a.msgs.Add(1)
		var rep report
		if err := decodeReport(m.Payload, &rep); err != nil {
			a.log.Warn("exec agent: bad report", "job", j.req.ID, "child", child, "err", err)
		} else {
			a.mergeLocked(j, child, &rep)
			a.barrierEvalLocked(j)
		}
		a.evalLocked(j)
		a.mu.Unlock()
	}
}

// childFailedLocked accounts for a child whose stream failed: an unreachable
// child makes its unfinished subtree lost; a child without an agent makes
// it failed (nothing was spawned there through us).
func (a *Agent) childFailedLocked(j *agentJob, child uint32, err error) {
	errno := fluxkit.Errno(err)
	for r, via := range j.under {
		if via != child || j.st[r].finished() {
			continue
		}
		s := j.st[r]
		if errno == fluxkit.ENOSYS || (errno != fluxkit.EHOSTUNREACH && errno != fluxkit.ECONNRESET && !s.started) {
			s.failed = &failWire{Rank: r, Errno: int(errno), Msg: fmt.Sprintf("launch via rank %d: %v", child, err)}
		} else {
			s.lost = true
		}
	}
}

func (a *Agent) mergeLocked(j *agentJob, child uint32, rep *report) {
	if rep.Barrier > 0 {
		for r, via := range j.under {
			if via == child && j.barEntered[r] < rep.Barrier {
				j.barEntered[r] = rep.Barrier
			}
		}
	}
	if rep.BarrierFail {
		a.barrierFailLocked(j)
	}
	if rep.BarrierQueried && j.barWait[child] {
		delete(j.barWait, child)
		for _, r := range ranksOf(rep.BarrierPending) {
			if _, ok := j.under[r]; ok {
				j.barPending = append(j.barPending, r)
			}
		}
		a.barrierQueryDoneLocked(j)
	}
	each := func(s string, f func(*rstat)) {
		ids, err := parseRanks(s)
		if err != nil {
			a.log.Warn("exec agent: bad idset in report", "idset", s)
			return
		}
		for _, r := range ids {
			if st, ok := j.st[r]; ok {
				f(st)
			}
		}
	}
	each(rep.Started, func(s *rstat) { s.started = true })
	each(rep.Adopted, func(s *rstat) { s.started, s.adopted = true, true })
	for _, f := range rep.Failed {
		if s, ok := j.st[f.Rank]; ok {
			fw := f
			s.failed = &fw
		}
	}
	for _, e := range rep.Exited {
		st := e.Status
		each(e.Ranks, func(s *rstat) { s.started, s.exited, s.status = true, true, st })
	}
	each(rep.Released, func(s *rstat) { s.released = true })
	for _, f := range rep.EpilogFailed {
		if s, ok := j.st[f.Rank]; ok {
			s.epFail = f.Msg
		}
	}
	each(rep.Lost, func(s *rstat) { s.lost = true })
	each(rep.Unentered, func(s *rstat) { s.unentered = true })
}

// evalLocked decides whether the subtree's news goes upstream now: failures
// and losses at once, starts once the whole subtree started, exits and
// releases when the whole subtree is done or after the batch window.
func (a *Agent) evalLocked(j *agentJob) {
	if j.upEnded || j.forgotten {
		return
	}
	urgent, newStart, newEnd, newExit := false, false, false, false
	allStarted, allDone, allExited := true, true, true
	for _, r := range j.sub {
		s, old := *j.st[r], j.rep[r]
		if s.exited && !old.exited {
			newExit = true
			if r == a.rank && j.pos == 0 {
				urgent = true // the leader shell's exit starts shell-exit-timeout
			}
		}
		if !s.exited && !s.finished() {
			allExited = false
		}
		if s.exited && !old.exited && j.req.Barriers && j.barDone < 1 {
			urgent = true // an exit before the first barrier fails the job
		}
		if (s.failed != nil && old.failed == nil) || (s.lost && !old.lost) || (s.epFail != "" && old.epFail == "") {
			urgent = true
		}
		if (s.started && !old.started) || (s.adopted && !old.adopted) {
			newStart = true
		}
		if (s.exited && !old.exited) || (s.released && !old.released) {
			newEnd = true
		}
		if !s.started && s.failed == nil && !s.lost {
			allStarted = false
		}
		if !s.finished() {
			allDone = false
		}
	}
	// The leader holds exits and releases until every shell has exited, so
	// that the coordinator on rank 0 gets a constant number of reports per
	// job whatever its size (I9); other nodes batch over BatchWindow.
	leader := j.pos == 0
	if leader && allStarted && j.req.Barriers && j.req.BarrierTimeout > 0 && j.barTimer == nil && j.barDone == 0 {
		j.barTimer = a.cfg.Clock.AfterFunc(j.req.BarrierTimeout, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			if !j.forgotten && j.barDone == 0 && !j.barFail {
				a.barrierQueryLocked(j)
				a.evalLocked(j)
			}
		})
	}
	switch {
	case j.barAnswered && !j.barAnsSent:
		a.flushLocked(j)
	case urgent || allDone || (newStart && allStarted) || (leader && allExited && newExit) ||
		j.barUp > j.barUpSent || (j.barFail && !j.barFailSent) || (leader && j.barDone > j.barDoneSent):
		a.flushLocked(j)
	case newEnd && (!leader || allExited) && j.flushStop == nil:
		j.flushStop = a.cfg.Clock.AfterFunc(a.cfg.BatchWindow, func() {
			a.mu.Lock()
			defer a.mu.Unlock()
			j.flushStop = nil
			if !j.forgotten {
				a.flushLocked(j)
			}
		})
	}
}

func (a *Agent) flushLocked(j *agentJob) {
	if j.upEnded {
		return
	}
	if j.flushStop != nil {
		j.flushStop()
		j.flushStop = nil
	}
	var rep report
	var started, adopted, released, lost, unentered []uint32
	exits := map[int][]uint32{}
	allDone := true
	for _, r := range j.sub {
		s, old := *j.st[r], j.rep[r]
		if s.started && !old.started && !s.adopted {
			started = append(started, r)
		}
		if s.adopted && !old.adopted {
			adopted = append(adopted, r)
		}
		if s.failed != nil && old.failed == nil {
			rep.Failed = append(rep.Failed, *s.failed)
		}
		if s.exited && !old.exited {
			exits[s.status] = append(exits[s.status], r)
			if s.unentered {
				unentered = append(unentered, r)
			}
		}
		if s.released && !old.released {
			released = append(released, r)
		}
		if s.epFail != "" && old.epFail == "" {
			rep.EpilogFailed = append(rep.EpilogFailed, failWire{Rank: r, Msg: s.epFail})
		}
		if s.lost && !old.lost {
			lost = append(lost, r)
		}
		allDone = allDone && s.finished()
		j.rep[r] = s
	}
	rep.Started, rep.Adopted, rep.Released, rep.Lost = formatRanks(started), formatRanks(adopted), formatRanks(released), formatRanks(lost)
	rep.Unentered = formatRanks(unentered)
	if j.barUp > j.barUpSent {
		rep.Barrier, j.barUpSent = j.barUp, j.barUp
	}
	if j.barFail && !j.barFailSent {
		rep.BarrierFail, j.barFailSent = true, true
	}
	if j.pos == 0 && j.barDone > j.barDoneSent {
		rep.Barriers, j.barDoneSent = j.barDone, j.barDone
	}
	if j.barAnswered && !j.barAnsSent {
		j.barAnsSent = true
		rep.BarrierPending = formatRanks(j.barPending)
		if j.pos == 0 {
			rep.BarrierTimeout = true
		} else {
			rep.BarrierQueried = true
		}
	}
	statuses := make([]int, 0, len(exits))
	for st := range exits {
		statuses = append(statuses, st)
	}
	slices.Sort(statuses)
	for _, st := range statuses {
		rep.Exited = append(rep.Exited, exitWire{Ranks: formatRanks(exits[st]), Status: st})
	}
	if !rep.empty() {
		a.msgs.Add(1)
		_ = j.up.Respond(encodeReport(&rep))
	}
	if allDone {
		j.upEnded = true
		a.msgs.Add(1)
		_ = j.up.RespondError(fluxkit.Errorf(fluxkit.ENODATA, "end of launch stream"))
	}
}

// shellEnv is the environment a Flux job shell sees, plus the agent's own.
func shellEnv(lr *launchReq, shellRank, size int) []string {
	env := os.Environ()
	for k, v := range lr.Env {
		env = append(env, k+"="+v)
	}
	return append(env,
		"FLUX_JOB_ID="+lr.ID.F58(),
		"FLUX_JOB_USERID="+strconv.FormatUint(uint64(lr.Userid), 10),
		"FLUX_JOB_SIZE="+strconv.Itoa(size),
		"FLUX_JOB_NNODES="+strconv.Itoa(size),
		"FLUX_TASK_RANK="+strconv.Itoa(shellRank),
		"JOB_SHELL_RANK="+strconv.Itoa(shellRank),
		"FLUX_KVS_NAMESPACE=job-"+lr.ID.Dec(),
	)
}

func (a *Agent) spawnLocked(j *agentJob) {
	self := j.st[a.rank]
	lr := &j.req
	var p proc
	switch lr.Method {
	case MethodTestExec:
		tc := &testConf{}
		if lr.Test != nil {
			tc.runDuration, tc.waitStatus = lr.Test.RunDuration, lr.Test.WaitStatus
		}
		p = newTestProc(a.cfg.Clock, tc, a.deafTest)
	default:
		if a.spawnErr != nil {
			if err := a.spawnErr(lr.ID, a.rank); err != nil {
				self.failed = &failWire{Rank: a.rank, Errno: int(spawnErrno(err)), Msg: err.Error()}
				return
			}
		}
		fp, err := forkSpawn(spawnSpec{argv: lr.Argv, env: shellEnv(lr, j.pos, len(j.ranks)), outLimit: a.cfg.OutputBuffer})
		if err != nil {
			self.failed = &failWire{Rank: a.rank, Errno: int(spawnErrno(err)), Msg: err.Error()}
			return
		}
		p = fp
	}
	a.spawned.Add(1)
	if a.cfg.OnSpawn != nil {
		a.cfg.OnSpawn(lr.ID, a.rank)
	}
	j.proc = p
	j.stopOut = make(chan struct{})
	self.started = true
	stop := j.stopOut
	a.goOwned(func() { a.watch(j, p, stop) })
}

// watch follows one shell: its output goes upstream, then its exit, then
// the epilog and the release.
func (a *Agent) watch(j *agentJob, p proc, stop chan struct{}) {
	var owg sync.WaitGroup
	argv0 := ""
	if len(j.req.Argv) > 0 {
		argv0 = filepath.Base(j.req.Argv[0])
	}
	for s := range 2 {
		if b := p.output(s); b != nil {
			owg.Add(1)
			go func() {
				defer owg.Done()
				a.sendOutput(j, s, b, argv0, stop)
			}()
		}
	}
	select {
	case <-p.done():
	case <-a.ctx.Done():
		_ = p.signal(syscall.SIGKILL)
		p.release()
		<-p.done()
		owg.Wait()
		a.reaped.Add(1)
		return
	}
	owg.Wait()
	a.reaped.Add(1)
	a.mu.Lock()
	self := j.st[a.rank]
	self.exited, self.status = true, p.status()
	self.unentered = j.req.Barriers && j.barDone < 1 && j.barEntered[a.rank] < 1
	if j.req.Barriers && j.barDone < 2 {
		a.barrierFailLocked(j) // any exit ends the current barrier with EIO
	}
	epilog := j.req.Epilog
	if len(epilog) == 0 {
		// Nothing between exit and release: report both at once.
		self.released = true
		p.release()
		a.evalLocked(j)
		a.mu.Unlock()
		return
	}
	a.evalLocked(j)
	a.mu.Unlock()

	epErr := a.runEpilog(j, epilog)
	a.mu.Lock()
	if epErr != nil {
		self.epFail = epErr.Error()
	}
	self.released = true
	p.release()
	a.evalLocked(j)
	a.mu.Unlock()
}

func (a *Agent) runEpilog(j *agentJob, argv []string) error {
	env := append(os.Environ(),
		"FLUX_JOB_ID="+j.req.ID.F58(),
		"FLUX_JOB_USERID="+strconv.FormatUint(uint64(j.req.Userid), 10),
		"FLUX_JOB_RANKS="+strconv.FormatUint(uint64(a.rank), 10))
	p, err := forkSpawn(spawnSpec{argv: argv, env: env, outLimit: 4096})
	if err != nil {
		return fmt.Errorf("epilog on rank %d: %w", a.rank, err)
	}
	p.release() // output is not kept; abandoning lets the pipes drain
	select {
	case <-p.done():
	case <-a.ctx.Done():
		_ = p.signal(syscall.SIGKILL)
		<-p.done()
		return a.ctx.Err()
	}
	if st := syscall.WaitStatus(p.status()); st != 0 {
		return fmt.Errorf("epilog on rank %d: wait status %d", a.rank, int(st))
	}
	return nil
}

// sendOutput delivers one stream upstream, in order, acknowledged: bytes are
// dropped from the buffer only once the coordinator has stored them.
func (a *Agent) sendOutput(j *agentJob, stream int, b *outBuf, argv0 string, stop chan struct{}) {
	var off int64
	backoff := 20 * time.Millisecond
	a.goOwned(func() { // wake the buffer wait when the job is forgotten or the agent stops
		select {
		case <-stop:
		case <-a.ctx.Done():
		}
		b.abandon()
	})
	for {
		b.waitData(off, stop)
		select {
		case <-stop:
			return
		case <-a.ctx.Done():
			return
		default:
		}
		data, eof := b.peek(off, a.cfg.OutputChunk)
		if len(data) == 0 {
			if eof {
				return
			}
			continue
		}
		var resp outputResp
		a.msgs.Add(2)
		err := fluxkit.RPC(a.ctx, a.h, j.req.Service+".output", j.req.Coord,
			outputReq{ID: j.req.ID, Rank: a.rank, Stream: stream, Offset: off, Data: data, Argv0: argv0}, &resp)
		if err != nil {
			// The coordinator may be restarting: keep the bytes and retry.
			select {
			case <-time.After(backoff):
			case <-stop:
				return
			case <-a.ctx.Done():
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 20 * time.Millisecond
		if resp.Offset > off {
			off = min(resp.Offset, off+int64(len(data)))
			b.ack(off)
		}
	}
}

// handleKill signals this rank's shell (or its tasks), forwards the kill to
// the tree children and answers for the whole subtree, rank by rank, once
// the children have answered or the request's budget is spent.
func (a *Agent) handleKill(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	a.msgs.Add(1)
	var kr killReq
	if !fluxkit.DecodeRequest(w, req, &kr) {
		return
	}
	ranks, err := parseRanks(kr.Ranks)
	pos, in := 0, false
	if err == nil {
		pos, in = slices.BinarySearch(ranks, a.rank)
	}
	if !in || kr.Fanout < 1 || kr.Fanout > maxFanout || kr.Signal < 0 || kr.Signal > maxSignal {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "kill: rank %d, ranks %q, fanout %d, signal %d: not a kill for this rank",
			a.rank, kr.Ranks, kr.Fanout, kr.Signal))
		return
	}
	a.mu.Lock()
	j := a.jobs[kr.ID]
	if j == nil && kr.Cancel {
		// The kill overtook the launch: remember not to spawn.
		j = &agentJob{req: launchReq{ID: kr.ID, Ranks: kr.Ranks, Fanout: kr.Fanout}, ranks: ranks, pos: pos,
			st: map[uint32]*rstat{}, under: map[uint32]uint32{}, cancelled: true, upEnded: true}
		a.jobs[kr.ID] = j
	}
	held := false
	if j != nil {
		if kr.Cancel {
			j.cancelled = true
		}
		if j.proc != nil && j.proc.running() {
			held = true
			if sig := syscall.Signal(kr.Signal); sig > 0 {
				if kr.Tasks {
					_ = j.proc.signalTasks(sig)
				} else {
					_ = j.proc.signal(sig)
				}
			}
		}
	}
	a.mu.Unlock()
	var resp killResp
	if held {
		resp.Held = formatRanks([]uint32{a.rank})
	} else {
		resp.Empty = formatRanks([]uint32{a.rank})
	}
	var children []int
	if kr.Only == "" {
		children = treeChildren(pos, len(ranks), kr.Fanout)
	}
	if len(children) == 0 {
		a.msgs.Add(1)
		_ = fluxkit.Respond(w, resp)
		return
	}
	a.goOwned(func() {
		budget := kr.Budget
		if budget <= 0 {
			budget = killBudget
		}
		ctx, cancel := context.WithTimeout(a.ctx, budget)
		defer cancel()
		fwd := kr
		fwd.Budget = budget * 3 / 4
		answers := make([]killResp, len(children))
		errs := make([]error, len(children))
		var wg sync.WaitGroup
		for i, c := range children {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if a.killFault != nil {
					if errs[i] = a.killFault(ranks[c]); errs[i] != nil {
						return
					}
				}
				a.msgs.Add(2)
				errs[i] = fluxkit.RPC(ctx, a.h, a.cfg.Service+".kill", ranks[c], fwd, &answers[i])
			}()
		}
		wg.Wait()
		held, empty, unreached := ranksOf(resp.Held), ranksOf(resp.Empty), []uint32(nil)
		for i, c := range children {
			if errs[i] != nil {
				for _, p := range subtree(c, len(ranks), kr.Fanout) {
					unreached = append(unreached, ranks[p])
				}
				continue
			}
			held = append(held, ranksOf(answers[i].Held)...)
			empty = append(empty, ranksOf(answers[i].Empty)...)
			unreached = append(unreached, ranksOf(answers[i].Unreached)...)
		}
		resp = killResp{Held: formatRanks(held), Empty: formatRanks(empty), Unreached: formatRanks(unreached)}
		_ = fluxkit.Respond(w, resp)
	})
}

func (a *Agent) treeKids(rs string, k int) []uint32 {
	ranks, err := parseRanks(rs)
	if err != nil {
		return nil
	}
	pos, ok := slices.BinarySearch(ranks, a.rank)
	if !ok || k < 1 {
		return nil
	}
	var out []uint32
	for _, c := range treeChildren(pos, len(ranks), k) {
		out = append(out, ranks[c])
	}
	return out
}

func (a *Agent) handleForget(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	a.msgs.Add(1)
	var fr forgetReq
	if err := decodeForget(req, &fr); err != nil {
		_ = w.RespondError(err)
		return
	}
	a.mu.Lock()
	j := a.jobs[fr.ID]
	var children []uint32
	if j != nil {
		children = j.children
		a.dropLocked(j)
		delete(a.jobs, fr.ID)
	}
	a.mu.Unlock()
	if j == nil {
		children = a.treeKids(fr.Ranks, fr.Fanout)
	}
	for _, c := range children {
		a.msgs.Add(1)
		_ = fluxkit.Notify(a.ctx, a.h, a.cfg.Service+".forget", c, encodeForget(&fr))
	}
	_ = w.Respond(nil)
}

var errBarrier = fluxkit.Errorf(syscall.EIO, "barrier failed")

func (a *Agent) handleBarrierEnter(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var br barrierReq
	if !fluxkit.DecodeRequest(w, req, &br) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	j := a.jobs[br.ID]
	if j == nil || j.sub == nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "job %s not found", br.ID))
		return
	}
	if cred := req.Cred(); cred.Userid != j.req.Userid && !cred.IsOwner() {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPERM, "Permission denied"))
		return
	}
	next := j.barDone + 1
	if br.Rank != a.rank || !j.req.Barriers || next > 2 || j.barEntered[a.rank] >= next && !j.barFail {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "rank %d is not pending in barrier", br.Rank))
		return
	}
	if j.barFail {
		_ = w.RespondError(errBarrier)
		return
	}
	j.barEntered[a.rank] = next
	j.barParked = append(j.barParked, w)
	a.barrierEvalLocked(j)
	a.evalLocked(j)
}

// barrierEvalLocked completes the pending barrier at the leader, or reports
// it upward, once the whole subtree has entered it.
func (a *Agent) barrierEvalLocked(j *agentJob) {
	next := j.barDone + 1
	if j.barFail || next > 2 || !j.req.Barriers {
		return
	}
	for _, r := range j.sub {
		if j.barEntered[r] < next {
			return
		}
	}
	if j.pos != 0 {
		if j.barUp < next {
			j.barUp = next
		}
		return
	}
	a.barrierDoneLocked(j, next, true)
}

func (a *Agent) barrierDoneLocked(j *agentJob, seq int, ok bool) {
	if ok {
		if seq <= j.barDone {
			return
		}
		j.barDone = seq
	} else {
		if j.barFail {
			return
		}
		j.barFail = true
	}
	for _, w := range j.barParked {
		if ok {
			_ = w.Respond(nil)
		} else {
			_ = w.RespondError(errBarrier)
		}
	}
	j.barParked = nil
	for _, c := range j.children {
		a.msgs.Add(1)
		_ = fluxkit.Notify(a.ctx, a.h, a.cfg.Service+".barrier-release", c, barrierReq{ID: j.req.ID, Seq: seq, OK: ok})
	}
}

// barrierFailLocked fails the pending barrier everywhere: locally at once,
// then through the leader, which releases the whole tree with EIO.
func (a *Agent) barrierFailLocked(j *agentJob) {
	if j.barFail || !j.req.Barriers {
		return
	}
	if j.pos == 0 {
		a.barrierDoneLocked(j, j.barDone+1, false)
		return
	}
	j.barFail = true
	for _, w := range j.barParked {
		_ = w.RespondError(errBarrier)
	}
	j.barParked = nil
}

func (a *Agent) handleBarrierRelease(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	a.msgs.Add(1)
	var br barrierReq
	if err := fluxkit.DecodePayload(req, &br); err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	j := a.jobs[br.ID]
	if j == nil || j.sub == nil {
		return
	}
	if !br.OK && j.barFail {
		// Failed locally already; still pass the release on.
		for _, c := range j.children {
			a.msgs.Add(1)
			_ = fluxkit.Notify(a.ctx, a.h, a.cfg.Service+".barrier-release", c, br)
		}
		return
	}
	a.barrierDoneLocked(j, br.Seq, br.OK)
}

// barrierQueryLocked starts answering "which shells have not entered the
// first barrier" for this subtree: children whose subtree is complete are
// not asked.
func (a *Agent) barrierQueryLocked(j *agentJob) {
	if j.barQuery || !j.req.Barriers {
		return
	}
	j.barQuery = true
	j.barWait = map[uint32]bool{}
	if j.barEntered[a.rank] < 1 && !j.st[a.rank].exited {
		j.barPending = append(j.barPending, a.rank)
	}
	for _, c := range j.children {
		for r, via := range j.under {
			if via == c && j.barEntered[r] < 1 {
				j.barWait[c] = true
				break
			}
		}
	}
	for c := range j.barWait {
		a.msgs.Add(1)
		_ = fluxkit.Notify(a.ctx, a.h, a.cfg.Service+".barrier-query", c, barrierReq{ID: j.req.ID})
	}
	a.barrierQueryDoneLocked(j)
}

func (a *Agent) barrierQueryDoneLocked(j *agentJob) {
	if !j.barQuery || len(j.barWait) > 0 || j.barAnswered {
		return
	}
	sortRanks(j.barPending)
	j.barAnswered = true
	if j.pos == 0 {
		// The timeout fails the barrier for the shells that did enter.
		a.barrierDoneLocked(j, 1, false)
	}
}

func (a *Agent) handleBarrierQuery(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	a.msgs.Add(1)
	var br barrierReq
	if err := fluxkit.DecodePayload(req, &br); err != nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if j := a.jobs[br.ID]; j != nil && j.sub != nil {
		a.barrierQueryLocked(j)
		a.evalLocked(j)
	}
}
