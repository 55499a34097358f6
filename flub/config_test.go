package flub

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Validate refuses a field out of range with an EINVAL naming the field,
// and leaves the config as it found it.
func TestValidateNamesTheFieldAtFault(t *testing.T) {
	owner := mustKeyPair(t)
	boot := FormatBootURI("127.0.0.1:1", owner.Public)
	checkValidate(t, (*Config).Validate, []validateCase[Config]{
		{Config{Owner: owner.Public}, ""},
		{Config{Owner: owner.Public, Size: MaxSize + 1}, "Config.Size: 2147483649 exceeds the maximum instance size 2147483648"},
		{Config{Owner: owner.Public, Topo: "ring"}, "Config.Topo: unknown topology scheme 'ring'"},
		{Config{}, "Config.Owner: the owner's public key is required"},
		{Config{Owner: owner.Public, InstanceConfig: []byte("[1]")}, "Config.InstanceConfig: not a JSON object"},
		{Config{Owner: owner.Public, Lease: -time.Second}, "Config.Lease: negative duration -1s"},
		{Config{Owner: owner.Public, TorpidMax: -time.Second}, "Config.TorpidMax: negative duration -1s"},
		{Config{Owner: owner.Public, HandshakeTimeout: -time.Second}, "Config.HandshakeTimeout: negative duration -1s"},
		{Config{Owner: owner.Public, TCPUserTimeout: -time.Second}, "Config.TCPUserTimeout: negative duration -1s"},
		{Config{Owner: owner.Public, ModuleTimeout: -time.Second}, "Config.ModuleTimeout: negative duration -1s"},
		{Config{Owner: owner.Public, Heartbeat: 2 * time.Second, TorpidMax: time.Second}, "Config.Heartbeat (2s) must be less than TorpidMax (1s)"},
		{Config{Owner: owner.Public, Heartbeat: time.Minute}, "Config.Heartbeat (1m0s) must be less than TorpidMax (30s)"},
		{Config{Owner: owner.Public, Modules: map[string]ModuleFunc{"x": nil}}, `Config.Modules: module "x" needs a name and a function`},
	})
	checkValidate(t, (*JoinConfig).Validate, []validateCase[JoinConfig]{
		{JoinConfig{BootURI: boot, Owner: owner}, ""},
		{JoinConfig{BootURI: boot, Owner: owner, ReconnectTimeout: new(time.Duration(0))}, ""},
		{JoinConfig{BootURI: "tcp://127.0.0.1:1", Owner: owner}, "JoinConfig.BootURI: boot uri"},
		{JoinConfig{BootURI: boot}, "JoinConfig.Owner: the owner key pair is required"},
		{JoinConfig{BootURI: boot, Owner: owner, Topo: "kary:x"}, "JoinConfig.Topo: kary k value must be an integer >= 0"},
		{JoinConfig{BootURI: boot, Owner: owner, ParentTimeout: -1}, "JoinConfig.ParentTimeout: negative duration"},
		{JoinConfig{BootURI: boot, Owner: owner, ReconnectTimeout: new(-time.Second)}, "JoinConfig.ReconnectTimeout: negative duration -1s"},
		{JoinConfig{BootURI: boot, Owner: owner, HandshakeTimeout: -time.Second}, "JoinConfig.HandshakeTimeout: negative duration -1s"},
		{JoinConfig{BootURI: boot, Owner: owner, TCPUserTimeout: -1}, "JoinConfig.TCPUserTimeout: negative duration"},
		{JoinConfig{BootURI: boot, Owner: owner, ModuleTimeout: -1}, "JoinConfig.ModuleTimeout: negative duration"},
		{JoinConfig{BootURI: boot, Owner: owner, Heartbeat: time.Minute}, "JoinConfig.Heartbeat (1m0s) must be less than TorpidMax (30s)"},
	})
	checkValidate(t, (*ClientConfig).Validate, []validateCase[ClientConfig]{
		{ClientConfig{BootURI: boot, Keys: owner}, ""},
		{ClientConfig{BootURI: "flub://127.0.0.1/x", Keys: owner}, "ClientConfig.BootURI: boot uri"},
		{ClientConfig{BootURI: boot}, "ClientConfig.Keys: a key pair is required"},
		{ClientConfig{BootURI: boot, Keys: owner, HandshakeTimeout: -time.Second}, "ClientConfig.HandshakeTimeout: negative duration -1s"},
	})
}

// validateCase is a config and what Validate says of it: "" for nothing.
type validateCase[C any] struct {
	cfg  C
	want string
}

// checkValidate runs validate on each case: EINVAL with the text wanted,
// and the config as it was.
func checkValidate[C any](t *testing.T, validate func(*C) error, cases []validateCase[C]) {
	t.Helper()
	for _, tc := range cases {
		before := tc.cfg
		err := validate(&tc.cfg)
		if tc.want == "" {
			assert.NoError(t, err)
		} else {
			requireError(t, err, fluxkit.EINVAL, tc.want)
		}
		assert.Equal(t, before, tc.cfg, "Validate changed the config")
	}
}

// Every constructor refuses what Validate refuses, before any I/O.
func TestConstructorsValidate(t *testing.T) {
	ctx := context.Background()
	_, err := Start(ctx, Config{})
	requireError(t, err, fluxkit.EINVAL, "Config.Owner")
	_, err = Join(ctx, JoinConfig{BootURI: "nowhere"})
	requireError(t, err, fluxkit.EINVAL, "boot-flub: JoinConfig.BootURI")
	_, err = DialBoot(ctx, ClientConfig{BootURI: FormatBootURI("127.0.0.1:1", mustKey(t))})
	requireError(t, err, fluxkit.EINVAL, "ClientConfig.Keys")
}

// OwnerUserid distinguishes "the default" (nil: this process's userid)
// from userid 0, root, which owns a system instance.
func TestOwnerUseridZeroIsRoot(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{OwnerUserid: new(uint32(0))})
	v, _ := in.root.Attr("security.owner")
	assert.Equal(t, "0", v)
	assert.Equal(t, uint32(0), in.root.Cred().Userid)
	require.True(t, in.root.Cred().IsOwner())
}

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
