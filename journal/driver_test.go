package journal

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
	"github.com/fluxkit/fluxkit/kvs"
)

func TestConfigValidation(t *testing.T) {
	b := brokertest.New(t, testbroker.Config{})
	h := b.Owner(0)
	defer h.Close()
	for _, cfg := range []ProducerConfig{{Batch: -1}, {InactiveNumLimit: -2}, {InactiveAgeLimit: -1}, {PurgePeriod: -1}, {MaxQueue: -1}} {
		if p, err := NewProducer(h, cfg); err == nil {
			_ = p.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := NewProducer(nil, ProducerConfig{}); err == nil {
		t.Error("nil handle accepted")
	}
	for _, cfg := range []ConsumerConfig{{Credit: -1}, {StatsPeriod: -1}} {
		if c, err := NewConsumer(h, cfg); err == nil {
			_ = c.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// A producer that sends garbage: the consumer stops with an error naming
// the job and the event, and its Done channel closes.
func TestConsumerStopsOnMalformedInput(t *testing.T) {
	c, _ := fakeProducer(t, `{"id":-1,"events":[]}`,
		`{"id":12,"events":[`+submitOK+`,{"timestamp":2,"name":"urgency","context":{"urgency":99,"userid":1}}]}`)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("consumer did not stop")
	}
	err := c.Err()
	var pe *ProtocolError
	if !errors.As(err, &pe) || pe.Job != 12 || pe.Event != "urgency" || !strings.Contains(err.Error(), "urgency 99") {
		t.Errorf("error %v", err)
	}
}

// fakeProducer serves job-manager.events-journal as a producer that sends
// responses, then nothing more, and returns a consumer of it and its
// handle.
func fakeProducer(t *testing.T, responses ...string) (*Consumer, fluxkit.Handle) {
	leakcheck.Check(t)
	b := brokertest.New(t, testbroker.Config{})
	fake := b.Owner(0)
	t.Cleanup(func() { _ = fake.Close() })
	for topic, fn := range map[string]fluxkit.HandlerFunc{
		TopicJournal: func(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			for _, m := range responses {
				_ = w.Respond([]byte(m))
			}
		},
		TopicJournalCancel: func(context.Context, fluxkit.Responder, *fluxkit.Message) {},
	} {
		unreg, err := fake.Register(topic, fluxkit.RoleNone, fn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(unreg)
	}
	h := b.Owner(0)
	t.Cleanup(func() { _ = h.Close() })
	c, err := NewConsumer(h, ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, h
}

// A producer that sends the sentinel twice: the consumer keeps running
// and applies what follows.
func TestConsumerSurvivesSecondSentinel(t *testing.T) {
	c, h := fakeProducer(t, `{"id":12,"events":[`+submitOK+`]}`, `{"id":-1,"events":[]}`, `{"id":-1,"events":[]}`,
		`{"id":12,"events":[{"timestamp":2,"name":"validate"}]}`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The wait for the job's DEPEND ends early if the consumer stops.
	go func() {
		select {
		case <-c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	var out struct{ Job map[string]any }
	err := fluxkit.RPC(ctx, h, TopicListID, fluxkit.NodeidAny, map[string]any{"id": 12, "attrs": []string{"state"}, "state": StateDepend}, &out)
	select {
	case <-c.Done():
		t.Fatalf("consumer stopped: %v", c.Err())
	default:
	}
	if err != nil {
		t.Fatal(err)
	}
	if out.Job["state"] != float64(StateDepend) {
		t.Errorf("job after the second sentinel: %v", out.Job)
	}
}

// job-stats watchers over the broker: an immediate answer, updates at
// most once per period, and a disconnect drops the watcher.
func TestJobStatsWatchersBroker(t *testing.T) {
	e := newEnv(t)
	c := e.consumer(ConsumerConfig{StatsPeriod: 50 * time.Millisecond})
	e.waitInit(c)
	g := e.b.Guest(0, 77)
	call, err := fluxkit.Stream(e.ctx, g, TopicJobStats, fluxkit.NodeidAny, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collect(e.ctx, call, 1); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		e.submit(fluxkit.JobID(i), 1, 1, 16, jobspecFor("a", "", 0, 1, 1, false, 0))
		e.post(fluxkit.JobID(i), 2, "validate", nil)
	}
	got := 0
	for got < 20 {
		r, err := collect(e.ctx, call, 1)
		if err != nil {
			t.Fatal(err)
		}
		got = int(r[0]["job_states"].(map[string]any)["depend"].(float64))
	}
	updates := 0
	ctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
	for {
		if _, err := call.Recv(ctx); err != nil {
			break
		}
		updates++
	}
	cancel()
	if updates != 0 {
		t.Errorf("%d updates without changes", updates)
	}
	stats := func() float64 {
		out, err := rpc(e.ctx, e.ch, TopicStatsGet, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		return out["stats_watchers"].(float64)
	}
	if n := stats(); n != 1 {
		t.Fatalf("watchers %v", n)
	}
	call.Close()
	_ = g.Close()
	deadline := time.Now().Add(5 * time.Second)
	for stats() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := stats(); n != 0 {
		t.Errorf("watchers after disconnect %v", n)
	}
}

// Requests sent to a consumer before its sentinel wait, over the broker.
func TestC1DeferralBroker(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 50; i++ {
		e.complete(fluxkit.JobID(i), float64(10*i), 0)
	}
	c := e.consumer(ConsumerConfig{Credit: 4})
	out, err := rpc(e.ctx, e.ch, TopicList, map[string]any{"max_entries": 0, "attrs": []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(out["jobs"].([]any)); n != 50 {
		t.Errorf("first list shows %d jobs", n)
	}
	_ = c
}

// The periodic purge applies the configured limits, removes the purged
// jobs from the KVS, then publishes them: whoever gets the event finds
// their KVS directories gone. A consumer drops the purged jobs.
func TestPeriodicPurge(t *testing.T) {
	leakcheck.Check(t)
	b := brokertest.New(t, testbroker.Config{})
	ph := b.Owner(0)
	defer ph.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ch := b.Owner(0)
	defer ch.Close()
	sub, err := ch.Subscribe(ctx, EventPurge)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	p, err := NewProducer(ph, ProducerConfig{InactiveNumLimit: 1, PurgePeriod: 10 * time.Millisecond, KVS: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	e := &env{t: t, b: b, p: p, ph: ph, ch: ch, ctx: ctx}
	c, err := NewConsumer(ch, ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 1; i <= 3; i++ {
		e.complete(fluxkit.JobID(i), float64(10*i), 0)
	}
	purged := map[fluxkit.JobID]bool{}
	for len(purged) < 2 {
		m, err := sub.Recv(ctx)
		if err != nil {
			t.Fatalf("purged %v, then %v", purged, err)
		}
		ids, err := ParsePurge(m.Payload)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			purged[id] = true
			if _, err := b.KVS().Lookup(kvs.Primary, id.KVS(), kvs.FlagReadDir); err == nil {
				t.Errorf("purged job %d still in the KVS when its purge is published", id)
			}
		}
	}
	if !purged[1] || !purged[2] || p.Stats().InactiveJobs != 1 {
		t.Errorf("purged %v, %d inactive left", purged, p.Stats().InactiveJobs)
	}
	if _, err := b.KVS().Lookup(kvs.Primary, fluxkit.JobID(3).KVS(), kvs.FlagReadDir); err != nil {
		t.Error("job kept is not in the KVS")
	}
	for {
		out, err := rpc(ctx, ch, TopicJobStats, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		if out["inactive_purged"].(float64) == 2 && out["job_states"].(map[string]any)["inactive"].(float64) == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("consumer stats %v", out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// kvsFailing is a Handle whose kvs.commit requests fail while fail is set.
type kvsFailing struct {
	fluxkit.Handle
	fail atomic.Bool
}

func (h *kvsFailing) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	if req.Topic == "kvs.commit" && h.fail.Load() {
		return nil, fluxkit.Errorf(fluxkit.ENOSYS, "kvs is down")
	}
	return h.Handle.Request(ctx, req)
}

// A purge whose KVS commit fails is still published, so that consumers
// drop the jobs the store no longer holds; the error is returned.
func TestPurgePublishedDespiteKVSFailure(t *testing.T) {
	e := newEnv(t)
	_ = e.p.Close()
	kh := &kvsFailing{Handle: e.ph}
	p, err := NewProducer(kh, ProducerConfig{KVS: true})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	defer p.Close()
	c := e.consumer(ConsumerConfig{})
	e.waitInit(c)
	sub, err := e.ch.Subscribe(e.ctx, EventPurge)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	e.complete(1, 1, 0)
	if _, err := e.listID(1, []string{"state"}, StateInactive); err != nil {
		t.Fatal(err)
	}
	kh.fail.Store(true)
	ids, err := p.PurgeIDs(e.ctx, []fluxkit.JobID{1})
	if fluxkit.Errno(err) != fluxkit.ENOSYS || len(ids) != 1 {
		t.Errorf("purge: %v %v", ids, err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 5*time.Second)
	defer cancel()
	m, err := sub.Recv(ctx)
	if err != nil || string(m.Payload) != `{"jobs":[1]}` {
		t.Fatalf("purge event: %v %v", m, err)
	}
	for {
		out, err := rpc(e.ctx, e.ch, TopicJobStats, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		if out["inactive_purged"].(float64) == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
}
