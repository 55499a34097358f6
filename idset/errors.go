package idset

import (
	"errors"
	"strconv"
	"syscall"

	"github.com/fluxkit/fluxkit/internal/errtext"
)

// Sentinel errors wrapped by [ParseError]; match them with [errors.Is].
var (
	// ErrSyntax reports malformed input: a bad character, a leading zero,
	// a range whose hi does not exceed its lo, or stray brackets.
	ErrSyntax = errors.New("idset: invalid syntax")
	// ErrOrder reports an element that does not start above the previous
	// element's end (descending order, duplicates or overlap).
	ErrOrder = errors.New("idset: ids out of order")
	// ErrRange reports an id above MaxID.
	ErrRange = errors.New("idset: id out of range")
	// ErrFlags reports encode flags other than Ranges and Brackets.
	ErrFlags = errors.New("idset: invalid encode flags")
)

// ParseError describes why a string is not a valid idset.
type ParseError struct {
	// Input is the complete string given to Parse.
	Input string
	// Token is the comma-separated element that failed. It is empty when
	// the fault is in the brackets, which concern the string as a whole.
	Token string
	// Err is ErrSyntax, ErrOrder or ErrRange.
	Err error
}

// Error renders the libidset diagnostic for the failure so messages read
// the same as flux-core's, prefixed with the (possibly shortened) input.
func (e *ParseError) Error() string {
	var detail string
	switch {
	case e.Err == ErrSyntax && e.Token == "":
		detail = "mismatched or nested brackets"
	case e.Err == ErrSyntax:
		detail = "error parsing range '" + errtext.Shorten(e.Token) + "'"
	case e.Err == ErrOrder:
		detail = "range '" + errtext.Shorten(e.Token) + "' is out of order"
	case e.Err == ErrRange:
		detail = "set universe size would exceed maximum (range '" + errtext.Shorten(e.Token) + "')"
	case e.Err != nil:
		detail = e.Err.Error()
	default:
		detail = "invalid idset"
	}
	return "idset: parsing " + strconv.Quote(errtext.Shorten(e.Input)) + ": " + detail
}

// Unwrap exposes the sentinel so errors.Is(err, ErrSyntax) works.
func (e *ParseError) Unwrap() error { return e.Err }

// Is lets callers that think in C errno terms match EINVAL and ERANGE, the
// codes libidset sets for the same failures.
func (e *ParseError) Is(target error) bool {
	switch target {
	case syscall.EINVAL:
		return e.Err == ErrSyntax || e.Err == ErrOrder
	case syscall.ERANGE:
		return e.Err == ErrRange
	}
	return false
}
