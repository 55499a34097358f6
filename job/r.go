package job

import (
	"encoding/json"
	"errors"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
)

// R is an RFC 20 resource set.
type R struct {
	Version   int
	Execution Execution
	// Scheduling is the scheduler's opaque key, raw; nil when absent.
	Scheduling json.RawMessage
}

// Execution is R's execution key.
type Execution struct {
	RLite []RLite
	// Nodelist are RFC 29 hostlists naming the hosts of the ranks, in rank
	// order.
	Nodelist []string
	// Properties map a property name to the ranks that have it.
	Properties map[string]idset.Set
	// Starttime and Expiration are in seconds since the epoch; 0 when not
	// given (an expiration of 0 is no time limit).
	Starttime  float64
	Expiration float64
	// NSlots is the nslots key, 0 when not given.
	NSlots int
}

// RLite is one R_lite entry: ranks and the resources each of them has.
type RLite struct {
	Rank idset.Set
	// Children map a resource type ("core", "gpu") to the ids of that type
	// on each rank.
	Children map[string]idset.Set
}

// ParseR decodes an R as flux-core's librlist does (rlist_from_json):
// version 1, execution with R_lite, idsets that parse, and a nodelist, when
// given, naming exactly one host per rank. Errors name the member at fault.
func ParseR(b []byte) (*R, error) {
	var d Decoder
	r := new(R)
	if err := d.R(cloneBytes(b), r); err != nil {
		return nil, err
	}
	return r, nil
}

// Ranks returns the ranks R names.
func (r *R) Ranks() idset.Set {
	switch len(r.Execution.RLite) {
	case 0:
		return idset.Set{}
	case 1:
		return r.Execution.RLite[0].Rank
	}
	var b idset.Builder
	for _, e := range r.Execution.RLite {
		b.AddSet(e.Rank)
	}
	return b.Set()
}

// Count returns the number of resources of type typ (such as "core") over
// all ranks. A rank named by two entries has the union of their
// resources, as librlist merges them.
func (r *R) Count(typ string) int {
	rl := r.Execution.RLite
	if len(rl) == 1 {
		return rl[0].Rank.Len() * rl[0].Children[typ].Len()
	}
	n, ranks := 0, 0
	for _, e := range rl {
		n += e.Rank.Len() * e.Children[typ].Len()
		ranks += e.Rank.Len()
	}
	if ranks == r.Ranks().Len() {
		return n
	}
	per := map[uint32]idset.Set{}
	for _, e := range rl {
		for rank := range e.Rank.All() {
			per[rank] = per[rank].Union(e.Children[typ])
		}
	}
	n = 0
	for _, s := range per {
		n += s.Len()
	}
	return n
}

// ErrNoHosts is returned by [R.Hosts] for an R without a nodelist.
var ErrNoHosts = errors.New("R: no nodelist")

// Hosts returns the hosts of R's ranks in rank order, as librlist assigns
// the nodelist to them. It fails with [ErrNoHosts] when R has no nodelist.
func (r *R) Hosts() (hostlist.Hostlist, error) {
	return hostsOf(r, hostlist.Parse)
}

func hostsOf(r *R, parse func(string) (hostlist.Hostlist, error)) (hostlist.Hostlist, error) {
	nl := r.Execution.Nodelist
	if nl == nil {
		return hostlist.Hostlist{}, ErrNoHosts
	}
	if len(nl) == 1 {
		h, err := parse(nl[0])
		if err != nil {
			return hostlist.Hostlist{}, rErr("execution.nodelist", err)
		}
		return h, nil
	}
	var hb hostlist.Builder
	for _, s := range nl {
		h, err := parse(s)
		if err != nil {
			return hostlist.Hostlist{}, rErr("execution.nodelist", err)
		}
		hb.AppendList(h)
	}
	return hb.Hostlist(), nil
}
