package modprobe

import (
	"errors"
	"strconv"

	"github.com/fluxkit/fluxkit/idset"
)

type ranksKind uint8

const (
	// ranksAll is zero so that the zero Ranks is "all", the default of
	// every task and module.
	ranksAll ranksKind = iota
	ranksGreater
	ranksLess
	ranksSet
)

// Ranks is a rank condition, the value of a task's or module's "ranks"
// key: "all", ">N" (ranks above N), "<N" (ranks below N) or an RFC 22
// idset of ranks. The zero Ranks is "all", the default; the empty idset
// ("" or "[]") is a different value that matches no rank.
type Ranks struct {
	kind ranksKind
	n    int64     // bound for ranksGreater and ranksLess
	set  idset.Set // members for ranksSet
}

// ParseRanks parses a rank condition as flux-core's modprobe does:
//
//   - "all" (exactly, case-sensitive) matches every rank;
//   - ">N" and "<N" compare against the integer N;
//   - anything else is an idset, and "" is the empty set matching no rank.
//
// Errors carry flux-core's texts: "ranks: invalid idset: ARG" wrapping the
// *idset.ParseError, and Python's "invalid literal for int() with base 10:
// 'X'" wrapping idset.ErrSyntax or idset.ErrRange.
//
// N is parsed with strconv.ParseInt in base 10, so an optional sign and
// 64-bit range are accepted ("<-1" matches nothing, ">-1" everything).
// Python's int() also accepts surrounding whitespace, "_" separators and
// integers of any size; those spellings are refused on purpose: they never
// appear in Flux's own configuration, and refusing them keeps String a
// faithful round trip. As in flux-core there is no ">=", "<=", "=" or "!".
func ParseRanks(s string) (Ranks, error) {
	if s == "all" {
		return Ranks{}, nil
	}
	if s != "" && (s[0] == '>' || s[0] == '<') {
		n, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil {
			cause := idset.ErrSyntax
			if errors.Is(err, strconv.ErrRange) {
				cause = idset.ErrRange
			}
			return Ranks{}, &intLiteralError{lit: s[1:], err: cause}
		}
		kind := ranksGreater
		if s[0] == '<' {
			kind = ranksLess
		}
		return Ranks{kind: kind, n: n}, nil
	}
	set, err := idset.Parse(s)
	if err != nil {
		return Ranks{}, &ranksError{arg: s, err: err}
	}
	return Ranks{kind: ranksSet, set: set}, nil
}

// MustParseRanks is ParseRanks for literals; it panics on error.
func MustParseRanks(s string) Ranks {
	r, err := ParseRanks(s)
	if err != nil {
		panic(err)
	}
	return r
}

// ranksError carries flux-core's message while keeping the idset's parse
// failure reachable through errors.As and errors.Is.
type ranksError struct {
	arg string
	err error
}

func (e *ranksError) Error() string { return "ranks: invalid idset: " + e.arg }
func (e *ranksError) Unwrap() error { return e.err }

// intLiteralError is Python's int() failure, which flux-core reports for a
// bad ">N" or "<N".
type intLiteralError struct {
	lit string
	err error
}

func (e *intLiteralError) Error() string {
	return "invalid literal for int() with base 10: " + pyQuote(e.lit)
}
func (e *intLiteralError) Unwrap() error { return e.err }

// Contains reports whether the condition holds for rank.
func (r Ranks) Contains(rank uint32) bool {
	switch r.kind {
	case ranksGreater:
		return int64(rank) > r.n
	case ranksLess:
		return int64(rank) < r.n
	case ranksSet:
		return r.set.Contains(rank)
	}
	return true
}

// String returns "all", ">N", "<N" or the RANGE encoding of the idset
// (possibly ""), which ParseRanks maps back to an equal condition.
func (r Ranks) String() string {
	switch r.kind {
	case ranksGreater:
		return ">" + strconv.FormatInt(r.n, 10)
	case ranksLess:
		return "<" + strconv.FormatInt(r.n, 10)
	case ranksSet:
		return r.set.String()
	}
	return "all"
}

// MarshalText implements encoding.TextMarshaler using String.
func (r Ranks) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler using ParseRanks. On
// error the receiver is left unchanged.
func (r *Ranks) UnmarshalText(text []byte) error {
	v, err := ParseRanks(string(text))
	if err != nil {
		return err
	}
	*r = v
	return nil
}
