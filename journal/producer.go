package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Topics the producer serves and publishes.
const (
	TopicJournal       = "job-manager.events-journal"
	TopicJournalCancel = "job-manager.events-journal-cancel"
	TopicJournalCredit = "job-manager.events-journal-credit"
	TopicDisconnect    = "job-manager.disconnect"
	TopicStats         = "job-manager.stats-get"
	TopicPurge         = "job-manager.purge"
	TopicGetattr       = "job-manager.getattr"
	EventPurge         = "job-purge-inactive"
)

// ProducerConfig configures a [Producer].
type ProducerConfig struct {
	// Logger receives what flux-core logs. Default: discard.
	Logger *slog.Logger
	// MaxQueue: see [StoreConfig.MaxQueue]. Default 1,000,000.
	MaxQueue int
	// Batch is how many responses a stream's sender moves per turn of the
	// store's lock, which bounds how long a backlog holds up Post.
	// Default 256.
	Batch int
	// InactiveNumLimit keeps at most this many inactive jobs; -1 (default)
	// is unlimited.
	InactiveNumLimit int
	// InactiveAgeLimit purges inactive jobs older than this; 0 (default)
	// is unlimited.
	InactiveAgeLimit time.Duration
	// PurgePeriod is how often the limits are applied. Default 1 minute.
	PurgePeriod time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Epoch is the RFC 19 id epoch. Default: Now() at construction.
	Epoch time.Time
	// KVS, when true, mirrors job existence into the broker's KVS as Flux's
	// job directories: "job.<dothex>" is put at submit and removed on
	// invalidate and purge (before the purge is published), for consumers
	// that look jobs up there as flux-core's job-list does. Default false.
	KVS bool
}

func (c *ProducerConfig) setDefaults() error {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Batch == 0 {
		c.Batch = 256
	}
	if c.Batch < 0 {
		return fmt.Errorf("journal: ProducerConfig.Batch %d is negative", c.Batch)
	}
	if c.InactiveNumLimit == 0 {
		c.InactiveNumLimit = -1
	}
	if c.InactiveNumLimit < -1 {
		return fmt.Errorf("journal: ProducerConfig.InactiveNumLimit %d is invalid", c.InactiveNumLimit)
	}
	if c.InactiveAgeLimit < 0 {
		return fmt.Errorf("journal: ProducerConfig.InactiveAgeLimit %v is negative", c.InactiveAgeLimit)
	}
	if c.PurgePeriod == 0 {
		c.PurgePeriod = time.Minute
	}
	if c.PurgePeriod < 0 {
		return fmt.Errorf("journal: ProducerConfig.PurgePeriod %v is negative", c.PurgePeriod)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Producer is the job manager's side: it owns a [Store] and serves its
// journal on a Handle. Its methods are safe for concurrent use.
type Producer struct {
	cfg    ProducerConfig
	h      fluxkit.Handle
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	store   *Store
	senders map[*Listener]*sender
	unreg   []func()
	closed  bool
}

type sender struct {
	l      *Listener
	w      fluxkit.Responder
	wake   chan struct{}
	credit int64 // -1: unlimited
}

// NewProducer registers the job manager's journal services on h. Close
// ends every stream with ENODATA and unregisters them.
func NewProducer(h fluxkit.Handle, cfg ProducerConfig) (*Producer, error) {
	if h == nil {
		return nil, errors.New("journal: NewProducer: nil Handle")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	st, err := NewStore(StoreConfig{MaxQueue: cfg.MaxQueue, Now: cfg.Now, Epoch: cfg.Epoch})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Producer{cfg: cfg, h: h, log: cfg.Logger, ctx: ctx, cancel: cancel, store: st,
		senders: make(map[*Listener]*sender)}
	st.logf = func(format string, args ...any) { p.log.Error(fmt.Sprintf(format, args...)) }
	for _, r := range []struct {
		topic string
		allow fluxkit.Role
		fn    fluxkit.HandlerFunc
	}{
		{TopicJournal, fluxkit.RoleNone, p.handleJournal},
		{TopicJournalCancel, fluxkit.RoleNone, p.handleCancel},
		{TopicJournalCredit, fluxkit.RoleNone, p.handleCredit},
		{TopicDisconnect, fluxkit.RoleNone, p.handleDisconnect},
		{TopicStats, fluxkit.RoleNone, p.handleStats},
		{TopicPurge, fluxkit.RoleNone, p.handlePurge},
		{TopicGetattr, fluxkit.RoleUser, p.handleGetattr},
	} {
		u, err := h.Register(r.topic, r.allow, r.fn)
		if err != nil {
			for _, f := range p.unreg {
				f()
			}
			cancel()
			return nil, fmt.Errorf("journal: register %s: %w", r.topic, err)
		}
		p.unreg = append(p.unreg, u)
	}
	if cfg.InactiveNumLimit >= 0 || cfg.InactiveAgeLimit > 0 {
		p.wg.Add(1)
		go p.purgeLoop()
	}
	return p, nil
}

// Close ends every stream with ENODATA, unregisters the services and waits
// for the producer's goroutines.
func (p *Producer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	unreg := p.unreg
	for _, l := range p.store.Shutdown() {
		p.wakeLocked(l)
	}
	p.mu.Unlock()
	// Let senders flush what they were handed and the ENODATA before the
	// context stops them.
	p.waitSenders()
	for _, f := range unreg {
		f()
	}
	p.cancel()
	p.wg.Wait()
	return nil
}

func (p *Producer) waitSenders() {
	for {
		p.mu.Lock()
		n := len(p.senders)
		p.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *Producer) wakeLocked(l *Listener) {
	if s := p.senders[l]; s != nil {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (p *Producer) wakePending() {
	for l, s := range p.senders {
		if l.Pending() && s.credit != 0 {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

func (p *Producer) do(fn func(*Store) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("journal: producer closed")
	}
	err := fn(p.store)
	p.wakePending()
	return err
}

// Submit creates a job; see [Store.Submit].
func (p *Producer) Submit(sub Submission) (fluxkit.JobID, error) {
	var id fluxkit.JobID
	err := p.do(func(s *Store) error {
		var err error
		id, err = s.Submit(sub)
		return err
	})
	if err == nil && p.cfg.KVS {
		err = p.kvsPut(p.ctx, []fluxkit.JobID{id}, true)
	}
	return id, err
}

// kvsPut creates (exists) or removes the KVS directories of ids, in one
// flux-core kvs.commit: an empty RFC 11 directory, or a null dirent to
// unlink.
func (p *Producer) kvsPut(ctx context.Context, ids []fluxkit.JobID, exists bool) error {
	if len(ids) == 0 {
		return nil
	}
	type op struct {
		Key    string          `json:"key"`
		Flags  int             `json:"flags"`
		Dirent json.RawMessage `json:"dirent"`
	}
	ops := make([]op, len(ids))
	for i, id := range ids {
		d := json.RawMessage(`null`)
		if exists {
			d = json.RawMessage(`{"ver":1,"type":"dir","data":{}}`)
		}
		ops[i] = op{Key: id.KVS(), Dirent: d}
	}
	if err := fluxkit.RPC(ctx, p.h, "kvs.commit", fluxkit.NodeidAny,
		map[string]any{"namespace": "primary", "flags": 0, "ops": ops}, nil); err != nil {
		return fmt.Errorf("journal: kvs commit: %w", err)
	}
	return nil
}

// Post posts an event with the current time; context is encoded as by
// [fluxkit.EncodePayload] (nil for none).
func (p *Producer) Post(id fluxkit.JobID, name string, context any) error {
	return p.PostAt(id, 0, name, context)
}

// PostAt posts an event with the given timestamp (0 means now).
func (p *Producer) PostAt(id fluxkit.JobID, timestamp float64, name string, context any) error {
	c, err := fluxkit.EncodePayload(context)
	if err != nil {
		return err
	}
	err = p.do(func(s *Store) error { return s.Post(id, timestamp, name, c) })
	if err == nil && p.cfg.KVS && name == "invalidate" {
		err = p.kvsPut(p.ctx, []fluxkit.JobID{id}, false)
	}
	return err
}

// SetR stores a job's R; see [Store.SetR].
func (p *Producer) SetR(id fluxkit.JobID, r []byte) error {
	return p.do(func(s *Store) error { return s.SetR(id, r) })
}

// ClearR is the test aid [Store.ClearR].
func (p *Producer) ClearR(id fluxkit.JobID) {
	_ = p.do(func(s *Store) error { s.ClearR(id); return nil })
}

// Restore reloads saved jobs; see [Store.Restore].
func (p *Producer) Restore(jobs []SavedJob) error {
	return p.do(func(s *Store) error { return s.Restore(jobs) })
}

// Eventlog returns a job's KVS eventlog text; see [Store.Eventlog].
func (p *Producer) Eventlog(id fluxkit.JobID) ([]byte, error) {
	var b []byte
	err := p.do(func(s *Store) error {
		var err error
		b, err = s.Eventlog(id)
		return err
	})
	return b, err
}

// Saved returns every job as a restart would find it.
func (p *Producer) Saved() []SavedJob {
	var out []SavedJob
	_ = p.do(func(s *Store) error {
		for id, j := range s.jobs {
			log, _ := s.Eventlog(id)
			out = append(out, SavedJob{ID: id, Eventlog: bytesReader(log), Jobspec: j.jobspec, R: j.r})
		}
		return nil
	})
	return out
}

// Stats returns the store's figures.
func (p *Producer) Stats() StoreStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.store.Stats()
}

// Purge removes inactive jobs as [Store.Purge] does and publishes
// job-purge-inactive for them, at most 100 ids per event.
//
// The steps are ordered, and what an observer may rely on: first the
// store (Stats, getattr and new backlogs stop showing the jobs at once,
// as flux-core's job manager drops them from its tables first), then the
// KVS directories (with [ProducerConfig.KVS]), then the event. So whoever
// receives the event finds the directories already gone; one that sees
// only Stats may still find them. Should the KVS commit fail, the event is
// published all the same (the jobs are gone from the store, and consumers
// must drop them) and the error returned.
func (p *Producer) Purge(ctx context.Context, keep int, olderThan time.Time, max int) ([]fluxkit.JobID, error) {
	var ids []fluxkit.JobID
	age := 0.0
	if !olderThan.IsZero() {
		age = float64(olderThan.UnixNano()) / 1e9
	}
	if err := p.do(func(s *Store) error { ids = s.Purge(keep, age, max); return nil }); err != nil {
		return nil, err
	}
	return ids, p.publishPurge(ctx, ids)
}

// PurgeIDs purges the given inactive jobs and publishes them, in Purge's
// order.
func (p *Producer) PurgeIDs(ctx context.Context, ids []fluxkit.JobID) ([]fluxkit.JobID, error) {
	var out []fluxkit.JobID
	if err := p.do(func(s *Store) error { out = s.PurgeIDs(ids); return nil }); err != nil {
		return nil, err
	}
	return out, p.publishPurge(ctx, out)
}

func (p *Producer) publishPurge(ctx context.Context, ids []fluxkit.JobID) error {
	var kvsErr error
	if p.cfg.KVS {
		kvsErr = p.kvsPut(ctx, ids, false)
	}
	for len(ids) > 0 {
		n := min(len(ids), 100)
		b := []byte(`{"jobs":[`)
		for i, id := range ids[:n] {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendUint(b, uint64(id), 10)
		}
		b = append(b, "]}"...)
		if err := p.h.Publish(ctx, EventPurge, b, 0); err != nil {
			return errors.Join(kvsErr, fmt.Errorf("journal: publish %s: %w", EventPurge, err))
		}
		ids = ids[n:]
	}
	return kvsErr
}

func (p *Producer) purgeLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.PurgePeriod)
	defer t.Stop()
	for {
		select {
		case <-p.ctx.Done():
			return
		case <-t.C:
		}
		var older time.Time
		if p.cfg.InactiveAgeLimit > 0 {
			older = p.cfg.Now().Add(-p.cfg.InactiveAgeLimit)
		}
		if _, err := p.Purge(p.ctx, p.cfg.InactiveNumLimit, older, 0); err != nil && p.ctx.Err() == nil {
			p.log.Error("purge", "err", err)
		}
	}
}

// journalRequest is the events-journal payload; pointers tell absent keys.
type journalRequest struct {
	Full   *bool           `json:"full"`
	Allow  json.RawMessage `json:"allow"`
	Deny   json.RawMessage `json:"deny"`
	Credit *int64          `json:"credit"`
}

func parseFilter(raw json.RawMessage, what string) (map[string]struct{}, error) {
	if raw == nil {
		return nil, nil
	}
	raw = jsonscan.Trim(raw)
	if jsonscan.KindOf(raw) != jsonscan.Object {
		return nil, fluxkit.Errorf(fluxkit.EPROTO, "job-manager.events %s should be an object", what)
	}
	m := map[string]struct{}{}
	err := jsonscan.Members(raw, func(k string, _ []byte) error {
		m[k] = struct{}{}
		return nil
	})
	return m, err
}

func (p *Producer) handleJournal(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var r journalRequest
	if len(req.Payload) == 0 || jsonscan.KindOf(jsonscan.Trim(req.Payload)) != jsonscan.Object {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "%s: payload must be a JSON object", req.Topic))
		return
	}
	if err := json.Unmarshal(req.Payload, &r); err != nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "%s: %v", req.Topic, err))
		return
	}
	if !req.IsStreaming() {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "job-manager.events requires streaming RPC flag"))
		return
	}
	allow, err := parseFilter(r.Allow, "allow")
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	deny, err := parseFilter(r.Deny, "deny")
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	credit := int64(-1)
	if r.Credit != nil {
		if *r.Credit <= 0 {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EPROTO, "job-manager.events credit must be positive"))
			return
		}
		credit = *r.Credit
	}
	full := r.Full != nil && *r.Full
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOSYS, "job-manager is shutting down"))
		return
	}
	l := p.store.Subscribe(ListenerKey{Sender: req.Sender(), Matchtag: req.Matchtag}, req.Userid, full, Filter{Allow: allow, Deny: deny})
	s := &sender{l: l, w: w, wake: make(chan struct{}, 1), credit: credit}
	p.senders[l] = s
	p.log.Debug("begin sending journal backlog", "jobs", len(l.snap), "sender", l.Key.Sender)
	s.wake <- struct{}{} // the sender starts with its backlog
	p.wg.Add(1)
	p.mu.Unlock()
	go p.send(s)
}

// send moves a stream's responses from the store to the transport, Batch
// at a time, within the stream's credit when it asked for flow control.
func (p *Producer) send(s *sender) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.senders, s.l)
		p.mu.Unlock()
	}()
	var buf [][]byte
	backlog := true
	for {
		select {
		case <-s.wake:
		case <-p.ctx.Done():
			return
		}
		for {
			p.mu.Lock()
			max := p.cfg.Batch
			if s.credit >= 0 && int64(max) > s.credit {
				max = int(s.credit)
			}
			if max == 0 && s.l.ended == nil {
				p.mu.Unlock()
				break
			}
			var end error
			buf, end = p.store.Next(s.l, buf[:0], max)
			if s.credit >= 0 {
				s.credit -= int64(len(buf))
			}
			p.mu.Unlock()
			for i, m := range buf {
				if backlog && len(m) == len(Sentinel) && string(m) == string(Sentinel) {
					backlog = false
					p.log.Debug("finished sending journal backlog", "sender", s.l.Key.Sender)
				}
				if err := s.w.Respond(m); err != nil {
					p.log.Error("error responding to journal request", "err", err)
				}
				buf[i] = nil
			}
			if end != nil {
				if !errors.Is(end, errGone) {
					if err := s.w.RespondError(end); err != nil {
						p.log.Error("error responding to journal request", "err", err)
					}
				}
				return
			}
			if len(buf) == 0 {
				break
			}
		}
	}
}

func (p *Producer) handleCancel(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var r struct {
		Matchtag *uint32 `json:"matchtag"`
	}
	if err := json.Unmarshal(req.Payload, &r); err != nil || r.Matchtag == nil {
		p.log.Error("malformed events-journal-cancel", "sender", req.Sender())
		return
	}
	p.mu.Lock()
	if l := p.store.Cancel(req.Sender(), req.Cred(), *r.Matchtag); l != nil {
		p.wakeLocked(l)
	}
	p.mu.Unlock()
}

func (p *Producer) handleCredit(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var r struct {
		Matchtag *uint32 `json:"matchtag"`
		Credit   int64   `json:"credit"`
	}
	if err := json.Unmarshal(req.Payload, &r); err != nil || r.Matchtag == nil || r.Credit <= 0 {
		p.log.Error("malformed events-journal-credit", "sender", req.Sender())
		return
	}
	p.mu.Lock()
	for l, s := range p.senders {
		if l.Key.Sender == req.Sender() && l.Key.Matchtag == *r.Matchtag && s.credit >= 0 {
			s.credit += r.Credit
			p.wakeLocked(l)
		}
	}
	p.mu.Unlock()
}

func (p *Producer) handleDisconnect(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	p.mu.Lock()
	for _, l := range p.store.Disconnect(req.Sender(), req.Cred()) {
		p.wakeLocked(l)
	}
	p.mu.Unlock()
}

func (p *Producer) handleStats(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	st := p.Stats()
	b := fmt.Appendf(nil, `{"journal":{"listeners":%d,"events":%d},"active_jobs":%d,"inactive_jobs":%d,"max_jobid":%d}`,
		st.Listeners, st.Events, st.ActiveJobs, st.InactiveJobs, uint64(st.MaxJobID))
	if err := w.Respond(b); err != nil {
		p.log.Error("stats-get response", "err", err)
	}
}

func (p *Producer) handlePurge(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var r struct {
		Num   *int     `json:"num"`
		Age   *float64 `json:"age"`
		Batch *int     `json:"batch"`
		Force bool     `json:"force"`
	}
	if !fluxkit.DecodeRequest(w, req, &r) {
		return
	}
	batch := 100
	if r.Batch != nil {
		if *r.Batch < 1 || *r.Batch > 100 {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "batch must be >= 1 and <= 100"))
			return
		}
		batch = *r.Batch
	}
	keep := -1
	if r.Num != nil {
		if *r.Num < 0 {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "num must be >= 0"))
			return
		}
		keep = *r.Num
	}
	var older time.Time
	if r.Age != nil {
		if *r.Age < 0 {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "age must be >= 0"))
			return
		}
		older = p.cfg.Now().Add(-time.Duration(*r.Age * float64(time.Second)))
	}
	count := 0
	if r.Force && (r.Num != nil || r.Age != nil) {
		ids, err := p.Purge(ctx, keep, older, batch)
		if err != nil {
			_ = w.RespondError(err)
			return
		}
		count = len(ids)
	}
	_ = w.Respond(fmt.Appendf(nil, `{"count":%d}`, count))
}

// handleGetattr answers job-manager.getattr as flux-core does: the
// requested attributes of a job the job manager holds (active or
// inactive), "jobspec" and "R" redacted; a guest may ask only about their
// own jobs.
func (p *Producer) handleGetattr(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var r struct {
		ID    fluxkit.JobID `json:"id"`
		Attrs []string      `json:"attrs"`
	}
	if !fluxkit.DecodeRequest(w, req, &r) {
		return
	}
	out := []byte{'{'}
	err := p.do(func(s *Store) error {
		j, ok := s.jobs[r.ID]
		if !ok {
			return fluxkit.Errorf(fluxkit.EINVAL, "unknown job")
		}
		if !req.Cred().IsOwner() && j.userid != req.Userid {
			return fluxkit.Errorf(fluxkit.EPERM, "guests can only access their own jobs")
		}
		for i, a := range r.Attrs {
			var v []byte
			switch a {
			case "jobspec", "R":
				if v = j.jobspec; a == "R" {
					v = j.r
				}
				if v == nil {
					return fluxkit.Errorf(fluxkit.ENOENT, "%s is NULL", a)
				}
			case "eventlog":
				v, _ = s.EventlogArray(r.ID)
			default:
				return fluxkit.Errorf(fluxkit.ENOENT, "unknown attr %s", a)
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(jsonscan.AppendString(out, a), ':')
			out = append(out, v...)
		}
		return nil
	})
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	_ = w.Respond(append(out, '}'))
}
