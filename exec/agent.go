package exec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
	// OutputChunk is the largest piece of output sent upstream in one RPC.
	// Default 256 KiB.
	OutputChunk int
	// RuntimeDir holds a record for every shell the agent started: its
	// pid, its state and its output (see record.go). When set, shells
	// outlive the agent: Close leaves them running, and the next agent
	// with the same RuntimeDir on this rank finds them, checks them
	// against the live processes and takes them over, without starting any
	// twice. When empty, the agent uses a private temporary directory that
	// Close removes, after killing the shells.
	RuntimeDir string
	// ReconnectTimeout is how long a launch stream to a tree child, broken
	// while the child's shells run (its agent restarting), is re-established
	// before the child's ranks count as lost. Default 30s.
	ReconnectTimeout time.Duration
	// OrphanCheck is how often the records a new agent found, and that no
	// launch has claimed since, are checked against their job's exec
	// eventlog: a job that is done has its shell killed and its record
	// removed. Default 1 minute.
	OrphanCheck time.Duration
	// BatchWindow is how long exits and releases are held to be sent
	// upstream together. Default 10ms, as flux-core batches exits.
	BatchWindow time.Duration
	// Environ is the environment real shells start from, as flux-core's
	// shells get job-exec's own (the broker's); FLUX_URI in it should name
	// this rank's broker. Default os.Environ().
	Environ []string
	// ShellService, when set, is the exec service a job shell addresses:
	// the agent serves its shell-barrier method on this rank, as flux-core's
	// job-exec does for flux-shell ("job-exec"). The shell sends the request
	// to the nearest rank with the service, which is its own. Default "":
	// shells enter barriers through <Service>.barrier-enter only.
	ShellService string
	// Keeper, when set with a RuntimeDir, is the command that starts the
	// rank's keeper (see [RunKeeper]), such as {os.Executable(),
	// KeeperFlag}: the process that forks the shells, outlives the agent
	// and records each shell's exit status, so that an agent restarted in
	// another process, which cannot wait for shells it did not fork, learns
	// them. Without one, the agent forks the shells itself, and a shell
	// that ends while no agent of the process that started it runs fails
	// its rank.
	Keeper []string
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
	reap  *reaper
	// keeper forks the shells when AgentConfig.Keeper is set.
	keeper *keeperClient
	dir    string // records
	keep   bool   // shells outlive the agent (RuntimeDir set)
	// spares are empty records made ahead of need by makeSpares.
	spares chan string

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

// AgentStats counts what an agent did; <service>.stats-get answers it.
type AgentStats struct {
	Jobs     int   `json:"jobs"`     // jobs with a record
	Spawned  int64 `json:"spawned"`  // shells started
	Reaped   int64 `json:"reaped"`   // shells waited for
	Messages int64 `json:"messages"` // requests and responses sent or received
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
	last     launchReq // the latest launch, re-sent to children whose stream broke
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
	rec     *record // real shells: the record on disk
	// restored: found on disk by this agent and not claimed by a launch
	// yet; there is no upstream to report to.
	restored bool
	// upGen counts new upstreams: output senders confirm their offsets
	// with each new coordinator.
	upGen atomic.Int64
	// Children whose launch stream broke while their shells ran: the
	// time after which they count as lost, and the retry timer.
	retryUntil map[uint32]time.Time
	retry      map[uint32]func() bool

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
	if err := checkServiceName(cfg.ShellService); err != nil {
		return fmt.Errorf("exec agent: AgentConfig.ShellService: %w", err)
	}
	if len(cfg.Keeper) > 0 {
		if cfg.Keeper[0] == "" {
			return errors.New("exec agent: AgentConfig.Keeper: the command is empty")
		}
		if cfg.RuntimeDir == "" {
			return errors.New("exec agent: AgentConfig.Keeper needs a RuntimeDir, where the keeper serves")
		}
		if _, err := keeperSocketPath(cfg.RuntimeDir); err != nil {
			return fmt.Errorf("exec agent: AgentConfig.RuntimeDir: %w", err)
		}
	}
	if cfg.OutputChunk < 0 {
		return fmt.Errorf("exec agent: AgentConfig.OutputChunk %d must not be negative", cfg.OutputChunk)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"BatchWindow", cfg.BatchWindow}, {"ReconnectTimeout", cfg.ReconnectTimeout}, {"OrphanCheck", cfg.OrphanCheck}} {
		if d.v < 0 {
			return fmt.Errorf("exec agent: AgentConfig.%s %v must not be negative", d.name, d.v)
		}
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
	if cfg.ReconnectTimeout == 0 {
		cfg.ReconnectTimeout = 30 * time.Second
	}
	if cfg.OrphanCheck == 0 {
		cfg.OrphanCheck = time.Minute
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
	if cfg.Environ == nil {
		cfg.Environ = os.Environ()
	}
	a := &Agent{cfg: cfg, h: cfg.Handle, rank: cfg.Handle.Rank(), log: cfg.Logger, jobs: map[fluxkit.JobID]*agentJob{},
		reap: newReaper(), dir: cfg.RuntimeDir, keep: cfg.RuntimeDir != ""}
	if a.keep {
		if err := os.MkdirAll(a.dir, 0o700); err != nil {
			return nil, fmt.Errorf("exec agent: AgentConfig.RuntimeDir: %w", err)
		}
	} else {
		dir, err := os.MkdirTemp("", "fluxkit-exec-agent-")
		if err != nil {
			return nil, fmt.Errorf("exec agent: runtime directory: %w", err)
		}
		a.dir = dir
	}
	a.ctx, a.stop = context.WithCancel(context.Background())
	a.goOwned(func() { a.reap.run(a.ctx) })
	if len(cfg.Keeper) > 0 {
		a.keeper = &keeperClient{dir: a.dir, cmd: cfg.Keeper, log: a.log, onExit: a.reap.poke, goFn: a.goOwned}
		a.keeper.mu.Lock()
		err := a.keeper.connectLocked(a.ctx)
		a.keeper.mu.Unlock()
		if err != nil {
			a.stop()
			a.wg.Wait()
			return nil, fmt.Errorf("exec agent: %w", err)
		}
	}
	if a.keep {
		a.restore()
	}
	removeSpares(a.dir, a.rank) // a previous agent's
	a.spares = make(chan string, spareRecords)
	a.goOwned(a.makeSpares)
	type handler struct {
		topic string
		allow fluxkit.Role
		fn    fluxkit.HandlerFunc
	}
	handlers := []handler{
		{cfg.Service + ".launch", fluxkit.RoleNone, a.handleLaunch},
		{cfg.Service + ".kill", fluxkit.RoleNone, a.handleKill},
		{cfg.Service + ".forget", fluxkit.RoleNone, a.handleForget},
		{cfg.Service + ".barrier-release", fluxkit.RoleNone, a.handleBarrierRelease},
		{cfg.Service + ".barrier-query", fluxkit.RoleNone, a.handleBarrierQuery},
		{cfg.Service + ".stats-get", fluxkit.RoleNone, a.handleStats},
		// Shells run as the job's user.
		{cfg.Service + ".barrier-enter", fluxkit.RoleUser, a.handleBarrierEnter},
	}
	if cfg.ShellService != "" {
		handlers = append(handlers, handler{cfg.ShellService + ".shell-barrier", fluxkit.RoleUser, a.handleShellBarrier})
	}
	for _, hd := range handlers {
		un, err := a.h.Register(hd.topic, hd.allow, hd.fn)
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("exec agent: register %s: %w", hd.topic, err)
		}
		a.unreg = append(a.unreg, un)
	}
	return a, nil
}

// Close unregisters the agent and waits for its goroutines. With a
// RuntimeDir, the shells it runs go on, recorded there for the next agent;
// without, it kills them and waits until they are reaped (a closed agent
// leaves no children behind), then removes its private directory.
func (a *Agent) Close() error {
	for _, un := range a.unreg {
		un()
	}
	a.mu.Lock()
	for _, j := range a.jobs {
		if a.keep && j.rec != nil {
			a.detachLocked(j)
		} else {
			a.dropLocked(j)
		}
	}
	a.jobs = map[fluxkit.JobID]*agentJob{}
	a.mu.Unlock()
	if !a.keep {
		// SIGKILL has been sent; the reaper collects them.
		deadline := time.Now().Add(10 * time.Second)
		for a.reap.live() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if a.keeper != nil {
		a.keeper.close()
	}
	a.stop()
	a.wg.Wait()
	if !a.keep {
		_ = os.RemoveAll(a.dir)
	}
	return nil
}

// Stats returns the agent's counters.
func (a *Agent) Stats() AgentStats {
	a.mu.Lock()
	n := len(a.jobs)
	a.mu.Unlock()
	return AgentStats{Jobs: n, Spawned: a.spawned.Load(), Reaped: a.reaped.Load(), Messages: a.msgs.Load()}
}

func (a *Agent) handleStats(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	_ = fluxkit.Respond(w, a.Stats())
}

func (a *Agent) goOwned(fn func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		fn()
	}()
}

// dropLocked forgets a job: child streams closed, timers stopped, the
// shell killed if it still runs and its record removed.
func (a *Agent) dropLocked(j *agentJob) {
	a.detachLocked(j)
	if j.proc != nil {
		_ = j.proc.signal(syscall.SIGKILL)
		j.proc.release()
	}
	if rec := j.rec; rec != nil {
		// Off the lock: removing files is the slowest thing an agent does
		// per job on some disks.
		a.goOwned(rec.remove)
	}
}

// detachLocked lets go of a job without touching its shell or record.
func (a *Agent) detachLocked(j *agentJob) {
	j.forgotten = true
	if j.flushStop != nil {
		j.flushStop()
	}
	if j.barTimer != nil {
		j.barTimer()
	}
	for _, stop := range j.retry {
		stop()
	}
	j.retry = nil
	for _, c := range j.calls {
		c.Close()
	}
	j.calls = nil
	if j.stopOut != nil {
		close(j.stopOut)
		j.stopOut = nil
	}
}

// newAgentJob builds the job's place in its tree from a launch.
func (a *Agent) newAgentJob(lr *launchReq, ranks []uint32, pos int) *agentJob {
	j := &agentJob{req: *lr, last: *lr, ranks: ranks, pos: pos, st: map[uint32]*rstat{}, under: map[uint32]uint32{},
		barEntered: map[uint32]int{}, rep: map[uint32]rstat{}, calls: map[uint32]fluxkit.Call{}}
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
	return j
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
		j = a.newAgentJob(&lr, ranks, pos)
		j.cancelled = cancelled
		a.jobs[lr.ID] = j
	}
	j.restored = false
	j.last = lr
	// A new upstream (a restarted coordinator, a re-sent start, a parent
	// re-establishing its stream) gets the whole state again; the old
	// stream, if any, is abandoned.
	j.upGen.Add(1)
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
	for _, stop := range j.retry {
		stop()
	}
	j.retry, j.retryUntil = nil, nil
	// Forward first so that the subtree launches in parallel with our spawn.
	if len(j.children) > 0 {
		fwd := encodeLaunch(&lr)
		for _, child := range j.children {
			a.forwardLocked(j, child, fwd)
		}
	}
	if !fresh && !lr.Reattach && !lr.Resume {
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
			if !errors.Is(err, fluxkit.ENODATA) && !a.reconnectLocked(j, child, err) {
				a.childFailedLocked(j, child, err)
			}
			a.evalLocked(j)
			a.mu.Unlock()
			return
		}
		delete(j.retryUntil, child) // the child is back
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

// reconnectLocked re-establishes, after a pause, the launch stream to a
// child whose agent went away while shells of its subtree ran: a restarted
// agent finds them in its records. It reports false when the child is not
// worth waiting for: nothing of its subtree had started, the error is not
// an agent going away, or ReconnectTimeout passed since the stream broke.
func (a *Agent) reconnectLocked(j *agentJob, child uint32, err error) bool {
	if j.forgotten {
		return false
	}
	if errno := fluxkit.Errno(err); errno != fluxkit.ENOSYS && errno != fluxkit.ECONNRESET {
		return false
	}
	running := false
	for r, via := range j.under {
		if s := j.st[r]; via == child && s.started && !s.finished() {
			running = true
		}
	}
	if !running {
		return false
	}
	now := a.cfg.Clock.Now()
	if j.retryUntil == nil {
		j.retryUntil = map[uint32]time.Time{}
	}
	until, ok := j.retryUntil[child]
	if !ok {
		until = now.Add(a.cfg.ReconnectTimeout)
		j.retryUntil[child] = until
	}
	if now.After(until) {
		// Gone for good: its ranks are lost, as on a node failure.
		delete(j.retryUntil, child)
		a.childFailedLocked(j, child, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "agent on rank %d did not come back: %v", child, err))
		return true
	}
	a.log.Warn("exec agent: launch stream to a child broke; re-establishing it", "job", j.req.ID, "child", child, "err", err)
	if j.retry == nil {
		j.retry = map[uint32]func() bool{}
	}
	j.retry[child] = a.cfg.Clock.AfterFunc(reconnectPause, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if j.forgotten || j.retry == nil {
			return
		}
		delete(j.retry, child)
		lr := j.last
		lr.Resume = true
		a.forwardLocked(j, child, encodeLaunch(&lr))
	})
	return true
}

// reconnectPause is the wait before a broken launch stream is re-sent.
const reconnectPause = 100 * time.Millisecond

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

// shellEnv is the environment of the shell of shell rank shellRank. A job
// shell gets flux-core's: the agent's environment (base) with the job's
// guest namespace, and for a guest's job the IMP's helper, without what a
// subprocess server never passes on. A bare command gets base with the
// jobspec's environment and the variables a Flux job's tasks see.
func shellEnv(base []string, lr *launchReq, shellRank, size int) []string {
	env := make([]string, 0, len(base)+len(lr.Env)+8)
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "FLUX_KVS_NAMESPACE", "FLUX_PROXY_REMOTE", "NOTIFY_SOCKET", "INVOCATION_ID":
			continue
		}
		env = append(env, kv)
	}
	ns := "FLUX_KVS_NAMESPACE=" + guestNS(lr.ID)
	if lr.Shell {
		env = append(env, ns)
		if lr.Multiuser {
			env = append(env, "FLUX_IMP_EXEC_HELPER=flux imp_exec_helper "+lr.ID.Dec())
		}
		return env
	}
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
		ns,
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
		fail := func(err error) {
			self.failed = &failWire{Rank: a.rank, Errno: int(spawnErrno(err)), Msg: err.Error()}
		}
		if a.spawnErr != nil {
			if err := a.spawnErr(lr.ID, a.rank); err != nil {
				fail(err)
				return
			}
		}
		// The record goes to disk before the fork, so that no restart can
		// lead to a second shell.
		spare := ""
		select {
		case spare = <-a.spares:
		default:
		}
		rec, err := createRecord(a.dir, lr, a.rank, spare)
		if err != nil {
			fail(err)
			return
		}
		spec := spawnSpec{argv: lr.Argv, env: shellEnv(a.cfg.Environ, lr, j.pos, len(j.ranks)),
			stdout: rec.output(streamStdout), stderr: rec.output(streamStderr), dir: rec.dir}
		var fp *forkProc
		if a.keeper != nil {
			pid, start, kerr := a.keeper.spawn(a.ctx, spec)
			if err = kerr; err == nil {
				fp = keptProc(pid, start, spec, a.reap)
			}
		} else {
			fp, err = forkSpawn(spec, a.reap)
		}
		if err != nil {
			rec.remove()
			fail(err)
			return
		}
		if err := rec.setPid(fp.pid, fp.start); err != nil {
			a.log.Error("exec agent: shell record", "job", lr.ID, "err", err)
		}
		j.rec = rec
		p = fp
	}
	a.spawned.Add(1)
	if a.cfg.OnSpawn != nil {
		a.cfg.OnSpawn(lr.ID, a.rank)
	}
	a.followLocked(j, p)
}

// followLocked starts watching the rank's shell p.
func (a *Agent) followLocked(j *agentJob, p proc) {
	j.proc = p
	j.stopOut = make(chan struct{})
	j.st[a.rank].started = true
	stop := j.stopOut
	a.goOwned(func() { a.watch(j, p, stop) })
}

// watch follows one shell: its output goes upstream, then its exit, then
// the epilog and the release. It stops following when the job is
// forgotten or the agent closes (the shell may then go on, for the next
// agent).
func (a *Agent) watch(j *agentJob, p proc, stop chan struct{}) {
	var owg sync.WaitGroup
	argv0 := ""
	if len(j.req.Argv) > 0 {
		argv0 = filepath.Base(j.req.Argv[0])
	}
	for s := range 2 {
		if path := p.output(s); path != "" {
			owg.Add(1)
			go func() {
				defer owg.Done()
				a.sendOutput(j, s, path, p, argv0, stop)
			}()
		}
	}
	select {
	case <-p.done():
	case <-stop:
	case <-a.ctx.Done():
	}
	owg.Wait() // every byte stored by the coordinator, unless stopped
	select {
	case <-p.done(): // (a forgotten job's shell was just killed)
	case <-a.ctx.Done():
		return // it goes on, for the next agent
	}
	a.reaped.Add(1)
	select {
	case <-stop:
		return
	default:
	}
	raw, known := p.status()
	a.mu.Lock()
	if j.forgotten {
		a.mu.Unlock()
		return
	}
	self := j.st[a.rank]
	if j.req.Barriers && j.barDone < 2 {
		a.barrierFailLocked(j) // any exit ends the current barrier with EIO
	}
	if !known {
		self.failed = &failWire{Rank: a.rank, Errno: int(syscall.ECHILD),
			Msg: fmt.Sprintf("shell pid %d ended while no agent of this process could wait for it: exit status unknown", j.rec.rec.Pid)}
		a.evalLocked(j)
		a.mu.Unlock()
		return
	}
	self.exited, self.status = true, raw
	self.unentered = j.req.Barriers && j.barDone < 1 && j.barEntered[a.rank] < 1
	released := false
	if j.rec != nil {
		// Without an epilog, the status says released as well.
		released = j.rec.rec.Released || j.rec.rec.Status != nil && len(j.req.Epilog) == 0
		if j.rec.rec.Status == nil && a.keeper == nil { // a keeper recorded it
			a.recordLocked(j, func(r *record) error { return r.setStatus(raw) })
		}
	}
	epilog := j.req.Epilog
	if len(epilog) == 0 || released {
		// Nothing between exit and release: report both at once.
		a.releasedLocked(j)
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
	if !j.forgotten {
		a.releasedLocked(j)
	}
	p.release()
	a.evalLocked(j)
	a.mu.Unlock()
}

// releasedLocked marks the rank released, on disk too when an epilog ran
// (without one, the exit status implies it).
func (a *Agent) releasedLocked(j *agentJob) {
	j.st[a.rank].released = true
	if j.rec != nil && !j.rec.rec.Released && len(j.req.Epilog) > 0 {
		a.recordLocked(j, (*record).setReleased)
	}
}

// recordLocked updates the job's record with set.
func (a *Agent) recordLocked(j *agentJob, set func(*record) error) {
	if j.rec == nil || j.forgotten {
		return
	}
	if err := set(j.rec); err != nil {
		a.log.Error("exec agent: shell record", "job", j.req.ID, "err", err)
	}
}

func (a *Agent) runEpilog(j *agentJob, argv []string) error {
	cmd := osexec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"FLUX_JOB_ID="+j.req.ID.F58(),
		"FLUX_JOB_USERID="+strconv.FormatUint(uint64(j.req.Userid), 10),
		"FLUX_JOB_RANKS="+strconv.FormatUint(uint64(a.rank), 10))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("epilog on rank %d: %w", a.rank, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-a.ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return a.ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("epilog on rank %d: %w", a.rank, err)
	}
	return nil
}

// Output polling: a shell's files are read again after outputPollMin when
// they just grew, backing off to outputPollMax while they do not.
const (
	outputPollMin = 10 * time.Millisecond
	outputPollMax = 100 * time.Millisecond
)

// sendOutput delivers one stream of the shell p from its file, in order:
// each piece goes to the coordinator at its offset, and the offset the
// coordinator answers (what it has stored) is where sending goes on. Once
// the shell has ended and everything is stored, it returns.
func (a *Agent) sendOutput(j *agentJob, stream int, path string, p proc, argv0 string, stop chan struct{}) {
	f, err := os.Open(path)
	if err != nil {
		a.log.Error("exec agent: shell output", "job", j.req.ID, "err", err)
		return
	}
	defer f.Close()
	// The buffer grows to OutputChunk only for shells that write that much.
	buf := make([]byte, min(a.cfg.OutputChunk, 4<<10))
	// off is where sending goes on; confOff is what the coordinator of
	// upstream generation confGen confirmed having stored. Offset 0 needs
	// no confirmation.
	var off, confOff int64
	confGen := j.upGen.Load()
	poll, backoff := outputPollMin, 20*time.Millisecond
	wait := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-p.done():
		case <-stop:
			return false
		case <-a.ctx.Done():
			return false
		}
		return true
	}
	for {
		final := !p.running()
		n, _ := f.ReadAt(buf, off)
		if n == len(buf) && len(buf) < a.cfg.OutputChunk {
			buf = make([]byte, min(2*len(buf), a.cfg.OutputChunk))
			continue
		}
		data := buf[:n]
		if !final {
			data = completeRunes(data)
		}
		gen := j.upGen.Load()
		if len(data) == 0 && confOff == off && (confGen == gen || off == 0) {
			if final {
				return // all of it stored
			}
			if !wait(poll) {
				return
			}
			poll = min(2*poll, outputPollMax)
			continue
		}
		// Bytes to send, or an offset to confirm: to a new coordinator
		// (which may have less than the last stored), and at the end.
		var resp outputResp
		a.msgs.Add(2)
		err := fluxkit.RPC(a.ctx, a.h, j.req.Service+".output", j.req.Coord,
			outputReq{ID: j.req.ID, Rank: a.rank, Stream: stream, Offset: off, Data: data, Argv0: argv0}, &resp)
		if err != nil {
			if errors.Is(err, fluxkit.ENOENT) {
				if done, derr := jobDone(a.ctx, a.h, j.req.ID); derr == nil && done {
					return // the job is over (this rank was cut off): nobody wants the rest
				}
			}
			// The coordinator may be restarting: the bytes stay in the file.
			if !wait(backoff) {
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 20 * time.Millisecond
		if len(data) > 0 {
			poll = outputPollMin
		}
		want := off + int64(len(data))
		switch next := resp.Offset; {
		case next >= want:
			// Stored, or more already (an agent restart sends from the
			// start): skip ahead, within what the file holds.
			if next > want {
				if fi, err := f.Stat(); err == nil {
					next = min(next, fi.Size())
				}
			}
			off, confOff, confGen = next, next, gen
		default:
			off = max(next, 0) // a coordinator with less: send again from there
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
	a.enterBarrier(w, req, br)
}

// handleShellBarrier is flux-core's job-exec.shell-barrier, which flux-shell
// sends with NORESPONSE from its own rank ({id, rank: its broker rank}) and
// answers by hand: the shell waits for a response on the topic.
func (a *Agent) handleShellBarrier(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	answerEvery(req)
	var br barrierReq
	if !fluxkit.DecodeRequest(w, req, &br) {
		return
	}
	a.enterBarrier(w, req, br)
}

// enterBarrier parks a shell's entry into its job's pending barrier.
func (a *Agent) enterBarrier(w fluxkit.Responder, req *fluxkit.Message, br barrierReq) {
	a.mu.Lock()
	defer a.mu.Unlock()
	j := a.jobs[br.ID]
	if j == nil || j.sub == nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "job not found"))
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
		a.recordLocked(j, func(r *record) error { return r.setBarriers(seq) })
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

// spareRecords is how many empty records an agent keeps ready.
const spareRecords = 4

// makeSpares keeps spareRecords empty records ready, so that creating a
// record's files is off the path from launch to shell. It removes those
// left when the agent closes.
func (a *Agent) makeSpares() {
	defer removeSpares(a.dir, a.rank)
	for n := int64(0); ; n++ {
		dir := spareName(a.dir, a.rank, n)
		if err := makeEmpty(dir); err != nil {
			a.log.Warn("exec agent: spare record", "err", err)
			select {
			case <-time.After(time.Second):
				continue
			case <-a.ctx.Done():
				return
			}
		}
		select {
		case a.spares <- dir:
		case <-a.ctx.Done():
			return
		}
	}
}

// restore takes over the shells a previous agent on this rank recorded in
// the runtime directory: running ones are adopted (checked against the
// live processes), ended ones are reported with their recorded status.
// None is started again. Each waits, without an upstream, for a launch to
// claim it; those no launch claims are checked by orphanWatch.
func (a *Agent) restore() {
	recs, errs := loadRecords(a.dir, a.rank)
	for _, err := range errs {
		a.log.Error("exec agent: unreadable shell record left in place", "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, rec := range recs {
		lr := rec.rec.Launch
		ranks, err := parseRanks(lr.Ranks)
		pos, in := 0, false
		if err == nil {
			pos, in = slices.BinarySearch(ranks, a.rank)
		}
		if !in || lr.validate() != nil {
			a.log.Error("exec agent: shell record with a bad launch left in place", "dir", rec.dir)
			continue
		}
		j := a.newAgentJob(&lr, ranks, pos)
		j.rec, j.restored, j.upEnded = rec, true, true
		j.barDone = rec.rec.Barriers
		j.barEntered[a.rank] = rec.rec.Barriers
		a.jobs[lr.ID] = j
		out := [2]string{rec.output(streamStdout), rec.output(streamStderr)}
		switch {
		case rec.rec.Status != nil:
			a.followLocked(j, endedProc(*rec.rec.Status, out))
		case rec.rec.Pid == 0:
			// Recorded before the fork, but not after: a shell may run
			// that nothing can find. Never start another.
			j.st[a.rank].failed = &failWire{Rank: a.rank, Errno: int(syscall.ECHILD),
				Msg: "the agent restarted while starting this shell: whether it runs is unknown"}
		default:
			a.followLocked(j, adoptProc(rec.rec.Pid, rec.rec.Start, rec.dir, out, a.reap))
		}
		a.log.Info("exec agent: shell record found", "job", lr.ID, "pid", rec.rec.Pid)
	}
	if len(recs) > 0 {
		a.goOwned(a.orphanWatch)
	}
}

// orphanWatch checks, every OrphanCheck, the restored jobs no launch has
// claimed: a job whose exec eventlog ends with "done" is over (its forget
// went to the previous agent), so its shell is killed and its record
// removed. It ends when no restored job is left unclaimed.
func (a *Agent) orphanWatch() {
	tick := time.NewTicker(a.cfg.OrphanCheck)
	defer tick.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-tick.C:
		}
		a.mu.Lock()
		var ids []fluxkit.JobID
		for id, j := range a.jobs {
			if j.restored {
				ids = append(ids, id)
			}
		}
		a.mu.Unlock()
		if len(ids) == 0 {
			return
		}
		for _, id := range ids {
			done, err := jobDone(a.ctx, a.h, id)
			if err != nil {
				a.log.Warn("exec agent: checking a recorded job", "job", id, "err", err)
				continue
			}
			if !done {
				continue
			}
			a.mu.Lock()
			if j := a.jobs[id]; j != nil && j.restored {
				a.log.Info("exec agent: recorded job is over; killing what is left", "job", id)
				a.dropLocked(j)
				delete(a.jobs, id)
			}
			a.mu.Unlock()
		}
	}
}

// jobDone reports whether job id's exec eventlog ends with "done". A job
// without one is not known to be over.
func jobDone(ctx context.Context, h fluxkit.Handle, id fluxkit.JobID) (bool, error) {
	evs, err := loadEventlog(ctx, h, id)
	if errors.Is(err, errNoEventlog) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return len(evs) > 0 && evs[len(evs)-1].Name == "done", nil
}
