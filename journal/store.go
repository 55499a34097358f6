package journal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
	"github.com/fluxkit/fluxkit/job"
)

// Errors of the producer's job store, matched with errors.Is.
var (
	// ErrUnknownJob: the id names no job the store holds.
	ErrUnknownJob = errors.New("unknown job")
	// ErrTransition: the event is not valid in the job's state (RFC 21).
	ErrTransition = errors.New("invalid event for job state")
	// ErrContext: the event's context lacks a required key or has a
	// mistyped one (RFC 21).
	ErrContext = errors.New("invalid event context")
	// ErrOverflow ends the stream of a listener that fell more than
	// StoreConfig.MaxQueue live events behind; it travels as EOVERFLOW.
	// The consumer recovers by subscribing again with full.
	ErrOverflow = fluxkit.Errorf(fluxkit.EOVERFLOW, "journal listener fell behind")
)

// StoreConfig configures a [Store].
type StoreConfig struct {
	// MaxQueue bounds the live events queued for one listener that has not
	// taken them yet. A listener that exceeds it is dropped: its stream ends
	// with EOVERFLOW ([ErrOverflow]) and its queue is freed, so a slow
	// consumer costs bounded memory and never delays the others; it
	// recovers by subscribing again with full. Default 1,000,000.
	MaxQueue int
	// Now is the clock for timestamp 0 ("now") and job ids. Default
	// time.Now.
	Now func() time.Time
	// Epoch is the RFC 19 id epoch. Default: Now() at construction.
	Epoch time.Time
}

func (c *StoreConfig) setDefaults() error {
	if c.MaxQueue == 0 {
		c.MaxQueue = 1_000_000
	}
	if c.MaxQueue < 0 {
		return fmt.Errorf("journal: StoreConfig.MaxQueue %d is negative", c.MaxQueue)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Epoch.IsZero() {
		c.Epoch = c.Now()
	}
	return nil
}

// pjob is the producer's view of a job: its eventlog as posted, and the
// redacted jobspec and R as last updated.
type pjob struct {
	id       fluxkit.JobID
	state    State
	userid   uint32
	priority int64
	log      []byte   // entries joined by commas, ready to splice into "events"
	ends     []uint32 // end offset in log of each entry
	jobspec  []byte   // redacted; replaced (never mutated) on update
	r        []byte   // redacted; replaced (never mutated) on update
	tInact   float64
	finished bool
	inactIdx int // position in Store.inactive while inactive
}

// Store is the job manager's job table and event journal as a pure,
// caller-driven state machine: no goroutines, no I/O; the caller serialises
// calls. Listener output is pulled with [Store.Next].
type Store struct {
	cfg       StoreConfig
	jobs      map[fluxkit.JobID]*pjob
	active    int
	inactive  []*pjob // in order of becoming inactive; nil holes after purge
	inactHead int
	ninactive int
	maxID     fluxkit.JobID
	ids       *fluxkit.JobIDGenerator
	listeners []*Listener
	events    uint64
	// Errorf receives the non-fatal errors Flux logs (e.g. "error preparing
	// journal response"). Nil drops them.
	logf func(format string, args ...any)
}

// NewStore returns an empty store.
func NewStore(cfg StoreConfig) (*Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, jobs: make(map[fluxkit.JobID]*pjob)}, nil
}

func (s *Store) log(format string, args ...any) {
	if s.logf != nil {
		s.logf(format, args...)
	}
}

func (s *Store) now() float64 {
	return float64(s.cfg.Now().UnixNano()) / 1e9
}

// Submission describes a new job.
type Submission struct {
	// ID is the job id; zero means assign the next RFC 19 id.
	ID fluxkit.JobID
	// Timestamp of the submit event; zero means now.
	Timestamp float64
	Userid    uint32
	Urgency   int
	Flags     int
	// Jobspec is the RFC 14 jobspec (JSON object); it is stored without
	// attributes.system.environment.
	Jobspec []byte
}

// Submit creates a job and posts its submit event (with the redacted
// jobspec attached on the journal). It returns the job's id.
func (s *Store) Submit(sub Submission) (fluxkit.JobID, error) {
	id := sub.ID
	if id == 0 {
		if s.ids == nil {
			g, err := fluxkit.NewJobIDGenerator(fluxkit.JobIDGeneratorConfig{Epoch: s.cfg.Epoch, After: s.maxID, Now: s.cfg.Now})
			if err != nil {
				return 0, err
			}
			s.ids = g
		}
		var err error
		// Zero means "assign" in Submission, so it is never issued.
		for id == 0 && err == nil {
			id, err = s.ids.Next()
		}
		if err != nil {
			return 0, err
		}
	}
	if id == fluxkit.JobIDAny {
		return 0, fmt.Errorf("journal: submit: job id %d is reserved: %w", id, ErrContext)
	}
	if _, ok := s.jobs[id]; ok {
		return 0, fmt.Errorf("journal: submit: job %s exists: %w", id, ErrTransition)
	}
	if sub.Urgency < 0 || sub.Urgency > 31 {
		return 0, fmt.Errorf("journal: submit %s: urgency %d outside 0..31: %w", id, sub.Urgency, ErrContext)
	}
	var js []byte
	if sub.Jobspec != nil {
		var err error
		if js, err = redact(sub.Jobspec, "attributes", "system", "environment"); err != nil {
			return 0, fmt.Errorf("journal: submit %s: jobspec: %w", id, err)
		}
	}
	ctx := fmt.Appendf(nil, `{"userid":%d,"urgency":%d,"flags":%d,"version":1}`, sub.Userid, sub.Urgency, sub.Flags)
	j := &pjob{id: id, state: 0, userid: sub.Userid, priority: -1, jobspec: js, inactIdx: -1}
	s.jobs[id] = j
	if id > s.maxID {
		s.maxID = id
	}
	if err := s.post(j, sub.Timestamp, "submit", ctx); err != nil {
		delete(s.jobs, id)
		return 0, err
	}
	s.active++
	return id, nil
}

// Post appends an event to job id's eventlog after checking the RFC 18
// entry rules and the RFC 21 transition, journals it to every listener whose
// filter passes its name, and updates the job's state. A timestamp of zero
// means now. context is a JSON object or nil.
func (s *Store) Post(id fluxkit.JobID, timestamp float64, name string, context []byte) error {
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("journal: post %s to %s: %w", name, id, ErrUnknownJob)
	}
	if name == "submit" {
		return fmt.Errorf("journal: post submit to %s: use Submit: %w", id, ErrTransition)
	}
	return s.post(j, timestamp, name, context)
}

// SetR stores the job's R (RFC 20), without its scheduling key; the alloc
// event carries it on the journal. resource-update keeps it current.
func (s *Store) SetR(id fluxkit.JobID, r []byte) error {
	j, ok := s.jobs[id]
	if !ok {
		return fmt.Errorf("journal: set R of %s: %w", id, ErrUnknownJob)
	}
	red, err := redact(r, "scheduling")
	if err != nil {
		return fmt.Errorf("journal: set R of %s: %w", id, err)
	}
	j.r = red
	return nil
}

// ClearR forgets the job's redacted R, a test aid for the "missing
// artifact" path.
func (s *Store) ClearR(id fluxkit.JobID) {
	if j, ok := s.jobs[id]; ok {
		j.r = nil
	}
}

func (s *Store) post(j *pjob, ts float64, name string, context []byte) error {
	if ts == 0 {
		ts = s.now()
	}
	e, err := job.NewEvent(ts, name, context)
	if err != nil {
		return fmt.Errorf("journal: post %s to %s: %w", name, j.id, err)
	}
	next, err := s.check(j, e)
	if err != nil {
		return err
	}
	start := len(j.log)
	if start > 0 {
		j.log = append(j.log, ',')
		start++
	}
	j.log = e.AppendJSON(j.log)
	j.ends = append(j.ends, uint32(len(j.log)))
	s.events++
	s.journal(j, e.Name, j.log[start:])
	s.apply(j, e, next)
	return nil
}

// check validates e against j's state and returns the next state.
func (s *Store) check(j *pjob, e job.Event) (State, error) {
	bad := func() (State, error) {
		return 0, fmt.Errorf("journal: %s: event %s in state %s: %w", j.id, e.Name, j.state, ErrTransition)
	}
	ctxErr := func(what string) (State, error) {
		return 0, fmt.Errorf("journal: %s: event %s: %s: %w", j.id, e.Name, what, ErrContext)
	}
	st := j.state
	if st == StateInactive {
		return bad()
	}
	if st == 0 {
		if e.Name != "submit" {
			return bad()
		}
		if err := checkSubmit(e.Context); err != nil {
			return ctxErr(err.Error())
		}
		return StateNew, nil
	}
	intKey := func(key string, lo, hi int64) error {
		v, err := jsonscan.Member(e.Context, key)
		if err != nil || v == nil {
			return fmt.Errorf("%s missing", key)
		}
		n, err := jsonscan.Int(v)
		if err != nil || n < lo || n > hi {
			return fmt.Errorf("%s must be an integer in %d..%d", key, lo, hi)
		}
		return nil
	}
	strKey := func(key string) error {
		v, err := jsonscan.Member(e.Context, key)
		if err != nil || jsonscan.KindOf(v) != jsonscan.String {
			return fmt.Errorf("%s must be a string", key)
		}
		return nil
	}
	fatal := false
	switch e.Name {
	case "submit":
		return bad()
	case "validate", "invalidate":
		if st != StateNew {
			return bad()
		}
		if e.Name == "invalidate" {
			return 0, nil
		}
	case "depend":
		if st != StateDepend {
			return bad()
		}
	case "priority":
		if st != StatePriority && st != StateSched {
			return bad()
		}
		if err := intKey("priority", 0, math.MaxUint32); err != nil {
			return ctxErr(err.Error())
		}
	case "urgency":
		if st&(StateNew|StatePending) == 0 {
			return bad()
		}
		if err := intKey("urgency", 0, 31); err != nil {
			return ctxErr(err.Error())
		}
		if err := intKey("userid", 0, math.MaxUint32); err != nil {
			return ctxErr(err.Error())
		}
	case "flux-restart":
		if st != StateSched {
			return bad()
		}
	case "jobspec-update":
		if e.Context == nil || string(e.Context) == "{}" {
			return ctxErr("at least one key required")
		}
	case "resource-update":
		if j.r == nil {
			return bad()
		}
		v, err := jsonscan.Member(e.Context, "expiration")
		if err != nil || v == nil {
			return ctxErr("expiration missing")
		}
		if _, err := jsonscan.Float(v); err != nil {
			return ctxErr("expiration must be a number")
		}
	case "alloc":
		if st != StateSched {
			return bad()
		}
	case "start":
		if st != StateRun {
			return bad()
		}
	case "finish":
		if st&StateRunning == 0 || j.finished {
			return bad()
		}
		if err := intKey("status", math.MinInt32, math.MaxInt32); err != nil {
			return ctxErr(err.Error())
		}
	case "release":
		if st&StateRunning == 0 {
			return bad()
		}
		if err := strKey("ranks"); err != nil {
			return ctxErr(err.Error())
		}
	case "free":
		if st&StateRunning == 0 {
			return bad()
		}
	case "clean":
		if st != StateCleanup {
			return bad()
		}
	case "exception":
		if err := strKey("type"); err != nil {
			return ctxErr(err.Error())
		}
		if err := strKey("note"); err != nil {
			return ctxErr(err.Error())
		}
		if err := intKey("severity", 0, 7); err != nil {
			return ctxErr(err.Error())
		}
		v, _ := jsonscan.Member(e.Context, "severity")
		if sev, _ := jsonscan.Int(v); sev == 0 {
			if st == StateNew {
				return bad()
			}
			fatal = true
		}
	case "dependency-add", "dependency-remove", "prolog-start", "epilog-start":
		if err := strKey("description"); err != nil {
			return ctxErr(err.Error())
		}
	case "prolog-finish", "epilog-finish":
		if err := strKey("description"); err != nil {
			return ctxErr(err.Error())
		}
		if err := intKey("status", math.MinInt32, math.MaxInt32); err != nil {
			return ctxErr(err.Error())
		}
	case "annotations":
		v, err := jsonscan.Member(e.Context, "annotations")
		if err != nil || (jsonscan.KindOf(v) != jsonscan.Object && jsonscan.KindOf(v) != jsonscan.Null) {
			return ctxErr("annotations must be an object or null")
		}
	case "memo":
		if e.Context == nil {
			return ctxErr("context required")
		}
	case "set-flags":
		v, err := jsonscan.Member(e.Context, "flags")
		if err != nil || jsonscan.KindOf(v) != jsonscan.Array {
			return ctxErr("flags must be an array")
		}
	}
	// The checks above admit an event only in the states where the job
	// manager posts it; what it then does is the one transition table.
	return st.after(e.Name, fatal), nil
}

func checkSubmit(ctx []byte) error {
	if ctx == nil {
		return errors.New("context required")
	}
	for _, k := range []string{"userid", "urgency", "flags"} {
		v, err := jsonscan.Member(ctx, k)
		if err != nil || jsonscan.KindOf(v) != jsonscan.Integer {
			return fmt.Errorf("%s must be an integer", k)
		}
	}
	v, _ := jsonscan.Member(ctx, "urgency")
	if u, _ := jsonscan.Int(v); u < 0 || u > 31 {
		return fmt.Errorf("urgency %d outside 0..31", u)
	}
	if v, _ := jsonscan.Member(ctx, "version"); v != nil {
		if n, err := jsonscan.Int(v); err != nil || n != 1 {
			return errors.New("version must be 1")
		}
	}
	return nil
}

// apply updates the job after its event was journaled.
func (s *Store) apply(j *pjob, e job.Event, next State) {
	switch e.Name {
	case "invalidate":
		delete(s.jobs, j.id)
		s.active--
		return
	case "priority":
		v, _ := jsonscan.Member(e.Context, "priority")
		j.priority, _ = jsonscan.Int(v)
	case "flux-restart", "urgency", "jobspec-update":
		if j.state == StateSched {
			j.priority = -1
		}
		if e.Name == "jobspec-update" && j.jobspec != nil {
			if upd, err := updatePaths(j.jobspec, e.Context, true); err == nil {
				j.jobspec = upd
			} else {
				s.log("%s: jobspec-update: %v", j.id, err)
			}
		}
	case "resource-update":
		v, _ := jsonscan.Member(e.Context, "expiration")
		if upd, err := setExpiration(j.r, v); err == nil {
			j.r = upd
		} else {
			s.log("%s: resource-update: %v", j.id, err)
		}
	case "finish":
		j.finished = true
	}
	if next == StateInactive && j.state != StateInactive {
		j.tInact = e.Timestamp
		j.inactIdx = len(s.inactive)
		s.inactive = append(s.inactive, j)
		s.ninactive++
		s.active--
	}
	j.state = next
}

// journal sends the live response for j's entry raw to every listener.
func (s *Store) journal(j *pjob, name string, raw []byte) {
	if len(s.listeners) == 0 {
		return
	}
	var msg []byte
	build := func() []byte {
		if msg != nil {
			return msg
		}
		var att, key string
		var val []byte
		switch name {
		case "submit":
			att, val = "jobspec", j.jobspec
		case "alloc":
			att, val = "R", j.r
		}
		if att != "" && val == nil {
			return nil
		}
		b := make([]byte, 0, len(raw)+len(val)+48)
		b = append(b, `{"id":`...)
		b = strconv.AppendUint(b, uint64(j.id), 10)
		b = append(b, `,"events":[`...)
		b = append(b, raw...)
		b = append(b, ']')
		if att != "" {
			key = `,"` + att + `":`
			b = append(b, key...)
			b = append(b, val...)
		}
		msg = append(b, '}')
		return msg
	}
	missing := false
	for _, l := range s.listeners {
		if l.ended != nil || !l.passes(name) {
			continue
		}
		m := build()
		if m == nil {
			missing = true
			break
		}
		if len(l.queue)-l.qhead >= s.cfg.MaxQueue {
			l.ended = fmt.Errorf("journal: listener %s/%d: %d live events queued: %w",
				l.Key.Sender, l.Key.Matchtag, len(l.queue)-l.qhead, ErrOverflow)
			l.queue, l.qhead = nil, 0
			l.snap = nil
			continue
		}
		l.queue = append(l.queue, m)
		l.dirty = true
	}
	if missing {
		s.log("error preparing journal response for %s %s", j.id, name)
	}
}

// redact returns obj without the member at path (a JSON object path). An
// object without it is returned as is.
func redact(obj []byte, path ...string) ([]byte, error) {
	obj = jsonscan.Trim(obj)
	if err := jsonscan.Check(obj); err != nil {
		return nil, err
	}
	if jsonscan.KindOf(obj) != jsonscan.Object {
		return nil, jsonscan.ErrNotObject
	}
	return redactPath(obj, path)
}

func redactPath(obj []byte, path []string) ([]byte, error) {
	var out []byte
	found := false
	err := jsonscan.Members(obj, func(k string, v []byte) error {
		if k != path[0] {
			return nil
		}
		found = true
		return nil
	})
	if err != nil || !found {
		return bytes.Clone(obj), err
	}
	out = append(out, '{')
	first := true
	err = jsonscan.Members(obj, func(k string, v []byte) error {
		if k == path[0] {
			if len(path) == 1 {
				return nil
			}
			if jsonscan.KindOf(v) == jsonscan.Object {
				nv, err := redactPath(v, path[1:])
				if err != nil {
					return err
				}
				v = nv
			}
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = jsonscan.AppendString(out, k)
		out = append(out, ':')
		out = append(out, v...)
		return nil
	})
	return append(out, '}'), err
}

// Listener is one journal stream.
type Listener struct {
	Key    ListenerKey
	Userid uint32
	allow  map[string]struct{}
	deny   map[string]struct{}
	snap   []snapJob
	sent   bool // sentinel sent
	queue  [][]byte
	qhead  int
	ended  error // terminal error to deliver, then the listener is gone
	dirty  bool
	gone   bool // removed from the store
}

// ListenerKey identifies a stream as cancel and disconnect see it.
type ListenerKey struct {
	Sender   string
	Matchtag uint32
}

// Filter selects event names for a listener, as the request's allow and
// deny objects do. A nil map means absent.
type Filter struct {
	Allow map[string]struct{}
	Deny  map[string]struct{}
}

func (l *Listener) passes(name string) bool {
	if l.allow != nil {
		if _, ok := l.allow[name]; !ok {
			return false
		}
	}
	if l.deny != nil {
		if _, ok := l.deny[name]; ok {
			return false
		}
	}
	return true
}

type snapJob struct {
	id      fluxkit.JobID
	log     []byte
	ends    []uint32
	jobspec []byte
	r       []byte
}

// Subscribe registers a listener. Its backlog is every inactive job (when
// full) then every active job as they stand now, followed by the sentinel;
// every event posted after this call is queued behind it. The backlog is a
// snapshot of slice headers (eventlogs are append-only and jobspec/R are
// replaced, never mutated), encoded lazily by [Store.Next], so a huge
// backlog costs no memory until it is taken and no event can fall between
// backlog and live stream or appear in both.
func (s *Store) Subscribe(key ListenerKey, userid uint32, full bool, f Filter) *Listener {
	l := &Listener{Key: key, Userid: userid, allow: f.Allow, deny: f.Deny, dirty: true}
	n := s.active
	if full {
		n += s.ninactive
	}
	l.snap = make([]snapJob, 0, n)
	add := func(j *pjob) {
		l.snap = append(l.snap, snapJob{id: j.id, log: j.log[:len(j.log):len(j.log)], ends: j.ends[:len(j.ends):len(j.ends)], jobspec: j.jobspec, r: j.r})
	}
	if full {
		for _, j := range s.inactive[s.inactHead:] {
			if j != nil {
				add(j)
			}
		}
	}
	for _, j := range s.jobs {
		if j.state != StateInactive {
			add(j)
		}
	}
	s.listeners = append(s.listeners, l)
	return l
}

// Sentinel is the response that ends every backlog.
var Sentinel = []byte(`{"id":-1,"events":[]}`)

// Next appends to out up to max responses for l, in order: backlog,
// sentinel, live events. end is non-nil once the stream is over: the
// terminal error to send (ENODATA-matching for cancel and shutdown,
// [ErrOverflow]), after which l is forgotten; errGone means it was removed
// without a response (disconnect).
func (s *Store) Next(l *Listener, out [][]byte, max int) ([][]byte, error) {
	for max > 0 && len(l.snap) > 0 {
		sj := &l.snap[0]
		out = append(out, encodeBacklog(sj, l))
		l.snap[0] = snapJob{}
		l.snap = l.snap[1:]
		max--
	}
	if len(l.snap) == 0 {
		l.snap = nil
	}
	if max > 0 && !l.sent && l.snap == nil && l.ended == nil {
		out = append(out, Sentinel)
		l.sent = true
		max--
	}
	for max > 0 && l.qhead < len(l.queue) {
		out = append(out, l.queue[l.qhead])
		l.queue[l.qhead] = nil
		l.qhead++
		max--
	}
	if l.qhead == len(l.queue) {
		l.queue, l.qhead = l.queue[:0], 0
	} else if l.qhead > 1024 && l.qhead*2 > len(l.queue) {
		n := copy(l.queue, l.queue[l.qhead:])
		clear(l.queue[n:])
		l.queue, l.qhead = l.queue[:n], 0
	}
	l.dirty = l.qhead < len(l.queue) || l.snap != nil || !l.sent
	if l.ended != nil && len(out) == 0 {
		s.remove(l)
		return out, l.ended
	}
	if l.ended != nil {
		l.dirty = true
	}
	return out, nil
}

// Pending reports whether l has output for Next.
func (l *Listener) Pending() bool { return l.dirty || l.ended != nil }

func encodeBacklog(sj *snapJob, l *Listener) []byte {
	n := len(sj.log) + len(sj.jobspec) + len(sj.r) + 64
	b := make([]byte, 0, n)
	b = append(b, `{"id":`...)
	b = strconv.AppendUint(b, uint64(sj.id), 10)
	b = append(b, `,"events":[`...)
	if l.allow == nil && l.deny == nil {
		b = append(b, sj.log...)
	} else {
		first := true
		start := 0
		for _, end := range sj.ends {
			raw := sj.log[start:end]
			start = int(end) + 1
			name := ""
			if v, err := jsonscan.Member(raw, "name"); err == nil && jsonscan.KindOf(v) == jsonscan.String {
				name = job.EventName(v)
			}
			if !l.passes(name) {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, raw...)
		}
	}
	b = append(b, ']')
	if sj.jobspec != nil {
		b = append(b, `,"jobspec":`...)
		b = append(b, sj.jobspec...)
	}
	if sj.r != nil {
		b = append(b, `,"R":`...)
		b = append(b, sj.r...)
	}
	return append(b, '}')
}

func (s *Store) remove(l *Listener) {
	if l.gone {
		return
	}
	l.gone = true
	if i := slices.Index(s.listeners, l); i >= 0 {
		s.listeners = slices.Delete(s.listeners, i, i+1)
	}
}

// errCanceled is the ENODATA end of a cancelled or shut-down stream.
var errEnd = fluxkit.Errorf(fluxkit.ENODATA, "")

// Cancel ends the first stream of sender with matchtag whose user matches
// (the owner may cancel any): it gets ENODATA after what it has already
// been handed. It returns the listener, or nil.
func (s *Store) Cancel(sender string, cred fluxkit.Cred, matchtag uint32) *Listener {
	for _, l := range s.listeners {
		if l.Key.Sender == sender && l.Key.Matchtag == matchtag && l.ended == nil &&
			(cred.IsOwner() || cred.Userid == l.Userid) {
			l.end(errEnd)
			return l
		}
	}
	return nil
}

func (l *Listener) end(err error) {
	l.ended = err
	l.snap = nil
	l.queue, l.qhead = nil, 0
	l.dirty = true
}

// Disconnect removes every stream of sender without a response and returns
// them.
func (s *Store) Disconnect(sender string, cred fluxkit.Cred) []*Listener {
	var out []*Listener
	for _, l := range slices.Clone(s.listeners) {
		if l.Key.Sender == sender && (cred.IsOwner() || cred.Userid == l.Userid) {
			l.end(errGone)
			s.remove(l)
			out = append(out, l)
		}
	}
	return out
}

// errGone marks a listener removed without a response.
var errGone = errors.New("journal: listener disconnected")

// Shutdown ends every stream with ENODATA.
func (s *Store) Shutdown() []*Listener {
	out := slices.Clone(s.listeners)
	for _, l := range out {
		if l.ended == nil {
			l.end(errEnd)
		}
	}
	return out
}

// Listeners returns the number of registered streams.
func (s *Store) Listeners() int { return len(s.listeners) }

// StoreStats are the job manager's stats-get figures.
type StoreStats struct {
	Listeners    int
	Events       uint64
	ActiveJobs   int
	InactiveJobs int
	MaxJobID     fluxkit.JobID
}

// Stats returns the current figures.
func (s *Store) Stats() StoreStats {
	return StoreStats{Listeners: len(s.listeners), Events: s.events, ActiveJobs: s.active,
		InactiveJobs: s.ninactive, MaxJobID: s.maxID}
}

// Purge removes inactive jobs, oldest first: all beyond the newest keep
// (keep < 0: no count limit) and all with t_inactive before olderThan
// (olderThan <= 0: no age limit), at most max (max <= 0: no limit). It
// returns the purged ids; later backlogs omit them.
func (s *Store) Purge(keep int, olderThan float64, max int) []fluxkit.JobID {
	var out []fluxkit.JobID
	for s.inactHead < len(s.inactive) {
		if max > 0 && len(out) >= max {
			break
		}
		j := s.inactive[s.inactHead]
		if j == nil {
			s.inactHead++
			continue
		}
		overCount := keep >= 0 && s.ninactive > keep
		tooOld := olderThan > 0 && j.tInact < olderThan
		if !overCount && !tooOld {
			break
		}
		s.dropInactive(j)
		out = append(out, j.id)
	}
	s.compactInactive()
	return out
}

// PurgeIDs removes the given inactive jobs; ids not inactive are skipped.
func (s *Store) PurgeIDs(ids []fluxkit.JobID) []fluxkit.JobID {
	var out []fluxkit.JobID
	for _, id := range ids {
		if j, ok := s.jobs[id]; ok && j.state == StateInactive {
			s.dropInactive(j)
			out = append(out, id)
		}
	}
	s.compactInactive()
	return out
}

func (s *Store) dropInactive(j *pjob) {
	s.inactive[j.inactIdx] = nil
	delete(s.jobs, j.id)
	s.ninactive--
}

func (s *Store) compactInactive() {
	for s.inactHead < len(s.inactive) && s.inactive[s.inactHead] == nil {
		s.inactHead++
	}
	if s.inactHead > 1024 && s.inactHead*2 > len(s.inactive) {
		n := 0
		for _, j := range s.inactive[s.inactHead:] {
			if j != nil {
				j.inactIdx = n
				s.inactive[n] = j
				n++
			}
		}
		clear(s.inactive[n:])
		s.inactive, s.inactHead = s.inactive[:n], 0
	}
}

// Eventlog returns job id's eventlog as RFC 18 text, without the entries
// Flux never writes to the KVS (annotations, invalidate), i.e. what a
// restart would reload.
func (s *Store) Eventlog(id fluxkit.JobID) ([]byte, error) {
	j, ok := s.jobs[id]
	if !ok {
		return nil, fmt.Errorf("journal: eventlog of %s: %w", id, ErrUnknownJob)
	}
	var out []byte
	start := 0
	for _, end := range j.ends {
		raw := j.log[start:end]
		start = int(end) + 1
		if v, err := jsonscan.Member(raw, "name"); err == nil && journalOnly(v) {
			continue
		}
		out = append(out, raw...)
		out = append(out, '\n')
	}
	return out, nil
}

// EventlogArray returns job id's in-memory eventlog as a JSON array, the
// job-manager.getattr "eventlog" test aid.
func (s *Store) EventlogArray(id fluxkit.JobID) ([]byte, error) {
	j, ok := s.jobs[id]
	if !ok {
		return nil, fmt.Errorf("journal: eventlog of %s: %w", id, ErrUnknownJob)
	}
	b := append([]byte{'['}, j.log...)
	return append(b, ']'), nil
}

// Jobspec and R return the stored redacted copies.
func (s *Store) Jobspec(id fluxkit.JobID) []byte {
	if j, ok := s.jobs[id]; ok {
		return j.jobspec
	}
	return nil
}

// R returns the stored redacted R of job id, or nil.
func (s *Store) R(id fluxkit.JobID) []byte {
	if j, ok := s.jobs[id]; ok {
		return j.r
	}
	return nil
}

// JobState returns the producer's state of job id.
func (s *Store) JobState(id fluxkit.JobID) (State, bool) {
	j, ok := s.jobs[id]
	if !ok {
		return 0, false
	}
	return j.state, true
}

func journalOnly(name []byte) bool {
	switch string(name) {
	case `"annotations"`, `"invalidate"`:
		return true
	}
	return false
}

// SavedJob is a job as a restart finds it: its KVS eventlog (RFC 18 text),
// jobspec and R (nil when not allocated).
type SavedJob struct {
	ID       fluxkit.JobID
	Eventlog io.Reader
	Jobspec  []byte
	R        []byte
}

// Restore reloads jobs after a restart: each eventlog is replayed through
// the RFC 21 checks (the first entry must be submit with version 1 or none;
// a job still in NEW is rejected), then every job in SCHED gets its
// priority reset and a flux-restart event, so a fresh priority event
// follows. It must run before any listener subscribes; errors name the job
// and line.
func (s *Store) Restore(jobs []SavedJob) error {
	if len(s.listeners) > 0 {
		return errors.New("journal: restore with listeners registered")
	}
	var sched []*pjob
	var inact []*pjob
	for _, sj := range jobs {
		entries, err := job.DecodeEventlog(sj.Eventlog)
		if err != nil {
			return fmt.Errorf("journal: restore %s: %w", sj.ID, err)
		}
		if len(entries) == 0 || entries[0].Name != "submit" {
			return fmt.Errorf("journal: restore %s: first event is not submit: %w", sj.ID, ErrTransition)
		}
		if _, ok := s.jobs[sj.ID]; ok {
			return fmt.Errorf("journal: restore %s: duplicate job: %w", sj.ID, ErrTransition)
		}
		j := &pjob{id: sj.ID, priority: -1, inactIdx: -1}
		if sj.Jobspec != nil {
			if j.jobspec, err = redact(sj.Jobspec, "attributes", "system", "environment"); err != nil {
				return fmt.Errorf("journal: restore %s: jobspec: %w", sj.ID, err)
			}
		}
		if sj.R != nil {
			if j.r, err = redact(sj.R, "scheduling"); err != nil {
				return fmt.Errorf("journal: restore %s: R: %w", sj.ID, err)
			}
		}
		for i, e := range entries {
			next, err := s.check(j, e)
			if err != nil {
				return fmt.Errorf("journal: restore %s: eventlog line %d: %w", sj.ID, i+1, err)
			}
			if i == 0 {
				v, _ := jsonscan.Member(e.Context, "userid")
				u, _ := jsonscan.Int(v)
				j.userid = uint32(u)
			}
			if len(j.log) > 0 {
				j.log = append(j.log, ',')
			}
			j.log = e.AppendJSON(j.log)
			j.ends = append(j.ends, uint32(len(j.log)))
			if next == StateInactive {
				j.tInact = e.Timestamp
			}
			if e.Name == "priority" {
				v, _ := jsonscan.Member(e.Context, "priority")
				j.priority, _ = jsonscan.Int(v)
			}
			if e.Name == "finish" {
				j.finished = true
			}
			if e.Name == "invalidate" {
				return fmt.Errorf("journal: restore %s: invalidated job in the KVS: %w", sj.ID, ErrTransition)
			}
			j.state = next
		}
		if j.state == StateNew {
			return fmt.Errorf("journal: restore %s: job still in NEW after replay: %w", sj.ID, ErrTransition)
		}
		s.jobs[j.id] = j
		if j.id > s.maxID {
			s.maxID = j.id
		}
		switch j.state {
		case StateInactive:
			inact = append(inact, j)
		case StateSched:
			sched = append(sched, j)
			s.active++
		default:
			s.active++
		}
	}
	slices.SortFunc(inact, func(a, b *pjob) int {
		if c := cmpFloat(a.tInact, b.tInact); c != 0 {
			return c
		}
		return cmpID(a.id, b.id)
	})
	for _, j := range inact {
		j.inactIdx = len(s.inactive)
		s.inactive = append(s.inactive, j)
		s.ninactive++
	}
	slices.SortFunc(sched, func(a, b *pjob) int { return cmpID(a.id, b.id) })
	for _, j := range sched {
		j.priority = -1
		if err := s.post(j, 0, "flux-restart", nil); err != nil {
			return err
		}
	}
	return nil
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func cmpID(a, b fluxkit.JobID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
