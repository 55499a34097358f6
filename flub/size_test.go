package flub

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
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
			ctx := ctxT(t, 30*time.Second)
			for i := 1; i <= 2; i++ {
				if _, err := in.join(ctx, fmt.Sprintf("n%d", i)); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "two joiners online", 5*time.Second, func() bool { return in.root.Online().String() == "0-2" })
			want := fmt.Sprintf("host0,n[1-2],extra[3-%d]", tc.size-1)
			if got := in.root.Hostlist(); got != want {
				t.Fatalf("hostlist %q, want %q", got, want)
			}
			if r, err := getinfo(t, in.ownerClient(t), 0); err != nil || r.Rank != 3 || r.Size != int(tc.size) || r.Attrs["hostlist"] != want {
				t.Fatalf("getinfo %+v %v", r, err)
			}
			if st := in.root.Status(); st != StatusPartial {
				t.Fatalf("status %v", st)
			}
			runtime.ReadMemStats(&m1)
			// Sockets, CURVE and goroutines for three brokers and the
			// clients take a few MiB whatever the size.
			alloc := m1.TotalAlloc - m0.TotalAlloc
			t.Logf("allocated %.1f MiB", float64(alloc)/(1<<20))
			if alloc > 48<<20 {
				t.Fatalf("an instance of %d ranks with 3 in use allocated %d MiB", tc.size, alloc>>20)
			}
			if rs := in.root.Ranks(); len(rs) != 4 || rs[3].Rank != 3 || rs[3].State != Leased {
				t.Fatalf("%d ranks in use, want 0-3", len(rs))
			}
		})
	}
}

// Sizes beyond MaxSize are refused with an error that names the limit, on
// rank 0 and in the joiner's check of getinfo.
func TestSizeAboveMaximumRefused(t *testing.T) {
	owner := mustKeyPair(t)
	_, err := Start(ctxT(t, 10*time.Second), Config{Size: MaxSize + 1, Owner: owner.Public})
	wantErr(t, "Start", err, fluxkit.EINVAL, "Config.Size: 2147483649 exceeds the maximum instance size 2147483648")
	_, err = parseGetinfoResponse([]byte(`{"rank":1,"size":2147483649,"attrs":{}}`))
	wantErr(t, "getinfo", err, fluxkit.EPROTO, "invalid size 2147483649: the maximum instance size is 2147483648")
	if _, err := NewPool(MaxSize+1, 1); err == nil || !strings.Contains(err.Error(), "at most 2147483648") {
		t.Fatalf("NewPool above the maximum: %v", err)
	}
}

// Start and Join validate their timing, naming the field at fault.
func TestTimingValidated(t *testing.T) {
	owner := mustKeyPair(t)
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Heartbeat: 2 * time.Second, TorpidMax: time.Second}, "Config.Heartbeat (2s) must be less than TorpidMax (1s)"},
		{Config{TorpidMax: -time.Second}, "Config.TorpidMax: negative duration -1s"},
		{Config{HandshakeTimeout: -time.Second}, "Config.HandshakeTimeout: negative duration -1s"},
		{Config{TCPUserTimeout: -time.Second}, "Config.TCPUserTimeout: negative duration -1s"},
		{Config{Lease: -time.Second}, "Config.Lease: negative duration -1s"},
	} {
		tc.cfg.Owner = owner.Public
		_, err := Start(ctxT(t, 10*time.Second), tc.cfg)
		wantErr(t, tc.want, err, fluxkit.EINVAL, tc.want)
	}
	for _, tc := range []struct {
		cfg  JoinConfig
		want string
	}{
		{JoinConfig{Heartbeat: time.Minute}, "JoinConfig.Heartbeat (1m0s) must be less than TorpidMax (30s)"},
		{JoinConfig{ReconnectTimeout: new(-time.Second)}, "JoinConfig.ReconnectTimeout: negative duration -1s"},
		{JoinConfig{ParentTimeout: -time.Second}, "JoinConfig.ParentTimeout: negative duration -1s"},
		{JoinConfig{HandshakeTimeout: -time.Second}, "JoinConfig.HandshakeTimeout: negative duration -1s"},
	} {
		tc.cfg.BootURI, tc.cfg.Owner = "flub://127.0.0.1:1/"+owner.Public.String(), owner
		_, err := Join(ctxT(t, 10*time.Second), tc.cfg)
		wantErr(t, tc.want, err, fluxkit.EINVAL, tc.want)
	}
}
