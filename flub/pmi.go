package flub

import (
	"strconv"

	"github.com/fluxkit/fluxkit"
)

// SizeOverride applies the size override of a PMI-booted instance: attr is
// the "size" attribute (empty: no override) and initial the PMI size. The
// override must be a decimal strictly larger than initial.
func SizeOverride(initial uint32, attr string) (uint32, error) {
	if attr == "" {
		return initial, nil
	}
	s, err := strconv.ParseUint(attr, 10, 32)
	if err != nil || s <= uint64(initial) {
		return 0, fluxkit.Errorf(fluxkit.EINVAL, "size=%q: instance size may only be increased (initial size %d)", attr, initial)
	}
	return uint32(s), nil
}

// Quorum parses broker.quorum (empty: the size) and checks 1 <= q <= size.
func Quorum(size uint32, attr string) (uint32, error) {
	if attr == "" {
		return size, nil
	}
	q, err := strconv.ParseUint(attr, 10, 32)
	if err != nil || q < 1 || q > uint64(size) {
		return 0, fluxkit.Errorf(fluxkit.EINVAL, "Error parsing broker.quorum attribute %q (size %d)", attr, size)
	}
	return uint32(q), nil
}
