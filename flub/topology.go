package flub

import (
	"math/bits"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit"
)

// DefaultTopo is the topology URI used when none is configured.
const DefaultTopo = "kary:32"

// Topology is a parsed tbon.topo URI: the shape of the tree, independent of
// the instance size.
type Topology struct {
	binomial bool
	k        uint32 // kary:K; 0 is flat
}

// ParseTopology parses "kary:K" (K >= 0; 0 is flat, every rank a child of 0)
// or "binomial". The error texts are flux-core's.
func ParseTopology(uri string) (Topology, error) {
	scheme, arg, hasArg := strings.Cut(uri, ":")
	switch scheme {
	case "binomial":
		if hasArg {
			return Topology{}, fluxkit.Errorf(fluxkit.EINVAL, "binomial topology takes no argument: %q", uri)
		}
		return Topology{binomial: true}, nil
	case "kary":
		k, err := strconv.ParseUint(arg, 10, 32)
		if !hasArg || err != nil {
			return Topology{}, fluxkit.Errorf(fluxkit.EINVAL, "kary k value must be an integer >= 0: %q", uri)
		}
		return Topology{k: uint32(k)}, nil
	}
	return Topology{}, fluxkit.Errorf(fluxkit.EINVAL, "unknown topology scheme '%s'", scheme)
}

// String returns the topology URI.
func (t Topology) String() string {
	if t.binomial {
		return "binomial"
	}
	return "kary:" + strconv.FormatUint(uint64(t.k), 10)
}

// Parent returns the parent of rank r, or -1 for rank 0.
func (t Topology) Parent(r uint32) int64 {
	switch {
	case r == 0:
		return -1
	case t.binomial:
		return int64(r & (r - 1))
	case t.k == 0:
		return 0
	}
	return int64((r - 1) / t.k)
}

// Children returns the children of rank r in an instance of size ranks,
// in ascending order.
func (t Topology) Children(r, size uint32) []uint32 {
	var out []uint32
	switch {
	case t.binomial:
		// Children of r are r+2^j for every 2^j below r's lowest set bit
		// (every power of two for rank 0).
		limit := uint64(1) << 32
		if r != 0 {
			limit = uint64(1) << bits.TrailingZeros32(r)
		}
		for step := uint64(1); step < limit; step <<= 1 {
			c := uint64(r) + step
			if c >= uint64(size) {
				break
			}
			out = append(out, uint32(c))
		}
	case t.k == 0:
		if r == 0 {
			for c := uint32(1); c < size; c++ {
				out = append(out, c)
			}
		}
	default:
		first := uint64(r)*uint64(t.k) + 1
		for c := first; c < first+uint64(t.k) && c < uint64(size); c++ {
			out = append(out, uint32(c))
		}
	}
	return out
}

// HasChildren reports whether rank r has at least one child in an instance
// of size ranks, without building the list.
func (t Topology) HasChildren(r, size uint32) bool {
	switch {
	case t.binomial:
		return r < size && (r == 0 || r&1 == 0) && uint64(r)+1 < uint64(size)
	case t.k == 0:
		return r == 0 && size > 1
	}
	return uint64(r)*uint64(t.k)+1 < uint64(size)
}

// NumChildren returns how many children rank r has in an instance of size
// ranks, computed without listing them (rank 0 of a flat instance of 2^31
// ranks has 2^31-1).
func (t Topology) NumChildren(r, size uint32) uint32 {
	if r >= size {
		return 0
	}
	switch {
	case t.binomial:
		// r+2^j for every 2^j below r's lowest set bit (any for rank 0)
		// that stays below size.
		n := uint32(0)
		limit := uint64(1) << 32
		if r != 0 {
			limit = uint64(1) << bits.TrailingZeros32(r)
		}
		for step := uint64(1); step < limit && uint64(r)+step < uint64(size); step <<= 1 {
			n++
		}
		return n
	case t.k == 0:
		if r == 0 {
			return size - 1
		}
		return 0
	}
	first := uint64(r)*uint64(t.k) + 1
	if first >= uint64(size) {
		return 0
	}
	return uint32(min(uint64(t.k), uint64(size)-first))
}

// Contains reports whether rank d is in the subtree rooted at rank r
// (r itself included).
func (t Topology) Contains(r, d uint32) bool {
	if d == r {
		return true
	}
	_, ok := t.ChildToward(r, d)
	return ok
}

// Depth returns the number of hops from rank r to rank 0.
func (t Topology) Depth(r uint32) int {
	d := 0
	for r != 0 {
		r = uint32(t.Parent(r))
		d++
	}
	return d
}

// ChildToward returns the child of rank me whose subtree holds target, and
// false when target is not below me. Parents have lower ranks than their
// children in every supported scheme, so the walk is bounded by the depth.
func (t Topology) ChildToward(me, target uint32) (uint32, bool) {
	n := target
	for n > me {
		p := t.Parent(n)
		if p == int64(me) {
			return n, true
		}
		if p < 0 {
			break
		}
		n = uint32(p)
	}
	return 0, false
}

// IsChild reports whether c is a child of p.
func (t Topology) IsChild(p, c uint32) bool { return c != 0 && t.Parent(c) == int64(p) }
