package testbroker

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// serveCount registers a streaming "count.up" on h that answers {"i":0..N-1}
// and then ends the stream with ENODATA, as every flux-core stream ends.
func serveCount(t *testing.T, h *Handle) {
	t.Helper()
	_, err := h.Register("count.up", 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		var in struct{ N int }
		if !fluxkit.DecodeRequest(w, req, &in) {
			return
		}
		for i := 0; i < in.N; i++ {
			_ = fluxkit.Respond(w, map[string]int{"i": i})
		}
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENODATA, ""))
	})
	require.NoError(t, err)
}

// readStream returns the i of every response of a stream until its end.
func readStream(ctx context.Context, call fluxkit.Call) ([]int, error) {
	var got []int
	for {
		m, err := call.Recv(ctx)
		if errors.Is(err, fluxkit.ENODATA) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		var out struct{ I int }
		if err := fluxkit.DecodePayload(m, &out); err != nil {
			return got, err
		}
		got = append(got, out.I)
	}
}

// The link tests run in testing/synctest bubbles: link delays are virtual
// time, so they cost no wall-clock time and a test can assert them exactly.

func TestLinkDelayKeepsStreamOrder(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		// Rank 5's way to rank 0 crosses two delayed links (5-2 and 2-0).
		b := newBroker(t, Config{Size: 6, Fanout: 2})
		ctx := testutil.Context(t)
		serveCount(t, b.Owner(5))
		const delay = 5 * time.Millisecond
		b.SetLink(5, Link{Delay: delay})
		b.SetLink(2, Link{Delay: delay})
		const n = 50
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		for round := 0; round < 5; round++ {
			start := time.Now()
			call, err := fluxkit.Stream(ctx, b.Owner(0), "count.up", 5, map[string]int{"N": n})
			require.NoError(t, err)
			got, err := readStream(ctx, call)
			call.Close()
			require.NoError(t, err)
			require.Equal(t, want, got, "round %d: every response, in order, before the end of the stream", round)
			// Virtual time: the request crosses both links up, the
			// responses both links down, each crossing its delay.
			require.Equal(t, 4*delay, time.Since(start), "round %d", round)
		}
	})
}

func TestLinkDelayKeepsRequestOrder(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, Config{Size: 3})
		ctx := testutil.Context(t)
		var mu sync.Mutex
		var got []int
		all := make(chan struct{})
		const n = 100
		_, err := b.Owner(2).Register("log.add", 0, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
			var in struct{ I int }
			_ = fluxkit.DecodePayload(req, &in)
			mu.Lock()
			defer mu.Unlock()
			got = append(got, in.I)
			if len(got) == n {
				close(all)
			}
		})
		require.NoError(t, err)
		c := b.Owner(0)
		for i := 0; i < n; i++ {
			// Lowering the delay midway must not let later messages overtake
			// those already on the wire.
			switch i {
			case 0:
				b.SetLink(2, Link{Delay: 20 * time.Millisecond})
			case n / 2:
				b.SetLink(2, Link{})
			}
			require.NoError(t, fluxkit.Notify(ctx, c, "log.add", 2, map[string]int{"I": i}))
		}
		select {
		case <-all:
		case <-ctx.Done():
			require.FailNow(t, "notifications lost")
		}
		mu.Lock()
		defer mu.Unlock()
		want := make([]int, n)
		for i := range want {
			want[i] = i
		}
		assert.Equal(t, want, got, "arrival order")
	})
}

func TestLinkDelayDisconnectFollowsRequests(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, Config{Size: 2})
		ctx := testutil.Context(t)
		events := make(chan string, 4)
		srv := b.Owner(1)
		_, err := srv.Register("svc.hold", 0, func(_ context.Context, _ fluxkit.Responder, _ *fluxkit.Message) { events <- "request" })
		require.NoError(t, err)
		_, err = srv.Register("svc.disconnect", 0, func(_ context.Context, _ fluxkit.Responder, _ *fluxkit.Message) { events <- "disconnect" })
		require.NoError(t, err)
		b.SetLink(1, Link{Delay: 20 * time.Millisecond})
		c, err := b.Connect(0, fluxkit.Cred{Userid: b.OwnerID(), Roles: fluxkit.RoleOwner})
		require.NoError(t, err)
		_, err = fluxkit.Stream(ctx, c, "svc.hold", 1, nil)
		require.NoError(t, err)
		require.NoError(t, c.Close())
		var order []string
		for len(order) < 2 {
			select {
			case e := <-events:
				order = append(order, e)
			case <-ctx.Done():
				require.FailNow(t, "a message was lost", "got only %v", order)
			}
		}
		assert.Equal(t, []string{"request", "disconnect"}, order, "a client's disconnect travels behind its requests")
	})
}

// A link that drops messages still delivers the survivors in order.
func TestLinkDropKeepsOrderOfSurvivors(t *testing.T) {
	leakcheck.Check(t)
	synctest.Test(t, func(t *testing.T) {
		b := newBroker(t, Config{Size: 2, Seed: 3})
		ctx := testutil.Context(t)
		var mu sync.Mutex
		var got []int
		srv := b.Owner(1)
		_, err := srv.Register("log.add", 0, func(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
			var in struct{ I int }
			_ = fluxkit.DecodePayload(req, &in)
			mu.Lock()
			got = append(got, in.I)
			mu.Unlock()
		})
		require.NoError(t, err)
		_, err = srv.Register("log.sync", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
			_ = w.Respond(nil)
		})
		require.NoError(t, err)
		b.SetLink(1, Link{Delay: time.Millisecond, DropRate: 0.3})
		for i := 0; i < 200; i++ {
			require.NoError(t, fluxkit.Notify(ctx, b.Owner(0), "log.add", 1, map[string]int{"I": i}))
		}
		// A final request, served by the same handle, whose answer proves that
		// everything sent before it was handled.
		b.SetLink(1, Link{})
		require.NoError(t, fluxkit.RPC(ctx, b.Owner(0), "log.sync", 1, nil, nil))
		mu.Lock()
		defer mu.Unlock()
		assert.Greater(t, len(got), 100)
		assert.Less(t, len(got), 200)
		for i := 1; i < len(got); i++ {
			require.Greater(t, got[i], got[i-1], "out of order: %v", got)
		}
	})
}
