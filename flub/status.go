package flub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
)

// Subtree status values carried by hello and STATUS control messages.
type Status uint32

// Status values (flux-core's subtree status).
const (
	StatusUnknown Status = iota
	StatusFull
	StatusPartial
	StatusDegraded
	StatusLost
	StatusOffline
)

func (s Status) String() string {
	switch s {
	case StatusFull:
		return "full"
	case StatusPartial:
		return "partial"
	case StatusDegraded:
		return "degraded"
	case StatusLost:
		return "lost"
	case StatusOffline:
		return "offline"
	}
	return "unknown"
}

// Status is the broker's subtree status; on rank 0 the overlay status.
func (b *Broker) Status() Status { return Status(b.statusVal.Load()) }

// UUID is the broker's identity on the overlay: the routing id of its
// current connection to its parent (a new one after each reconnection).
func (b *Broker) UUID() string { return *b.uuid.Load() }

// Endpoint is the concrete URI the broker is bound to for its children
// (tbon.endpoint), or "" for a leaf.
func (b *Broker) Endpoint() string { return b.endpoint }

// PublicKey is the broker's CURVE public key.
func (b *Broker) PublicKey() curve.Key { return b.p.keys.Public }

// Parent is the parent rank, or -1 for rank 0.
func (b *Broker) Parent() int64 { return b.p.topo.Parent(b.rank) }

// Topology is the broker's topology.
func (b *Broker) Topology() Topology { return b.p.topo }

// BootURI is the boot server's URI (rank 0 only, "" elsewhere).
func (b *Broker) BootURI() string { return b.bootURI }

// Attr returns a broker attribute: rank, size, tbon.endpoint, tbon.topo,
// hostlist (rank 0: the live instance hostlist), instance-level and
// whatever the broker was configured or joined with.
func (b *Broker) Attr(name string) (string, bool) {
	switch name {
	case "rank":
		return strconv.FormatUint(uint64(b.rank), 10), true
	case "size":
		return strconv.FormatUint(uint64(b.size), 10), true
	case "tbon.endpoint":
		return b.endpoint, true
	case "tbon.topo":
		return b.p.topo.String(), true
	case "hostlist":
		if b.rank == 0 {
			return b.Hostlist(), true
		}
	}
	b.attrMu.RLock()
	defer b.attrMu.RUnlock()
	v, ok := b.p.attrs[name]
	return v, ok
}

// InstanceConfig is the instance configuration: rank 0's Config.
// InstanceConfig, or what getinfo delivered to a joiner (nil when the boot
// server sent none, as a flux-core server does).
func (b *Broker) InstanceConfig() json.RawMessage { return b.p.config }

// Hostlist is rank 0's instance hostlist, placeholders replaced by the
// hostnames of joined brokers.
func (b *Broker) Hostlist() string {
	if b.rank != 0 {
		v, _ := b.Attr("hostlist")
		return v
	}
	s, _ := ask(b, b.currentHostlist)
	return s
}

// hostOf is rank r's hostlist entry on rank 0.
func (b *Broker) hostOf(r uint32) string {
	if h, ok := b.hosts[r]; ok {
		return h
	}
	return "extra" + strconv.FormatUint(uint64(r), 10)
}

// currentHostlist is the instance hostlist: the joiners' hostnames and
// extra<rank> placeholders for the rest, built from the named ranks and
// the gaps between them, so its cost follows the ranks in use.
func (b *Broker) currentHostlist() string {
	if !b.hostsStale {
		return b.hostlist
	}
	ranks := make([]uint32, 0, len(b.hosts))
	for r := range b.hosts {
		ranks = append(ranks, r)
	}
	slices.Sort(ranks)
	var hb hostlist.Builder
	next := uint32(0)
	placeholders := func(lo, hi uint32) {
		// A bracket may name at most hostlist.MaxRangeSize hosts; the
		// builder joins the pieces back into one range.
		for lo <= hi {
			end := hi
			if hi-lo >= hostlist.MaxRangeSize {
				end = lo + hostlist.MaxRangeSize - 1
			}
			hb.AppendList(hostlist.MustParse(fmt.Sprintf("extra[%d-%d]", lo, end)))
			if end == hi {
				return
			}
			lo = end + 1
		}
	}
	for _, r := range ranks {
		if r > next {
			placeholders(next, r-1)
		}
		hb.Append(b.hosts[r])
		next = r + 1
	}
	if next < b.size {
		placeholders(next, b.size-1)
	}
	b.hostlist = hb.Hostlist().String()
	b.hostsStale = false
	return b.hostlist
}

// Online is rank 0's broker.online group (empty on other ranks).
func (b *Broker) Online() idset.Set {
	if b.rank != 0 {
		return idset.Set{}
	}
	if p := b.onlineSet.Load(); p != nil {
		return *p
	}
	s, _ := ask(b, b.onlineIDs)
	return s
}

// Torpid is rank 0's broker.torpid group: ranks whose parent has not heard
// from them for TorpidMax, though they are still online (empty on other
// ranks).
func (b *Broker) Torpid() idset.Set {
	if b.rank != 0 {
		return idset.Set{}
	}
	s, _ := ask(b, func() idset.Set { return b.torpid.ids() })
	return s
}

// RankInfo is one line of rank 0's overlay status.
type RankInfo struct {
	Rank     uint32
	Hostname string // the placeholder extra<rank> until a joiner replaced it
	Online   bool
	Torpid   bool
	State    RankState // the rank pool's view
}

// rankInfo builds r's line; loop only.
func (b *Broker) rankInfo(r uint32) RankInfo {
	st := Online
	if r != 0 {
		st = b.p.pool.State(r)
	}
	return RankInfo{Rank: r, Hostname: b.hostOf(r), Online: r == 0 || b.below.has(r), Torpid: b.torpid.has(r), State: st}
}

// Lookup is rank 0's view of rank r; false on other ranks or when r is
// not a rank of the instance.
func (b *Broker) Lookup(r uint32) (RankInfo, bool) {
	if b.rank != 0 || r >= b.size {
		return RankInfo{}, false
	}
	return ask(b, func() RankInfo { return b.rankInfo(r) })
}

// Ranks is rank 0's view of every rank that is or was in use: online,
// torpid, leased, orphaned, or named by a joiner; in ascending order, and
// nil on other ranks. The other ranks are offline placeholders (see
// Lookup); listing them would cost the size, not the ranks in use.
func (b *Broker) Ranks() []RankInfo {
	if b.rank != 0 {
		return nil
	}
	rs, _ := ask(b, func() []RankInfo {
		seen := rankSet{0: {}}
		for r := range b.below {
			seen[r] = struct{}{}
		}
		for r := range b.hosts {
			seen[r] = struct{}{}
		}
		b.p.pool.Each(func(r uint32, _ RankState) { seen[r] = struct{}{} })
		rs := make([]RankInfo, 0, len(seen))
		for _, r := range seen.sorted() {
			rs = append(rs, b.rankInfo(r))
		}
		return rs
	})
	return rs
}

// Messages counts the overlay messages this broker sent or received on its
// sockets.
func (b *Broker) Messages() uint64 { return b.msgs.Load() }

// Disconnect forces child rank r offline, as `flux overlay disconnect`:
// the child is sent DISCONNECT and marked lost. ENOENT when r is not an
// online child of this broker.
func (b *Broker) Disconnect(ctx context.Context, r uint32) error {
	errc := make(chan error, 1)
	if !b.post(func() {
		c := b.children[r]
		if c == nil || !c.online {
			errc <- fluxkit.Errorf(fluxkit.ENOENT, "rank %d is not an online child of rank %d", r, b.rank)
			return
		}
		b.loseChild(c, "disconnected")
		errc <- nil
	}) {
		return errClosed
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.ctx.Done():
		return errClosed
	}
}
