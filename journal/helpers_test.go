package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
)

// jobspecFor builds an RFC 25 V1 jobspec with an environment to redact.
func jobspecFor(name, queue string, nnodes, slots, cores int, exclusive bool, duration float64) []byte {
	slot := fmt.Sprintf(`{"type":"slot","count":%d,"label":"task","with":[{"type":"core","count":%d}]}`, slots, cores)
	res := slot
	if nnodes > 0 {
		res = fmt.Sprintf(`{"type":"node","count":%d,"exclusive":%v,"with":[%s]}`, nnodes, exclusive, slot)
	}
	sys := fmt.Sprintf(`"duration":%v,"cwd":"/home/u","environment":{"PATH":"/bin","SECRET":"x"}`, duration)
	if queue != "" {
		sys += fmt.Sprintf(`,"queue":%q`, queue)
	}
	return fmt.Appendf(nil, `{"version":1,"resources":[%s],"tasks":[{"command":["/bin/%s","-x"],"slot":"task","count":{"per_slot":1}}],"attributes":{"system":{%s}}}`,
		res, name, sys)
}

// rFor builds an RFC 20 R with a scheduling key to redact.
func rFor(ranks, cores, nodelist string, expiration float64) []byte {
	return fmt.Appendf(nil, `{"version":1,"execution":{"R_lite":[{"rank":%q,"children":{"core":%q}}],"nodelist":[%q],"starttime":1,"expiration":%v},"scheduling":{"big":"blob"}}`,
		ranks, cores, nodelist, expiration)
}

type env struct {
	t   *testing.T
	b   *testbroker.Broker
	p   *Producer
	ph  *testbroker.Handle
	ch  *testbroker.Handle
	c   *Consumer
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvSize(t, 1)
}

func newEnvSize(t *testing.T, size int) *env {
	t.Helper()
	return newEnvWith(t, size, ProducerConfig{Epoch: time.Unix(0, 0), KVS: true})
}

func newEnvWith(t *testing.T, size int, cfg ProducerConfig) *env {
	t.Helper()
	leakcheck.Check(t)
	b := brokertest.New(t, testbroker.Config{Size: size})
	ph := b.Owner(0)
	p, err := NewProducer(ph, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	e := &env{t: t, b: b, p: p, ph: ph, ctx: ctx}
	t.Cleanup(func() {
		if e.c != nil {
			_ = e.c.Close()
		}
		_ = p.Close()
		_ = ph.Close()
		if e.ch != nil {
			_ = e.ch.Close()
		}
		cancel()
	})
	return e
}

func (e *env) consumer(cfg ConsumerConfig) *Consumer {
	e.t.Helper()
	if e.ch == nil {
		e.ch = e.b.Owner(0)
	}
	c, err := NewConsumer(e.ch, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.c = c
	return c
}

func (e *env) waitInit(c *Consumer) {
	e.t.Helper()
	select {
	case <-c.Initialized():
	case <-e.ctx.Done():
		e.t.Fatal("consumer never initialised")
	}
}

func (e *env) submit(id fluxkit.JobID, ts float64, userid uint32, urgency int, js []byte) {
	e.t.Helper()
	if _, err := e.p.Submit(Submission{ID: id, Timestamp: ts, Userid: userid, Urgency: urgency, Jobspec: js}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) post(id fluxkit.JobID, ts float64, name string, ctx any) {
	e.t.Helper()
	if err := e.p.PostAt(id, ts, name, ctx); err != nil {
		e.t.Fatal(err)
	}
}

// toSched submits and moves a job to SCHED with the given priority,
// timestamps start at t0.
func (e *env) toSched(id fluxkit.JobID, t0 float64, prio int64, js []byte) {
	e.t.Helper()
	e.submit(id, t0, 100, 16, js)
	e.post(id, t0+1, "validate", nil)
	e.post(id, t0+2, "depend", nil)
	e.post(id, t0+3, "priority", map[string]any{"priority": prio})
}

func (e *env) toRun(id fluxkit.JobID, t0 float64, r []byte) {
	e.t.Helper()
	e.toSched(id, t0, 16, jobspecFor("app", "", 1, 1, 4, false, 0))
	if err := e.p.SetR(id, r); err != nil {
		e.t.Fatal(err)
	}
	e.post(id, t0+4, "alloc", nil)
	e.post(id, t0+5, "start", nil)
}

func (e *env) complete(id fluxkit.JobID, t0 float64, status int) {
	e.t.Helper()
	e.toRun(id, t0, rFor("0", "0-3", "node1", 0))
	e.post(id, t0+6, "finish", map[string]any{"status": status})
	e.post(id, t0+7, "release", map[string]any{"ranks": "all", "final": true})
	e.post(id, t0+8, "free", nil)
	e.post(id, t0+9, "clean", nil)
}

// rpc sends a request and returns the decoded response object.
func rpc(ctx context.Context, h fluxkit.Handle, topic string, in any) (map[string]any, error) {
	var out map[string]any
	err := fluxkit.RPC(ctx, h, topic, fluxkit.NodeidAny, in, &out)
	return out, err
}

func (e *env) listID(id fluxkit.JobID, attrs []string, state State) (map[string]any, error) {
	in := map[string]any{"id": uint64(id), "attrs": attrs}
	if state != 0 {
		in["state"] = state
	}
	out, err := rpc(e.ctx, e.ch, TopicListID, in)
	if err != nil {
		return nil, err
	}
	j, _ := out["job"].(map[string]any)
	return j, nil
}

// collect reads a stream until its error response.
func collect(ctx context.Context, call fluxkit.Call, n int) ([]map[string]any, error) {
	var out []map[string]any
	for n < 0 || len(out) < n {
		m, err := call.Recv(ctx)
		if err != nil {
			return out, err
		}
		var v map[string]any
		if err := json.Unmarshal(m.Payload, &v); err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

func errnoOf(err error) syscall.Errno {
	var fe *fluxkit.Error
	if errors.As(err, &fe) {
		return fe.Errnum
	}
	return 0
}

// benchEnv is a producer and consumer over the in-process broker for
// benchmarks.
func benchEnv(b *testing.B) *env {
	b.Helper()
	br := brokertest.New(b, testbroker.Config{})
	ph := br.Owner(0)
	p, err := NewProducer(ph, ProducerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ch := br.Owner(0)
	c, err := NewConsumer(ch, ConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	<-c.Initialized()
	b.Cleanup(func() { _ = c.Close(); _ = p.Close(); _ = ph.Close(); _ = ch.Close() })
	return &env{b: br, p: p, ph: ph, ch: ch, c: c}
}
