package idset

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// refElement is the RFC 22 element grammar as libidset applies it.
var refElement = regexp.MustCompile(`^(0|[1-9][0-9]*)(?:-(0|[1-9][0-9]*))?$`)

// refParse is a deliberately naive second implementation of the decoding
// rules (split, regexp, big-enough integers), used to cross-check Parse.
// It returns the elements as written, before adjacent ones are merged.
func refParse(s string) ([][2]uint32, error) {
	if len(s) >= 2 && strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	if strings.ContainsAny(s, "[]") {
		return nil, ErrSyntax
	}
	var out [][2]uint32
	for _, tok := range strings.Split(s, ",") {
		if tok == "" {
			continue
		}
		m := refElement.FindStringSubmatch(tok)
		if m == nil {
			return nil, ErrSyntax
		}
		toID := func(d string) (uint32, bool) {
			v, err := strconv.ParseUint(d, 10, 64)
			if err != nil || v > MaxID {
				return 0, false
			}
			return uint32(v), true
		}
		lo, ok1 := toID(m[1])
		hi, ok2 := lo, true
		if m[2] != "" {
			hi, ok2 = toID(m[2])
		}
		if !ok1 || !ok2 {
			return nil, ErrRange
		}
		if m[2] != "" && hi <= lo {
			return nil, ErrSyntax
		}
		if len(out) > 0 && lo <= out[len(out)-1][1] {
			return nil, ErrOrder
		}
		out = append(out, [2]uint32{lo, hi})
	}
	return out, nil
}

var fuzzSeeds = []string{
	// flux-core's libidset test cases
	"1,7-9,16", "2,3", "[]", "", "1-3,4", "1,,2", "2147483647", "2147483648",
	"3-3", "01,2", "1-3,2",
	// empty sets and commas
	",", "[,]", ",,,", ",1,2,", "[1,2]", "[5]",
	// brackets
	"[", "]", "[1", "1]", "[[1]]", "[1]]", "[1],[2]", "][",
	// syntax
	" 1", "1 ", "+1", "-1", "1-", "1--2", "1-2-3", "0x1", "1e3", "00", "1-02",
	"5-3", "0-0", "a",
	// order
	"2,1", "1,1", "1-3,3-4",
	// range and overflow
	"4294967294", "4294967295", "4294967296", "18446744073709551616",
	"0-2147483647", "0,2147483647", "2147483646-2147483647", "0-2147483648",
	"4294967296-1",
	// adjacency merges
	"0,1,2,3", "0-1,2-3,4", "1,3,5-6,7",
}

// FuzzParse checks that Parse never panics, agrees with the reference
// decoder, keeps the representation invariants, and that every encoding of
// a parsed set parses back to an equal set.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		set, err := Parse(in)
		want, wantErr := refParse(in)
		if err != nil {
			var pe *ParseError
			require.ErrorAs(t, err, &pe, "Parse(%q)", in)
			require.Equal(t, in, pe.Input, "Parse(%q): the error names the input", in)
			require.Error(t, wantErr, "Parse(%q) = %v; the reference accepts it", in, err)
			require.ErrorIs(t, err, wantErr, "Parse(%q)", in)
			_ = err.Error()
			require.True(t, set.IsEmpty(), "Parse(%q) failed but returned a non-empty set", in)
			return
		}
		require.NoError(t, wantErr, "Parse(%q) succeeded; the reference refuses it", in)
		checkInvariants(t, set)

		var b Builder
		for _, r := range want {
			b.AddRange(r[0], r[1])
		}
		ref := b.Set()
		require.True(t, ref.Equal(set), "Parse(%q) = %v; reference gives %v", in, set, ref)

		s := set.String()
		again, err := Parse(s)
		require.NoError(t, err, "Parse(%q).String() = %q", in, s)
		require.True(t, again.Equal(set), "Parse(%q).String() = %q does not re-parse equal", in, s)
		require.Equal(t, s, again.String(), "re-encoding")
		text, _ := set.MarshalText()
		require.Equal(t, s, string(text), "MarshalText is String")

		flagSets := []Flags{Ranges | Brackets}
		// Without Ranges the output lists every id; keep that bounded.
		if set.Len() <= 1<<16 {
			flagSets = append(flagSets, 0, Brackets)
		}
		for _, flags := range flagSets {
			enc, err := set.Encode(flags)
			require.NoError(t, err, "Encode(%d)", flags)
			require.Len(t, enc, set.encodedLen(flags), "Encode(%d) of %v: predicted length", flags, set)
			back, err := Parse(enc)
			require.NoError(t, err, "Encode(%d) of %v = %q", flags, set, enc)
			require.True(t, back.Equal(set), "Encode(%d) of %v = %q does not re-parse equal", flags, set, enc)
		}
	})
}
