package idset

import (
	"errors"
	"fmt"
	"strconv"
)

type ranksKind uint8

const (
	// ranksAll is deliberately zero so that the zero Ranks matches every
	// rank, which is the modprobe task default.
	ranksAll ranksKind = iota
	ranksGreater
	ranksLess
	ranksSet
)

// Ranks is a flux-modprobe rank condition: the value of a task's "ranks"
// key. It is "all", ">N" (rank greater than N), "<N" (rank less than N) or
// an idset of ranks. The zero value means "all", matching the task default,
// so a Ranks field left unset in a config struct enables the task
// everywhere.
type Ranks struct {
	kind ranksKind
	n    int64 // bound for ranksGreater and ranksLess
	set  Set   // members for ranksSet
}

// ParseRanks parses a rank condition the way flux/modprobe.py does:
//
//   - "all" (exactly, case-sensitive) matches every rank;
//   - ">N" and "<N" compare against the integer N;
//   - anything else is an idset, and "" is the empty set matching no rank.
//
// N is parsed with strconv.ParseInt in base 10, so an optional sign and
// 64-bit range are accepted ("<-1" matches nothing, ">-1" everything).
// Python's int() is more lenient: it also accepts surrounding whitespace,
// "_" digit separators and integers of any size. Those spellings are
// rejected here on purpose: they never appear in Flux's own configuration,
// and refusing them keeps String a faithful round trip. As in Python there
// is no ">=", "<=", "=" or "!".
//
// An invalid idset yields an error whose text is Python's,
// "ranks: invalid idset: <arg>", and which wraps the *ParseError.
func ParseRanks(s string) (Ranks, error) {
	if s == "all" {
		return Ranks{}, nil
	}
	if s != "" && (s[0] == '>' || s[0] == '<') {
		n, err := strconv.ParseInt(s[1:], 10, 64)
		if err != nil {
			sentinel := ErrSyntax
			if errors.Is(err, strconv.ErrRange) {
				sentinel = ErrRange
			}
			return Ranks{}, fmt.Errorf("ranks: invalid rank condition %q: %w", s, sentinel)
		}
		kind := ranksGreater
		if s[0] == '<' {
			kind = ranksLess
		}
		return Ranks{kind: kind, n: n}, nil
	}
	set, err := Parse(s)
	if err != nil {
		return Ranks{}, &ranksError{arg: s, err: err}
	}
	return Ranks{kind: ranksSet, set: set}, nil
}

// ranksError carries modprobe's exact message while keeping the parse
// failure reachable through errors.As and errors.Is.
type ranksError struct {
	arg string
	err error
}

func (e *ranksError) Error() string { return "ranks: invalid idset: " + e.arg }
func (e *ranksError) Unwrap() error { return e.err }

// Test reports whether the condition holds for rank.
func (r Ranks) Test(rank uint32) bool {
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
