package journal

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
)

// listVia runs job-list.list over the broker.
func listVia(ctx context.Context, h fluxkit.Handle, attrs string) ([]byte, error) {
	call, err := h.Request(ctx, fluxkit.NewRequest(TopicList, h.Rank(), []byte(`{"max_entries":0,"attrs":`+attrs+`}`)))
	if err != nil {
		return nil, err
	}
	defer call.Close()
	m, err := call.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return m.Payload, nil
}

// TestBrokerEquivalence drives a Producer through random lifecycles while
// Consumers attach at random moments (one reconnects midway); once
// drained, every consumer lists exactly what a reference index fed from
// the start lists, and the reference matches the simulation's oracle
// (checked in runEquivalence's terms).
func TestBrokerEquivalence(t *testing.T) {
	e := newEnvSize(t, 5)
	m := newSim(t, 4242)
	var ref *simConsumer
	_ = e.p.do(func(s *Store) error { m.s = s; ref = m.attach(); return nil })
	m.onPurge = func(ids []fluxkit.JobID) {
		go func() { _ = e.p.publishPurge(e.ctx, ids) }()
	}
	type bc struct {
		h *testbroker.Handle
		c *Consumer
	}
	var cons []bc
	rng := rand.New(rand.NewPCG(1, 2))
	const steps = 1500
	attachAt := map[int]bool{0: true, rng.IntN(steps): true, rng.IntN(steps): true, rng.IntN(steps): true}
	reconnectAt := steps / 2
	for i := 0; i < steps; i++ {
		if attachAt[i] {
			h := e.b.Owner(uint32(1 + len(cons)))
			c, err := NewConsumer(h, ConsumerConfig{Credit: 64 * (1 + rng.IntN(2)) * rng.IntN(2)})
			if err != nil {
				t.Fatal(err)
			}
			cons = append(cons, bc{h, c})
			t.Cleanup(func() { _ = c.Close(); _ = h.Close() })
		}
		if i == reconnectAt {
			if err := cons[0].c.Reconnect(e.ctx); err != nil {
				t.Fatal(err)
			}
		}
		_ = e.p.do(func(s *Store) error {
			m.step()
			m.feed(ref, 1<<30, true)
			return nil
		})
	}
	_ = e.p.do(func(s *Store) error { m.drain(ref); return nil })
	want := listAll(t, ref.x, `["all"]`)
	for i, c := range cons {
		deadline := time.Now().Add(20 * time.Second)
		var got []byte
		for time.Now().Before(deadline) {
			var err error
			got, err = listVia(e.ctx, c.h, `["all"]`)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(got, want) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("consumer %d never converged:\n%.400s\nwant\n%.400s", i, got, want)
		}
	}
}

// A listener that falls more than MaxQueue live events behind is dropped
// with EOVERFLOW; the others are untouched, and a fresh full subscription
// recovers the complete state.
func TestSlowListenerOverflow(t *testing.T) {
	p := newPipe(t)
	p.s.cfg.MaxQueue = 10
	slow := p.s.Subscribe(ListenerKey{Sender: "slow", Matchtag: 1}, 0, true, Filter{})
	p.connect()
	for i := 1; i <= 5; i++ {
		p.sched(fluxkit.JobID(i), float64(i), i)
		p.must(p.pump()) // the fast consumer keeps up
	}
	if p.s.Listeners() != 2 {
		t.Fatalf("listeners %d", p.s.Listeners())
	}
	var end error
	for {
		msgs, err := p.s.Next(slow, nil, 100)
		if err != nil {
			end = err
			break
		}
		if len(msgs) == 0 {
			t.Fatal("slow listener not ended")
		}
	}
	if !errors.Is(end, ErrOverflow) || fluxkit.Errno(end) != fluxkit.EOVERFLOW {
		t.Errorf("end %v errno %v", end, fluxkit.Errno(end))
	}
	if p.s.Listeners() != 1 || len(slow.queue) != 0 {
		t.Errorf("slow listener kept: %d listeners, %d queued", p.s.Listeners(), len(slow.queue))
	}
	eqIDs(t, "fast consumer", p.ids(`{"max_entries":0,"attrs":[]}`), 5, 4, 3, 2, 1)
	q := newPipe(t)
	q.s = p.s
	q.connect()
	q.must(q.pump())
	eqIDs(t, "recovered", q.ids(`{"max_entries":0,"attrs":[]}`), 5, 4, 3, 2, 1)
}

// With credit, the producer never hands a stream more than its credit
// beyond what the consumer acknowledged, whatever the backlog size.
func TestCreditFlowControl(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 300; i++ {
		e.submit(fluxkit.JobID(i), float64(i), 1, 16, jobspecFor("a", "", 0, 1, 1, false, 0))
		e.post(fluxkit.JobID(i), float64(i), "validate", nil)
	}
	call := openStream(t, e, e.ph, `{"full":true,"credit":50}`, true)
	if _, err := collect(e.ctx, call, 50); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	m, err := call.Recv(ctx)
	cancel()
	if err != context.DeadlineExceeded {
		t.Fatalf("response beyond credit: %s %v", m.Payload, err)
	}
	if err := fluxkit.Notify(e.ctx, e.ph, TopicJournalCredit, fluxkit.NodeidAny, map[string]any{"matchtag": call.Matchtag(), "credit": 251}); err != nil {
		t.Fatal(err)
	}
	rs, err := collect(e.ctx, call, 251)
	if err != nil || rs[250]["id"].(float64) != -1 {
		t.Fatalf("after credit: %v", err)
	}
	// A consumer with credit reaches the same state.
	c := e.consumer(ConsumerConfig{Credit: 16})
	e.waitInit(c)
	if got, _ := listVia(e.ctx, e.ch, `["state"]`); bytes.Count(got, []byte(`"id"`)) != 300 {
		t.Errorf("credit consumer lists %.200s", got)
	}
}

// C23: a producer restart ends the stream with ENODATA; the consumer stops
// cleanly; a new consumer against the restarted producer sees the
// KVS-reloaded jobs (SCHED jobs with flux-restart then a new priority).
// Reloading only the consumer reproduces its list exactly.
func TestC23ProducerRestart(t *testing.T) {
	e := newEnv(t)
	c := e.consumer(ConsumerConfig{})
	e.waitInit(c)
	e.complete(1, 1, 0)
	e.toSched(2, 20, 5, jobspecFor("s", "", 0, 1, 1, false, 0))
	e.post(2, 25, "annotations", map[string]any{"annotations": map[string]any{"sched": map[string]any{"x": 1}}})
	e.toRun(3, 30, rFor("0-1", "0-3", "node[1-2]", 0))
	if _, err := e.listID(3, []string{"state"}, StateRun); err != nil {
		t.Fatal(err)
	}
	before, _ := listVia(e.ctx, e.ch, `["all"]`)
	// Reloading only the consumer reproduces the list exactly.
	if err := c.Reconnect(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitInit(c)
	if again, _ := listVia(e.ctx, e.ch, `["all"]`); !bytes.Equal(again, before) {
		t.Errorf("consumer reload differs:\n%s\n%s", again, before)
	}
	saved := e.p.Saved()
	if err := e.p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-e.ctx.Done():
		t.Fatal("consumer did not see the end")
	}
	if err := c.Err(); err != nil {
		t.Errorf("clean end expected: %v", err)
	}
	p2, err := NewProducer(e.ph, ProducerConfig{KVS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if err := p2.Restore(saved); err != nil {
		t.Fatal(err)
	}
	e.p = p2
	if err := p2.PostAt(2, 50, "priority", map[string]any{"priority": 9}); err != nil {
		t.Fatal(err)
	}
	if err := c.Reconnect(e.ctx); err != nil {
		t.Fatal(err)
	}
	e.waitInit(c)
	j, err := e.listID(2, []string{"all"}, StateSched)
	if err != nil {
		t.Fatal(err)
	}
	if j["priority"].(float64) != 9 || j["state"].(float64) != 8 {
		t.Errorf("restarted SCHED job %v", j)
	}
	if _, ok := j["annotations"]; ok {
		t.Error("journal-only annotations survived the restart")
	}
	log, _ := p2.Eventlog(2)
	if !bytes.Contains(log, []byte(`"flux-restart"`)) || bytes.Index(log, []byte(`"flux-restart"`)) > bytes.LastIndex(log, []byte(`"priority"`)) {
		t.Errorf("eventlog %s", log)
	}
	for _, id := range []fluxkit.JobID{1, 3} {
		j, err := e.listID(id, []string{"state", "nnodes", "ranks", "nodelist"}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if id == 3 && (j["ranks"] != "[0-1]" || j["nnodes"].(float64) != 2 || j["nodelist"] != "node[1-2]") {
			t.Errorf("job 3 after restart %v", j)
		}
	}
}
