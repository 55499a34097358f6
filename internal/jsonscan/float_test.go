package jsonscan_test

import (
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Float's fast path reads exactly what strconv reads: timestamps as Flux
// writes them, and random mantissas up to 2^53 with up to 22 fraction
// digits, where it takes the fast path, and beyond, where it does not.
func TestFloatExact(t *testing.T) {
	cases := []string{"1796403402.262248", "1796403402.2622481", "1796403402.0", "1796403402", "0.001",
		"-1796403402.262248", "9007199254740992", "9007199254740993", "0.9007199254740993", "1e3", "123456789012345678901234"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		mant := rng.Uint64N(1<<54 + 10)
		s := strconv.FormatUint(mant, 10)
		if f := rng.IntN(24); f > 0 && f < len(s) {
			s = s[:len(s)-f] + "." + s[len(s)-f:]
		}
		cases = append(cases, s)
	}
	for _, s := range cases {
		got, err := jsonscan.Float([]byte(s))
		want, werr := strconv.ParseFloat(s, 64)
		if err != nil || werr != nil || got != want {
			t.Fatalf("Float(%s) = %v %v, strconv %v %v", s, got, err, want, werr)
		}
	}
}
