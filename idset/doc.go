// Package idset implements RFC 22 idsets: sets of non-negative integer ids
// (broker ranks, core ids, job ids) written as "1,7-9,16" or "[0-3]".
//
// # Representation
//
// A [Set] stores a sorted slice of disjoint, non-adjacent inclusive ranges
// rather than a bitmap. flux-core's libidset uses a van Emde Boas tree sized
// to the largest id, so decoding "2147483647" there allocates a 2^31-bit
// universe (about 256 MiB). Flux idsets are almost always a few long runs
// ("0-1023") with occasional holes, so ranges keep memory and time
// proportional to the number of runs, independent of the largest id:
// "0,2147483647" costs two ranges and "0-2147483647" costs one.
// Membership is a binary search; union, intersection and difference are
// linear merges of the two range lists.
//
// A Set is an immutable value like [net/netip.Addr]: it may be copied and
// shared between goroutines freely, and every operation returns a new Set.
// The zero Set is the empty set. Use a [Builder] to assemble a large set id
// by id without quadratic copying.
//
// # Text form
//
// [Parse] accepts exactly what libidset's idset_decode accepts (one optional
// outer bracket pair, empty elements skipped, strictly ascending elements,
// no leading zeros) with one deliberate difference: every id above [MaxID]
// is rejected as out of range instead of wrapping modulo 2^32 as the C
// decoder does. [Set.String] and [Set.MarshalText] emit the canonical RANGE
// encoding ("0-2,4"), so a Set works directly as a JSON or TOML string.
package idset
