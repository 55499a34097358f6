package flub

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit"
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
			if err == nil || !strings.Contains(err.Error(), tc.err) || fluxkit.Errno(err) != fluxkit.EINVAL {
				t.Errorf("ParseTopology(%q) = %v, want EINVAL %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || topo.String() != tc.want {
			t.Errorf("ParseTopology(%q) = %v, %v; want %s", tc.in, topo, err, tc.want)
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
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range tc.rows {
			name := fmt.Sprintf("%s size %d rank %d", tc.topo, tc.size, r.rank)
			if got := topo.Parent(r.rank); got != r.parent {
				t.Errorf("%s: parent %d, want %d", name, got, r.parent)
			}
			if got := topo.Children(r.rank, tc.size); !slices.Equal(got, r.children) {
				t.Errorf("%s: children %v, want %v", name, got, r.children)
			}
			if got := topo.HasChildren(r.rank, tc.size); got != (len(r.children) > 0) {
				t.Errorf("%s: HasChildren %v", name, got)
			}
			if got := topo.Depth(r.rank); got != r.depth {
				t.Errorf("%s: depth %d, want %d", name, got, r.depth)
			}
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
				if topo.HasChildren(r, size) != (len(kids) > 0) {
					t.Fatalf("%s size %d rank %d: HasChildren disagrees", s, size, r)
				}
				if n := topo.NumChildren(r, size); n != uint32(len(kids)) {
					t.Fatalf("%s size %d rank %d: NumChildren %d, Children %v", s, size, r, n, kids)
				}
				for _, c := range kids {
					if topo.Parent(c) != int64(r) || !topo.IsChild(r, c) {
						t.Fatalf("%s size %d: child %d of %d has parent %d", s, size, c, r, topo.Parent(c))
					}
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
					if ok != wok || got != want {
						t.Fatalf("%s: ChildToward(%d,%d) = %d,%v want %d,%v", s, r, x, got, ok, want, wok)
					}
				}
			}
			if seen != int(size)-1 {
				t.Fatalf("%s size %d: %d child edges, want %d", s, size, seen, size-1)
			}
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
		if got := topo.NumChildren(tc.rank, MaxSize); got != tc.want {
			t.Errorf("%s rank %d: NumChildren %d, want %d", tc.topo, tc.rank, got, tc.want)
		}
	}
}
