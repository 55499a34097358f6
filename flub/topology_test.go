package flub

import (
	"fmt"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTopology(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"kary:2", "kary:2", ""},
		{"kary:32", "kary:32", ""},
		{"kary:0", "kary:0", ""},
		{"kary:1", "kary:1", ""},
		{"binomial", "binomial", ""},
		{"kary:-1", "", "kary k value must be an integer >= 0"},
		{"kary:x", "", "kary k value must be an integer >= 0"},
		{"kary", "", "kary k value must be an integer >= 0"},
		{"mesh:3", "", "unknown topology scheme 'mesh'"},
		{"", "", "unknown topology scheme ''"},
		{"binomial:2", "", "binomial topology takes no argument"},
	} {
		topo, err := ParseTopology(tc.in)
		if tc.err != "" {
			assert.ErrorIs(t, err, fluxkit.EINVAL, "ParseTopology(%q)", tc.in)
			assert.ErrorContains(t, err, tc.err, "ParseTopology(%q)", tc.in)
			continue
		}
		if assert.NoError(t, err, "ParseTopology(%q)", tc.in) {
			assert.Equal(t, tc.want, topo.String())
		}
	}
}

func TestTopologyParentChildren(t *testing.T) {
	type row struct {
		rank     uint32
		parent   int64
		children []uint32
		depth    int
	}
	for _, tc := range []struct {
		topo string
		size uint32
		rows []row
	}{
		{"kary:2", 7, []row{
			{0, -1, []uint32{1, 2}, 0}, {1, 0, []uint32{3, 4}, 1}, {2, 0, []uint32{5, 6}, 1},
			{3, 1, nil, 2}, {4, 1, nil, 2}, {5, 2, nil, 2}, {6, 2, nil, 2},
		}},
		{"kary:3", 6, []row{{0, -1, []uint32{1, 2, 3}, 0}, {1, 0, []uint32{4, 5}, 1}, {2, 0, nil, 1}, {5, 1, nil, 2}}},
		{"kary:1", 4, []row{{0, -1, []uint32{1}, 0}, {1, 0, []uint32{2}, 1}, {3, 2, nil, 3}}},
		{"kary:0", 4, []row{{0, -1, []uint32{1, 2, 3}, 0}, {1, 0, nil, 1}, {3, 0, nil, 1}}},
		{"binomial", 8, []row{
			{0, -1, []uint32{1, 2, 4}, 0}, {1, 0, nil, 1}, {2, 0, []uint32{3}, 1}, {3, 2, nil, 2},
			{4, 0, []uint32{5, 6}, 1}, {5, 4, nil, 2}, {6, 4, []uint32{7}, 2}, {7, 6, nil, 3},
		}},
		{"binomial", 6, []row{{4, 0, []uint32{5}, 1}, {0, -1, []uint32{1, 2, 4}, 0}}},
		{"kary:32", 1024, []row{{0, -1, seq(1, 32), 0}, {31, 0, seq(993, 1023), 1}, {32, 0, nil, 1}, {1023, 31, nil, 2}}},
	} {
		topo, err := ParseTopology(tc.topo)
		require.NoError(t, err)
		for _, r := range tc.rows {
			name := fmt.Sprintf("%s size %d rank %d", tc.topo, tc.size, r.rank)
			assert.Equal(t, r.parent, topo.Parent(r.rank), "%s: parent", name)
			assert.Equal(t, r.children, topo.Children(r.rank, tc.size), "%s: children", name)
			assert.Equal(t, len(r.children) > 0, topo.HasChildren(r.rank, tc.size), "%s: HasChildren", name)
			assert.Equal(t, r.depth, topo.Depth(r.rank), "%s: depth", name)
		}
	}
}

func seq(lo, hi uint32) []uint32 {
	var s []uint32
	for i := lo; i <= hi; i++ {
		s = append(s, i)
	}
	return s
}

// Every rank's parent lists it as a child, ChildToward agrees with the
// parent chain, and HasChildren and NumChildren agree with Children, for
// every scheme.
func TestTopologyConsistency(t *testing.T) {
	for _, s := range []string{"kary:0", "kary:1", "kary:2", "kary:3", "kary:32", "binomial"} {
		topo, _ := ParseTopology(s)
		for _, size := range []uint32{1, 2, 7, 8, 33, 100} {
			seen := 0
			for r := uint32(0); r < size; r++ {
				kids := topo.Children(r, size)
				seen += len(kids)
				require.Equal(t, len(kids) > 0, topo.HasChildren(r, size), "%s size %d rank %d: HasChildren", s, size, r)
				require.Equal(t, uint32(len(kids)), topo.NumChildren(r, size), "%s size %d rank %d: NumChildren", s, size, r)
				for _, c := range kids {
					require.Equal(t, int64(r), topo.Parent(c), "%s size %d: the parent of %d's child %d", s, size, r, c)
					require.True(t, topo.IsChild(r, c), "%s size %d: IsChild(%d, %d)", s, size, r, c)
				}
				for x := uint32(0); x < size; x++ {
					got, ok := topo.ChildToward(r, x)
					// brute force: walk x's ancestors
					want, wok := uint32(0), false
					for n := int64(x); n > 0; n = topo.Parent(uint32(n)) {
						if topo.Parent(uint32(n)) == int64(r) {
							want, wok = uint32(n), true
							break
						}
					}
					require.Equal(t, wok, ok, "%s: ChildToward(%d,%d)", s, r, x)
					require.Equal(t, want, got, "%s: ChildToward(%d,%d)", s, r, x)
				}
			}
			require.Equal(t, int(size)-1, seen, "%s size %d: child edges", s, size)
		}
	}
}

// NumChildren counts without listing, so it answers at the largest size.
func TestNumChildrenAtMaxSize(t *testing.T) {
	for _, tc := range []struct {
		topo string
		rank uint32
		want uint32
	}{
		{"kary:0", 0, MaxSize - 1},
		{"kary:0", 5, 0},
		{"kary:32", 0, 32},
		{"kary:32", (MaxSize - 2) / 32, 31}, // the last rank's parent
		{"kary:2", MaxSize - 1, 0},
		{"binomial", 0, 31},
		{"binomial", 1 << 30, 30},
		{"binomial", MaxSize - 1, 0},
	} {
		topo, _ := ParseTopology(tc.topo)
		assert.Equal(t, tc.want, topo.NumChildren(tc.rank, MaxSize), "%s rank %d", tc.topo, tc.rank)
	}
}
