package idset

import (
	"strconv"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/require"
)

// mixed100k is a 100,000-id set of 10,000 singletons and 10,000 runs of
// nine ids ("0,2-10,20,22-30,..."), so both element shapes are exercised.
func mixed100k() string {
	var sb strings.Builder
	for base := 0; base < 200_000; base += 20 {
		if base > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(base))
		sb.WriteByte(',')
		sb.WriteString(strconv.Itoa(base + 2))
		sb.WriteByte('-')
		sb.WriteString(strconv.Itoa(base + 10))
	}
	return sb.String()
}

func benchParse(b *testing.B, in string) {
	testutil.BenchParse(b, in, func(s string) error { _, err := Parse(s); return err })
}

// benchEncode measures Encode of s with flags.
func benchEncode(b *testing.B, s Set, flags Flags) {
	b.ReportAllocs()
	var err error
	for b.Loop() {
		_, err = s.Encode(flags)
	}
	require.NoError(b, err)
}

func BenchmarkParse100k(b *testing.B) {
	in := mixed100k()
	require.Equal(b, 100_000, MustParse(in).Len())
	benchParse(b, in)
}

// BenchmarkParse100kSingletons is the worst case for a range list: no two
// ids adjacent, so every id is its own span.
func BenchmarkParse100kSingletons(b *testing.B) {
	var sb strings.Builder
	for i := range 100_000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.Itoa(2 * i))
	}
	benchParse(b, sb.String())
}

func BenchmarkEncode100k(b *testing.B) { benchEncode(b, MustParse(mixed100k()), Ranges) }

func BenchmarkEncode100kNoRanges(b *testing.B) { benchEncode(b, MustParse(mixed100k()), 0) }

func BenchmarkContains(b *testing.B) {
	s := MustParse(mixed100k()) // 20,000 spans
	b.ReportAllocs()
	var id uint32
	for b.Loop() {
		s.Contains(id % 200_000)
		id += 7919
	}
}

func BenchmarkUnion(b *testing.B) {
	x := MustParse(mixed100k())
	// Shifted by five ids so the spans interleave and partly overlap.
	var bld Builder
	for lo, hi := range x.Ranges() {
		bld.AddRange(lo+5, hi+5)
	}
	y := bld.Set()
	b.ReportAllocs()
	for b.Loop() {
		x.Union(y)
	}
}

func BenchmarkBuilderAscending(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		var bld Builder
		for id := uint32(0); id < 100_000; id++ {
			bld.Add(id * 2)
		}
		bld.Set()
	}
}
