package callq

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func response(tag uint32, payload string, errnum uint32) *fluxkit.Message {
	return &fluxkit.Message{Type: fluxkit.TypeResponse, Matchtag: tag, Payload: []byte(payload), Errnum: errnum}
}

func TestMatchtagsAreUniqueAndNeverNone(t *testing.T) {
	var tb Table
	seen := map[uint32]bool{}
	for range 100 {
		c, err := tb.Add(false)
		require.NoError(t, err)
		assert.NotEqual(t, fluxkit.MatchtagNone, c.Matchtag())
		assert.False(t, seen[c.Matchtag()], "matchtag %d handed out twice", c.Matchtag())
		seen[c.Matchtag()] = true
	}
	assert.Equal(t, 100, tb.Len())
}

func TestMatchtagsSkipNoneAndBusyTagsOnWrap(t *testing.T) {
	var tb Table
	busy, err := tb.Add(false) // matchtag 1, still pending
	require.NoError(t, err)
	tb.next = ^uint32(0) - 1
	c1, _ := tb.Add(false)
	c2, _ := tb.Add(false)
	assert.Equal(t, ^uint32(0), c1.Matchtag())
	assert.Equal(t, uint32(2), c2.Matchtag(), "wrapping skips 0 and the pending 1")
	assert.Equal(t, uint32(1), busy.Matchtag())
}

func TestResponsesReachTheirCallInOrder(t *testing.T) {
	ctx := testutil.Context(t)
	var tb Table
	a, _ := tb.Add(true)
	b, _ := tb.Add(false)
	tb.Deliver(response(b.Matchtag(), "b", 0))
	tb.Deliver(response(a.Matchtag(), "a1", 0))
	tb.Deliver(response(a.Matchtag(), "a2", 0))
	tb.Deliver(response(a.Matchtag(), "", uint32(fluxkit.ENODATA)))
	tb.Deliver(response(a.Matchtag(), "after the end", 0))

	m, err := b.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "b", string(m.Payload))
	_, err = b.Recv(ctx)
	require.ErrorIs(t, err, fluxkit.ENODATA, "a plain RPC has one response")

	for _, want := range []string{"a1", "a2"} {
		m, err := a.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, string(m.Payload))
	}
	m, err = a.Recv(ctx)
	require.ErrorIs(t, err, fluxkit.ENODATA, "the stream's end is an error response")
	require.NotNil(t, m)
	_, err = a.Recv(ctx)
	require.ErrorIs(t, err, fluxkit.ENODATA)
	assert.Equal(t, 0, tb.Len(), "finished calls are forgotten")
}

func TestErrorResponseCarriesItsErrnoAndText(t *testing.T) {
	var tb Table
	c, _ := tb.Add(false)
	tb.Deliver(response(c.Matchtag(), "no such thing", uint32(fluxkit.ENOENT)))
	m, err := c.Recv(testutil.Context(t))
	require.NotNil(t, m)
	var fe *fluxkit.Error
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, fluxkit.ENOENT, fe.Errnum)
	assert.Equal(t, "no such thing", fe.Text)
}

func TestResponseToUnknownOrClosedCallIsDropped(t *testing.T) {
	var tb Table
	tb.Deliver(response(42, "stray", 0))
	c, _ := tb.Add(true)
	c.Close()
	c.Close()
	assert.Equal(t, 0, tb.Len())
	tb.Deliver(response(c.Matchtag(), "late", 0))
	_, err := c.Recv(testutil.Context(t))
	require.ErrorIs(t, err, fluxkit.ENODATA, "a closed call returns nothing more")
}

func TestCloseEndsPendingCallsAfterTheirResponsesAndRefusesNewOnes(t *testing.T) {
	ctx := testutil.Context(t)
	var tb Table
	c, _ := tb.Add(true)
	tb.Deliver(response(c.Matchtag(), "kept", 0))
	gone := fluxkit.Errorf(fluxkit.ECONNRESET, "gone")
	tb.Close(gone)
	tb.Close(fluxkit.Errorf(fluxkit.EPERM, "second"))

	m, err := c.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "kept", string(m.Payload))
	_, err = c.Recv(ctx)
	assert.Same(t, gone, err)

	_, err = tb.Add(false)
	assert.Same(t, gone, err, "the first Close's error refuses new calls")
}

func TestFailEndsPendingCallsButNotLaterOnes(t *testing.T) {
	ctx := testutil.Context(t)
	var tb Table
	c, _ := tb.Add(false)
	down := fluxkit.Errorf(fluxkit.EHOSTUNREACH, "down")
	tb.Fail(down)
	_, err := c.Recv(ctx)
	assert.Same(t, down, err)

	d, err := tb.Add(false)
	require.NoError(t, err)
	tb.Deliver(response(d.Matchtag(), "ok", 0))
	m, err := d.Recv(ctx)
	require.NoError(t, err)
	assert.Equal(t, "ok", string(m.Payload))
}

// Recv blocks until a response or its context's end. The test runs in a
// synctest bubble: the deadline is virtual time, and synctest.Wait proves
// Recv is blocked before the response is delivered.
func TestRecvWaitsForAResponseOrItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var tb Table
		c, _ := tb.Add(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, err := c.Recv(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)

		got := make(chan string, 1)
		go func() {
			m, err := c.Recv(context.Background())
			if err != nil {
				got <- err.Error()
				return
			}
			got <- string(m.Payload)
		}()
		synctest.Wait()
		assert.Empty(t, got, "Recv returned before any response")
		tb.Deliver(response(c.Matchtag(), "late", 0))
		assert.Equal(t, "late", <-got)
	})
}

func TestConcurrentCallsEachGetTheirOwnResponses(t *testing.T) {
	ctx := testutil.Context(t)
	var tb Table
	const n, each = 8, 50
	var wg sync.WaitGroup
	for range n {
		c, err := tb.Add(true)
		require.NoError(t, err)
		wg.Go(func() {
			for i := range each {
				m, err := c.Recv(ctx)
				if !assert.NoError(t, err) || !assert.Equal(t, c.Matchtag(), m.Matchtag) {
					return
				}
				assert.Equal(t, byte(i), m.Payload[0])
			}
			_, err := c.Recv(ctx)
			assert.ErrorIs(t, err, fluxkit.ENODATA)
		})
		go func() {
			for i := range each {
				tb.Deliver(response(c.Matchtag(), string([]byte{byte(i)}), 0))
			}
			tb.Deliver(response(c.Matchtag(), "", uint32(fluxkit.ENODATA)))
		}()
	}
	wg.Wait()
	assert.Equal(t, 0, tb.Len())
}

func TestEventsInOrderThenTheFailure(t *testing.T) {
	ctx := testutil.Context(t)
	var e Events
	for _, topic := range []string{"a", "b"} {
		assert.True(t, e.Push(&fluxkit.Message{Type: fluxkit.TypeEvent, Topic: topic}))
	}
	lost := fluxkit.Errorf(fluxkit.ECONNRESET, "lost")
	e.Fail(lost)
	assert.False(t, e.Push(&fluxkit.Message{Topic: "c"}), "a failed queue takes nothing more")
	for _, want := range []string{"a", "b"} {
		m, err := e.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, m.Topic)
	}
	_, err := e.Recv(ctx)
	assert.Same(t, lost, err)
}

func TestClosedEventsDropWhatTheyHeld(t *testing.T) {
	var e Events
	e.Push(&fluxkit.Message{Topic: "a"})
	assert.True(t, e.Close())
	assert.False(t, e.Close(), "only the first Close reports true")
	assert.False(t, e.Push(&fluxkit.Message{Topic: "b"}))
	_, err := e.Recv(testutil.Context(t))
	require.ErrorIs(t, err, fluxkit.ENODATA)
}

func TestCloseWakesAWaitingRecv(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var e Events
		errc := make(chan error, 1)
		go func() {
			_, err := e.Recv(context.Background())
			errc <- err
		}()
		synctest.Wait()
		e.Close()
		assert.ErrorIs(t, <-errc, fluxkit.ENODATA)
	})
}
