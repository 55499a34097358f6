package testutil_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestContextEndsWithTheTest(t *testing.T) {
	var ctx context.Context
	t.Run("inner", func(t *testing.T) { ctx = testutil.ContextTimeout(t, time.Hour) })
	assert.Error(t, ctx.Err(), "context outlived its test")
}

func TestWaitForPolls(t *testing.T) {
	n := 0
	testutil.WaitFor(t, "three polls", func() bool { n++; return n == 3 })
	assert.Equal(t, 3, n)
}

func TestBufferIsSafeForConcurrentWriters(t *testing.T) {
	var b testutil.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	assert.Len(t, testutil.Lines(b.String()), 8)
	b.Reset()
	assert.Empty(t, b.String(), "Reset keeps nothing")
}

func TestLoggerRecords(t *testing.T) {
	log, b := testutil.Logger()
	log.Debug("hello", "k", 1)
	assert.Contains(t, b.String(), "msg=hello k=1")
}

func TestRawRPCAndRPCMap(t *testing.T) {
	b := brokertest.New(t, testbroker.Config{Attrs: map[string]string{"x": "1"}})
	ctx := testutil.Context(t)
	raw, err := testutil.RawRPC(ctx, b.Owner(0), "attr.get", 0, `{"name":"x"}`)
	require.NoError(t, err)
	assert.JSONEq(t, `{"value":"1","flags":0}`, string(raw))
	m, err := testutil.RPCMap(ctx, b.Owner(0), "attr.get", 0, map[string]string{"name": "x"})
	require.NoError(t, err)
	assert.Equal(t, "1", m["value"])
}

func TestUnhexTakesSpaces(t *testing.T) {
	assert.Equal(t, []byte{0x8e, 0x01, 0xff}, testutil.Unhex(t, "8e 01ff"))
}

func TestWireEqualIgnoresWhatTheWireCannotKeep(t *testing.T) {
	a := fluxkit.NewRequest("a.b", 1, nil)
	b := a.Clone()
	b.Payload = []byte{}
	assert.True(t, testutil.WireEqual(a, b), "no payload and an empty one")
	a.Payload, b.Payload = []byte("{}"), []byte("{}\x00")
	assert.True(t, testutil.WireEqual(a, b), "a trailing NUL")
	b.Matchtag++
	assert.False(t, testutil.WireEqual(a, b))
	b = a.Clone()
	b.PushRoute("x")
	assert.False(t, testutil.WireEqual(a, b))
}
