package exec

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
)

// Appends for a job that meet in one commit share one batch; later appends
// start the next batch; forget starts a fresh eventlog at its first batch.
func TestStoreMergesPendingAppends(t *testing.T) {
	checkLeaks(t)
	b := testbroker.New(t, testbroker.Config{Size: 1})
	h := b.Owner(0)
	t.Cleanup(func() { h.Close() })
	var sent atomic.Int64
	st := newStore(h, func(n int) { sent.Add(int64(n)) })
	ctx := context.Background()
	ev := func(names ...string) []Event {
		var out []Event
		for i, n := range names {
			out = append(out, Event{Timestamp: float64(i), Name: n, Context: map[string]any{"i": i}})
		}
		return out
	}
	names := func(id fluxkit.JobID) ([]string, int) {
		t.Helper()
		evs, n, err := loadEventlog(ctx, h, id)
		if err != nil {
			t.Fatal(err)
		}
		return eventNames(evs), n
	}
	const id, other = fluxkit.JobID(7), fluxkit.JobID(8)
	var done []string
	var dmu sync.Mutex
	cb := func(what string) func(error) {
		return func(err error) {
			dmu.Lock()
			defer dmu.Unlock()
			if err != nil {
				t.Errorf("%s: %v", what, err)
			}
			done = append(done, what)
		}
	}
	// Queued before the commit loop runs, so they all meet in one commit.
	st.append(id, 0, ev("init", "starting"), cb("a"))
	st.append(id, 99, ev("start"), cb("b")) // first is ignored: the store knows the job
	st.append(other, 3, ev("reattach"), nil)

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); st.run(rctx) }()
	defer func() { cancel(); wg.Wait() }()

	if err := st.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, n := names(id); !slices.Equal(got, []string{"init", "starting", "start"}) || n != 1 {
		t.Fatalf("merged eventlog %v in %d batches, want 3 events in 1", got, n)
	}
	if sent.Load() != 2 {
		t.Fatalf("%d commit messages, want 2 (one commit)", sent.Load())
	}
	var cnt struct{ Value int }
	if err := fluxkit.RPC(ctx, h, "kvs.get", 0, map[string]string{"key": eventlogKey(other) + ".count"}, &cnt); err != nil || cnt.Value != 4 {
		t.Fatalf("reattached job's count %d (%v), want 4: its first batch is 3", cnt.Value, err)
	}
	st.append(id, 0, ev("finish"), cb("c"))
	if err := st.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, n := names(id); !slices.Equal(got, []string{"init", "starting", "start", "finish"}) || n != 2 {
		t.Fatalf("eventlog %v in %d batches, want 4 events in 2", got, n)
	}
	st.forget(id)
	st.append(id, 0, ev("init"), nil)
	if err := st.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got, n := names(id); !slices.Equal(got, []string{"init"}) || n != 1 {
		t.Fatalf("fresh eventlog %v in %d batches, want [init] in 1", got, n)
	}
	dmu.Lock()
	defer dmu.Unlock()
	if !slices.Equal(done, []string{"a", "b", "c"}) {
		t.Fatalf("completions %v, want a, b, c in order", done)
	}
}
