package flub

import (
	"encoding/json"
	"slices"

	"github.com/fluxkit/fluxkit/idset"
)

// rankSet is a mutable set of ranks whose memory follows its members, not
// the instance size.
type rankSet map[uint32]struct{}

func (s rankSet) has(r uint32) bool { _, ok := s[r]; return ok }

// sorted returns the members in ascending order.
func (s rankSet) sorted() []uint32 {
	out := make([]uint32, 0, len(s))
	for r := range s {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// ids returns the members as an idset.
func (s rankSet) ids() idset.Set {
	var b idset.Builder
	for _, r := range s.sorted() {
		b.Add(r)
	}
	return b.Set()
}

// Membership operations a parent reports to rank 0 (overlay.member), and
// every broker on the way applies to its view of its own subtree.
const (
	// opJoin: rank came online, and its online descendants are exactly
	// Subtree. One message, applied at once, whether the rank is new or
	// another broker replaced the one that held it: rank 0 never sees the
	// rank offline in between, so getinfo cannot hand it out then.
	opJoin = "join"
	// opLost: rank's broker was lost (its connection failed, or it was
	// disconnected); opLeave: it said goodbye. Either way the rank is
	// offline and back in the pool; its descendants may live on behind it
	// and are orphaned, not lost.
	opLost  = "lost"
	opLeave = "leave"
	// opTorpid and opResponsive flag a child that has been silent for
	// TorpidMax, and clear the flag: it stays online throughout.
	opTorpid     = "torpid"
	opResponsive = "responsive"
)

// memberOp is the payload of overlay.member.
type memberOp struct {
	Op      string `json:"op"`
	Rank    uint32 `json:"rank"`
	Subtree string `json:"subtree,omitempty"` // join: the online descendants, an idset
}

func (o memberOp) encode() []byte {
	p, _ := json.Marshal(o)
	return p
}

// memberChanges is what applying a memberOp did to an online set.
type memberChanges struct {
	online   []uint32 // ranks that came online
	offline  []uint32 // the rank whose broker was lost or left
	orphaned []uint32 // descendants that left with an ancestor
}

// maxAnnounced bounds the subtree a join may announce to a broker that
// cannot check it against the ranks in use (any broker but rank 0).
const maxAnnounced = 1 << 20

// announced returns the ranks of s that can be descendants of r, at most
// limit of them; known, if not nil, lists every rank that can be in use
// and is walked instead of s when it is shorter, so a bogus "0-2147483647"
// costs nothing.
func announced(s idset.Set, r uint32, topo Topology, size uint32, limit int, known func(func(uint32))) []uint32 {
	var out []uint32
	keep := func(d uint32) {
		if len(out) < limit && d != r && d < size && s.Contains(d) && topo.Contains(r, d) {
			out = append(out, d)
		}
	}
	if known != nil {
		known(keep)
		slices.Sort(out)
		return out
	}
	n := 0
	for d := range s.All() {
		if n++; n > limit {
			break // an honest subtree holds descendants only: n == len(out)
		}
		keep(d)
	}
	return out
}

// applyMember applies op to online, the online ranks of one subtree (all
// ranks but 0 on rank 0). subtree is the op's Subtree, already filtered
// by announced.
func applyMember(online rankSet, topo Topology, size uint32, op memberOp, subtree []uint32) memberChanges {
	var ch memberChanges
	r := op.Rank
	if r == 0 || r >= size {
		return ch
	}
	// The descendants of r that are online now; only interior ranks can
	// have any, so leaves (most ranks) skip the scan.
	var below []uint32
	if topo.HasChildren(r, size) {
		for d := range online {
			if d != r && topo.Contains(r, d) {
				below = append(below, d)
			}
		}
		slices.Sort(below)
	}
	switch op.Op {
	case opJoin:
		if !online.has(r) {
			online[r] = struct{}{}
			ch.online = append(ch.online, r)
		}
		for _, d := range below {
			if _, ok := slices.BinarySearch(subtree, d); !ok {
				delete(online, d)
				ch.orphaned = append(ch.orphaned, d)
			}
		}
		for _, d := range subtree {
			if !online.has(d) {
				online[d] = struct{}{}
				ch.online = append(ch.online, d)
			}
		}
	case opLost, opLeave:
		delete(online, r)
		ch.offline = append(ch.offline, r)
		for _, d := range below {
			delete(online, d)
			ch.orphaned = append(ch.orphaned, d)
		}
	}
	return ch
}
