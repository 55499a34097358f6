package hostlist

import (
	"errors"
	"slices"
	"strings"
	"testing"
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
		switch {
		case ka.value < kb.value:
			return -1
		case ka.value > kb.value:
			return 1
		}
		return 0
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
	for _, set := range [][]codecTest{specVectors, upstreamVectors, moreVectors} {
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
			if !errors.As(err, &pe) || pe.Input != in {
				t.Fatalf("Parse(%q): error %v is not a *ParseError for the input", in, err)
			}
			if !errors.Is(err, ErrSyntax) && !errors.Is(err, ErrRange) {
				t.Fatalf("Parse(%q): error %v wraps neither sentinel", in, err)
			}
			_ = err.Error()
			if h.Len() != 0 {
				t.Fatalf("Parse(%q) failed but returned hosts", in)
			}
			return
		}
		checkInvariants(t, h)

		enc := h.String()
		var names []string
		if h.Len() <= fuzzExpandMax {
			names = hosts(h)
			if len(names) != h.Len() {
				t.Fatalf("Parse(%q): Len %d but %d hosts", in, h.Len(), len(names))
			}
		}

		if roundTrips(h) && len(enc) <= fuzzTextMax {
			again, err := Parse(enc)
			if err != nil {
				t.Fatalf("Parse(%q).String() = %q does not parse: %v", in, enc, err)
			}
			if again.Len() != h.Len() {
				t.Fatalf("Parse(%q).String() = %q: Len %d, re-parsed %d", in, enc, h.Len(), again.Len())
			}
			if names != nil {
				if got := hosts(again); !slices.Equal(got, names) {
					t.Fatalf("Parse(%q).String() = %q re-parses to %q, want %q", in, enc, got, names)
				}
			} else {
				for _, i := range []int{0, h.Len() / 2, h.Len() - 1} {
					a, _ := h.Nth(i)
					b, _ := again.Nth(i)
					if a != b {
						t.Fatalf("Parse(%q).String() = %q: host %d is %q, re-parsed %q", in, enc, i, a, b)
					}
				}
			}
		}

		if names == nil {
			return
		}
		for i, want := range names {
			if got, ok := h.Nth(i); !ok || got != want {
				t.Fatalf("Parse(%q).Nth(%d) = %q, %t; want %q", in, i, got, ok, want)
			}
		}
		for i, name := range names[:min(len(names), fuzzFindMax)] {
			if got, want := h.Find(name), slices.Index(names, name); got != want || want > i {
				t.Fatalf("Parse(%q).Find(%q) = %d, want %d", in, name, got, want)
			}
		}

		if h.Len() > fuzzSortMax {
			return
		}
		sorted := h.Sort()
		checkInvariants(t, sorted)
		sortedNames := hosts(sorted)
		if want := refSort(names); !slices.Equal(sortedNames, want) {
			t.Fatalf("Sort(%q) = %q, want %q", in, sortedNames, want)
		}
		if again := hosts(sorted.Sort()); !slices.Equal(again, sortedNames) {
			t.Fatalf("Sort is not idempotent on %q: %q then %q", in, sortedNames, again)
		}
		uniq := h.Uniq()
		checkInvariants(t, uniq)
		uniqNames := hosts(uniq)
		counts := countHosts(uniqNames)
		for name, c := range counts {
			if c != 1 {
				t.Fatalf("Uniq(%q) = %q repeats %q", in, uniqNames, name)
			}
		}
		if want := slices.Compact(refSort(names)); !slices.Equal(uniqNames, want) {
			t.Fatalf("Uniq(%q) = %q, want %q", in, uniqNames, want)
		}
		if fromSorted := hosts(sorted.Uniq()); !slices.Equal(fromSorted, uniqNames) {
			t.Fatalf("Uniq(Sort(%q)) = %q, Uniq = %q", in, fromSorted, uniqNames)
		}
		if roundTrips(h) {
			back, err := Parse(sorted.String())
			if err != nil || !slices.Equal(hosts(back), sortedNames) {
				t.Fatalf("Sort(%q).String() = %q does not re-parse: %v", in, sorted.String(), err)
			}
		}
	})
}
