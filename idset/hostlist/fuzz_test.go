package hostlist

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Bounds on how much checking one fuzz input gets: lists may name 2^20
// hosts per range, and Sort of a repeated range makes a range per host.
const (
	fuzzExpandMax = 1 << 14
	fuzzSortMax   = 1 << 10
	fuzzFindMax   = 64
	fuzzTextMax   = 1 << 18 // longest String re-parsed
)

// roundTrips reports whether String can be parsed back to the same hosts.
// It cannot when a suffix after a bracket holds brackets itself
// ("node[1-2]-[1-2]" names hosts like "node1-[1-2]"), because libhostlist
// expands those on re-parse; this package keeps that behaviour.
func roundTrips(h Hostlist) bool {
	for _, r := range h.ranges {
		if strings.ContainsAny(r.suffix, "[]") {
			return false
		}
	}
	return true
}

// refSort sorts host names by the documented rule, one name at a time:
// stem, names without digits first, then digit count, then value.
func refSort(names []string) []string {
	type key struct {
		stem     string
		numbered bool
		digits   int
		value    uint64
	}
	keyOf := func(name string) key {
		r := splitName(name)
		if r.kind == kindSingle {
			return key{stem: name}
		}
		return key{r.prefix, true, r.width, r.lo}
	}
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int {
		ka, kb := keyOf(a), keyOf(b)
		if c := strings.Compare(ka.stem, kb.stem); c != 0 {
			return c
		}
		if ka.numbered != kb.numbered {
			if !ka.numbered {
				return -1
			}
			return 1
		}
		if ka.digits != kb.digits {
			return ka.digits - kb.digits
		}
		return cmp.Compare(ka.value, kb.value)
	})
	return out
}

func countHosts(names []string) map[string]int {
	m := map[string]int{}
	for _, n := range names {
		m[n]++
	}
	return m
}

// FuzzParse checks that Parse never panics, that String parses back to the
// same host sequence, and that Len, Nth, Find, Sort and Uniq agree with the
// expanded list.
func FuzzParse(f *testing.F) {
	for _, set := range [][]codecTest{formatVectors, upstreamVectors, moreVectors} {
		for _, tt := range set {
			f.Add(tt.in)
		}
	}
	for _, s := range []string{
		"[]", "foo[]", "foo[", "foo[1,3", "foo[[1,3]", "foo]", "foo[x-y]", "foo[0-1,2--5]",
		"foo[0-1048576]", "foo[1-]", "foo[ 1]", "foo[1]]", "a]b[1]", "foo[3-1]",
		"foo[99999999999999999999]", "[0-20],45,12,015", "foo[0-2],foo[0-2],foo[0-2]",
		"[9-10],05", "foo[9-10]x,foo[1-2]x", "f00[7],f008", "a[1-2]3,a13",
		"node[01-30]-[1-2,6]", "\x00[1],\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		h, err := Parse(in)
		if err != nil {
			var pe *ParseError
			require.ErrorAs(t, err, &pe, "Parse(%q)", in)
			require.Equal(t, in, pe.Input, "Parse(%q): the error names the input", in)
			require.True(t, errors.Is(err, ErrSyntax) || errors.Is(err, ErrRange), "Parse(%q): error %v wraps neither sentinel", in, err)
			_ = err.Error()
			require.Zero(t, h.Len(), "Parse(%q) failed but returned hosts", in)
			return
		}
		checkInvariants(t, h)

		enc := h.String()
		var names []string
		if h.Len() <= fuzzExpandMax {
			names = hosts(h)
			require.Len(t, names, h.Len(), "Parse(%q): Len and hosts", in)
		}

		if roundTrips(h) && len(enc) <= fuzzTextMax {
			again, err := Parse(enc)
			require.NoError(t, err, "Parse(%q).String() = %q", in, enc)
			require.Equal(t, h.Len(), again.Len(), "Parse(%q).String() = %q re-parsed", in, enc)
			if names != nil {
				require.Equal(t, names, hosts(again), "Parse(%q).String() = %q re-parsed", in, enc)
			} else {
				for _, i := range []int{0, h.Len() / 2, h.Len() - 1} {
					a, _ := h.Nth(i)
					b, _ := again.Nth(i)
					require.Equal(t, a, b, "Parse(%q).String() = %q: host %d re-parsed", in, enc, i)
				}
			}
		}

		if names == nil {
			return
		}
		for i, want := range names {
			got, ok := h.Nth(i)
			require.True(t, ok, "Parse(%q).Nth(%d)", in, i)
			require.Equal(t, want, got, "Parse(%q).Nth(%d)", in, i)
		}
		for i, name := range names[:min(len(names), fuzzFindMax)] {
			want := slices.Index(names, name)
			require.LessOrEqual(t, want, i)
			require.Equal(t, want, h.Find(name), "Parse(%q).Find(%q)", in, name)
		}

		if h.Len() > fuzzSortMax {
			return
		}
		sorted := h.Sort()
		checkInvariants(t, sorted)
		sortedNames := hosts(sorted)
		require.Equal(t, refSort(names), sortedNames, "Sort(%q)", in)
		require.Equal(t, sortedNames, hosts(sorted.Sort()), "Sort is idempotent on %q", in)
		uniq := h.Uniq()
		checkInvariants(t, uniq)
		uniqNames := hosts(uniq)
		for name, c := range countHosts(uniqNames) {
			require.Equal(t, 1, c, "Uniq(%q) = %q repeats %q", in, uniqNames, name)
		}
		require.Equal(t, slices.Compact(refSort(names)), uniqNames, "Uniq(%q)", in)
		require.Equal(t, uniqNames, hosts(sorted.Uniq()), "Uniq(Sort(%q)) is Uniq", in)
		if roundTrips(h) {
			back, err := Parse(sorted.String())
			require.NoError(t, err, "Sort(%q).String() = %q", in, sorted.String())
			require.Equal(t, sortedNames, hosts(back), "Sort(%q).String() = %q re-parsed", in, sorted.String())
		}
	})
}
