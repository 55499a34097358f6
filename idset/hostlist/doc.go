// Package hostlist implements RFC 29 hostlists: ordered lists of host names
// written compactly as "node[1-3,7],login1".
//
// # Representation
//
// A [Hostlist] is an ordered sequence of host names, duplicates allowed,
// stored as a slice of ranges (prefix, lo, hi, zero-padding width) exactly
// like flux-core's libhostlist. "foo[0-1048575]" therefore costs one range,
// not a million strings; names are only built when iterated. Hosts whose
// name has no trailing digits, and hosts produced by a bracket followed by
// a suffix ("foo[1-2]-eth0"), are kept as standalone entries that are never
// merged with neighbours, again as libhostlist does.
//
// A Hostlist is an immutable value: Append, AppendList, Sort and Uniq
// return new lists and never modify the receiver, so lists may be shared
// between goroutines. A [Builder] appends many hosts without copying the
// list each time. The zero Hostlist is the empty list.
//
// # Compatibility with libhostlist
//
// [Parse] tokenises and expands like hostlist_decode, and [Hostlist.String]
// reproduces hostlist_encode byte for byte: input order is kept, a host
// joins the previous range only when the prefix matches, the zero padding
// is compatible and the number is one more than the range's end, and
// consecutive ranges with the same prefix share one bracket group.
//
// Where libhostlist accepts input by accident, this package is stricter
// and documents the difference:
//
//   - Brackets in a token must balance. libhostlist accepts "foo[1]]" as
//     the host "foo1]"; here it is a syntax error.
//   - Range elements are plain decimal digits. libhostlist passes them to
//     strtoul, so "foo[1-]" means foo1, "foo[ 1]" and "foo[+1]" have width
//     2, and "foo[1x-3]" is foo[01-03]; all are syntax errors here.
//   - A number that does not fit in 64 bits is an error inside brackets
//     (libhostlist silently saturates it) and, in a plain host name, makes
//     the whole name a host without a numeric part (libhostlist silently
//     drops the host).
//   - Plain host names are not truncated to 1023 bytes.
//
// The width of each element in brackets is the length of that element's
// own lo text, as in libhostlist: "foo[005,4,11-13]" is foo005, foo4,
// foo11, foo12, foo13. RFC 29 says instead that the first element's width
// applies to the whole list; flux-core does not do that, so neither do we.
package hostlist
