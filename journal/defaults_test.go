package journal

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// With the default Producer and Consumer (no KVS mirror, no Lookup given),
// list-id for a job the consumer has not seen yet waits for it, as
// flux-core's does; for an id no job has, the answer is ENOENT in
// strerror's words, as flux-core's.
func TestDefaultsListIDWaitsForUnseenJob(t *testing.T) {
	e := newEnvWith(t, 1, ProducerConfig{})
	c := e.consumer(ConsumerConfig{})
	e.waitInit(c)
	ctx, p, ch := e.ctx, e.p, e.ch
	if err := fluxkit.RPC(ctx, ch, TopicPause, fluxkit.NodeidAny, nil, nil); err != nil {
		t.Fatal(err)
	}
	id, err := p.Submit(Submission{Userid: 100, Urgency: 16, Jobspec: jobspecFor("a", "", 0, 1, 1, false, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Post(id, "validate", nil); err != nil {
		t.Fatal(err)
	}
	call, err := ch.Request(ctx, fluxkit.NewRequest(TopicListID, fluxkit.NodeidAny, fmt.Appendf(nil, `{"id":%d,"attrs":["state"]}`, uint64(id))))
	if err != nil {
		t.Fatal(err)
	}
	defer call.Close()
	for {
		st, err := rpc(ctx, ch, TopicStatsGet, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st["idsync"].(map[string]any)["waits"].(float64) == 1 {
			break
		}
		wait, stop := context.WithTimeout(ctx, 10*time.Millisecond)
		m, err := call.Recv(wait)
		stop()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("list-id answered before the consumer saw the job: %v %s", err, payloadOf(m))
		}
	}
	if err := fluxkit.RPC(ctx, ch, TopicUnpause, fluxkit.NodeidAny, nil, nil); err != nil {
		t.Fatal(err)
	}
	m, err := call.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(m.Payload), fmt.Sprintf(`{"job":{"id":%d,"state":2}}`, uint64(id)); got != want {
		t.Errorf("list-id %s, want %s", got, want)
	}
	_, err = rpc(ctx, ch, TopicListID, map[string]any{"id": uint64(id) + 1, "attrs": []string{}})
	if errnoOf(err) != fluxkit.ENOENT || err.Error() != "No such file or directory" {
		t.Errorf("list-id of no job: %v", err)
	}
}

func payloadOf(m *fluxkit.Message) []byte {
	if m == nil {
		return nil
	}
	return m.Payload
}

// list-id of a job purged or invalidated is answered ENOENT in strerror's
// words, whether it was waiting already, is asked afterwards, or its lookup
// was under way when the purge arrived.
func TestListIDOfGoneJob(t *testing.T) {
	p := initialised(t)
	p.sched(1, 1, 1)
	p.post(1, 5, "exception", `{"type":"cancel","severity":0,"note":""}`)
	p.post(1, 6, "clean", "")
	p.submit(3, 7, jobspecFor("a", "", 0, 1, 1, false, 0))
	p.kvs[2] = true
	waiting := p.req(TopicListID, `{"id":2,"attrs":[]}`, false)
	for _, f := range p.lookup {
		f()
	}
	looking := p.req(TopicListID, `{"id":2,"attrs":[]}`, false)
	p.must(p.pump())
	p.x.Purge([]fluxkit.JobID{1, 2})
	p.post(3, 8, "invalidate", "")
	p.must(p.pump())
	for _, f := range p.lookup[1:] {
		f()
	}
	for name, r := range map[string]*rec{
		"waiting":                    waiting,
		"looking up":                 looking,
		"asked after the purge":      p.req(TopicListID, `{"id":1,"attrs":[]}`, false),
		"asked after the invalidate": p.req(TopicListID, `{"id":3,"attrs":[]}`, false),
	} {
		if errnoOf(r.err) != fluxkit.ENOENT || r.err.Error() != "No such file or directory" {
			t.Errorf("%s: %v", name, r.err)
		}
	}
	if len(p.lookup) != 2 {
		t.Errorf("%d lookups for jobs known to be gone", len(p.lookup)-2)
	}
}

// list and list-id refuse a bad payload with flux-core's texts: "invalid
// payload: " and what libflux and jansson say.
func TestRequestErrorTexts(t *testing.T) {
	p := initialised(t)
	for _, c := range []struct{ topic, payload, want string }{
		{TopicListID, ``, "message does not have a string payload"},
		{TopicListID, `[1]`, "payload is not a JSON object"},
		{TopicListID, `{"attrs":[]}`, "Object item not found: id"},
		{TopicListID, `{"id":"7","attrs":[]}`, "Expected integer, got string"},
		{TopicListID, `{"id":7.0,"attrs":[]}`, "Expected integer, got real"},
		{TopicListID, `{"id":7}`, "Object item not found: attrs"},
		{TopicListID, `{"id":7,"attrs":[],"state":true}`, "Expected integer, got true"},
		{TopicListID, `{"id":7,"attrs":{}}`, "attrs must be an array"},
		{TopicListID, `{"id":7,"attrs":[],"state":1}`, "invalid state specified"},
		{TopicListID, `{"id":7,"attrs":[],"state":-1}`, "invalid state specified"},
		{TopicList, `{"attrs":[]}`, "Object item not found: max_entries"},
		{TopicList, `{"max_entries":null,"attrs":[]}`, "Expected integer, got null"},
		{TopicList, `{"max_entries":0}`, "Object item not found: attrs"},
		{TopicList, `{"max_entries":0,"attrs":[],"since":"1"}`, "Expected real or integer, got string"},
		{TopicList, `{"max_entries":-1,"attrs":[]}`, "max_entries < 0 not allowed"},
	} {
		r := p.req(c.topic, c.payload, false)
		if want := "invalid payload: " + c.want; errnoOf(r.err) != fluxkit.EPROTO || r.err.Error() != want {
			t.Errorf("%s %s: %v, want %s", c.topic, c.payload, r.err, want)
		}
	}
	// state 0 is no state, as in flux-core; the lookup says the job is
	// not there.
	r := p.req(TopicListID, `{"id":7,"attrs":[],"state":0}`, false)
	for _, f := range p.lookup {
		f()
	}
	if errnoOf(r.err) != fluxkit.ENOENT {
		t.Errorf("state 0: %v", r.err)
	}
	// A legacy request whose fields are not the legacy types is a plain
	// request (flux-core lists without a constraint).
	p.sched(1, 1, 1)
	p.must(p.pump())
	if ids := p.ids(`{"max_entries":0,"attrs":[],"userid":"x","states":0,"results":0}`); len(ids) != 1 {
		t.Errorf("malformed legacy request lists %v", ids)
	}
}
