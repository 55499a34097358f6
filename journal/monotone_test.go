package journal

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit"
)

// twin is one store followed by two indexes: ref gets exactly what the
// store journals, x gets that plus whatever a test injects.
type twin struct {
	*pipe
	ref  *Index
	refL *Listener
}

func newTwin(t *testing.T) *twin {
	p := newPipe(t).connect()
	tw := &twin{pipe: p, ref: NewIndex(IndexConfig{Queues: []string{"batch"}})}
	tw.refL = p.s.Subscribe(ListenerKey{Sender: "ref", Matchtag: 1}, 0, true, Filter{})
	return tw
}

// sync moves what the store has journaled into both indexes.
func (tw *twin) sync() {
	tw.t.Helper()
	tw.must(tw.pump())
	for {
		msgs, end := tw.s.Next(tw.refL, nil, 1<<30)
		for _, m := range msgs {
			tw.must(tw.ref.Journal(m))
		}
		if end != nil || len(msgs) == 0 {
			return
		}
	}
}

// inject feeds x live responses of one entry each, as the job manager
// frames them.
func (tw *twin) inject(id fluxkit.JobID, entries ...string) {
	tw.t.Helper()
	for _, e := range entries {
		tw.must(tw.raw(fmt.Sprintf(`{"id":%d,"events":[%s]}`, id, e)))
	}
}

// view is everything job-list shows of x, a line each: every listed job
// with every attribute in list order, each job held as list-id shows it,
// and the job statistics.
func view(t testing.TB, x *Index) string {
	t.Helper()
	var b strings.Builder
	var l struct{ Jobs []json.RawMessage }
	if err := json.Unmarshal(listAll(t, x, `["all"]`), &l); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "listed %d", len(l.Jobs))
	for _, j := range l.Jobs {
		fmt.Fprintf(&b, "\n%s", j)
	}
	ids := make([]fluxkit.JobID, 0, len(x.jobs))
	for id := range x.jobs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "\n%s", appendJob(nil, x.jobs[id], allAttrs))
	}
	r := &rec{}
	x.Request(r, fluxkit.NewRequest(TopicJobStats, 0, []byte(`{}`)))
	fmt.Fprintf(&b, "\n%s", r.msgs[0])
	return b.String()
}

func entryAt(ts float64, name, ctx string) string {
	if ctx == "" {
		return fmt.Sprintf(`{"timestamp":%v,"name":%q}`, ts, name)
	}
	return fmt.Sprintf(`{"timestamp":%v,"name":%q,"context":%s}`, ts, name, ctx)
}

// A duplicate or late event never changes a job's state, result, success
// or the statistics: the consumer that gets it shows exactly what one that
// did not shows.
func TestLateEventsNeverMoveJobBack(t *testing.T) {
	const cancel = `{"type":"cancel","severity":0,"note":""}`
	sched := func(p *pipe) { p.sched(1, 1, 5) }
	run := func(p *pipe) { p.run(1, 1, 5) }
	cleanup := func(p *pipe) { run(p); p.post(1, 6, "finish", `{"status":0}`) }
	completed := func(p *pipe) { run(p); p.finish(1, 6, 0) }
	failed := func(p *pipe) { run(p); p.finish(1, 6, 256) }
	for _, c := range []struct {
		name  string
		setup func(p *pipe)
		late  []string
		after func(p *pipe) // the job's own later events, journaled to both
	}{
		{"depend after SCHED", sched, []string{entryAt(3, "depend", "")}, nil},
		{"depend after RUN", run, []string{entryAt(3, "depend", "")}, nil},
		{"depend after CLEANUP", cleanup, []string{entryAt(3, "depend", "")}, nil},
		{"depend after INACTIVE", completed, []string{entryAt(3, "depend", "")}, nil},
		{"validate after RUN", run, []string{entryAt(2, "validate", "")}, nil},
		{"priority after RUN", run, []string{entryAt(4, "priority", `{"priority":99}`)}, nil},
		{"alloc after a cancel in SCHED", func(p *pipe) { sched(p); p.post(1, 5, "exception", cancel) },
			[]string{entryAt(6, "alloc", "")}, func(p *pipe) { p.post(1, 7, "clean", "") }},
		{"finish after INACTIVE", completed, []string{entryAt(8, "finish", `{"status":256}`)}, nil},
		{"finish and clean after INACTIVE (was completed)", completed,
			[]string{entryAt(8, "finish", `{"status":256}`), entryAt(9, "clean", "")}, nil},
		{"finish and clean after INACTIVE (was failed)", failed,
			[]string{entryAt(8, "finish", `{"status":0}`), entryAt(9, "clean", "")}, nil},
		{"exception and clean after INACTIVE", completed, []string{entryAt(8, "exception", cancel), entryAt(9, "clean", "")}, nil},
		{"finish repeated after a fatal exception in CLEANUP",
			func(p *pipe) { cleanup(p); p.post(1, 7, "exception", cancel) },
			[]string{entryAt(6, "finish", `{"status":0}`)}, func(p *pipe) { p.post(1, 8, "clean", "") }},
		{"invalidate after validate",
			func(p *pipe) {
				p.submit(1, 1, jobspecFor("a", "batch", 0, 1, 1, false, 0))
				p.post(1, 2, "validate", "")
			},
			[]string{entryAt(3, "invalidate", "")}, func(p *pipe) { p.post(1, 4, "depend", "") }},
		{"submit repeated after an urgency change",
			func(p *pipe) { sched(p); p.post(1, 5, "urgency", `{"urgency":3,"userid":100}`) },
			[]string{entryAt(1, "submit", `{"userid":100,"urgency":16,"flags":0,"version":1}`)},
			func(p *pipe) { p.post(1, 6, "priority", `{"priority":7}`) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			tw := newTwin(t)
			c.setup(tw.pipe)
			tw.sync()
			tw.inject(1, c.late...)
			if got, want := view(t, tw.x), view(t, tw.ref); got != want {
				t.Errorf("late events changed the job:\n got %s\nwant %s", got, want)
			}
			if c.after != nil {
				c.after(tw.pipe)
				tw.sync()
				if got, want := view(t, tw.x), view(t, tw.ref); got != want {
					t.Errorf("after the job's own events:\n got %s\nwant %s", got, want)
				}
			}
			if tw.x.Err() != nil {
				t.Errorf("consumer stopped: %v", tw.x.Err())
			}
		})
	}
}

// Where the live stream overlaps the backlog, each job's events are
// repeated after the sentinel, from any point of its history: the consumer
// ends up where it was, and so do the jobs' later events.
func TestBacklogLiveOverlap(t *testing.T) {
	tw := newTwin(t)
	p := tw.pipe
	p.sched(1, 1, 5)
	p.post(1, 5, "urgency", `{"urgency":4,"userid":100}`) // back to PRIORITY
	p.sched(2, 1, 9)
	p.post(2, 5, "urgency", `{"urgency":4,"userid":100}`)
	p.post(2, 6, "priority", `{"priority":3}`)
	p.run(3, 1, 5)
	p.run(4, 1, 5)
	p.finish(4, 6, 0)
	p.run(5, 1, 5)
	p.post(5, 6, "exception", `{"type":"timeout","severity":0,"note":""}`)
	p.finish(5, 7, 9)
	p.sched(6, 1, 5)
	p.post(6, 5, "exception", `{"type":"cancel","severity":0,"note":""}`)
	p.submit(7, 1, jobspecFor("a", "batch", 0, 1, 1, false, 0))
	p.post(7, 2, "dependency-add", `{"description":"after:1"}`)
	p.post(7, 3, "validate", "")
	tw.sync()
	for id := fluxkit.JobID(1); id <= 7; id++ {
		log, err := p.s.EventlogArray(id)
		p.must(err)
		var entries []json.RawMessage
		p.must(json.Unmarshal(log, &entries))
		for k := range entries {
			for _, e := range entries[k:] {
				tw.inject(id, string(e))
			}
		}
	}
	if got, want := view(t, tw.x), view(t, tw.ref); got != want {
		t.Errorf("overlap changed the consumer:\n got %s\nwant %s", got, want)
	}
	p.post(1, 9, "priority", `{"priority":2}`)
	p.must(p.s.SetR(2, rFor("0", "0-3", "node1", 0)))
	p.post(2, 9, "alloc", "")
	p.finish(3, 9, 0)
	p.post(6, 9, "clean", "")
	p.post(7, 9, "dependency-remove", `{"description":"after:1"}`)
	p.post(7, 10, "depend", "")
	tw.sync()
	if got, want := view(t, tw.x), view(t, tw.ref); got != want {
		t.Errorf("later events after the overlap:\n got %s\nwant %s", got, want)
	}
}

// A second sentinel is logged and ignored: the consumer keeps applying
// the stream.
func TestSecondSentinelIgnored(t *testing.T) {
	p := initialised(t)
	p.sched(1, 1, 5)
	p.must(p.pump())
	if err := p.raw(`{"id":-1,"events":[]}`); err != nil {
		t.Fatalf("second sentinel: %v", err)
	}
	p.post(1, 6, "exception", `{"type":"cancel","severity":0,"note":""}`)
	p.post(1, 7, "clean", "")
	p.must(p.pump())
	if p.x.Done() || p.x.Err() != nil {
		t.Fatalf("consumer stopped: %v", p.x.Err())
	}
	if j := p.job(1); j["state"].(float64) != float64(StateInactive) || j["result"].(float64) != float64(ResultCanceled) {
		t.Errorf("job after the second sentinel: %v", j)
	}
	if !strings.Contains(strings.Join(p.logs, "\n"), "second sentinel") {
		t.Errorf("second sentinel not logged: %q", p.logs)
	}
}

// streamItem is one thing a consumer receives: a journal response, or a
// job-purge-inactive event's ids.
type streamItem struct {
	msg   []byte
	purge []fluxkit.JobID
}

// recordStream runs a random simulation and records what a consumer
// attached after attachAt steps receives during the next steps, purge
// events where they were published.
func recordStream(t *testing.T, seed uint64, attachAt, steps int) []streamItem {
	m := newSim(t, seed)
	for range attachAt {
		m.step()
	}
	c := m.attach()
	var items []streamItem
	take := func() {
		msgs, end := m.s.Next(c.l, nil, 1<<30)
		if end != nil {
			t.Fatalf("stream ended: %v", end)
		}
		for _, b := range msgs {
			items = append(items, streamItem{msg: clone(b)})
		}
		for _, ids := range c.purges {
			items = append(items, streamItem{purge: ids})
		}
		c.purges = nil
	}
	take()
	for range steps {
		m.step()
		take()
	}
	return items
}

// splitMessage returns a response's job id and its entries.
func splitMessage(t testing.TB, b []byte) (int64, []json.RawMessage) {
	var m struct {
		ID     int64             `json:"id"`
		Events []json.RawMessage `json:"events"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.ID, m.Events
}

// idempotent are the events whose copy, arriving at any later moment, is
// a pure duplicate. The others (priority, urgency, jobspec-update,
// resource-update, flux-restart, annotations, memo) carry values a later
// event may have superseded, or are the legitimate ways back from SCHED,
// so only an overlap (their whole suffix repeated) is a duplicate of
// them.
var idempotent = map[string]bool{"submit": true, "validate": true, "invalidate": true, "depend": true,
	"alloc": true, "start": true, "finish": true, "release": true, "free": true, "clean": true,
	"exception": true, "dependency-add": true, "dependency-remove": true}

// replay perturbs a recorded stream as a flaky transport and an
// overlapping subscription would: right after the sentinel, a random
// suffix of some backlog jobs' events, as live responses; anywhere after
// the original, copies of idempotent events and of the sentinel; before
// the first live event, copies of whole backlog responses. It returns the stream and how many items it added.
func replay(t testing.TB, rng *rand.Rand, items []streamItem) ([]streamItem, int) {
	type keyed struct {
		k  float64
		it streamItem
	}
	sentinel := slices.IndexFunc(items, func(it streamItem) bool {
		return it.msg != nil && string(it.msg) == string(Sentinel)
	})
	if sentinel < 0 {
		t.Fatal("no sentinel recorded")
	}
	out := make([]keyed, 0, 2*len(items))
	add := func(k float64, it streamItem) { out = append(out, keyed{k, it}) }
	live := func(id int64, e json.RawMessage) streamItem {
		return streamItem{msg: fmt.Appendf(nil, `{"id":%d,"events":[%s]}`, id, e)}
	}
	// A key after item i's and before the next one's.
	later := func(i int) float64 { return float64(i+rng.IntN(len(items)-i)) + 0.25 + rng.Float64()/2 }
	overlap := float64(sentinel) + 0.01
	for i, it := range items {
		add(float64(i), it)
		if it.msg == nil {
			continue
		}
		if i == sentinel {
			if rng.IntN(2) == 0 {
				add(later(i), it)
			}
			continue
		}
		id, entries := splitMessage(t, it.msg)
		if i < sentinel && rng.IntN(3) == 0 {
			for _, e := range entries[rng.IntN(len(entries)+1):] {
				add(overlap, live(id, e))
				overlap += 1e-6
			}
		}
		if i < sentinel && rng.IntN(8) == 0 {
			// Again before any live event: a backlog response is the
			// job's whole history, a duplicate only until the job moves on.
			add(float64(i+rng.IntN(sentinel-i+1))+0.5, it)
		}
		for _, e := range entries {
			var en struct{ Name string }
			if err := json.Unmarshal(e, &en); err != nil {
				t.Fatal(err)
			}
			if idempotent[en.Name] && rng.IntN(5) == 0 {
				add(later(i), live(id, e))
			}
		}
	}
	slices.SortStableFunc(out, func(a, b keyed) int { return cmpFloat(a.k, b.k) })
	res := make([]streamItem, len(out))
	for i, o := range out {
		res[i] = o.it
	}
	return res, len(res) - len(items)
}

// stateRank orders the states a job goes through.
func stateRank(s State) int {
	return slices.Index([]State{StateNew, StateDepend, StatePriority, StateSched, StateRun, StateCleanup, StateInactive}, s)
}

// monotone feeds items to a fresh index and checks, after each one, that
// the job it touched moved only forwards (SCHED back to PRIORITY being
// the one legitimate way back) and that an INACTIVE job never changed
// again; every so often, and at the end, that the statistics count
// exactly the jobs the index holds.
func monotone(t *testing.T, seed uint64, items []streamItem) *Index {
	t.Helper()
	x := NewIndex(IndexConfig{})
	last := map[fluxkit.JobID]State{}
	frozen := map[fluxkit.JobID]string{}
	for n, it := range items {
		if it.purge != nil {
			x.Purge(it.purge)
			continue
		}
		if err := x.Journal(it.msg); err != nil {
			t.Fatalf("seed %d: item %d: %v", seed, n, err)
		}
		id, _ := splitMessage(t, it.msg)
		j := x.jobs[fluxkit.JobID(id)]
		if id < 0 || j == nil {
			continue
		}
		prev, seen := last[j.id]
		if seen && stateRank(j.state) < stateRank(prev) && !(prev == StateSched && j.state == StatePriority) {
			t.Fatalf("seed %d: item %d %s: job %d moved back from %v to %v", seed, n, it.msg, id, prev, j.state)
		}
		last[j.id] = j.state
		if j.state == StateInactive {
			now := string(appendJob(nil, j, allAttrs))
			if was, ok := frozen[j.id]; ok && was != now {
				t.Fatalf("seed %d: item %d %s: inactive job changed:\n%s\n%s", seed, n, it.msg, was, now)
			}
			frozen[j.id] = now
		}
		if n%64 == 0 {
			checkCounts(t, x)
		}
	}
	checkCounts(t, x)
	return x
}

// checkCounts recounts the statistics from the jobs an initialised index
// holds.
func checkCounts(t *testing.T, x *Index) {
	t.Helper()
	if !x.initialized {
		return
	}
	var c counts
	for _, j := range x.jobs {
		c.add(j.state, 1)
		if j.state == StateInactive {
			switch j.result {
			case ResultCompleted:
				c.successful++
			case ResultCanceled:
				c.canceled++
			case ResultTimeout:
				c.timeout++
			default:
				c.failed++
			}
		}
	}
	got := x.stats
	got.purged = 0
	if got != c {
		t.Fatalf("statistics %+v, jobs held %+v", got, c)
	}
}

// Property: whatever duplicates, overlaps and repeated sentinels a stream
// carries, jobs only move forwards, inactive jobs never change, the
// statistics always count the jobs held, and the consumer ends where one
// fed the clean stream ends.
func TestMonotoneStatesUnderRandomReplay(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	added := 0
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 99))
		items := recordStream(t, seed, rng.IntN(600), 600+rng.IntN(600))
		ref := monotone(t, seed, items)
		perturbed, n := replay(t, rng, items)
		added += n
		x := monotone(t, seed, perturbed)
		if got, want := view(t, x), view(t, ref); got != want {
			t.Fatalf("seed %d: replayed stream ends elsewhere: %s", seed, firstDiff(got, want))
		}
	}
	if added < 1000*seeds/10 {
		t.Errorf("only %d items replayed", added)
	}
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d:\n got %s\nwant %s", i, g[i], w[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(g), len(w))
}
