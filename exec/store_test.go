package exec

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
	"github.com/fluxkit/fluxkit/kvs"
)

// Appends for a job that meet in one round share one commit to its guest
// namespace; each job's events land as RFC 18 lines in its own exec
// eventlog; a replacing append starts the eventlog over; completions run
// in the order the appends were made.
func TestStoreMergesPendingAppends(t *testing.T) {
	checkLeaks(t)
	b := brokertest.New(t, testbroker.Config{Size: 1})
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
	const id, other = fluxkit.JobID(7), fluxkit.JobID(8)
	for _, j := range []fluxkit.JobID{id, other} {
		if _, err := createNS(ctx, h, j, b.OwnerID(), ""); err != nil {
			t.Fatal(err)
		}
	}
	names := func(id fluxkit.JobID) []string {
		t.Helper()
		evs, err := loadEventlog(ctx, h, id)
		if err != nil {
			t.Fatal(err)
		}
		return eventNames(evs)
	}
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
	// Queued before the commit loop runs, so they all meet in one round.
	st.append(id, ev("init", "starting"), true, cb("a"))
	st.append(id, ev("start"), false, cb("b"))
	st.append(other, ev("reattach"), false, nil)

	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); st.run(rctx) }()
	defer func() { cancel(); wg.Wait() }()

	if err := st.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(id); !slices.Equal(got, []string{"init", "starting", "start"}) {
		t.Fatalf("merged eventlog %v, want init, starting, start", got)
	}
	if sent.Load() != 4 {
		t.Fatalf("%d commit messages, want 4 (one commit per namespace)", sent.Load())
	}
	raw, err := kvs.Lookup(ctx, h, guestNS(id), eventlogKey)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(string(raw), "\n"); len(lines) != 4 || lines[3] != "" ||
		lines[0] != `{"timestamp":0,"name":"init","context":{"i":0}}` {
		t.Fatalf("eventlog is not RFC 18 lines: %q", raw)
	}
	st.append(id, ev("finish"), false, cb("c"))
	if err := st.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(id); !slices.Equal(got, []string{"init", "starting", "start", "finish"}) {
		t.Fatalf("eventlog %v, want finish appended", got)
	}
	st.append(id, ev("init"), true, nil)
	if err := st.sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := names(id); !slices.Equal(got, []string{"init"}) {
		t.Fatalf("fresh eventlog %v, want [init]", got)
	}
	if got := names(other); !slices.Equal(got, []string{"reattach"}) {
		t.Fatalf("other job's eventlog %v, want [reattach]", got)
	}
	dmu.Lock()
	defer dmu.Unlock()
	if !slices.Equal(done, []string{"a", "b", "c"}) {
		t.Fatalf("completions %v, want a, b, c in order", done)
	}
}

// A job's guest namespace is linked from its guest key while it runs and
// grafted there once it is done: the eventlog reads the same before and
// after, from the namespace and then from the primary namespace.
func TestGuestNamespaceGraft(t *testing.T) {
	checkLeaks(t)
	b := brokertest.New(t, testbroker.Config{Size: 1})
	h := b.Owner(0)
	t.Cleanup(func() { h.Close() })
	ctx := context.Background()
	const id = fluxkit.JobID(9)
	if _, err := loadEventlog(ctx, h, id); !errors.Is(err, errNoEventlog) {
		t.Fatalf("eventlog of an unknown job: %v, want errNoEventlog", err)
	}
	if existed, err := createNS(ctx, h, id, 5000, ""); err != nil || existed {
		t.Fatalf("createNS: existed %v, %v", existed, err)
	}
	// (The in-process KVS keeps a symlink's target, not its namespace.)
	link, err := kvs.LookupTreeobj(ctx, h, kvs.Primary, guestKey(id), kvs.FlagReadLink)
	if err != nil || link.Type != kvs.TypeSymlink || !strings.Contains(string(link.Data), `"target":"."`) {
		t.Fatalf("guest key %+v (%v), want a symlink to the root of job-9", link, err)
	}
	if existed, err := createNS(ctx, h, id, 5000, ""); err != nil || !existed {
		t.Fatalf("createNS again: existed %v, %v", existed, err)
	}
	txn := &kvs.Txn{}
	txn.Append(eventlogKey, appendLine(nil, &Event{Timestamp: 1, Name: "init"}))
	txn.Put("output", []byte("x"))
	if err := kvs.Commit(ctx, h, guestNS(id), txn); err != nil {
		t.Fatal(err)
	}
	if err := graftNS(ctx, h, id); err != nil {
		t.Fatal(err)
	}
	if evs, err := loadEventlog(ctx, h, id); err != nil || len(evs) != 1 || evs[0].Name != "init" {
		t.Fatalf("grafted eventlog %v (%v)", evs, err)
	}
	if out, err := kvs.Lookup(ctx, h, kvs.Primary, guestKey(id)+".output"); err != nil || string(out) != "x" {
		t.Fatalf("grafted output %q (%v)", out, err)
	}
	if _, err := kvs.Lookup(ctx, h, guestNS(id), eventlogKey); err == nil {
		t.Fatal("the guest namespace is still there after the graft")
	}
}
