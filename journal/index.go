package journal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
	"github.com/fluxkit/fluxkit/job"
)

// ProtocolError is the terminal error of a consumer fed malformed input:
// it names the job, the event (and its position in the message) and what
// is wrong.
type ProtocolError struct {
	Job   fluxkit.JobID // 0 when the message's id could not be read
	Event string        // "" when the message itself is malformed
	Index int           // position of the entry in "events", -1 for the message
	Err   error
}

func (e *ProtocolError) Error() string {
	switch {
	case e.Event != "":
		return fmt.Sprintf("journal: job %s: event %d (%s): %v", e.Job, e.Index, e.Event, e.Err)
	case e.Index >= 0:
		return fmt.Sprintf("journal: job %s: event %d: %v", e.Job, e.Index, e.Err)
	case e.Job != 0:
		return fmt.Sprintf("journal: job %s: %v", e.Job, e.Err)
	}
	return fmt.Sprintf("journal: %v", e.Err)
}

// Unwrap lets errors.Is see EPROTO and the cause.
func (e *ProtocolError) Unwrap() []error { return []error{fluxkit.EPROTO, e.Err} }

// counts are job-stats figures for the instance or one queue.
type counts struct {
	depend, priority, sched, run, cleanup, inactive int
	successful, failed, canceled, timeout, purged   int
}

func (c *counts) add(s State, d int) {
	switch s {
	case StateDepend:
		c.depend += d
	case StatePriority:
		c.priority += d
	case StateSched:
		c.sched += d
	case StateRun:
		c.run += d
	case StateCleanup:
		c.cleanup += d
	case StateInactive:
		c.inactive += d
	}
}

// addResult counts an INACTIVE job's result: fixed when the job became
// INACTIVE, so a job always leaves the category it was counted in.
func (c *counts) addResult(j *jobRec, d int) {
	switch j.result {
	case ResultCompleted:
		c.successful += d
	case ResultCanceled:
		c.canceled += d
	case ResultTimeout:
		c.timeout += d
	default:
		c.failed += d
	}
}

// Index is the job-list side as a pure state machine: it ingests journal
// responses and purge events and answers queries through the Responders it
// is handed. No goroutines, no clock; the caller serialises calls and
// performs KVS lookups through [IndexConfig.Lookup].
type Index struct {
	cfg         IndexConfig
	jobs        map[fluxkit.JobID]*jobRec
	pending     slist
	running     slist
	inactive    slist
	stats       counts
	queues      map[string]*counts
	initialized bool
	paused      bool
	buffered    [][]byte // live messages held while paused
	deferred    []deferredReq
	purges      [][]fluxkit.JobID // purge events held until initialised
	// Ids purged or invalidated, in a bounded FIFO (the oldest are
	// forgotten first). The purge event and the journal travel on
	// different channels, so a purge can overtake a job's last events:
	// such a job is purged as soon as it becomes INACTIVE here. And a late
	// copy of a submit never brings a job back.
	gone      map[fluxkit.JobID]struct{}
	goneOrder []fluxkit.JobID
	waiters   map[fluxkit.JobID][]*waiter
	nwaits    int
	lookups   int
	watchers  []*statsWatcher
	hostsMemo map[string]hostlist.Hostlist // nodelist → parsed, for hostlist constraints
	ranksMemo map[string]idset.Set         // ranks → parsed, for ranks constraints
	statsGen  uint64                       // incremented on every change stats or lists may show
	failed    error
	done      bool
	der       *deriver
	entries   []job.Event // parseMessage's buffer
	last      *jobRec     // lookup's memory: a job in jobs, or nil
}

// IndexConfig configures an [Index].
type IndexConfig struct {
	// Lookup checks whether a job the index has not seen exists (Flux looks
	// up its KVS directory). It must call done exactly once, later, with
	// nil or the lookup's error, serialised with the Index's other calls.
	// Default: every unknown job is absent (ENOENT).
	Lookup func(id fluxkit.JobID, done func(error))
	// Logf receives what job-list logs (non-fatal problems). Default:
	// discard.
	Logf func(format string, args ...any)
	// Queues are configured queue names (empty per-queue stats entries).
	Queues []string
	// Send delivers a list answer: the payloads in order, then, when end is
	// not nil, end as the closing error response (ENODATA for a stream).
	// It may send later, from another goroutine, so that one large answer
	// holds up neither the index nor other clients. Default: respond at
	// once.
	Send func(w fluxkit.Responder, payloads [][]byte, end error)
	// MaxComparisons caps the constraint comparisons of one list request
	// (flux-core's job-list.max_comparisons); 0 is no cap. Default (nil):
	// 1,000,000.
	MaxComparisons *uint64
	// MaxHosts is the most hosts or ranks a hostlist or ranks constraint
	// may name. Default: 1024, flux-core's floor (it allows the instance
	// size when that is larger).
	MaxHosts int
	// PrivateMode limits guests (neither owner nor admin) to their own
	// jobs, as flux-core's [access] private-mode does: list shows only
	// theirs, list-id answers ENOENT for another's, job-stats and
	// stats-get answer EPERM.
	PrivateMode bool
	// MaxLatePurges bounds the purged and invalidated ids remembered: so
	// that a job whose purge event overtakes its last events is purged once
	// it is INACTIVE, and a late copy of its submit is not taken for a new
	// job. Default 65536.
	MaxLatePurges int
}

// DefaultMaxComparisons is flux-core's default cap on the constraint
// comparisons of one list request.
const DefaultMaxComparisons = 1_000_000

// sendNow is the default IndexConfig.Send.
func sendNow(w fluxkit.Responder, payloads [][]byte, end error) {
	for _, p := range payloads {
		_ = w.Respond(p)
	}
	if end != nil {
		_ = w.RespondError(end)
	}
}

// NewIndex returns an empty, uninitialised index.
func NewIndex(cfg IndexConfig) *Index {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Lookup == nil {
		cfg.Lookup = func(id fluxkit.JobID, done func(error)) {
			done(fluxkit.ENOENT)
		}
	}
	if cfg.MaxLatePurges <= 0 {
		cfg.MaxLatePurges = 65536
	}
	if cfg.Send == nil {
		cfg.Send = sendNow
	}
	if cfg.MaxComparisons == nil {
		n := uint64(DefaultMaxComparisons)
		cfg.MaxComparisons = &n
	}
	if cfg.MaxHosts < minMaxHosts {
		cfg.MaxHosts = minMaxHosts
	}
	x := &Index{cfg: cfg, jobs: make(map[fluxkit.JobID]*jobRec), queues: map[string]*counts{},
		waiters: map[fluxkit.JobID][]*waiter{}, gone: map[fluxkit.JobID]struct{}{}, der: newDeriver(),
		hostsMemo: map[string]hostlist.Hostlist{}, ranksMemo: map[string]idset.Set{}}
	x.pending.cmp = cmpPending
	x.running.cmp = cmpTime
	x.inactive.cmp = cmpTime
	for _, q := range cfg.Queues {
		x.queues[q] = &counts{}
	}
	return x
}

// Initialized reports whether the backlog has been applied.
func (x *Index) Initialized() bool { return x.initialized }

// Err is the terminal error, if the index has stopped on one.
func (x *Index) Err() error { return x.failed }

// Done reports whether the journal has ended (cleanly or not).
func (x *Index) Done() bool { return x.done }

// Journal ingests one journal response payload. A non-nil error is
// terminal: the index stops ingesting (queries keep being answered from
// what it holds).
func (x *Index) Journal(payload []byte) error {
	if x.done {
		return x.failed
	}
	// The entries buffer is taken, not shared, in case a Responder
	// re-enters the Index while they are applied.
	m, err := parseMessage(payload, x.entries)
	x.entries = nil
	err = x.journalDecoded(payload, &m, err)
	// Cleared so that the buffer does not pin the last payload.
	clear(m.entries)
	x.entries = m.entries[:0]
	return err
}

// journalDecoded is Journal for a payload parseMessage has already decoded
// into m (with error perr): decoding is pure, so a consumer may do it on
// another goroutine, off the index's lock.
func (x *Index) journalDecoded(payload []byte, m *message, perr error) error {
	if x.done {
		return x.failed
	}
	if err := perr; err != nil {
		return x.fail(err)
	}
	if m.sentinel {
		if x.initialized {
			// Harmless: the stream goes on, and whatever it repeats is a
			// duplicate apply refuses.
			x.cfg.Logf("journal: second sentinel ignored")
			return nil
		}
		x.initialize()
		return nil
	}
	if !x.initialized {
		// The backlog is applied to the job table as it arrives rather than
		// stored: nothing can observe the table before the sentinel (queries
		// are deferred, stats and lists are built at the sentinel), so this
		// is the same as Flux's store-then-apply without holding the
		// backlog's raw bytes.
		if err := x.process(m); err != nil {
			x.cfg.Logf("error processing journal backlog")
			return x.fail(err)
		}
		return nil
	}
	if x.paused {
		x.buffered = append(x.buffered, payload)
		return nil
	}
	if err := x.process(m); err != nil {
		x.cfg.Logf("error processing events")
		return x.fail(err)
	}
	return nil
}

// JournalEnd records the end of the stream: ENODATA is a clean end, any
// other error is terminal.
func (x *Index) JournalEnd(err error) error {
	if x.done {
		return x.failed
	}
	x.done = true
	if errors.Is(err, fluxkit.ENODATA) {
		x.cfg.Logf("journal: EOF (exiting)")
		return nil
	}
	x.cfg.Logf("journal: %v", err)
	x.failed = err
	return err
}

func (x *Index) fail(err error) error {
	x.failed = err
	x.done = true
	x.cfg.Logf("%v", err)
	return err
}

// process applies one (non-sentinel) journal response.
func (x *Index) process(m *message) error {
	err := x.processEvents(m)
	// The job borrowed the message's jobspec and R while its events were
	// applied; it keeps a copy only if it is still active. An INACTIVE job
	// needs neither (its attributes are derived, and no producer posts
	// updates after clean), which saves most of the backlog's copying and
	// memory.
	if j := x.lookup(m.id); j != nil {
		if j.state == StateInactive {
			j.jobspec, j.rRaw = nil, nil
		} else {
			if sameBytes(j.jobspec, m.jobspec) {
				j.jobspec = clone(j.jobspec)
			}
			if sameBytes(j.rRaw, m.r) {
				j.rRaw = clone(j.rRaw)
			}
		}
	}
	return err
}

func sameBytes(a, b []byte) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }

func (x *Index) processEvents(m *message) error {
	for i, e := range m.entries {
		if err := x.apply(m.id, e, m.jobspec, m.r); err != nil {
			return &ProtocolError{Job: m.id, Event: e.Name, Index: i, Err: err}
		}
	}
	if m.entryErr != nil {
		x.cfg.Logf("error parsing record")
		return &ProtocolError{Job: m.id, Index: m.entryAt, Err: m.entryErr}
	}
	return nil
}

func ctxInt(ctx []byte, key string) (int64, error) {
	if ctx == nil {
		return 0, errors.New("context missing")
	}
	return ctxIntOf(jsonscan.FastMember(ctx, key), key)
}

// ctxIntOf is ctxInt for the raw value v of key (nil: absent).
func ctxIntOf(v []byte, key string) (int64, error) {
	if v == nil {
		return 0, fmt.Errorf("context has no %s", key)
	}
	n, err := jsonscan.Int(v)
	if err != nil {
		return 0, fmt.Errorf("context %s is not an integer", key)
	}
	return n, nil
}

func ctxString(ctx []byte, key string) (string, error) {
	if ctx == nil {
		return "", errors.New("context missing")
	}
	v := jsonscan.FastMember(ctx, key)
	if v == nil {
		return "", fmt.Errorf("context has no %s", key)
	}
	s, err := jsonscan.Unquote(v)
	if err != nil {
		return "", fmt.Errorf("context %s is not a string", key)
	}
	return s, nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// apply processes one entry (job-list's journal_process_event). A job
// takes events from its submit until it is INACTIVE (the job manager posts
// nothing after clean), and each moves it only as RFC 21 moves a job from
// the state it is in ([State.after]). So a duplicate or late event (a
// repeated depend, a finish after clean, an event repeated where the
// backlog and the live stream overlap) is logged and changes nothing; its
// context is checked all the same.
func (x *Index) apply(id fluxkit.JobID, e job.Event, jobspec, r []byte) error {
	j := x.lookup(id)
	if j != nil && j.rRaw == nil && r != nil && j.state != StateInactive {
		j.rRaw = r // borrowed from the message until process ends
	}
	if j == nil && e.Name != "submit" {
		x.cfg.Logf("event %s: job %s not in hash", e.Name, id)
		return nil
	}
	if e.Name == "submit" {
		return x.submit(j, id, e, jobspec, r)
	}
	// taken: the event is the job's own, not a duplicate or late copy.
	taken := j.state != StateInactive
	switch e.Name {
	case "invalidate":
		if j.state != StateNew {
			taken = false
			break
		}
		x.detach(j)
		x.forget(id)
		x.answerGone(id)
	case "validate", "depend", "alloc", "clean", "flux-restart":
		if taken && !x.step(j, e, false) {
			taken = false
		}
	case "priority":
		p, err := ctxInt(e.Context, "priority")
		if err != nil {
			return err
		}
		if j.state&(StatePriority|StateSched) == 0 {
			taken = false
			break
		}
		if p != j.priority {
			if x.initialized && j.list == &x.pending {
				x.pending.remove(x.keyOf(j))
				j.priority = p
				x.insert(j, &x.pending)
			} else {
				j.priority = p
			}
		}
		x.step(j, e, false)
	case "finish":
		st, err := ctxInt(e.Context, "status")
		if err != nil {
			return err
		}
		if j.state&StateRunning == 0 {
			taken = false
			break
		}
		j.waitstatus = int32(st)
		// As in flux-core, success is only ever set: a finish after a
		// fatal exception does not take back a success already recorded.
		if st == 0 && !(j.excOccurred && j.excSeverity == 0) {
			j.success = true
		}
		x.step(j, e, false)
	case "exception":
		typ, err := ctxString(e.Context, "type")
		if err != nil {
			return err
		}
		sev, err := ctxInt(e.Context, "severity")
		if err != nil {
			return err
		}
		note, err := ctxString(e.Context, "note")
		if err != nil {
			return err
		}
		if !taken {
			break
		}
		if !j.excOccurred || int32(sev) < j.excSeverity {
			c := j.coldFor()
			c.excType, j.excSeverity, c.excNote, j.excNoteSet = typ, int32(sev), note, true
		}
		j.excOccurred = true
		x.step(j, e, sev == 0)
	case "urgency":
		u, err := ctxInt(e.Context, "urgency")
		if err != nil {
			return err
		}
		if u < 0 || u > 31 {
			return fmt.Errorf("urgency %d outside 0..31", u)
		}
		if !taken {
			break
		}
		j.urgency = int32(u)
		x.step(j, e, false)
	case "annotations":
		v := jsonscan.FastMember(e.Context, "annotations")
		if v == nil {
			return errors.New("context has no annotations")
		}
		if k := jsonscan.KindOf(v); k != jsonscan.Null && k != jsonscan.Object {
			return errors.New("annotations is not an object or null")
		}
		if !taken {
			break
		}
		if jsonscan.KindOf(v) == jsonscan.Object {
			j.coldFor().annotations = clone(v)
		} else if j.cold != nil {
			j.cold.annotations = nil
		}
		x.changed()
	case "memo":
		if e.Context == nil {
			return errors.New("context missing")
		}
		if !taken {
			break
		}
		ann := mergeMemo(j.annotations(), e.Context)
		if ann != nil || j.cold != nil {
			j.coldFor().annotations = ann
		}
		x.changed()
	case "jobspec-update":
		if e.Context == nil {
			return errors.New("context missing")
		}
		if !taken {
			break
		}
		x.updateJobspec(j, e)
		// The job manager reverts a SCHED job whether or not the update
		// could be applied here.
		x.step(j, e, false)
	case "resource-update":
		if e.Context == nil {
			return errors.New("context missing")
		}
		if taken {
			x.updateR(j, e)
		}
	case "dependency-add", "dependency-remove":
		d, err := ctxString(e.Context, "description")
		if err != nil {
			return err
		}
		if taken {
			x.dependency(j, e.Name == "dependency-add", d)
		}
	case "start", "release", "free", "set-flags", "prolog-start", "prolog-finish", "epilog-start", "epilog-finish":
		// Events job-list has no use for.
	default:
		if strings.HasPrefix(e.Name, "dependency-") {
			return fmt.Errorf("unknown dependency event %s", e.Name)
		}
		if !strings.HasPrefix(e.Name, "debug.") {
			x.cfg.Logf("event %s: job %s: an event job-list does not know: skipped", e.Name, id)
		}
	}
	if !taken {
		x.cfg.Logf("event %s: job %s in state %s: ignored", e.Name, id, j.state)
	}
	return nil
}

// submit creates the job a submit event announces. A job is submitted once
// (the event is always its first): a copy for a job already here, or for
// one purged or invalidated since, is logged and ignored.
func (x *Index) submit(j *jobRec, id fluxkit.JobID, e job.Event, jobspec, r []byte) error {
	if e.Context == nil {
		return errors.New("context missing")
	}
	// One walk for the three keys (each lookup would walk it again); the
	// last of a repeated key counts, as with fastMember.
	var uv, gv, vv []byte
	_ = jsonscan.FastMembers(e.Context, func(k string, v []byte) error {
		switch k {
		case "userid":
			uv = v
		case "urgency":
			gv = v
		case "version":
			vv = v
		}
		return nil
	})
	userid, err := ctxIntOf(uv, "userid")
	if err != nil {
		return err
	}
	urgency, err := ctxIntOf(gv, "urgency")
	if err != nil {
		return err
	}
	version := int64(-1)
	if vv != nil {
		if version, err = jsonscan.Int(vv); err != nil {
			return errors.New("context version is not an integer")
		}
	}
	if j != nil {
		x.cfg.Logf("event submit: job %s already submitted: ignored", id)
		return nil
	}
	if _, ok := x.gone[id]; ok {
		x.cfg.Logf("event submit: job %s was purged or invalidated: ignored", id)
		return nil
	}
	j = newJob(id)
	j.state, j.mask = StateNew, StateNew
	j.jobspec = jobspec // borrowed, see process
	j.rRaw = r
	x.jobs[id] = j
	x.last = j
	j.userid, j.urgency, j.submitVersion, j.tSubmit = uint32(userid), int32(urgency), int32(version), e.Timestamp
	return nil
}

// updateJobspec applies a jobspec-update to the job's jobspec and what is
// derived from it.
func (x *Index) updateJobspec(j *jobRec, e job.Event) {
	if j.jobspec == nil {
		x.cfg.Logf("received jobspec update before jobspec")
		return
	}
	upd, skipped, err := updatePathsSkipped(j.jobspec, e.Context, true)
	for _, k := range skipped {
		x.cfg.Logf("job %s: jobspec-update: key %s not updatable", j.id, k)
	}
	if err != nil {
		x.cfg.Logf("job %s: jobspec-update: %v", j.id, err)
		return
	}
	oldQueue := j.js.queue
	j.jobspec = upd
	// flux-core parses the updated jobspec at once, whatever the state.
	if err := x.der.applyJobspec(j, upd); err != nil {
		x.cfg.Logf("job %s: jobspec-update: %v", j.id, err)
	}
	if j.js.queue != oldQueue && x.initialized {
		x.moveQueue(j, oldQueue)
	}
	x.changed()
}

// updateR applies a resource-update to the job's R.
func (x *Index) updateR(j *jobRec, e job.Event) {
	if j.rRaw == nil {
		x.cfg.Logf("received resource update before R")
		return
	}
	v := jsonscan.FastMember(e.Context, "expiration")
	if v == nil {
		return
	}
	upd, err := setExpiration(j.rRaw, v)
	if err != nil {
		x.cfg.Logf("job %s: resource-update: %v", j.id, err)
		return
	}
	j.rRaw = upd
	if err := x.der.applyR(j, upd); err != nil {
		x.cfg.Logf("job %s: resource-update: %v", j.id, err)
	}
	x.changed()
}

func (x *Index) dependency(j *jobRec, add bool, d string) {
	if add {
		j.depsEverAdded = true
		c := j.coldFor()
		for _, h := range c.depsHeld {
			if h == d {
				return
			}
		}
		c.depsHeld = append(c.depsHeld, d)
		c.deps = append(c.deps, d)
	} else {
		for i, h := range j.deps() {
			if h == d {
				c := j.cold
				c.deps = append(c.deps[:i:i], c.deps[i+1:]...)
				x.changed()
				return
			}
		}
		x.cfg.Logf("job %s: dependency %s not found", j.id, d)
		return
	}
	x.changed()
}

func (x *Index) queueCounts(q string) *counts {
	c := x.queues[q]
	if c == nil {
		c = &counts{}
		x.queues[q] = c
	}
	return c
}

func (x *Index) moveQueue(j *jobRec, old string) {
	if j.state == StateNew {
		return
	}
	if old != "" {
		c := x.queueCounts(old)
		c.add(j.state, -1)
		if j.state == StateInactive {
			c.addResult(j, -1)
		}
	}
	if j.js.queue != "" {
		c := x.queueCounts(j.js.queue)
		c.add(j.state, 1)
		if j.state == StateInactive {
			c.addResult(j, 1)
		}
	}
	x.changed()
}

func (x *Index) changed() { x.statsGen++ }

// step moves j as event e moves a job in its state ([State.after]), fatal
// telling a severity 0 exception; it reports whether j moved.
func (x *Index) step(j *jobRec, e job.Event, fatal bool) bool {
	to := j.state.after(e.Name, fatal)
	if to == j.state {
		return false
	}
	if j.state == StateSched && to == StatePriority {
		// A revert: PRIORITY and SCHED are to be reached afresh, so the
		// job has no priority until the next priority event.
		j.mask &^= StateSched | StatePriority
	}
	x.enter(j, to, e.Timestamp)
	return true
}

// enter puts j in state s with job-list's bookkeeping: the state's
// timestamp, the jobspec parsed at DEPEND and R at RUN, the result fixed
// at INACTIVE; once initialised, lists, statistics and waiters.
func (x *Index) enter(j *jobRec, s State, ts float64) {
	if x.initialized {
		x.count(j, j.state, -1)
	}
	j.state = s
	switch s {
	case StateDepend:
		j.tDepend = ts
		if err := x.der.applyJobspec(j, j.jobspec); err != nil {
			x.cfg.Logf("%s: error parsing jobspec: %v", j.id, err)
		}
	case StatePriority:
		if j.tPriority == 0 {
			j.tPriority = ts
		}
	case StateSched:
		if j.tSched == 0 {
			j.tSched = ts
		}
	case StateRun:
		j.tRun = ts
		if err := x.der.applyR(j, j.rRaw); err != nil {
			x.cfg.Logf("%s: error parsing R: %v", j.id, err)
		}
	case StateCleanup:
		j.tCleanup = ts
	case StateInactive:
		j.tInactive = ts
		j.result = j.finalResult()
	}
	j.mask |= s
	if x.initialized {
		x.count(j, s, 1)
		x.relist(j)
		x.checkWaiters(j)
		x.changed()
		if _, ok := x.gone[j.id]; ok && s == StateInactive {
			x.purgeJob(j)
		}
	}
}

// count adds d to the stats of j in state s (NEW excluded); at INACTIVE
// the result category too.
func (x *Index) count(j *jobRec, s State, d int) {
	if s == StateNew || s == 0 {
		return
	}
	x.stats.add(s, d)
	var q *counts
	if j.js.queue != "" {
		q = x.queueCounts(j.js.queue)
		q.add(s, d)
	}
	if s == StateInactive {
		x.stats.addResult(j, d)
		if q != nil {
			q.addResult(j, d)
		}
	}
}

func listFor(x *Index, s State) *slist {
	switch s {
	case StateDepend, StatePriority, StateSched:
		return &x.pending
	case StateRun, StateCleanup:
		return &x.running
	case StateInactive:
		return &x.inactive
	}
	return nil
}

func (x *Index) insert(j *jobRec, l *slist) {
	j.list, j.listP = l, j.priority
	l.insert(x.keyOf(j))
}

// keyOf is j's slot in its list: the keys it is sorted under there.
// Running and inactive jobs are sorted by times that never change; a
// pending job by the priority it had when put there (listP).
func (x *Index) keyOf(j *jobRec) entry {
	e := entry{j: j, id: j.id}
	switch j.list {
	case &x.pending:
		e.p = j.listP
	case &x.running:
		e.k = j.tRun
	case &x.inactive:
		e.k = j.tInactive
	}
	return e
}

func (x *Index) relist(j *jobRec) {
	l := listFor(x, j.state)
	if j.list == l {
		if l == &x.pending && j.state == StateSched {
			// Re-sorted on entering SCHED (the key is the priority).
			if j.listP != j.priority {
				l.remove(x.keyOf(j))
				x.insert(j, l)
			}
		}
		return
	}
	if j.list != nil {
		j.list.remove(x.keyOf(j))
		j.list = nil
	}
	if l != nil {
		x.insert(j, l)
	}
}

// lookup is x.jobs[id] with the last job remembered: a message's events,
// and the message's epilogue, are all for one job.
func (x *Index) lookup(id fluxkit.JobID) *jobRec {
	if j := x.last; j != nil && j.id == id {
		return j
	}
	j := x.jobs[id]
	if j != nil {
		x.last = j
	}
	return j
}

// detach removes j from its list and the index.
func (x *Index) detach(j *jobRec) {
	if x.last == j {
		x.last = nil
	}
	if j.list != nil {
		j.list.remove(x.keyOf(j))
		j.list = nil
	}
	delete(x.jobs, j.id)
}

// initialize applies the end of the backlog: lists sorted once, stats
// counted, deferred purges and requests run in arrival order.
func (x *Index) initialize() {
	var pend, run []entry
	// The backlog is mostly inactive jobs: one allocation, no regrowth.
	inact := make([]entry, 0, len(x.jobs))
	for _, j := range x.jobs {
		l := listFor(x, j.state)
		if l == nil {
			continue
		}
		j.list, j.listP = l, j.priority
		switch l {
		case &x.pending:
			pend = append(pend, x.keyOf(j))
		case &x.running:
			run = append(run, x.keyOf(j))
		case &x.inactive:
			inact = append(inact, x.keyOf(j))
		}
		x.count(j, j.state, 1)
	}
	x.pending.build(pend, true)
	x.running.build(run, false)
	x.inactive.build(inact, false)
	x.initialized = true
	x.changed()
	purges := x.purges
	x.purges = nil
	for _, ids := range purges {
		x.Purge(ids)
	}
	d := x.deferred
	x.deferred = nil
	for _, r := range d {
		x.Request(r.w, r.req)
	}
}

// Purge applies a job-purge-inactive event. Before initialisation it is
// held and applied right after the backlog, so a purged job never
// reappears (a fix over Flux).
func (x *Index) Purge(ids []fluxkit.JobID) {
	if !x.initialized {
		x.purges = append(x.purges, ids)
		return
	}
	n := 0
	for _, id := range ids {
		x.forget(id)
		switch j := x.jobs[id]; {
		case j == nil:
			x.answerGone(id)
		case j.state == StateInactive:
			x.purgeJob(j)
			n++
		}
	}
	if n > 0 {
		x.cfg.Logf("purged %d inactive jobs", n)
	}
}

func (x *Index) purgeJob(j *jobRec) {
	x.count(j, StateInactive, -1)
	x.stats.purged++
	if j.js.queue != "" {
		x.queueCounts(j.js.queue).purged++
	}
	x.detach(j)
	x.answerGone(j.id)
	x.changed()
}

// forget remembers that id was purged or invalidated (see Index.gone).
func (x *Index) forget(id fluxkit.JobID) {
	if _, ok := x.gone[id]; ok {
		return
	}
	x.gone[id] = struct{}{}
	x.goneOrder = append(x.goneOrder, id)
	if len(x.goneOrder) > x.cfg.MaxLatePurges {
		delete(x.gone, x.goneOrder[0])
		x.goneOrder = x.goneOrder[1:]
	}
}
