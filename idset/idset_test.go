package idset

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// checkInvariants verifies the representation rules every Set must obey:
// spans sorted, disjoint, non-adjacent, within MaxID, and an exact count.
func checkInvariants(t testing.TB, s Set) {
	t.Helper()
	var n uint64
	for i, r := range s.spans {
		require.LessOrEqual(t, r.lo, r.hi, "span %d inverted", i)
		require.LessOrEqual(t, r.hi, uint32(MaxID), "span %d above MaxID", i)
		if i > 0 {
			require.Greater(t, r.lo, s.spans[i-1].hi+1, "span %d overlaps or touches its predecessor", i)
		}
		n += uint64(r.hi-r.lo) + 1
	}
	require.Equal(t, n, uint64(s.n), "cached count")
	if len(s.spans) == 0 {
		require.Nil(t, s.spans, "empty sets share the zero value")
	}
}

func ids(s Set) []uint32 { return slices.Collect(s.All()) }

// TestVectors decodes the cases of flux-core's libidset tests
// (src/common/libidset/test/idset.c), then encodes them with no flags,
// RANGE and RANGE|BRACKETS.
func TestVectors(t *testing.T) {
	tests := []struct {
		in                   string
		want                 []uint32
		enc0, encR, encRB    string
		encB                 string // BRACKETS alone; checked when non-empty
		err                  error
		errToken             string
		syscallErr           syscall.Errno
		skipEncodingForLarge bool
	}{
		{in: "1,7-9,16", want: []uint32{1, 7, 8, 9, 16}, enc0: "1,7,8,9,16", encR: "1,7-9,16", encRB: "[1,7-9,16]", encB: "[1,7,8,9,16]"},
		{in: "2,3", want: []uint32{2, 3}, enc0: "2,3", encR: "2-3", encRB: "[2-3]", encB: "[2,3]"},
		{in: "[]", want: nil},
		{in: "", want: nil},
		{in: "1-3,4", want: []uint32{1, 2, 3, 4}, enc0: "1,2,3,4", encR: "1-4", encRB: "[1-4]"},
		{in: "1,,2", want: []uint32{1, 2}, enc0: "1,2", encR: "1-2", encRB: "[1-2]"},
		{in: "2147483647", want: []uint32{2147483647}, enc0: "2147483647", encR: "2147483647", encRB: "2147483647", encB: "2147483647"},
		{in: "2147483648", err: ErrRange, errToken: "2147483648", syscallErr: syscall.ERANGE},
		{in: "3-3", err: ErrSyntax, errToken: "3-3", syscallErr: syscall.EINVAL},
		{in: "01,2", err: ErrSyntax, errToken: "01", syscallErr: syscall.EINVAL},
		{in: "1-3,2", err: ErrOrder, errToken: "2", syscallErr: syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s, err := Parse(tt.in)
			if tt.err != nil {
				require.Error(t, err)
				assert.ErrorIs(t, err, tt.err)
				assert.ErrorIs(t, err, tt.syscallErr)
				var pe *ParseError
				require.ErrorAs(t, err, &pe)
				assert.Equal(t, tt.in, pe.Input)
				assert.Equal(t, tt.errToken, pe.Token)
				assert.True(t, s.IsEmpty(), "failed Parse returns the empty set")
				return
			}
			require.NoError(t, err)
			checkInvariants(t, s)
			assert.Equal(t, tt.want, ids(s))
			for flags, want := range map[Flags]string{0: tt.enc0, Ranges: tt.encR, Ranges | Brackets: tt.encRB} {
				got, err := s.Encode(flags)
				require.NoError(t, err)
				assert.Equal(t, want, got, "flags %d", flags)
			}
			if tt.encB != "" {
				got, err := s.Encode(Brackets)
				require.NoError(t, err)
				assert.Equal(t, tt.encB, got)
			}
			assert.Equal(t, tt.encR, s.String())
		})
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", "[]", ",", "[,]", ",,,", "[,,]"} {
		s, err := Parse(in)
		require.NoError(t, err, "%q", in)
		assert.True(t, s.IsEmpty(), "%q", in)
		assert.Equal(t, 0, s.Len())
		assert.Equal(t, "", s.String())
		enc, err := s.Encode(Ranges | Brackets)
		require.NoError(t, err)
		assert.Equal(t, "", enc, "the empty set never gets brackets")
		_, ok := s.First()
		assert.False(t, ok)
		_, ok = s.Last()
		assert.False(t, ok)
	}
}

func TestParseLenientCommas(t *testing.T) {
	for _, in := range []string{",1,2", "1,2,", ",,1,,,2,,", "[,1,2,]"} {
		s, err := Parse(in)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, "1-2", s.String(), "%q", in)
	}
}

func TestParseBrackets(t *testing.T) {
	good := map[string]string{
		"[1,7-9,16]": "1,7-9,16",
		"[5]":        "5",
		"[0-3]":      "0-3",
	}
	for in, want := range good {
		s, err := Parse(in)
		require.NoError(t, err, "%q", in)
		assert.Equal(t, want, s.String())
	}
	for _, in := range []string{"[", "]", "][", "[1", "1]", "[[1]]", "[1]]", "[[1]", "[1],[2]", "1,[2]", "[1,2]3", "1[2]"} {
		_, err := Parse(in)
		require.Error(t, err, "%q", in)
		assert.ErrorIs(t, err, ErrSyntax, "%q", in)
		var pe *ParseError
		require.ErrorAs(t, err, &pe)
		assert.Empty(t, pe.Token, "bracket errors concern the whole string")
		assert.Contains(t, err.Error(), "mismatched or nested brackets")
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, token string
		err       error
	}{
		{" 1", " 1", ErrSyntax},
		{"1 ", "1 ", ErrSyntax},
		{"1, 2", " 2", ErrSyntax},
		{"+1", "+1", ErrSyntax},
		{"-1", "-1", ErrSyntax},
		{"1-", "1-", ErrSyntax},
		{"-", "-", ErrSyntax},
		{"1--2", "1--2", ErrSyntax},
		{"1-2-3", "1-2-3", ErrSyntax},
		{"1-+2", "1-+2", ErrSyntax},
		{"0x1", "0x1", ErrSyntax},
		{"1.0", "1.0", ErrSyntax},
		{"1e3", "1e3", ErrSyntax},
		{"1x", "1x", ErrSyntax},
		{"a", "a", ErrSyntax},
		{"1,x", "x", ErrSyntax},
		{"00", "00", ErrSyntax},
		{"007", "007", ErrSyntax},
		{"1-02", "1-02", ErrSyntax},
		{"3-3", "3-3", ErrSyntax},
		{"5-3", "5-3", ErrSyntax},
		{"0-0", "0-0", ErrSyntax},
		{"2,1", "1", ErrOrder},
		{"1,1", "1", ErrOrder},
		{"1-3,2", "2", ErrOrder},
		{"1-3,3-4", "3-4", ErrOrder},
		{"5,0-9", "0-9", ErrOrder},
		{"2147483648", "2147483648", ErrRange},
		{"4294967294", "4294967294", ErrRange},
		{"4294967295", "4294967295", ErrRange},
		{"4294967296", "4294967296", ErrRange},
		{"18446744073709551616", "18446744073709551616", ErrRange},
		{"99999999999999999999999999999999", "99999999999999999999999999999999", ErrRange},
		{"0-2147483648", "0-2147483648", ErrRange},
		{"1,2147483648-2147483649", "2147483648-2147483649", ErrRange},
		// Out of range wins over the hi > lo rule: the id cannot exist.
		{"4294967296-1", "4294967296-1", ErrRange},
		// Syntax wins over range: the token is not an element at all.
		{"4294967296x", "4294967296x", ErrSyntax},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		require.Error(t, err, "%q", tt.in)
		assert.ErrorIs(t, err, tt.err, "%q", tt.in)
		var pe *ParseError
		require.ErrorAs(t, err, &pe, "%q", tt.in)
		assert.Equal(t, tt.in, pe.Input)
		assert.Equal(t, tt.token, pe.Token, "%q", tt.in)
	}
}

func TestParseErrorText(t *testing.T) {
	tests := map[string]string{
		"1,x":        `idset: parsing "1,x": error parsing range 'x'`,
		"1-3,2":      `idset: parsing "1-3,2": range '2' is out of order`,
		"[1":         `idset: parsing "[1": mismatched or nested brackets`,
		"2147483648": `idset: parsing "2147483648": set universe size would exceed maximum (range '2147483648')`,
	}
	for in, want := range tests {
		_, err := Parse(in)
		require.Error(t, err)
		assert.Equal(t, want, err.Error())
	}

	long := strings.Repeat("9", 1000)
	_, err := Parse(long)
	require.Error(t, err)
	assert.Less(t, len(err.Error()), 250, "long inputs are shortened in messages")

	assert.Equal(t, `idset: parsing "": boom`, (&ParseError{Err: errors.New("boom")}).Error())
	assert.Equal(t, `idset: parsing "": invalid idset`, (&ParseError{}).Error())
}

func TestParseErrorErrno(t *testing.T) {
	_, err := Parse("1-3,2")
	assert.ErrorIs(t, err, syscall.EINVAL)
	assert.NotErrorIs(t, err, syscall.ERANGE)
	_, err = Parse("2147483648")
	assert.ErrorIs(t, err, syscall.ERANGE)
	assert.NotErrorIs(t, err, syscall.EINVAL)
	assert.NotErrorIs(t, err, syscall.ENOENT)
}

func TestMustParse(t *testing.T) {
	assert.Equal(t, "0-3", MustParse("[0-3]").String())
	assert.Panics(t, func() { MustParse("3-3") })
}

func TestLargeIdsAreCheap(t *testing.T) {
	s := MustParse("0,2147483647")
	assert.Equal(t, 2, s.Len())
	assert.Len(t, s.spans, 2)
	assert.True(t, s.Contains(MaxID))
	assert.False(t, s.Contains(MaxID-1))
	assert.False(t, s.Contains(1<<32-1))

	all := MustParse("0-2147483647")
	assert.Len(t, all.spans, 1)
	assert.Equal(t, uint64(1)<<31, uint64(all.Len()))
	assert.Equal(t, "0-2147483647", all.String())
	last, ok := all.Last()
	assert.True(t, ok)
	assert.Equal(t, uint32(MaxID), last)
}

func TestEncodeFlags(t *testing.T) {
	s := MustParse("0-3")
	for _, bad := range []Flags{1, 8, 16, 32, 1 | Ranges, 1 << 20} {
		_, err := s.Encode(bad)
		assert.ErrorIs(t, err, ErrFlags, "flags %#x", uint(bad))
	}
	got, err := s.Encode(Brackets)
	require.NoError(t, err)
	assert.Equal(t, "[0,1,2,3]", got)

	one := Of(42)
	for _, flags := range []Flags{0, Ranges, Brackets, Ranges | Brackets} {
		got, err := one.Encode(flags)
		require.NoError(t, err)
		assert.Equal(t, "42", got, "singletons never get brackets")
	}
}

func TestEncodedLenExact(t *testing.T) {
	for _, in := range []string{"", "0", "9-10", "0-1000", "1,7-9,16", "99-101,999999-1000001", "2147483640-2147483647"} {
		s := MustParse(in)
		for _, flags := range []Flags{0, Ranges, Brackets, Ranges | Brackets} {
			got, err := s.Encode(flags)
			require.NoError(t, err)
			assert.Equal(t, len(got), s.encodedLen(flags), "%q flags %d", in, flags)
		}
	}
}

func TestAccessors(t *testing.T) {
	s := MustParse("1,7-9,16")
	assert.Equal(t, 5, s.Len())
	assert.False(t, s.IsEmpty())
	first, ok := s.First()
	assert.True(t, ok)
	assert.Equal(t, uint32(1), first)
	last, ok := s.Last()
	assert.True(t, ok)
	assert.Equal(t, uint32(16), last)
	for id := range uint32(20) {
		want := id == 1 || (id >= 7 && id <= 9) || id == 16
		assert.Equal(t, want, s.Contains(id), "Contains(%d)", id)
	}
	// 1024 in IDset("0-9") is simply false, as in Python.
	assert.False(t, MustParse("0-9").Contains(1024))
	assert.False(t, Set{}.Contains(0))

	var got [][2]uint32
	for lo, hi := range s.Ranges() {
		got = append(got, [2]uint32{lo, hi})
	}
	assert.Equal(t, [][2]uint32{{1, 1}, {7, 9}, {16, 16}}, got)

	// Early exit from the iterators must be honoured.
	var firstTwo []uint32
	for id := range s.All() {
		firstTwo = append(firstTwo, id)
		if len(firstTwo) == 2 {
			break
		}
	}
	assert.Equal(t, []uint32{1, 7}, firstTwo)
	for range s.Ranges() {
		break
	}

	top := MustParse("2147483646-2147483647")
	assert.Equal(t, []uint32{MaxID - 1, MaxID}, ids(top), "iteration stops at MaxID without wrapping")
}

func TestConstructors(t *testing.T) {
	assert.True(t, Of().IsEmpty())
	assert.Equal(t, "1-3,7", Of(7, 3, 1, 2, 3, 3).String())
	assert.Equal(t, "0-2147483647", Of(MaxID, 0).Union(Range(1, MaxID-1)).String())
	assert.Equal(t, "5-9", Range(5, 9).String())
	assert.Equal(t, "5", Range(5, 5).String())
	assert.True(t, Range(9, 5).IsEmpty())
	assert.Panics(t, func() { Of(MaxID + 1) })
	assert.Panics(t, func() { Range(0, 1<<32-1) })
	checkInvariants(t, Of(7, 3, 1, 2, 3, 3))
}

func TestBuilder(t *testing.T) {
	var b Builder
	assert.True(t, b.Set().IsEmpty())

	b.AddRange(10, 20)
	b.Add(21) // adjacent: extends
	b.AddRange(15, 18)
	b.Add(30)
	s1 := b.Set()
	assert.Equal(t, "10-21,30", s1.String())
	checkInvariants(t, s1)

	b.Add(5) // out of order from here on
	b.AddRange(25, 31)
	b.AddRange(3, 2) // empty
	b.Add(0)
	s2 := b.Set()
	assert.Equal(t, "0,5,10-21,25-31", s2.String())
	checkInvariants(t, s2)
	assert.Equal(t, "10-21,30", s1.String(), "earlier Set unaffected by later adds")

	b.AddSet(MustParse("22-24"))
	assert.Equal(t, "0,5,10-31", b.Set().String())
	assert.Equal(t, "0,5,10-21,25-31", s2.String())

	b.Reset()
	assert.True(t, b.Set().IsEmpty())
	b.Add(MaxID)
	assert.Equal(t, "2147483647", b.Set().String())
	assert.Panics(t, func() { b.Add(MaxID + 1) })
}

func TestSetOperations(t *testing.T) {
	tests := []struct {
		a, b                   string
		union, intersect, diff string
		reverseDiff            string
	}{
		{"0-1", "1-2", "0-2", "1", "0", "2"},
		{"", "", "", "", "", ""},
		{"1-5", "", "1-5", "", "1-5", ""},
		{"1,3,5", "2,4", "1-5", "", "1,3,5", "2,4"},
		{"0-10", "3-4,7", "0-10", "3-4,7", "0-2,5-6,8-10", ""},
		{"0-10,20-30", "5-25", "0-30", "5-10,20-25", "0-4,26-30", "11-19"},
		{"0-2147483647", "0,2147483647", "0-2147483647", "0,2147483647", "1-2147483646", ""},
		{"1,7-9,16", "1,7-9,16", "1,7-9,16", "1,7-9,16", "", ""},
		{"0-3", "4-7", "0-7", "", "0-3", "4-7"},
		{"2147483647", "2147483646", "2147483646-2147483647", "", "2147483647", "2147483646"},
	}
	for _, tt := range tests {
		a, b := MustParse(tt.a), MustParse(tt.b)
		for _, c := range []struct {
			name string
			got  Set
			want string
		}{
			{"union", a.Union(b), tt.union},
			{"union reversed", b.Union(a), tt.union},
			{"intersect", a.Intersect(b), tt.intersect},
			{"intersect reversed", b.Intersect(a), tt.intersect},
			{"difference", a.Difference(b), tt.diff},
			{"reverse difference", b.Difference(a), tt.reverseDiff},
		} {
			checkInvariants(t, c.got)
			assert.Equal(t, c.want, c.got.String(), "%s(%q, %q)", c.name, tt.a, tt.b)
		}
	}
}

// TestSetOperationsModel checks the range merges against a plain map model
// on random sets that mix runs, gaps and adjacency.
func TestSetOperationsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	randomSet := func() (Set, map[uint32]bool) {
		m := map[uint32]bool{}
		var b Builder
		for range rng.IntN(8) {
			lo := uint32(rng.IntN(60))
			hi := lo + uint32(rng.IntN(6))
			b.AddRange(lo, hi)
			for id := lo; id <= hi; id++ {
				m[id] = true
			}
		}
		return b.Set(), m
	}
	fromModel := func(m map[uint32]bool) Set {
		var b Builder
		for id := range m {
			b.Add(id)
		}
		return b.Set()
	}
	for range 2000 {
		a, ma := randomSet()
		b, mb := randomSet()
		union, inter, diff := map[uint32]bool{}, map[uint32]bool{}, map[uint32]bool{}
		for id := range ma {
			union[id] = true
			if mb[id] {
				inter[id] = true
			} else {
				diff[id] = true
			}
		}
		for id := range mb {
			union[id] = true
		}
		for _, c := range []struct {
			got, want Set
		}{
			{a.Union(b), fromModel(union)},
			{a.Intersect(b), fromModel(inter)},
			{a.Difference(b), fromModel(diff)},
		} {
			checkInvariants(t, c.got)
			require.True(t, c.want.Equal(c.got), "a=%v b=%v got=%v want=%v", a, b, c.got, c.want)
		}
		require.Equal(t, len(ma), a.Len())
		for id := range uint32(70) {
			require.Equal(t, ma[id], a.Contains(id))
		}
	}
}

func TestEqual(t *testing.T) {
	assert.True(t, MustParse("1-3").Equal(MustParse("1,2,3")))
	assert.True(t, Set{}.Equal(MustParse("[]")))
	assert.False(t, MustParse("1-3").Equal(MustParse("1-4")))
	assert.False(t, MustParse("1,3").Equal(MustParse("1-2")))
	assert.False(t, MustParse("1,3").Equal(MustParse("2-3")))
}

func TestTextMarshalling(t *testing.T) {
	type config struct {
		Ranks Set `json:"ranks"`
		Cores Set `json:"cores"`
	}
	in := config{Ranks: MustParse("0-3,8")}
	data, err := json.Marshal(in)
	require.NoError(t, err)
	assert.JSONEq(t, `{"ranks":"0-3,8","cores":""}`, string(data))

	var out config
	require.NoError(t, json.Unmarshal(data, &out))
	assert.True(t, in.Ranks.Equal(out.Ranks))
	assert.True(t, out.Cores.IsEmpty())

	require.NoError(t, json.Unmarshal([]byte(`{"ranks":"[1,2,5]"}`), &out))
	assert.Equal(t, "1-2,5", out.Ranks.String())

	before := out.Ranks
	err = json.Unmarshal([]byte(`{"ranks":"3-3"}`), &out)
	assert.ErrorIs(t, err, ErrSyntax)
	assert.True(t, before.Equal(out.Ranks), "failed unmarshal leaves the value alone")

	b, err := MustParse("1-3").AppendText([]byte("ids="))
	require.NoError(t, err)
	assert.Equal(t, "ids=1-3", string(b))
}

// TestConcurrentReads gives the race detector shared sets to watch: every
// method is a read of an immutable value.
func TestConcurrentReads(t *testing.T) {
	a, b := MustParse("0-100,200-300"), MustParse("50-250")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				assert.Equal(t, "0-300", a.Union(b).String())
				assert.Equal(t, "50-100,200-250", a.Intersect(b).String())
				assert.Equal(t, "0-49,251-300", a.Difference(b).String())
				assert.True(t, a.Contains(250))
			}
		})
	}
	wg.Wait()
}
