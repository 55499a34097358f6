package idset_test

import (
	"errors"
	"fmt"

	"github.com/fluxkit/fluxkit/idset"
)

func ExampleParse() {
	ranks, err := idset.Parse("[0-3,8,10-11]")
	if err != nil {
		panic(err)
	}
	fmt.Println(ranks.Len(), ranks.Contains(8), ranks.Contains(9))
	fmt.Println(ranks)

	_, err = idset.Parse("1-3,2")
	fmt.Println(err)
	fmt.Println(errors.Is(err, idset.ErrOrder))
	// Output:
	// 7 true false
	// 0-3,8,10-11
	// idset: parsing "1-3,2": range '2' is out of order
	// true
}

func ExampleSet_Encode() {
	s := idset.MustParse("1,7-9,16")
	for _, flags := range []idset.Flags{0, idset.Ranges, idset.Ranges | idset.Brackets, idset.Brackets} {
		enc, _ := s.Encode(flags)
		fmt.Println(enc)
	}
	// Output:
	// 1,7,8,9,16
	// 1,7-9,16
	// [1,7-9,16]
	// [1,7,8,9,16]
}

func ExampleBuilder() {
	var b idset.Builder
	for _, id := range []uint32{9, 3, 4, 5, 0, 4} {
		b.Add(id)
	}
	b.AddRange(10, 12)
	fmt.Println(b.Set())
	// Output: 0,3-5,9-12
}

func ExampleSet_Intersect() {
	a, b := idset.MustParse("[0-1]"), idset.MustParse("[1-2]")
	fmt.Println(a.Intersect(b), a.Union(b), a.Difference(b))
	// Output: 1 0-2 0
}
