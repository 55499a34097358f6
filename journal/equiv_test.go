package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fluxkit/fluxkit"
)

// oracle is the test's own model of what job-list must show for a job,
// derived from the events the simulation chose, not from the consumer.
type oracle struct {
	id        fluxkit.JobID
	state     State
	urgency   int
	prio      int64
	schedMask bool
	validated bool
	finished  bool
	hasR      bool
	tSubmit   float64
	tRun      float64
	tInactive float64
	queue     string
	excType   string
	excSev    int
	success   bool
	result    Result
	purged    bool
}

type simConsumer struct {
	x      *Index
	l      *Listener
	purges [][]fluxkit.JobID // published but not yet delivered
	logs   []string
}

type sim struct {
	t     testing.TB
	rng   *rand.Rand
	s     *Store
	now   float64
	jobs  map[fluxkit.JobID]*oracle
	order []fluxkit.JobID
	next  fluxkit.JobID
	cons  []*simConsumer
	// onPurge publishes purges when the simulation runs inside a Producer.
	onPurge func(ids []fluxkit.JobID)
}

func newSim(t testing.TB, seed uint64) *sim {
	st, err := NewStore(StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &sim{t: t, rng: rand.New(rand.NewPCG(seed, 7)), s: st, now: 100, jobs: map[fluxkit.JobID]*oracle{}, next: 1}
}

func (m *sim) tick() float64 {
	if m.rng.IntN(4) != 0 { // equal timestamps happen: tie-breaks matter
		m.now += float64(m.rng.IntN(3)) + 0.25
	}
	return m.now
}

func (m *sim) post(o *oracle, name, ctx string) {
	m.t.Helper()
	var c []byte
	if ctx != "" {
		c = []byte(ctx)
	}
	if err := m.s.Post(o.id, m.tick(), name, c); err != nil {
		m.t.Fatalf("post %s to %d in %v: %v", name, o.id, o.state, err)
	}
	st, ok := m.s.JobState(o.id)
	if ok {
		o.state = st
	}
}

var queues = []string{"", "batch", "debug"}

func (m *sim) submit() {
	id := m.next
	m.next += fluxkit.JobID(1 + m.rng.IntN(3))
	q := queues[m.rng.IntN(len(queues))]
	js := jobspecFor(fmt.Sprintf("app%d", m.rng.IntN(5)), q, m.rng.IntN(3), 1+m.rng.IntN(4), 1+m.rng.IntN(4), m.rng.IntN(2) == 0, float64(m.rng.IntN(100)))
	o := &oracle{id: id, urgency: m.rng.IntN(32), tSubmit: m.tick(), queue: q, excSev: -1}
	if _, err := m.s.Submit(Submission{ID: id, Timestamp: o.tSubmit, Userid: uint32(100 + m.rng.IntN(3)), Urgency: o.urgency, Jobspec: js}); err != nil {
		m.t.Fatal(err)
	}
	o.state = StateNew
	m.jobs[id] = o
	m.order = append(m.order, id)
}

func (m *sim) exception(o *oracle, typ string, sev int) {
	m.post(o, "exception", fmt.Sprintf(`{"type":%q,"severity":%d,"note":"n%d"}`, typ, sev, m.rng.IntN(3)))
	if o.excSev < 0 || sev < o.excSev {
		o.excType, o.excSev = typ, sev
	}
}

func (m *sim) revertable(o *oracle) {
	if o.state == StatePriority { // was SCHED: mask lost SCHED
		o.schedMask = false
	}
}

// step advances one random job by one random valid event.
func (m *sim) step() {
	if len(m.order) == 0 || m.rng.IntN(6) == 0 {
		m.submit()
		return
	}
	o := m.jobs[m.order[m.rng.IntN(len(m.order))]]
	if o.purged {
		return
	}
	r := m.rng.IntN(100)
	switch o.state {
	case StateNew:
		switch {
		case r < 5:
			m.post(o, "invalidate", "")
			delete(m.jobs, o.id)
			m.order = slices.DeleteFunc(m.order, func(id fluxkit.JobID) bool { return id == o.id })
		case r < 15:
			q := queues[m.rng.IntN(len(queues))]
			if q != "" {
				m.post(o, "jobspec-update", fmt.Sprintf(`{"attributes.system.queue":%q}`, q))
				o.queue = q
			}
		case r < 20:
			m.post(o, "dependency-add", fmt.Sprintf(`{"description":"d%d"}`, m.rng.IntN(3)))
		default:
			m.post(o, "validate", "")
			o.validated = true
		}
	case StateDepend:
		switch {
		case r < 10:
			m.exception(o, "cancel", 0)
		case r < 20:
			m.post(o, "dependency-remove", fmt.Sprintf(`{"description":"d%d"}`, m.rng.IntN(3)))
		case r < 30:
			o.urgency = m.rng.IntN(32)
			m.post(o, "urgency", fmt.Sprintf(`{"urgency":%d,"userid":100}`, o.urgency))
		default:
			m.post(o, "depend", "")
		}
	case StatePriority, StateSched:
		switch {
		case r < 8:
			m.exception(o, "cancel", 0)
		case r < 16 && o.state == StateSched:
			o.urgency = m.rng.IntN(32)
			m.post(o, "urgency", fmt.Sprintf(`{"urgency":%d,"userid":100}`, o.urgency))
			m.revertable(o)
		case r < 22 && o.state == StateSched:
			q := queues[1+m.rng.IntN(2)]
			m.post(o, "jobspec-update", fmt.Sprintf(`{"attributes.system.queue":%q}`, q))
			o.queue = q
			m.revertable(o)
		case r < 26 && o.state == StateSched:
			m.post(o, "flux-restart", "")
			m.revertable(o)
		case r < 30:
			m.post(o, "annotations", fmt.Sprintf(`{"annotations":{"sched":{"n":%d}}}`, m.rng.IntN(5)))
		case r < 60 || o.state == StatePriority:
			o.prio = int64(m.rng.IntN(5))
			m.post(o, "priority", fmt.Sprintf(`{"priority":%d}`, o.prio))
			o.schedMask = true
		default:
			if err := m.s.SetR(o.id, rFor(fmt.Sprintf("%d-%d", m.rng.IntN(2), 2+m.rng.IntN(3)), "0-3", "node[1-4]", float64(m.rng.IntN(2000)))); err != nil {
				m.t.Fatal(err)
			}
			o.hasR = true
			m.post(o, "alloc", "")
			o.tRun = m.now
		}
	case StateRun:
		switch {
		case r < 10:
			m.exception(o, "timeout", 0)
		case r < 20:
			m.exception(o, "foo", 1+m.rng.IntN(7))
		case r < 30:
			m.post(o, "resource-update", fmt.Sprintf(`{"expiration":%d}`, 3000+m.rng.IntN(100)))
		case r < 40:
			m.post(o, "memo", fmt.Sprintf(`{"k%d":"v"}`, m.rng.IntN(2)))
		case r < 50:
			m.post(o, "jobspec-update", fmt.Sprintf(`{"attributes.system.duration":%d}`, m.rng.IntN(1000)))
		case r < 60:
			m.post(o, "start", "")
		default:
			m.finish(o)
		}
	case StateCleanup:
		switch {
		case !o.finished && r < 50:
			m.finish(o)
		case r < 60:
			m.exception(o, "foo", 2)
		case r < 70 && o.hasR:
			m.post(o, "release", `{"ranks":"all","final":true}`)
		default:
			m.post(o, "clean", "")
			o.tInactive = m.now
			switch {
			case o.success:
				o.result = ResultCompleted
			case o.excType == "cancel":
				o.result = ResultCanceled
			case o.excType == "timeout":
				o.result = ResultTimeout
			default:
				o.result = ResultFailed
			}
		}
	case StateInactive:
		if r < 15 {
			m.purge()
		}
	}
}

func (m *sim) finish(o *oracle) {
	status := []int{0, 0, 256, 9}[m.rng.IntN(4)]
	m.post(o, "finish", fmt.Sprintf(`{"status":%d}`, status))
	o.finished = true
	o.success = status == 0 && !(o.excSev == 0)
}

func (m *sim) purge() {
	ids := m.s.Purge(-1, m.now-float64(m.rng.IntN(20)), 1+m.rng.IntN(10))
	if len(ids) == 0 {
		return
	}
	for _, id := range ids {
		m.jobs[id].purged = true
	}
	for _, c := range m.cons {
		c.purges = append(c.purges, ids)
	}
	if m.onPurge != nil {
		m.onPurge(ids)
	}
}

func (m *sim) attach() *simConsumer {
	c := &simConsumer{}
	c.x = NewIndex(IndexConfig{Logf: func(f string, a ...any) { c.logs = append(c.logs, fmt.Sprintf(f, a...)) }})
	c.l = m.s.Subscribe(ListenerKey{Sender: fmt.Sprint(len(m.cons)), Matchtag: 1}, 0, true, Filter{})
	m.cons = append(m.cons, c)
	return c
}

// reconnect gives c a fresh index and a fresh full subscription, as
// Consumer.Reconnect does; undelivered purge events stay queued.
func (m *sim) reconnect(c *simConsumer) {
	m.s.Cancel(c.l.Key.Sender, fluxkit.Cred{Roles: fluxkit.RoleOwner}, c.l.Key.Matchtag)
	_, _ = m.s.Next(c.l, nil, 1<<30)
	c.x = NewIndex(IndexConfig{})
	c.l = m.s.Subscribe(ListenerKey{Sender: c.l.Key.Sender, Matchtag: c.l.Key.Matchtag + 1}, 0, true, Filter{})
}

// feed moves up to max journal responses into c, and maybe its purges.
func (m *sim) feed(c *simConsumer, max int, purges bool) {
	msgs, end := m.s.Next(c.l, nil, max)
	for _, b := range msgs {
		if err := c.x.Journal(b); err != nil {
			m.t.Fatalf("consumer: %v", err)
		}
	}
	if end != nil {
		m.t.Fatalf("stream ended: %v", end)
	}
	if purges {
		for _, ids := range c.purges {
			c.x.Purge(ids)
		}
		c.purges = nil
	}
}

func (m *sim) drain(c *simConsumer) {
	for c.l.Pending() {
		m.feed(c, 1<<30, false)
	}
	m.feed(c, 1<<30, true)
}

type listed struct {
	ID        uint64   `json:"id"`
	State     State    `json:"state"`
	Urgency   int      `json:"urgency"`
	Priority  *int64   `json:"priority"`
	TSubmit   float64  `json:"t_submit"`
	TRun      *float64 `json:"t_run"`
	TInactive *float64 `json:"t_inactive"`
	Queue     string   `json:"queue"`
	Result    *Result  `json:"result"`
}

// truth is the oracle's list: pending, running, inactive in job-list
// order.
func (m *sim) truth() []listed {
	var pend, run, inact []*oracle
	for _, o := range m.jobs {
		switch {
		case o.purged || o.state == StateNew:
		case o.state&StatePending != 0:
			pend = append(pend, o)
		case o.state&StateRunning != 0:
			run = append(run, o)
		default:
			inact = append(inact, o)
		}
	}
	slices.SortFunc(pend, func(a, b *oracle) int {
		if a.prio != b.prio {
			return -cmpID(fluxkit.JobID(a.prio), fluxkit.JobID(b.prio))
		}
		return cmpID(a.id, b.id)
	})
	slices.SortFunc(run, func(a, b *oracle) int {
		if c := cmpFloat(b.tRun, a.tRun); c != 0 {
			return c
		}
		return cmpID(b.id, a.id)
	})
	slices.SortFunc(inact, func(a, b *oracle) int {
		if c := cmpFloat(b.tInactive, a.tInactive); c != 0 {
			return c
		}
		return cmpID(b.id, a.id)
	})
	var out []listed
	for _, o := range slices.Concat(pend, run, inact) {
		l := listed{ID: uint64(o.id), State: o.state, Urgency: o.urgency, TSubmit: o.tSubmit}
		if o.schedMask {
			p := o.prio
			l.Priority = &p
		}
		if o.tRun != 0 {
			t := o.tRun
			l.TRun = &t
		}
		if o.state == StateInactive {
			t, r := o.tInactive, o.result
			l.TInactive, l.Result = &t, &r
		}
		if o.validated {
			l.Queue = o.queue
		}
		out = append(out, l)
	}
	return out
}

func listAll(t testing.TB, x *Index, attrs string) []byte {
	r := &rec{}
	m := fluxkit.NewRequest(TopicList, 0, []byte(`{"max_entries":0,"attrs":`+attrs+`}`))
	x.Request(r, m)
	if r.err != nil || len(r.msgs) != 1 {
		t.Fatalf("list: %v", r.err)
	}
	return r.msgs[0]
}

func statsOf(t testing.TB, x *Index) string {
	r := &rec{}
	x.Request(r, fluxkit.NewRequest(TopicJobStats, 0, []byte(`{}`)))
	var st map[string]any
	if err := json.Unmarshal(r.msgs[0], &st); err != nil {
		t.Fatal(err)
	}
	delete(st, "inactive_purged")
	var qs []string
	for _, q := range st["queues"].([]any) {
		qm := q.(map[string]any)
		if qm["job_states"].(map[string]any)["total"].(float64) > 0 {
			delete(qm, "inactive_purged")
			qs = append(qs, fmt.Sprint(qm))
		}
	}
	delete(st, "queues")
	return fmt.Sprint(st, qs)
}

func runEquivalence(t *testing.T, seed uint64, steps, nconsumers int) {
	m := newSim(t, seed)
	ref := m.attach()
	attachAt := make([]int, nconsumers)
	for i := range attachAt {
		attachAt[i] = m.rng.IntN(steps)
	}
	reconnectAt := m.rng.IntN(steps)
	for i := 0; i < steps; i++ {
		m.step()
		for _, at := range attachAt {
			if at == i {
				m.attach()
			}
		}
		if i == reconnectAt && len(m.cons) > 1 {
			m.reconnect(m.cons[1+m.rng.IntN(len(m.cons)-1)])
		}
		for _, c := range m.cons {
			if m.rng.IntN(3) == 0 {
				m.feed(c, m.rng.IntN(8), m.rng.IntN(4) == 0)
			}
		}
	}
	for _, c := range m.cons {
		m.drain(c)
	}
	truth := m.truth()
	var got []listed
	var out struct{ Jobs []listed }
	if err := json.Unmarshal(listAll(t, ref.x, `["state","urgency","priority","t_submit","t_run","t_inactive","queue","result"]`), &out); err != nil {
		t.Fatal(err)
	}
	got = out.Jobs
	if len(got) != len(truth) {
		t.Fatalf("seed %d: reference lists %d jobs, truth %d", seed, len(got), len(truth))
	}
	for i := range truth {
		a, _ := json.Marshal(got[i])
		b, _ := json.Marshal(truth[i])
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: job %d differs:\n got  %s\n want %s", seed, i, a, b)
		}
	}
	refAll := listAll(t, ref.x, `["all"]`)
	refStats := statsOf(t, ref.x)
	for i, c := range m.cons[1:] {
		if all := listAll(t, c.x, `["all"]`); !bytes.Equal(all, refAll) {
			t.Fatalf("seed %d: consumer %d differs from the reference:\n%s\n%s", seed, i+1, all, refAll)
		}
		if st := statsOf(t, c.x); st != refStats {
			t.Errorf("seed %d: consumer %d stats %s, reference %s", seed, i+1, st, refStats)
		}
	}
}

func TestRandomEquivalence(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 4
	}
	for seed := range seeds {
		runEquivalence(t, uint64(seed), 3000, 6)
	}
}
