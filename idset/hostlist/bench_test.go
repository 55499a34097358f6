package hostlist

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/require"
)

// list10k names 10,000 hosts one by one, with a gap after every 50 and a
// login node every 1,000, so parsing has to join and split ranges the way
// a real "flux resource list" host list does.
func list10k() string {
	var sb strings.Builder
	n := 0
	for i := 0; n < 10_000; i++ {
		if i%51 == 50 {
			continue
		}
		if n > 0 {
			sb.WriteByte(',')
		}
		if n%1000 == 999 {
			fmt.Fprintf(&sb, "login%d", n/1000)
		} else {
			fmt.Fprintf(&sb, "node%05d", i)
		}
		n++
	}
	return sb.String()
}

func benchParse(b *testing.B, in string) {
	testutil.BenchParse(b, in, func(s string) error { _, err := Parse(s); return err })
}

func BenchmarkParse10k(b *testing.B) {
	in := list10k()
	require.Equal(b, 10_000, MustParse(in).Len())
	benchParse(b, in)
}

func BenchmarkString10k(b *testing.B) {
	h := MustParse(list10k())
	b.ReportAllocs()
	for b.Loop() {
		_ = h.String()
	}
}

func BenchmarkParseCompressed10k(b *testing.B) { benchParse(b, MustParse(list10k()).String()) }

func BenchmarkAll10k(b *testing.B) {
	h := MustParse(list10k())
	b.ReportAllocs()
	for b.Loop() {
		for range h.All() {
		}
	}
}

func BenchmarkSort10k(b *testing.B) {
	// Reverse the list so sorting has real work to do.
	names := make([]string, 0, 10_000)
	for name := range MustParse(list10k()).All() {
		names = append(names, name)
	}
	for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
		names[i], names[j] = names[j], names[i]
	}
	h := Of(names...)
	b.ReportAllocs()
	for b.Loop() {
		h.Sort()
	}
}

func BenchmarkFind10k(b *testing.B) {
	h := MustParse(list10k())
	b.ReportAllocs()
	found := 0
	for b.Loop() {
		found = h.Find("node10150")
	}
	require.GreaterOrEqual(b, found, 0, "node10150 not found")
}
