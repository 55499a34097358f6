package testbroker

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allocated returns the bytes fn allocates and the goroutines it leaves
// running.
func allocated(fn func()) (bytes uint64, goroutines int) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g := runtime.NumGoroutine()
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, runtime.NumGoroutine() - g
}

// An instance costs what its used ranks cost, not what its size announces.
func TestRanksAreCreatedWhenUsed(t *testing.T) {
	leakcheck.Check(t)
	const size = 1 << 14
	var b *Broker
	bytes, goroutines := allocated(func() { b = newBroker(t, Config{Size: size, Fanout: 2}) })
	assert.Less(t, bytes, uint64(256<<10), "bytes allocated by Start of %d ranks", size)
	assert.LessOrEqual(t, goroutines, 0, "goroutines started by Start of %d ranks", size)

	// Using a rank far down the tree creates it and nothing else.
	ctx := testutil.Context(t)
	h := b.Owner(size - 1)
	var attr struct{ Value string }
	require.NoError(t, fluxkit.RPC(ctx, h, "attr.get", fluxkit.NodeidAny, map[string]string{"name": "rank"}, &attr))
	assert.Equal(t, fmt.Sprint(size-1), attr.Value)
	require.NoError(t, fluxkit.RPC(ctx, h, "attr.get", 0, map[string]string{"name": "size"}, &attr))
	assert.Equal(t, fmt.Sprint(size), attr.Value)
	created := 0
	for r := uint32(0); r < size; r++ {
		if b.peek(r) != nil {
			created++
		}
	}
	assert.Equal(t, 2, created, "ranks created")

	// The path between them is still real: a stopped ancestor cuts it.
	p, _ := b.Parent(size - 1)
	b.StopRank(p)
	err := fluxkit.RPC(ctx, h, "attr.get", 0, map[string]string{"name": "size"}, nil)
	assert.ErrorIs(t, err, fluxkit.EHOSTUNREACH)
	assert.Equal(t, fmt.Sprintf("0-%d,%d-%d", p-1, p+1, size-1), b.Online().String())
	b.StartRank(p)
	require.NoError(t, fluxkit.RPC(ctx, h, "attr.get", 0, map[string]string{"name": "size"}, nil))

	// A service registered on an untouched rank's ancestor is found by
	// NodeidAny routing from below.
	mid := uint32(size / 2)
	serveEcho(t, b.Owner(0), "far", 0)
	var out echoOut
	require.NoError(t, fluxkit.RPC(ctx, b.Owner(mid), "far.echo", fluxkit.NodeidAny, nil, &out))
	assert.Equal(t, uint32(0), out.Rank)
}

func TestMaxSize(t *testing.T) {
	leakcheck.Check(t)
	var b *Broker
	bytes, _ := allocated(func() { b = newBroker(t, Config{Size: MaxSize}) })
	assert.Less(t, bytes, uint64(1<<20), "bytes allocated by Start of MaxSize ranks")
	ctx := testutil.Context(t)
	var attr struct{ Value string }
	require.NoError(t, fluxkit.RPC(ctx, b.Owner(MaxSize-1), "attr.get", 0, map[string]string{"name": "size"}, &attr))
	assert.Equal(t, fmt.Sprint(MaxSize), attr.Value)
	assert.Equal(t, fmt.Sprintf("0-%d", MaxSize-1), b.Online().String())
	b.StopRank(MaxSize - 1)
	assert.Equal(t, fmt.Sprintf("0-%d", MaxSize-2), b.Online().String())

	_, err := Start(Config{Size: MaxSize + 1})
	assert.ErrorContains(t, err, fmt.Sprintf("size %d out of range 1..%d", MaxSize+1, MaxSize))
}
