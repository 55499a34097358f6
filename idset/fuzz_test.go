package idset

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
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
	// spec §1.5
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
			if !errors.As(err, &pe) || pe.Input != in {
				t.Fatalf("Parse(%q): error %v is not a *ParseError for the input", in, err)
			}
			if wantErr == nil || !errors.Is(err, wantErr) {
				t.Fatalf("Parse(%q) = %v; reference says %v", in, err, wantErr)
			}
			_ = err.Error()
			if !set.IsEmpty() {
				t.Fatalf("Parse(%q) failed but returned a non-empty set", in)
			}
			return
		}
		if wantErr != nil {
			t.Fatalf("Parse(%q) succeeded; reference says %v", in, wantErr)
		}
		checkInvariants(t, set)

		var b Builder
		for _, r := range want {
			b.AddRange(r[0], r[1])
		}
		if ref := b.Set(); !ref.Equal(set) {
			t.Fatalf("Parse(%q) = %v; reference gives %v", in, set, ref)
		}

		s := set.String()
		again, err := Parse(s)
		if err != nil || !again.Equal(set) {
			t.Fatalf("Parse(%q).String() = %q does not re-parse equal: %v", in, s, err)
		}
		if s2 := again.String(); s2 != s {
			t.Fatalf("re-encoding %q gave %q", s, s2)
		}
		text, _ := set.MarshalText()
		if string(text) != s {
			t.Fatalf("MarshalText %q != String %q", text, s)
		}

		flagSets := []Flags{Ranges | Brackets}
		// Without Ranges the output lists every id; keep that bounded.
		if set.Len() <= 1<<16 {
			flagSets = append(flagSets, 0, Brackets)
		}
		for _, flags := range flagSets {
			enc, err := set.Encode(flags)
			if err != nil {
				t.Fatalf("Encode(%d): %v", flags, err)
			}
			if len(enc) != set.encodedLen(flags) {
				t.Fatalf("Encode(%d) of %v: length %d, predicted %d", flags, set, len(enc), set.encodedLen(flags))
			}
			back, err := Parse(enc)
			if err != nil || !back.Equal(set) {
				t.Fatalf("Encode(%d) of %v = %q does not re-parse equal: %v", flags, set, enc, err)
			}
		}
	})
}
