package flub

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

// Memory follows the brokers that exist, not the size announced: rank 0
// and its joiners cost about the same at 2^24 ranks and at MaxSize as at
// seven (a size used to cost 64 bytes a rank on rank 0, a gigabyte at
// 2^24), in every topology, flat included (rank 0 with 2^31-1 children).
func TestLargeSizeCostsWhatIsUsed(t *testing.T) {
	for _, tc := range []struct {
		name string
		size uint32
		topo string
	}{
		{"2^24 kary:2", 1 << 24, "kary:2"},
		{"max kary:0", MaxSize, "kary:0"},
		{"max binomial", MaxSize, "binomial"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			in := startInstance(t, Config{Size: tc.size, Topo: tc.topo})
			ctx := testutil.Context(t)
			for i := 1; i <= 2; i++ {
				in.mustJoin(ctx, fmt.Sprintf("n%d", i))
			}
			testutil.WaitFor(t, "two joiners online", func() bool { return in.root.Online().String() == "0-2" })
			want := fmt.Sprintf("host0,n[1-2],extra[3-%d]", tc.size-1)
			assert.Equal(t, want, in.root.Hostlist())
			r := requireRank(t, in.ownerClient(t), 3)
			assert.Equal(t, int(tc.size), r.Size)
			assert.Equal(t, want, r.Attrs["hostlist"])
			assert.Equal(t, StatusPartial, in.root.Status())
			runtime.ReadMemStats(&m1)
			// Sockets, CURVE and goroutines for three brokers and the
			// clients take a few MiB whatever the size.
			alloc := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("allocated %.1f MiB", float64(alloc)/(1<<20))
			assert.LessOrEqual(t, alloc, uint64(48<<20), "bytes allocated by an instance of %d ranks with 3 in use", tc.size)
			rs := in.root.Ranks()
			require.Len(t, rs, 4, "ranks in use")
			assert.Equal(t, uint32(3), rs[3].Rank)
			assert.Equal(t, Leased, rs[3].State)
		})
	}
}

// Sizes beyond MaxSize are refused with an error that names the limit, on
// rank 0 (Config.Validate), in the joiner's check of getinfo and by the
// pool.
func TestSizeAboveMaximumRefused(t *testing.T) {
	_, err := parseGetinfoResponse([]byte(`{"rank":1,"size":2147483649,"attrs":{}}`))
	requireError(t, err, fluxkit.EPROTO, "invalid size 2147483649: the maximum instance size is 2147483648", "getinfo")
	_, err = NewPool(MaxSize+1, 1)
	require.ErrorContains(t, err, "at most 2147483648")
}
