package flub

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestPoolAllocationOrderAndExhaustion(t *testing.T) {
	p, err := NewPool(7, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Available().String(); got != "1-6" {
		t.Fatalf("available %s, want 1-6", got)
	}
	for want := uint32(1); want <= 6; want++ {
		r, err := p.Allocate(t0.Add(time.Minute))
		if err != nil || r != want {
			t.Fatalf("allocate = %d, %v; want %d", r, err, want)
		}
		if p.State(r) != Leased {
			t.Fatalf("rank %d is %v, want leased", r, p.State(r))
		}
	}
	_, err = p.Allocate(t0)
	if fluxkit.Errno(err) != fluxkit.ENOENT || !strings.Contains(err.Error(), "there are no available ranks") {
		t.Fatalf("7th allocate: %v", err)
	}
}

func TestPoolErrors(t *testing.T) {
	for _, tc := range []struct{ size, initial uint32 }{{0, 1}, {3, 0}, {3, 4}} {
		if _, err := NewPool(tc.size, tc.initial); err == nil || !strings.Contains(err.Error(), "error provisioning flub allocator") {
			t.Errorf("NewPool(%d,%d) = %v", tc.size, tc.initial, err)
		}
	}
	p, _ := NewPool(1, 1)
	if _, err := p.Allocate(t0); fluxkit.Errno(err) != fluxkit.ENOENT {
		t.Errorf("size 1 allocate: %v", err)
	}
}

func TestPoolTransitions(t *testing.T) {
	p, _ := NewPool(8, 2) // ranks 0 and 1 booted with the instance
	steps := []struct {
		name  string
		do    func()
		avail string
	}{
		{"initial", func() {}, "2-7"},
		{"initial rank 1 online", func() { p.SetOnline(1) }, "2-7"},
		{"rank 1 goes offline and is re-provisioned", func() { p.SetOffline(1) }, "1-7"},
		{"rank 1 comes back before a replacement", func() { p.SetOnline(1) }, "2-7"},
		{"allocate 2", func() { mustAlloc(t, p, 2, t0.Add(time.Second)) }, "3-7"},
		{"stray offline of a leased rank is ignored", func() { p.SetOffline(2) }, "3-7"},
		{"2 comes online", func() { p.SetOnline(2) }, "3-7"},
		{"lease expiry leaves online ranks alone", func() { p.Expire(t0.Add(time.Hour)) }, "3-7"},
		{"allocate 3", func() { mustAlloc(t, p, 3, t0.Add(2*time.Second)) }, "4-7"},
		{"not yet expired", func() {
			if got := p.Expire(t0.Add(time.Second)); len(got) != 0 {
				t.Fatalf("expired %v early", got)
			}
		}, "4-7"},
		{"expired at the deadline", func() {
			if got := p.Expire(t0.Add(2 * time.Second)); len(got) != 1 || got[0] != 3 {
				t.Fatalf("expired %v, want [3]", got)
			}
		}, "3-7"},
		{"2 offline", func() { p.SetOffline(2) }, "2-7"},
		{"out of range is ignored", func() { p.SetOnline(99); p.SetOffline(99) }, "2-7"},
		{"rank 0 never enters the pool", func() { p.SetOnline(0); p.SetOffline(0) }, "2-7"},
	}
	for _, s := range steps {
		s.do()
		if got := p.Available().String(); got != s.avail {
			t.Fatalf("%s: available %s, want %s", s.name, got, s.avail)
		}
	}
}

func mustAlloc(t *testing.T, p *Pool, want uint32, deadline time.Time) {
	t.Helper()
	r, err := p.Allocate(deadline)
	if err != nil || r != want {
		t.Fatalf("allocate = %d, %v; want %d", r, err, want)
	}
}

func TestPoolNextExpiry(t *testing.T) {
	p, _ := NewPool(4, 1)
	if _, ok := p.NextExpiry(); ok {
		t.Fatal("expiry with no lease")
	}
	mustAlloc(t, p, 1, t0.Add(3*time.Second))
	mustAlloc(t, p, 2, t0.Add(time.Second))
	if d, ok := p.NextExpiry(); !ok || !d.Equal(t0.Add(time.Second)) {
		t.Fatalf("next expiry %v %v", d, ok)
	}
	p.SetOnline(2)
	if d, _ := p.NextExpiry(); !d.Equal(t0.Add(3 * time.Second)) {
		t.Fatalf("next expiry after online %v", d)
	}
}

// TestPoolProperty drives the pool with random operations against a model
// of live brokers: no rank is ever handed to two live brokers, allocation
// is always the lowest available rank, and after every lease every rank
// handed out is online or available again.
func TestPoolProperty(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		size := uint32(2 + rng.IntN(70))
		p, _ := NewPool(size, 1)
		now := t0
		lease := 10 * time.Second
		// live: ranks a broker holds (leased, not expired, or online)
		holder := map[uint32]string{} // rank → "leased"|"online"
		handed := map[uint32]bool{}
		for step := 0; step < 400; step++ {
			switch op := rng.IntN(10); {
			case op < 4:
				avail := p.Available()
				r, err := p.Allocate(now.Add(lease))
				if err != nil {
					if avail.Len() != 0 {
						t.Fatalf("seed %d: allocate failed with %s available", seed, avail)
					}
					continue
				}
				if first, _ := avail.First(); first != r {
					t.Fatalf("seed %d: allocated %d, lowest available was %d", seed, r, first)
				}
				if h, ok := holder[r]; ok {
					t.Fatalf("seed %d: rank %d handed out while %s", seed, r, h)
				}
				holder[r] = "leased"
				handed[r] = true
			case op < 6: // a leased rank's broker comes online
				for r, h := range holder {
					if h == "leased" {
						p.SetOnline(r)
						holder[r] = "online"
						break
					}
				}
			case op < 8: // an online broker is lost
				for r, h := range holder {
					if h == "online" {
						p.SetOffline(r)
						delete(holder, r)
						break
					}
				}
			default:
				now = now.Add(time.Duration(rng.IntN(6)) * time.Second)
				for _, r := range p.Expire(now) {
					if holder[r] != "leased" {
						t.Fatalf("seed %d: expired rank %d that was %q", seed, r, holder[r])
					}
					delete(holder, r)
				}
			}
		}
		// After every lease has run out: every rank handed out is online
		// or back in the pool.
		p.Expire(now.Add(lease))
		for r := range handed {
			if st := p.State(r); st != Online && st != Available {
				t.Fatalf("seed %d: rank %d is %v after its lease", seed, r, st)
			}
		}
	}
}
