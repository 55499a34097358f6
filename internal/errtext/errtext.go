// Package errtext holds the policy parsers' error messages share: an input
// is repeated in a message only up to a bound, because inputs can be
// megabytes long and a log line should not be.
package errtext

// MaxQuoted is how many bytes of an input a message repeats.
const MaxQuoted = 64

// Shorten returns s, or its first MaxQuoted bytes followed by "..." when
// it is longer.
func Shorten(s string) string {
	if len(s) <= MaxQuoted {
		return s
	}
	return s[:MaxQuoted] + "..."
}
