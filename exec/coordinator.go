package exec

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit"
)

// Config configures the coordinator.
type Config struct {
	// Handle is the coordinator's connection to rank 0 (required), with the
	// instance owner's credentials.
	Handle fluxkit.Handle
	// Service is the RFC 32 service name sent in exec-hello. Default
	// "job-exec".
	Service string
	// AgentService is the agents' service name. Default "exec-agent".
	AgentService string
	// JobManager is the job manager's service. Default "job-manager".
	JobManager string
	// Settings, when nil, are read from the broker's [exec] configuration
	// (config.get) at start and on config-reload.
	Settings *Settings
	// JobShell is the built-in job shell, flux-core's
	// flux_conf_builtin_get ("shell_path"), for jobs whose jobspec
	// (attributes.system.exec.job_shell) and [exec] job-shell name none.
	// Default "": such jobs run their jobspec's first command themselves,
	// one per rank, without barriers (fluxkit's own mode, for tests and
	// instances without flux-core's shell).
	JobShell string
	// Owner is the instance owner; jobs of other users are guest jobs.
	// Default the Handle's userid.
	Owner *uint32
	// Clock drives the per-job timers. Default the real clock.
	Clock Clock
	// ReconnectTimeout is how long a launch stream to a job's leader,
	// broken while shells run (the leader's agent restarting), is
	// re-established before the ranks count as lost. Default 30s.
	ReconnectTimeout time.Duration
	// Logger receives diagnostics. Default discards.
	Logger *slog.Logger
}

// Coordinator is the rank-0 side of the exec service: it speaks RFC 32 with
// the job manager and drives one job state machine per job, while the
// agents launch the shells on the jobs' own ranks.
type Coordinator struct {
	cfg   Config
	h     fluxkit.Handle
	owner uint32
	log   *slog.Logger
	clk   Clock
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
	unreg []func()
	st    *store

	// Inputs from goroutines (stream readers, timers, events) are queued
	// and applied by one worker under mu, so hundreds of jobs in flight do
	// not convoy on the mutex.
	qmu   sync.Mutex
	q     []func()
	qwake chan struct{}

	// rootref roots new guest namespaces (see emptyRootref).
	rootref string

	mu     sync.Mutex
	set    Settings
	jobs   map[fluxkit.JobID]*cjob
	online map[uint32]bool // nil until the first broker.online answer
	closed bool

	msgs, jobsDone atomic.Int64
}

type cjob struct {
	m        *job
	w        fluxkit.Responder
	spec     *jobSpec
	method   string
	fanout   int
	ranksStr string
	call     fluxkit.Call
	pend     []Event
	events   []Event
	acts     []action // the action buffer not in the machine's hands (see job.swap)
	outOff   map[[2]uint32]int64
	ctrl     string // bypass controller's sender id
	mockRun  bool
	// mockStarting raises bulkexec's "starting" mock exception once a shell
	// has started.
	mockStarting bool
	// exceptions that arrived while the eventlog was loading, replayed by
	// begin
	early    []func()
	barriers int  // barriers completed, as the leader reports
	shelled  bool // a job shell runs, so the shells pass barriers
	timerAt  time.Time
	timerOff func() bool
	// relaunchUntil: the leader's launch stream broke while shells ran;
	// it is re-established until then.
	relaunchUntil time.Time
	relaunchOff   func() bool
	gone          bool
	ready         bool // namespace set up (eventlog loaded), launch decided
	// hasNS: the job's guest namespace exists, so its eventlog is written
	// there and it is grafted and removed at the end.
	hasNS bool
	// replace: the next eventlog commit starts the eventlog over (a fresh
	// start, whatever an earlier start of the job left).
	replace bool
	// launchWait: the launch goes out once the events before it (init,
	// starting) are committed, so that they precede the shell's own.
	launchWait bool
	// finalizing: release final is due; it is sent (finalResp) once done
	// is committed and the namespace grafted and removed.
	finalizing bool
	finalResp  *Response
	// logDone: the eventlog has done, after which nothing is posted.
	logDone bool
}

// Validate checks cfg as New does: the Handle is required, names are
// usable as service names, and Settings, when given, pass
// [Settings.Validate]. Zero values stand for the documented defaults.
func (cfg Config) Validate() error {
	if cfg.Handle == nil {
		return errors.New("exec: Config.Handle is required")
	}
	for _, n := range []struct{ field, v string }{
		{"Service", cfg.Service}, {"AgentService", cfg.AgentService}, {"JobManager", cfg.JobManager},
	} {
		if err := checkServiceName(n.v); err != nil {
			return fmt.Errorf("exec: Config.%s: %w", n.field, err)
		}
	}
	if cfg.Settings != nil {
		if err := cfg.Settings.Validate(); err != nil {
			return err
		}
	}
	if cfg.ReconnectTimeout < 0 {
		return fmt.Errorf("exec: Config.ReconnectTimeout %v must not be negative", cfg.ReconnectTimeout)
	}
	return nil
}

// checkServiceName refuses names that would not survive being used as the
// first word of a topic ("<service>.start").
func checkServiceName(s string) error {
	if strings.ContainsAny(s, ". \t\n") {
		return fmt.Errorf("%q is not a service name", s)
	}
	return nil
}

// New starts a coordinator: it registers the service, subscribes to
// job-exception, watches broker.online and says hello to the job manager.
// cfg is validated first ([Config.Validate]). A failed hello is fatal: New
// closes what it started and returns the error.
func New(ctx context.Context, cfg Config) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Service == "" {
		cfg.Service = "job-exec"
	}
	if cfg.AgentService == "" {
		cfg.AgentService = "exec-agent"
	}
	if cfg.JobManager == "" {
		cfg.JobManager = "job-manager"
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.ReconnectTimeout == 0 {
		cfg.ReconnectTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Coordinator{cfg: cfg, h: cfg.Handle, log: cfg.Logger, clk: cfg.Clock, jobs: map[fluxkit.JobID]*cjob{},
		qwake: make(chan struct{}, 1)}
	c.owner = cfg.Handle.Cred().Userid
	if cfg.Owner != nil {
		c.owner = *cfg.Owner
	}
	if cfg.Settings != nil {
		c.set = *cfg.Settings
	} else {
		s, err := c.readSettings(ctx)
		if err != nil {
			return nil, err
		}
		c.set = s
	}
	hash := "sha1" // flux-core's default, and the in-process KVS's
	var attr struct {
		Value string `json:"value"`
	}
	if err := fluxkit.RPC(ctx, c.h, "attr.get", c.h.Rank(), map[string]string{"name": "content.hash"}, &attr); err == nil {
		hash = attr.Value
	}
	rootref, err := emptyRootref(hash)
	if err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	c.rootref = rootref
	c.ctx, c.stop = context.WithCancel(context.Background())
	c.st = newStore(c.h, func(n int) { c.msgs.Add(int64(n)) })
	c.goOwned(func() { c.st.run(c.ctx) })
	c.goOwned(c.worker)

	handlers := []struct {
		topic string
		allow fluxkit.Role
		fn    fluxkit.HandlerFunc
	}{
		{"start", fluxkit.RoleNone, c.handleStart},
		{"expiration", fluxkit.RoleNone, c.handleExpiration},
		{"output", fluxkit.RoleNone, c.handleOutput},
		{"critical-ranks", fluxkit.RoleUser, c.handleCritical},
		{"override", fluxkit.RoleUser, c.handleOverride},
		{"bypass", fluxkit.RoleUser, c.handleBypass},
		{"disconnect", fluxkit.RoleUser, c.handleDisconnect},
		{"stats-get", fluxkit.RoleNone, c.handleStats},
		{"config-reload", fluxkit.RoleNone, c.handleReload},
	}
	for _, hd := range handlers {
		un, err := c.h.Register(cfg.Service+"."+hd.topic, hd.allow, hd.fn)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("exec: register %s.%s: %w", cfg.Service, hd.topic, err)
		}
		c.unreg = append(c.unreg, un)
	}
	sub, err := c.h.Subscribe(ctx, "job-exception")
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("exec: subscribe job-exception: %w", err)
	}
	c.goOwned(func() { c.watchExceptions(sub) })
	if call, err := fluxkit.Stream(ctx, c.h, "groups.get", 0, map[string]string{"name": "broker.online"}); err == nil {
		c.goOwned(func() { c.watchOnline(call) })
	}
	c.msgs.Add(2)
	if err := fluxkit.RPC(ctx, c.h, cfg.JobManager+".exec-hello", c.h.Rank(), map[string]string{"service": cfg.Service}, nil); err != nil {
		c.Close()
		return nil, fmt.Errorf("exec: %s.exec-hello: %w", cfg.JobManager, err)
	}
	return c, nil
}

func (c *Coordinator) readSettings(ctx context.Context) (Settings, error) {
	var conf json.RawMessage
	if err := fluxkit.RPC(ctx, c.h, "config.get", c.h.Rank(), map[string]any{}, &conf); err != nil {
		return Settings{}, fmt.Errorf("exec: config.get: %w", err)
	}
	return ParseSettings(conf)
}

// post queues fn to run under c.mu on the worker.
func (c *Coordinator) post(fn func()) {
	c.qmu.Lock()
	c.q = append(c.q, fn)
	c.qmu.Unlock()
	select {
	case c.qwake <- struct{}{}:
	default:
	}
}

func (c *Coordinator) worker() {
	for {
		select {
		case <-c.qwake:
		case <-c.ctx.Done():
			return
		}
		for {
			c.qmu.Lock()
			q := c.q
			c.q = nil
			c.qmu.Unlock()
			if len(q) == 0 {
				break
			}
			c.mu.Lock()
			for _, fn := range q {
				if !c.closed {
					fn()
				}
			}
			c.mu.Unlock()
		}
	}
}

func (c *Coordinator) goOwned(fn func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		fn()
	}()
}

// Close stops the coordinator. Running jobs are left to the agents, so a
// new coordinator can reattach to them.
func (c *Coordinator) Close() error {
	for _, un := range c.unreg {
		un()
	}
	c.mu.Lock()
	c.closed = true
	for _, j := range c.jobs {
		if j.timerOff != nil {
			j.timerOff()
		}
		if j.relaunchOff != nil {
			j.relaunchOff()
		}
		if j.call != nil {
			j.call.Close()
		}
	}
	c.mu.Unlock()
	if c.st != nil {
		// Give queued eventlog entries a bounded chance to reach the KVS.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.st.sync(ctx)
		cancel()
	}
	if c.stop != nil {
		c.stop()
	}
	c.wg.Wait()
	return nil
}

// Sync waits until every exec eventlog entry posted so far is in the KVS,
// or ctx ends.
func (c *Coordinator) Sync(ctx context.Context) error { return c.st.sync(ctx) }

// ---- start ----

type startReq struct {
	ID       fluxkit.JobID   `json:"id"`
	Userid   *uint32         `json:"userid"`
	Jobspec  json.RawMessage `json:"jobspec"`
	R        json.RawMessage `json:"R"`
	Reattach bool            `json:"reattach"`
}

func (c *Coordinator) handleStart(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.msgs.Add(1)
	// flux-core's job manager sends start as a plain request and reads
	// every response (matched by topic); the in-process one streams.
	answerEvery(req)
	var sr startReq
	if err := decodeStart(req, &sr); err != nil {
		_ = w.RespondError(err)
		return
	}
	if sr.ID == 0 || sr.Userid == nil || len(sr.Jobspec) == 0 || len(sr.R) == 0 {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "%s: id, userid, jobspec and R are required", req.Topic))
		return
	}
	now := c.clk.Now()
	rs, rerr := parseR(sr.R)
	if rerr != nil {
		// No R, no ranks to account for: the whole allocation goes back.
		c.msgs.Add(2)
		_ = fluxkit.Respond(w, Response{ID: sr.ID, Type: "exception", Data: map[string]any{"severity": 0, "type": "exec", "note": rerr.Error()}})
		_ = fluxkit.Respond(w, Response{ID: sr.ID, Type: "release", Data: map[string]any{"ranks": "all", "final": true}})
		return
	}
	spec, serr := parseJobspec(sr.Jobspec) // pure: parsed before taking c.mu
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOSYS, "exec service is shutting down"))
		return
	}
	if cj, dup := c.jobs[sr.ID]; dup {
		// The job manager sends one start per job at a time, so a second
		// one means it has given up on the first stream (after a new hello,
		// say). An error reply here would tell it that the whole exec
		// service failed; instead the new request takes the job over and
		// hears where the job stands.
		c.log.Warn("exec: start re-sent for a job in progress; the new request takes it over", "job", sr.ID, "reattach", sr.Reattach)
		cj.w = w
		cj.m.resume(sr.Reattach)
		c.apply(cj)
		return
	}
	set := c.set
	cj := &cjob{w: w, fanout: set.Fanout, ranksStr: formatRanks(rs.ranks), acts: make([]action, 0, actionBuf)}
	cj.m = newJob(now, sr.ID, *sr.Userid, rs, set, sr.Reattach)
	cj.m.launchService = c.cfg.AgentService
	c.jobs[sr.ID] = cj
	cj.spec = spec
	userid, reattach := *sr.Userid, sr.Reattach
	// Actions are held (cj.ready is false) until the guest namespace is
	// set up: a fresh start creates it, a reattach reads the eventlog a
	// previous coordinator left there, to append to it and check its
	// recoverable event.
	c.goOwned(func() {
		var evs []Event
		var nsErr error
		hasNS := true
		if reattach {
			c.msgs.Add(2)
			evs, hasNS, nsErr = readGuestEventlog(c.ctx, c.h, sr.ID)
		} else {
			c.msgs.Add(4)
			if _, err := createNS(c.ctx, c.h, sr.ID, userid, c.rootref); err != nil {
				nsErr = fmt.Errorf("failed to create guest ns: %w", err)
				hasNS = !errors.Is(err, errNoNamespace)
			}
		}
		c.post(func() {
			if cj.gone {
				return
			}
			cj.events = evs
			cj.m.posted = map[string]bool{}
			for _, e := range evs {
				cj.m.posted[e.Name] = true
			}
			cj.ready, cj.hasNS, cj.replace = true, hasNS, !reattach
			cj.logDone = hasEvent(evs, "done")
			c.begin(cj, spec, serr, nsErr, userid)
		})
	})
}

// answerEvery makes the responder of req send every response: flux-core's
// clients send some requests that get several responses, or one, without
// saying so in their flags, and match the responses by topic (the job
// manager's start has no streaming flag; a job shell's shell-barrier is
// sent with NORESPONSE and answered by a response built by hand, with
// matchtag 0). fluxkit's Responders decide from the request's flags, read
// when they answer, so req is marked as the stream it is.
func answerEvery(req *fluxkit.Message) {
	req.Flags = req.Flags&^fluxkit.FlagNoResponse | fluxkit.FlagStreaming
}

// begin decides how a job runs once its guest namespace is set up (nsErr
// says why it could not be) and, for a reattach, its eventlog read.
func (c *Coordinator) begin(cj *cjob, spec *jobSpec, serr, nsErr error, userid uint32) {
	now := c.clk.Now()
	m := cj.m
	defer c.apply(cj)
	if m.finalSent || m.excSent {
		return // e.g. an invalid expiration
	}
	if nsErr != nil && !m.reattach {
		m.launched = false
		m.fatal(now, "exec", nsErr.Error())
		return
	}
	if serr != nil {
		m.launched = false
		note := serr.Error()
		var be *bulkexecError
		switch {
		case strings.HasPrefix(note, errTestConf):
			note = errTestConf
		case errors.As(serr, &be):
			note = fmt.Sprintf("failed to unpack system.exec.%s for %s: %s", be.key, m.id.F58(), be.detail)
		}
		m.fatal(now, "exec", note)
		return
	}
	method := spec.method
	if method == "" {
		method = m.set.Method
	}
	cj.method = method
	switch method {
	case MethodBulkExec, MethodBgExec, MethodTestExec, MethodBypass:
	default:
		m.launched = false
		m.fatal(now, "exec", fmt.Sprintf("unknown exec method '%s'", method))
		return
	}
	if userid != c.owner && !guestMay(m.set, method) {
		m.launched = false
		if method == MethodTestExec {
			m.fatal(now, "exec", "guests may not use test exec implementation")
		} else {
			m.fatal(now, "exec", fmt.Sprintf("guests may not use exec method '%s'", method))
		}
		return
	}
	if method == MethodTestExec && spec.test == nil {
		spec.test = &testConf{runDuration: spec.duration}
		if spec.duration == 0 {
			spec.test.runDuration = defaultTestDuration
		}
	}
	if m.reattach {
		switch {
		case cj.logDone:
			// A previous coordinator ended the job but went away before
			// release final: only the responses are left to send.
			m.over(now, completeStatus(cj.events))
			return
		case method == MethodBypass:
			m.launched = false
			m.fatal(now, "exec", "reattach to running job is not implemented")
			return
		case nsErr != nil:
			m.launched = false
			m.fatal(now, "exec", nsErr.Error())
			return
		case !hasEvent(cj.events, "recoverable"):
			m.launched = false
			m.fatal(now, "exec", "job is not recoverable: no recoverable event")
			return
		}
	}
	if t := spec.test; t != nil && method == MethodTestExec {
		switch t.mockException {
		case "init":
			m.launched = false
			m.fatal(now, "exec", "mock initialization exception generated")
			return
		case "run":
			cj.mockRun = true
		}
		if t.override && !m.reattach {
			m.holdStart = true
		}
	}
	if realMethod(method) && userid != c.owner && m.set.IMP == "" {
		// Without the IMP a guest's shell would run as the instance owner.
		m.launched = false
		m.fatal(now, "exec", "unable run multiuser job with no IMP configured!")
		return
	}
	if realMethod(method) {
		switch spec.bulkMock {
		case "init":
			m.launched = false
			m.fatal(now, "exec", "mock init exception generated")
			return
		case "starting":
			cj.mockStarting = true
		}
	}
	m.recoverable = method != MethodBypass
	m.signalFatal = realMethod(method)
	m.multiuser = realMethod(method) && userid != c.owner
	if m.reattach {
		// A termination in progress when the previous coordinator went
		// away goes on where it stood.
		for i := len(cj.events) - 1; i >= 0; i-- {
			if cj.events[i].Name == "termination" {
				m.restoreTermination(now, cj.events[i].Context)
				break
			}
		}
	}
	if method == MethodBypass {
		return // the controller starts it
	}
	if m.reattach {
		m.post(now, "re-starting", nil)
	}
	m.launch(now)
	cj.launchWait = true
	// What happened while the eventlog was loading: ranks that went
	// offline and exceptions the job manager raised.
	if c.online != nil {
		for _, r := range m.activeRanks() {
			if !c.online[r] {
				m.lost(now, r)
			}
		}
	}
	for _, f := range cj.early {
		f()
	}
	cj.early = nil
}

// guestMay reports whether a guest's job may run with method: the
// configured method always, testexec and bypass only where their
// allow-guests is set (testexec is not vetted for production and ignores
// time limits; a bypass job runs whatever its controller runs).
func guestMay(set Settings, method string) bool {
	if method == MethodTestExec || method == MethodBypass {
		return set.AllowGuests[method]
	}
	return method == set.Method || set.AllowGuests[method]
}

// completeStatus is the status of the last complete event of evs.
func completeStatus(evs []Event) int {
	st := 0
	for _, e := range evs {
		if f, ok := e.Context["status"].(float64); ok && e.Name == "complete" {
			st = int(f)
		}
	}
	return st
}

func hasEvent(evs []Event, name string) bool {
	for _, e := range evs {
		if e.Name == name {
			return true
		}
	}
	return false
}

// sendLaunch sends the job's launch to its leader; resume re-establishes a
// stream that broke.
func (c *Coordinator) sendLaunch(cj *cjob, resume bool) {
	m := cj.m
	lr := launchReq{
		ID: m.id, Userid: m.userid, Ranks: cj.ranksStr, Fanout: cj.fanout, Method: cj.method,
		Epilog: m.set.Epilog, Reattach: m.reattach, Resume: resume, Service: c.cfg.Service, Coord: c.h.Rank(),
	}
	if cj.method == MethodTestExec {
		lr.Test = &testWire{RunDuration: cj.spec.test.runDuration, WaitStatus: cj.spec.test.waitStatus}
	} else {
		shell := cmp.Or(cj.spec.jobShell, m.set.JobShell, c.cfg.JobShell)
		if shell != "" {
			// "<shell> <jobid>", in flux-core's job shell environment.
			lr.Argv = []string{shell, m.id.Dec()}
			lr.Shell = true
			// Only a job shell speaks the barrier protocol; a bare command
			// run as the "shell" does not.
			cj.shelled = true
			lr.Barriers = len(m.rs.ranks) > 1
			lr.BarrierTimeout = m.set.BarrierTimeout
			if bt := cj.spec.bulkBarrierTimeout; bt != nil {
				lr.BarrierTimeout = *bt
			}
		} else {
			lr.Argv = cj.spec.command
			lr.Env = cj.spec.env
		}
		if m.userid != c.owner {
			// Multiuser: the IMP switches to the job's user (RFC 15).
			lr.Argv = append([]string{m.set.IMP, "exec"}, lr.Argv...)
			lr.Multiuser = true
		}
	}
	c.msgs.Add(1)
	call, err := fluxkit.Stream(c.ctx, c.h, c.cfg.AgentService+".launch", m.rs.ranks[0], encodeLaunch(&lr))
	if err != nil {
		c.launchFailed(cj, err)
		return
	}
	cj.call = call
	c.goOwned(func() { c.readLaunch(cj, call) })
}

// relaunch re-establishes, after a pause, the launch stream to a leader
// whose agent went away while shells ran: a restarted agent finds them in
// its records. It reports false when that is not worth waiting for
// (nothing ran, or the error is not an agent going away); after
// ReconnectTimeout the ranks count as lost.
func (c *Coordinator) relaunch(cj *cjob, err error) bool {
	m := cj.m
	if errno := fluxkit.Errno(err); errno != fluxkit.ENOSYS && errno != fluxkit.ECONNRESET {
		return false
	}
	waiting := false // for a shell, or for a release
	for i, st := range m.st {
		waiting = waiting || (st == rsRunning || st == rsExited) && !m.released[i]
	}
	if !waiting {
		return false
	}
	now := c.clk.Now()
	if cj.relaunchUntil.IsZero() {
		cj.relaunchUntil = now.Add(c.cfg.ReconnectTimeout)
	}
	if now.After(cj.relaunchUntil) {
		c.launchFailed(cj, fluxkit.Errorf(fluxkit.EHOSTUNREACH, "the leader's agent did not come back: %v", err))
		return true
	}
	c.log.Warn("exec: launch stream to the leader broke; re-establishing it", "job", m.id, "err", err)
	cj.relaunchOff = c.clk.AfterFunc(reconnectPause, func() {
		c.post(func() {
			if !cj.gone && cj.call == nil {
				c.sendLaunch(cj, true)
			}
		})
	})
	return true
}

// launchFailed accounts for a launch stream that failed: every rank not
// released yet is lost (unreachable) or failed.
func (c *Coordinator) launchFailed(cj *cjob, err error) {
	now := c.clk.Now()
	errno := fluxkit.Errno(err)
	m := cj.m
	m.batch(now, func() {
		for i, r := range m.rs.ranks {
			switch {
			case m.released[i]:
			case errno == fluxkit.EHOSTUNREACH || errno == fluxkit.ECONNRESET:
				m.lost(now, r)
			case !m.st[i].done():
				m.failed(now, r, errno, err.Error())
			default:
				m.lost(now, r) // exited, never to be released through that stream
			}
		}
	})
}

func (c *Coordinator) readLaunch(cj *cjob, call fluxkit.Call) {
	for {
		msg, err := call.Recv(c.ctx)
		if err != nil {
			c.post(func() {
				if cj.gone || cj.call != call {
					return
				}
				cj.call = nil
				if !errors.Is(err, fluxkit.ENODATA) && !c.relaunch(cj, err) {
					c.launchFailed(cj, err)
				}
				c.apply(cj)
			})
			return
		}
		c.msgs.Add(1)
		var rep report
		if err := decodeReport(msg.Payload, &rep); err != nil {
			c.log.Warn("exec: bad agent report", "job", cj.m.id, "err", err)
			continue
		}
		c.post(func() {
			if cj.gone || cj.call != call {
				return
			}
			cj.relaunchUntil = time.Time{} // the leader is there
			c.applyReport(cj, &rep)
			c.apply(cj)
		})
	}
}

func ranksOf(s string) []uint32 {
	r, _ := parseRanks(s)
	return r
}

func (c *Coordinator) applyReport(cj *cjob, rep *report) {
	now := c.clk.Now()
	cj.m.batch(now, func() { c.applyReportLocked(cj, rep, now) })
}

func (c *Coordinator) applyReportLocked(cj *cjob, rep *report, now time.Time) {
	m := cj.m
	m.started(now, ranksOf(rep.Started))
	if ad := ranksOf(rep.Adopted); len(ad) > 0 {
		if !m.set.Adopt && !m.reattach {
			// The documented alternative to adoption: fail the job (its
			// termination kills the leftover shells) rather than run with
			// shells this coordinator did not launch.
			m.fatal(now, "exec", fmt.Sprintf("shells from a previous launch found on %s", m.rs.where(ad)))
		}
		m.started(now, ad)
	}
	for _, f := range rep.Failed {
		if syscall.Errno(f.Errno) == syscall.ECANCELED {
			m.cancelled(now, f.Rank)
			continue
		}
		m.failed(now, f.Rank, syscall.Errno(f.Errno), f.Msg)
	}
	cj.barriers = max(cj.barriers, rep.Barriers)
	if rep.BarrierTimeout {
		m.barrierTimedOut(now, ranksOf(rep.BarrierPending))
	}
	if cj.shelled && len(m.rs.ranks) > 1 && cj.barriers < 1 && len(rep.Exited) > 0 {
		var early []uint32
		for _, e := range rep.Exited {
			early = append(early, ranksOf(e.Ranks)...)
		}
		sortRanks(early)
		m.exitedBeforeBarrier(now, early, ranksOf(rep.Unentered), m.userid != c.owner)
	}
	for _, e := range rep.Exited {
		for _, r := range ranksOf(e.Ranks) {
			m.exited(now, r, e.Status)
		}
	}
	for _, r := range ranksOf(rep.Lost) {
		if c.online != nil && c.online[r] {
			// Reachable but cut off from its tree parent: make sure
			// nothing keeps running there.
			c.sendKill(cj, action{kind: actKill, signal: syscall.SIGKILL, ranks: []uint32{r}, direct: true})
		}
		m.lost(now, r)
	}
	var epf []uint32
	why := ""
	for _, f := range rep.EpilogFailed {
		epf = append(epf, f.Rank)
		why = f.Msg
	}
	if rel := ranksOf(rep.Released); len(rel) > 0 || len(epf) > 0 {
		m.releasedRanks(now, rel, epf, why)
	}
}

// apply carries out the job's pending actions, in order, then re-arms its
// timer, and once release final is due finalizes the job. Called with c.mu
// held.
func (c *Coordinator) apply(cj *cjob) {
	m := cj.m
	if !cj.ready {
		return
	}
	for {
		acts := m.swap(cj.acts)
		cj.acts = acts
		if len(acts) == 0 {
			break
		}
		// Events are queued for the KVS before any response of the same
		// step goes out, so that whoever sees a response and then syncs
		// the store sees the events that preceded it (complete before
		// finish, done before release final).
		for _, a := range acts {
			if a.kind == actPost && !cj.logDone {
				cj.pend = append(cj.pend, a.event)
				cj.logDone = a.event.Name == "done"
			}
		}
		if len(cj.pend) > 0 {
			cj.events = append(cj.events, cj.pend...)
			if cj.hasNS {
				c.st.append(m.id, cj.pend, cj.replace, nil)
				cj.replace = false
			}
			clear(cj.pend) // the store has encoded them: reuse the buffer
			cj.pend = cj.pend[:0]
		}
		for _, a := range acts {
			switch {
			case a.kind == actPost:
			case a.kind == actRespond && a.resp.Type == "release" && a.resp.Data["final"] == true:
				// Sent once the namespace is grafted (finalize).
				resp := a.resp
				cj.finalResp = &resp
			default:
				c.do(cj, a)
			}
		}
		if cj.mockRun && m.startSent && !m.excSent {
			cj.mockRun = false
			m.fatal(c.clk.Now(), "exec", "mock run exception generated")
		}
		if cj.mockStarting && !m.excSent && slices.Contains(m.st, rsRunning) {
			cj.mockStarting = false
			m.fatal(c.clk.Now(), "exec", "mock starting exception generated")
		}
	}
	if cj.launchWait {
		cj.launchWait = false
		c.launchAfterCommit(cj)
	}
	if m.finalSent {
		c.finalize(cj)
		return
	}
	c.arm(cj)
}

// launchAfterCommit sends the job's launch once the events posted so far
// (init, starting) are in its exec eventlog, which the shells append to.
// A failed commit fails the job; the launch still goes out, and the
// agents, told by the termination not to spawn, account for every rank.
func (c *Coordinator) launchAfterCommit(cj *cjob) {
	launch := func(err error) {
		c.post(func() {
			if cj.gone || cj.finalizing {
				return
			}
			if err != nil {
				cj.m.fatal(c.clk.Now(), "exec", err.Error())
			}
			c.sendLaunch(cj, false)
			c.apply(cj)
		})
	}
	if !cj.hasNS {
		launch(nil)
		return
	}
	c.st.append(cj.m.id, nil, false, launch)
}

// finalize ends a job whose release final is due, as flux-core's job-exec
// does: once done is committed, the guest namespace is grafted at the
// job's guest key and removed, then release final goes out and the job is
// retired.
func (c *Coordinator) finalize(cj *cjob) {
	if cj.finalizing {
		return
	}
	cj.finalizing = true
	if cj.timerOff != nil {
		cj.timerOff()
		cj.timerOff = nil
	}
	id, hasNS := cj.m.id, cj.hasNS
	done := func() {
		c.post(func() {
			if cj.gone {
				return
			}
			if r := cj.finalResp; r != nil {
				c.msgs.Add(1)
				if p, err := encodeResponse(r); err == nil {
					_ = cj.w.Respond(p)
				}
			}
			c.retire(cj)
		})
	}
	if !hasNS {
		done()
		return
	}
	c.st.append(id, nil, false, func(err error) {
		if err != nil {
			c.log.Error("exec: final eventlog entries", "job", id, "err", err)
		}
		c.goOwned(func() {
			c.msgs.Add(6)
			if err := graftNS(c.ctx, c.h, id); err != nil {
				c.log.Error("exec: guest namespace", "job", id, "err", err)
			}
			done()
		})
	})
}

func (c *Coordinator) do(cj *cjob, a action) {
	m := cj.m
	switch a.kind {
	case actRespond:
		c.msgs.Add(1)
		if p, err := encodeResponse(&a.resp); err == nil {
			_ = cj.w.Respond(p)
		} else {
			_ = fluxkit.Respond(cj.w, a.resp) // answers the encoding error as before
		}
	case actKill, actCancel:
		c.sendKill(cj, a)
	case actDrain:
		targets, reason := formatRanks(a.ranks), a.reason
		c.log.Info("exec: draining", "job", m.id, "ranks", targets, "reason", reason, "why", a.detail)
		c.msgs.Add(2)
		c.goOwned(func() {
			err := fluxkit.RPC(c.ctx, c.h, "resource.drain", 0,
				map[string]string{"targets": targets, "reason": reason, "mode": "update"}, nil)
			if err != nil {
				c.log.Error("exec: drain failed", "targets", targets, "reason", reason, "err", err)
			}
		})
	case actLostShell:
		c.msgs.Add(1)
		topic := fmt.Sprintf("%d-shell-%s.exception", m.userid, m.id.F58Plain())
		_ = fluxkit.Notify(c.ctx, c.h, topic, a.ranks[0], map[string]any{
			"type": "lost-shell", "severity": a.severity, "shell_rank": a.shellRank, "message": a.reason})
	}
}

// killBudget is how long the agents have to deliver a kill down a job's
// tree and answer for every rank; each level of the tree gives its children
// three quarters of its own.
const killBudget = 5 * time.Second

// sendKill delivers the kill (or, for actCancel, the order not to spawn)
// that a describes: down the job's tree from its leader, or straight to each
// rank when a.direct is set or the leader is lost. The agents answer for
// every rank (killResp) and the answer goes back to the machine.
func (c *Coordinator) sendKill(cj *cjob, a action) {
	if cj.method == MethodBypass {
		return
	}
	m := cj.m
	if a.kind == actKill && a.tasks && m.multiuser {
		// The owner cannot signal a guest's tasks: the job manager
		// publishes shell-<id>.kill, on which the shells signal them, as
		// flux_job_kill does for flux-core's job-exec. Open loop.
		c.msgs.Add(2)
		c.goOwned(func() {
			err := fluxkit.RPC(c.ctx, c.h, c.cfg.JobManager+".kill", 0, map[string]any{"id": m.id, "signum": int(a.signal)}, nil)
			if err != nil {
				c.log.Warn("exec: job-manager.kill", "job", m.id, "err", err)
			}
		})
		return
	}
	kr := killReq{ID: m.id, Signal: int(a.signal), Tasks: a.tasks, Cancel: a.kind == actCancel,
		Ranks: cj.ranksStr, Fanout: cj.fanout, Budget: killBudget}
	if a.kind == actCancel {
		kr.Signal = 0
	}
	if !a.direct && m.st[0] != rsLost {
		c.killRPC(cj, a, kr, m.rs.ranks[0], a.ranks)
		return
	}
	targets := a.ranks
	if !a.direct {
		targets = m.activeRanks()
		a.direct = true
	}
	kr.Only = "1"
	for _, r := range targets {
		c.killRPC(cj, a, kr, r, []uint32{r})
	}
}

// killRPC sends one kill request to rank and hands its answer to the job
// machine; ranks the request was for count as unreached if it fails.
func (c *Coordinator) killRPC(cj *cjob, a action, kr killReq, rank uint32, forRanks []uint32) {
	c.msgs.Add(2)
	c.goOwned(func() {
		ctx, cancel := context.WithTimeout(c.ctx, kr.Budget+time.Second)
		defer cancel()
		var resp killResp
		err := fluxkit.RPC(ctx, c.h, c.cfg.AgentService+".kill", rank, kr, &resp)
		held, empty, unreached := ranksOf(resp.Held), ranksOf(resp.Empty), ranksOf(resp.Unreached)
		if err != nil {
			held, empty, unreached = nil, nil, forRanks
		}
		c.post(func() {
			if cj.gone || !cj.ready {
				return
			}
			cj.m.killAcked(a, held, empty, unreached)
			c.apply(cj)
		})
	})
}

func (c *Coordinator) arm(cj *cjob) {
	d, ok := cj.m.next()
	if ok && d.Equal(cj.timerAt) && cj.timerOff != nil {
		return
	}
	if cj.timerOff != nil {
		cj.timerOff()
		cj.timerOff = nil
	}
	cj.timerAt = d
	if !ok {
		return
	}
	at := d
	fire := func() {
		if cj.gone || !cj.timerAt.Equal(at) {
			return
		}
		cj.timerOff = nil
		cj.timerAt = time.Time{}
		cj.m.tick(c.clk.Now())
		c.apply(cj)
	}
	if !d.After(c.clk.Now()) {
		// Already due (a step restored after a restart): no timer, whose
		// clock might not fire a past deadline until it moves on.
		cj.timerOff = func() bool { return true }
		c.post(fire)
		return
	}
	cj.timerOff = c.clk.AfterFunc(d.Sub(c.clk.Now()), func() { c.post(fire) })
}

func (c *Coordinator) retire(cj *cjob) {
	m := cj.m
	cj.gone = true
	if cj.timerOff != nil {
		cj.timerOff()
		cj.timerOff = nil
	}
	if cj.relaunchOff != nil {
		cj.relaunchOff()
	}
	if cj.call != nil {
		cj.call.Close()
		cj.call = nil
	}
	delete(c.jobs, m.id)
	c.jobsDone.Add(1)
	// Forget also cleans up after a refused reattach: the agents may still
	// hold shells from the previous coordinator, and dropping a record
	// kills its shell.
	if cj.method != MethodBypass && (m.launched || m.reattach) {
		c.msgs.Add(1)
		_ = fluxkit.Notify(c.ctx, c.h, c.cfg.AgentService+".forget", m.rs.ranks[0],
			encodeForget(&forgetReq{ID: m.id, Ranks: cj.ranksStr, Fanout: cj.fanout}))
	}
}

// ---- events ----

func (c *Coordinator) watchExceptions(sub fluxkit.Subscription) {
	defer sub.Close()
	for {
		ev, err := sub.Recv(c.ctx)
		if err != nil {
			return
		}
		c.msgs.Add(1)
		var in struct {
			ID         fluxkit.JobID `json:"id"`
			Type       string        `json:"type"`
			Severity   int           `json:"severity"`
			WaitStatus *int          `json:"wait_status"`
		}
		if err := json.Unmarshal(ev.Payload, &in); err != nil {
			c.log.Warn("exec: bad job-exception event", "err", err)
			continue
		}
		c.post(func() {
			cj := c.jobs[in.ID]
			if cj == nil {
				return
			}
			raise := func() {
				cj.m.exception(c.clk.Now(), in.Severity, in.WaitStatus)
				if cj.method == MethodBypass && in.Severity == 0 && cj.m.launched {
					// The controller is not ours to kill: a fatal exception
					// ends a bypass job at once, as testexec's kill does.
					c.completeAll(cj, 0)
				}
			}
			if !cj.ready {
				cj.early = append(cj.early, raise)
				return
			}
			raise()
			c.apply(cj)
		})
	}
}

func (c *Coordinator) watchOnline(call fluxkit.Call) {
	defer call.Close()
	for {
		msg, err := call.Recv(c.ctx)
		if err != nil {
			return
		}
		var in struct {
			Members string `json:"members"`
		}
		if json.Unmarshal(msg.Payload, &in) != nil {
			continue
		}
		ids, err := parseRanks(in.Members)
		if err != nil {
			continue
		}
		on := make(map[uint32]bool, len(ids))
		for _, r := range ids {
			on[r] = true
		}
		c.post(func() {
			c.online = on
			now := c.clk.Now()
			for _, cj := range c.jobs {
				if !cj.ready || cj.method == MethodBypass {
					continue
				}
				lostAny := false
				cj.m.batch(now, func() {
					for _, r := range cj.m.activeRanks() {
						if !on[r] {
							cj.m.lost(now, r)
							lostAny = true
						}
					}
				})
				if lostAny {
					c.apply(cj)
				}
			}
		})
	}
}

// ---- RPCs ----

func (c *Coordinator) lookup(w fluxkit.Responder, req *fluxkit.Message, id fluxkit.JobID, needOwner bool) *cjob {
	cj := c.jobs[id]
	if cj == nil || !cj.ready {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "Job not found"))
		return nil
	}
	cred := req.Cred()
	if needOwner && cred.Userid != cj.m.userid && !cred.IsOwner() {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPERM, "Permission denied"))
		return nil
	}
	return cj
}

func (c *Coordinator) handleExpiration(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.msgs.Add(2)
	var in struct {
		ID         fluxkit.JobID `json:"id"`
		Expiration *float64      `json:"expiration"`
	}
	if err := fluxkit.DecodePayload(req, &in); err != nil || in.Expiration == nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "%s: id and expiration are required", req.Topic))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cj := c.lookup(w, req, in.ID, false)
	if cj == nil {
		return
	}
	if *in.Expiration < 0 {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "invalid expiration %v", *in.Expiration))
		return
	}
	cj.m.setExpiration(c.clk.Now(), *in.Expiration)
	c.apply(cj)
	_ = w.Respond(nil)
}

func (c *Coordinator) handleCritical(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.msgs.Add(2)
	var in struct {
		ID    fluxkit.JobID `json:"id"`
		Ranks string        `json:"ranks"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cj := c.lookup(w, req, in.ID, true)
	if cj == nil {
		return
	}
	ids, err := parseRanks(in.Ranks)
	if err == nil {
		err = cj.m.setCritical(ids)
	}
	if err != nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "critical-ranks: %v", err))
		return
	}
	_ = w.Respond(nil)
}

func (c *Coordinator) handleOverride(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.msgs.Add(2)
	var in struct {
		Event  string        `json:"event"`
		JobID  fluxkit.JobID `json:"jobid"`
		Status int           `json:"status"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cj := c.jobs[in.JobID]
	if cj == nil || !cj.ready {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "Job not found"))
		return
	}
	if req.Cred().Userid != cj.m.userid {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPERM, "Permission denied"))
		return
	}
	if cj.spec == nil || cj.spec.test == nil || !cj.spec.test.override {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Job not in exec override mode"))
		return
	}
	now := c.clk.Now()
	switch in.Event {
	case "start":
		if !cj.m.holdStart {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Job already running"))
			return
		}
		cj.m.releaseHold(now)
	case "finish":
		if cj.m.holdStart || !cj.m.launched {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Job not running"))
			return
		}
		for _, r := range cj.m.activeRanks() {
			cj.m.exited(now, r, in.Status)
		}
		// The simulated shells end now; their releases follow from the agents.
		c.sendKill(cj, action{kind: actKill, signal: syscall.SIGKILL, ranks: cj.m.activeRanks()})
	default:
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Invalid event"))
		return
	}
	c.apply(cj)
	_ = w.Respond(nil)
}

func (c *Coordinator) completeAll(cj *cjob, status int) {
	now := c.clk.Now()
	cj.m.batch(now, func() {
		for _, r := range cj.m.activeRanks() {
			cj.m.exited(now, r, status)
		}
		cj.m.releasedRanks(now, cj.m.rs.ranks, nil, "")
	})
}

func (c *Coordinator) handleBypass(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.msgs.Add(2)
	var in struct {
		ID     fluxkit.JobID `json:"id"`
		Event  string        `json:"event"`
		Status int           `json:"status"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cj := c.lookup(w, req, in.ID, true)
	if cj == nil {
		return
	}
	if cj.method != MethodBypass {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Job not in exec bypass mode"))
		return
	}
	now := c.clk.Now()
	switch in.Event {
	case "start":
		if cj.m.launched {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Job already running"))
			return
		}
		if cj.m.exc {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Job has an exception"))
			return
		}
		cj.ctrl = req.Sender()
		cj.m.launch(now)
		cj.m.started(now, cj.m.rs.ranks)
	case "finish":
		if !cj.m.launched {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Job not running"))
			return
		}
		c.completeAll(cj, in.Status)
	default:
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "Invalid event"))
		return
	}
	c.apply(cj)
	_ = w.Respond(nil)
}

func (c *Coordinator) handleDisconnect(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.msgs.Add(1)
	sender := req.Sender()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cj := range c.jobs {
		if cj.method != MethodBypass || cj.ctrl == "" || cj.ctrl != sender || cj.m.complete() {
			continue
		}
		cj.m.fatal(c.clk.Now(), "exec", "bypass controller disconnected")
		c.completeAll(cj, 0)
		c.apply(cj)
	}
}

// handleOutput stores a piece of a shell's output in the exec eventlog and
// acknowledges it once committed. Offsets make redelivery after a restart
// idempotent: each byte is logged once (I6).
func (c *Coordinator) handleOutput(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.msgs.Add(1)
	var in outputReq
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	if in.Stream != streamStdout && in.Stream != streamStderr || in.Offset < 0 {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "%s: bad stream %d or offset %d", req.Topic, in.Stream, in.Offset))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cj := c.jobs[in.ID]
	if cj == nil || !cj.ready || cj.finalizing {
		// A finalizing job's eventlog ends with done: its shells' output
		// was all stored before their exits were reported.
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "Job not found"))
		return
	}
	key := [2]uint32{in.Rank, uint32(in.Stream)}
	if cj.outOff == nil {
		cj.outOff = map[[2]uint32]int64{} // only jobs with output need one
	}
	next, ok := cj.outOff[key]
	if !ok {
		next = recoverOffset(cj.events, in.Rank, in.Stream)
	}
	data := in.Data
	if in.Offset > next {
		// The agent sends from where an earlier coordinator had stored up
		// to (this one started a fresh eventlog, or lost a batch): it has
		// the bytes, so ask for them from where this eventlog stands.
		c.msgs.Add(1)
		_ = fluxkit.Respond(w, outputResp{Offset: next})
		return
	}
	skip := next - in.Offset
	if skip >= int64(len(data)) {
		cj.outOff[key] = next
		c.msgs.Add(1)
		_ = fluxkit.Respond(w, outputResp{Offset: next})
		return
	}
	data = data[skip:]
	comp := in.Argv0
	if comp == "" {
		comp = "flux-shell"
	}
	ev := Event{Timestamp: ts(c.clk.Now()), Name: "log", Context: map[string]any{
		"component": comp, "stream": streamNames[in.Stream], "rank": strconv.FormatUint(uint64(in.Rank), 10),
		"offset": next,
	}}
	logData(ev.Context, data)
	end := next + int64(len(data))
	cj.outOff[key] = end // log events are not kept in memory: offsets suffice
	if !cj.hasNS {
		// Nowhere to store it (the job failed without a namespace).
		c.msgs.Add(1)
		_ = fluxkit.Respond(w, outputResp{Offset: end})
		return
	}
	c.st.append(in.ID, []Event{ev}, cj.replace, func(err error) {
		c.msgs.Add(1)
		if err != nil {
			_ = w.RespondError(err)
			return
		}
		_ = fluxkit.Respond(w, outputResp{Offset: end})
	})
	cj.replace = false
}

// recoverOffset is where a (rank, stream) stands according to the eventlog
// a previous coordinator left: the end of its last piece, counted in the
// bytes the shell wrote.
func recoverOffset(evs []Event, rank uint32, stream int) int64 {
	var end int64
	rs := strconv.FormatUint(uint64(rank), 10)
	for _, e := range evs {
		if e.Name != "log" || e.Context["rank"] != rs || e.Context["stream"] != streamNames[stream] {
			continue
		}
		off, ok := e.Context["offset"].(float64)
		data, err := logBytes(e.Context)
		if !ok || err != nil {
			continue
		}
		end = max(end, int64(off)+int64(len(data)))
	}
	return end
}

// Stats is what stats-get returns.
type Stats struct {
	Method                  string              `json:"method"`
	KillTimeout             float64             `json:"kill-timeout"`
	TermSignal              string              `json:"term-signal"`
	KillSignal              string              `json:"kill-signal"`
	MaxKillCount            int                 `json:"max-kill-count"`
	MaxKillTimeout          float64             `json:"max-kill-timeout"`
	EffectiveMaxKillTimeout float64             `json:"effective-max-kill-timeout"`
	Jobs                    map[string]JobStats `json:"jobs"`
	Messages                int64               `json:"messages"`
	Completed               int64               `json:"completed"`
}

// JobStats is one job in Stats, with flux-core's field names.
type JobStats struct {
	Implementation      string  `json:"implementation"`
	CriticalRanks       string  `json:"critical_ranks"`
	Multiuser           bool    `json:"multiuser"`
	ExceptionInProgress bool    `json:"exception_in_progress"`
	Started             bool    `json:"started"`
	Running             bool    `json:"running"`
	Finalizing          bool    `json:"finalizing"`
	Expiration          float64 `json:"expiration"`
	KillTimeout         float64 `json:"kill_timeout"`
	KillCount           int     `json:"kill_count"`
	KillShellCount      int     `json:"kill_shell_count"`
	TotalShells         int     `json:"total_shells"`
	ActiveShells        int     `json:"active_shells"`
	ActiveRanks         string  `json:"active_ranks"`
}

// Stats returns the coordinator's configuration and per-job state.
func (c *Coordinator) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.set
	st := Stats{
		Method: s.Method, KillTimeout: s.KillTimeout.Seconds(), TermSignal: sigName(s.TermSignal),
		KillSignal: sigName(s.KillSignal), MaxKillCount: s.MaxKillCount, MaxKillTimeout: s.MaxKillTimeout.Seconds(),
		EffectiveMaxKillTimeout: s.EffectiveMaxKillTimeout().Seconds(), Jobs: map[string]JobStats{},
		Messages: c.msgs.Load(), Completed: c.jobsDone.Load(),
	}
	for id, cj := range c.jobs {
		m := cj.m
		var crit []uint32
		for i, b := range m.critical {
			if b {
				crit = append(crit, uint32(i))
			}
		}
		act := m.activeRanks()
		exp := 0.0
		if !m.expiration.IsZero() {
			exp = ts(m.expiration)
		}
		st.Jobs[id.F58Plain()] = JobStats{
			Implementation: cj.method, CriticalRanks: formatRanks(crit), Multiuser: m.userid != c.owner,
			ExceptionInProgress: m.exc, Started: m.launched, Running: m.startSent, Finalizing: m.finishSent,
			Expiration: exp, KillTimeout: m.killTimeout().Seconds(), KillCount: m.esc.tasks,
			KillShellCount: m.esc.shells, TotalShells: len(m.st), ActiveShells: len(act), ActiveRanks: formatRanks(act),
		}
	}
	return st
}

func (c *Coordinator) handleStats(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	_ = fluxkit.Respond(w, c.Stats())
}

func (c *Coordinator) handleReload(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.goOwned(func() {
		s, err := c.readSettings(c.ctx)
		if err != nil {
			_ = w.RespondError(err)
			return
		}
		c.mu.Lock()
		c.set = s
		c.mu.Unlock()
		_ = w.Respond(nil)
	})
}

// Settings returns the configuration new jobs start with.
func (c *Coordinator) Settings() Settings {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.set
}

// holding is the ranks of job id that may still hold processes, as the
// agents' answers to kills left them (tests wait on it).
func (c *Coordinator) holding(id fluxkit.JobID) string {
	c.quiesce()
	c.mu.Lock()
	defer c.mu.Unlock()
	if cj := c.jobs[id]; cj != nil {
		return formatRanks(cj.m.holdingRanks())
	}
	return ""
}

// quiesce waits until everything posted to the worker so far has been
// applied (tests drive virtual time with it).
func (c *Coordinator) quiesce() {
	done := make(chan struct{})
	c.post(func() { close(done) })
	select {
	case <-done:
	case <-c.ctx.Done():
	}
}
