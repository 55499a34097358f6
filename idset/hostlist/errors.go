package hostlist

import (
	"errors"
	"strconv"
	"syscall"

	"github.com/fluxkit/fluxkit/internal/errtext"
)

// Sentinel errors wrapped by [ParseError]; match them with [errors.Is].
var (
	// ErrSyntax reports malformed input: unbalanced brackets, an empty or
	// malformed range element, or a range whose lo exceeds its hi.
	ErrSyntax = errors.New("hostlist: invalid syntax")
	// ErrRange reports input beyond libhostlist's limits: a range of more
	// than MaxRangeSize hosts, more than MaxBracketRanges elements in one
	// bracket, or a number that does not fit in 64 bits.
	ErrRange = errors.New("hostlist: out of range")
)

// ParseError describes why a string is not a valid hostlist.
type ParseError struct {
	// Input is the complete string given to Parse.
	Input string
	// Token is the separator-delimited expression that failed, e.g.
	// "foo[3-1]".
	Token string
	// Reason says what is wrong with Token.
	Reason string
	// Err is ErrSyntax or ErrRange.
	Err error
}

func (e *ParseError) Error() string {
	reason := e.Reason
	if reason == "" && e.Err != nil {
		reason = e.Err.Error()
	}
	return "hostlist: parsing " + strconv.Quote(errtext.Shorten(e.Input)) + ": " +
		strconv.Quote(errtext.Shorten(e.Token)) + ": " + reason
}

// Unwrap exposes the sentinel so errors.Is(err, ErrSyntax) works.
func (e *ParseError) Unwrap() error { return e.Err }

// Is lets callers that think in C errno terms match EINVAL and ERANGE, the
// codes hostlist_decode sets for the same failures.
func (e *ParseError) Is(target error) bool {
	switch target {
	case syscall.EINVAL:
		return e.Err == ErrSyntax
	case syscall.ERANGE:
		return e.Err == ErrRange
	}
	return false
}
