package journal

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// rec is a Responder that records what it is sent.
type rec struct {
	msgs  []json.RawMessage
	err   error
	ended bool
	log   *[]string
	name  string
}

func (r *rec) Respond(p []byte) error {
	if r.ended {
		panic("response after end")
	}
	r.msgs = append(r.msgs, append([]byte(nil), p...))
	if r.log != nil {
		*r.log = append(*r.log, r.name)
	}
	return nil
}

func (r *rec) RespondError(err error) error {
	if r.ended {
		panic("error after end")
	}
	r.err, r.ended = err, true
	if r.log != nil {
		*r.log = append(*r.log, r.name+"!")
	}
	return nil
}

func (r *rec) obj(i int) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(r.msgs[i], &m); err != nil {
		panic(err)
	}
	return m
}

// pipe drives a Store and an Index directly, without goroutines: the pure
// cores as the drivers use them.
type pipe struct {
	t      testing.TB
	s      *Store
	l      *Listener
	x      *Index
	logs   []string
	kvs    map[fluxkit.JobID]bool
	lookup []func()
}

func newPipe(t testing.TB) *pipe {
	s, err := NewStore(StoreConfig{Now: func() time.Time { return time.Unix(1000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	p := &pipe{t: t, s: s, kvs: map[fluxkit.JobID]bool{}}
	p.x = p.newIndex()
	return p
}

func (p *pipe) newIndex() *Index {
	return NewIndex(IndexConfig{
		Logf: func(f string, a ...any) { p.logs = append(p.logs, fmt.Sprintf(f, a...)) },
		Lookup: func(id fluxkit.JobID, done func(error)) {
			p.lookup = append(p.lookup, func() {
				if p.kvs[id] {
					done(nil)
				} else {
					done(fluxkit.Errorf(fluxkit.ENOENT, "No such file or directory"))
				}
			})
		},
		Queues: []string{"batch"},
	})
}

// connect subscribes the index (full) to the store.
func (p *pipe) connect() *pipe {
	p.l = p.s.Subscribe(ListenerKey{Sender: "c", Matchtag: 1}, 0, true, Filter{})
	return p
}

// pump moves every queued response into the index; it returns the
// index's terminal error.
func (p *pipe) pump() error {
	for {
		msgs, end := p.s.Next(p.l, nil, 1<<30)
		for _, m := range msgs {
			if err := p.x.Journal(m); err != nil {
				return err
			}
		}
		if end != nil {
			return p.x.JournalEnd(end)
		}
		if len(msgs) == 0 {
			return nil
		}
	}
}

func (p *pipe) must(err error) {
	p.t.Helper()
	if err != nil {
		p.t.Fatal(err)
	}
}

func (p *pipe) submit(id fluxkit.JobID, ts float64, js []byte) {
	p.t.Helper()
	_, err := p.s.Submit(Submission{ID: id, Timestamp: ts, Userid: 100, Urgency: 16, Jobspec: js})
	p.must(err)
}

func (p *pipe) post(id fluxkit.JobID, ts float64, name string, ctx string) {
	p.t.Helper()
	var c []byte
	if ctx != "" {
		c = []byte(ctx)
	}
	p.must(p.s.Post(id, ts, name, c))
}

func (p *pipe) sched(id fluxkit.JobID, t0 float64, prio int) {
	p.t.Helper()
	p.submit(id, t0, jobspecFor("app", "", 0, 1, 1, false, 0))
	p.post(id, t0+1, "validate", "")
	p.post(id, t0+2, "depend", "")
	p.post(id, t0+3, "priority", fmt.Sprintf(`{"priority":%d}`, prio))
}

func (p *pipe) run(id fluxkit.JobID, t0, tRun float64) {
	p.t.Helper()
	p.sched(id, t0, 16)
	p.must(p.s.SetR(id, rFor("0", "0-3", "node1", 0)))
	p.post(id, tRun, "alloc", "")
}

func (p *pipe) finish(id fluxkit.JobID, t float64, status int) {
	p.t.Helper()
	p.post(id, t, "finish", fmt.Sprintf(`{"status":%d}`, status))
	p.post(id, t+1, "clean", "")
}

// req sends a request to the index; streaming sets the flag.
func (p *pipe) req(topic string, payload string, streaming bool) *rec {
	r := &rec{}
	m := fluxkit.NewRequest(topic, 0, []byte(payload))
	if payload == "" {
		m.Payload = nil
	}
	if streaming {
		m.Flags |= fluxkit.FlagStreaming
	}
	m.Route = []string{"client"}
	p.x.Request(r, m)
	return r
}

// jobs runs a non-streaming list and returns its jobs.
func (p *pipe) jobs(payload string) []map[string]any {
	p.t.Helper()
	r := p.req(TopicList, payload, false)
	if r.err != nil || len(r.msgs) != 1 {
		p.t.Fatalf("list %s: %v %d", payload, r.err, len(r.msgs))
	}
	var out struct{ Jobs []map[string]any }
	p.must(json.Unmarshal(r.msgs[0], &out))
	return out.Jobs
}

func (p *pipe) ids(payload string) []fluxkit.JobID {
	var out []fluxkit.JobID
	for _, j := range p.jobs(payload) {
		out = append(out, fluxkit.JobID(j["id"].(float64)))
	}
	return out
}

func (p *pipe) job(id fluxkit.JobID) map[string]any {
	p.t.Helper()
	r := p.req(TopicListID, fmt.Sprintf(`{"id":%d,"attrs":["all"]}`, id), false)
	if r.err != nil || len(r.msgs) != 1 {
		p.t.Fatalf("list-id %d: %v %d", id, r.err, len(r.msgs))
	}
	return r.obj(0)["job"].(map[string]any)
}
