package idset

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Flags select an encoding for [Set.Encode]. The values are libidset's
// IDSET_FLAG_BRACKETS and IDSET_FLAG_RANGE so they can be passed through
// from C or Python callers unchanged.
type Flags uint

const (
	// Brackets wraps a set of more than one id in "[...]".
	Brackets Flags = 2
	// Ranges writes each run of consecutive ids as "lo-hi".
	Ranges Flags = 4
)

// Parse decodes an RFC 22 idset with libidset's rules: one optional outer
// pair of brackets, empty elements ignored, each element an id or "lo-hi"
// with hi > lo, elements strictly ascending (adjacent ones merge), no
// leading zeros, signs or spaces, and no id above MaxID. Errors are
// *ParseError values wrapping ErrSyntax, ErrOrder or ErrRange.
func Parse(s string) (Set, error) {
	body := s
	if len(body) >= 2 && body[0] == '[' && body[len(body)-1] == ']' {
		body = body[1 : len(body)-1]
	}
	// libidset checks brackets before looking at any element, so a stray
	// bracket is reported even when an earlier element is also bad.
	if strings.IndexByte(body, '[') >= 0 || strings.IndexByte(body, ']') >= 0 {
		return Set{}, &ParseError{Input: s, Err: ErrSyntax}
	}
	// One element per comma is an upper bound, so a single allocation
	// usually suffices; shrink below if merging left most of it unused.
	spans := make([]span, 0, strings.Count(body, ",")+1)
	var n uint32
	for i := 0; i < len(body); {
		if body[i] == ',' {
			i++
			continue
		}
		lo, hi, next, err := scanElement(body, i)
		if err == nil && len(spans) > 0 && lo <= spans[len(spans)-1].hi {
			err = ErrOrder
		}
		if err != nil {
			tok := body[i:]
			if j := strings.IndexByte(tok, ','); j >= 0 {
				tok = tok[:j]
			}
			return Set{}, &ParseError{Input: s, Token: tok, Err: err}
		}
		i = next
		n += hi - lo + 1
		if k := len(spans); k > 0 && lo == spans[k-1].hi+1 {
			spans[k-1].hi = hi
			continue
		}
		spans = append(spans, span{lo, hi})
	}
	if len(spans) == 0 {
		return Set{}, nil
	}
	if cap(spans) > 2*len(spans)+16 {
		spans = append([]span(nil), spans...)
	}
	return Set{spans: spans, n: n}, nil
}

// MustParse is like Parse but panics on error; it is meant for constants in
// tests and package initialisation.
func MustParse(s string) Set {
	set, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return set
}

// scanElement decodes the element "id" or "lo-hi" starting at s[i] and
// returns the index just past it, which must be a comma or the end.
// Syntax is judged before range, so a malformed element is reported as
// such even if it also holds a huge number.
func scanElement(s string, i int) (lo, hi uint32, next int, err error) {
	a, i, ok := scanID(s, i)
	if !ok {
		return 0, 0, 0, ErrSyntax
	}
	b, isRange := a, false
	if i < len(s) && s[i] == '-' {
		if b, i, ok = scanID(s, i+1); !ok {
			return 0, 0, 0, ErrSyntax
		}
		isRange = true
	}
	if i < len(s) && s[i] != ',' {
		return 0, 0, 0, ErrSyntax
	}
	if a > MaxID || b > MaxID {
		return 0, 0, 0, ErrRange
	}
	// libidset insists that a one-id range ("3-3") be written as the id.
	if isRange && b <= a {
		return 0, 0, 0, ErrSyntax
	}
	return uint32(a), uint32(b), i, nil
}

// scanID reads a decimal id without sign or leading zero at s[i]. Values
// above MaxID saturate at MaxID+1 so that arbitrarily long digit strings
// never overflow yet are still recognised as out of range.
func scanID(s string, i int) (v uint64, next int, ok bool) {
	if i >= len(s) || s[i] < '0' || s[i] > '9' {
		return 0, i, false
	}
	if s[i] == '0' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
		return 0, i, false
	}
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		v = v*10 + uint64(s[i]-'0')
		if v > MaxID {
			v = MaxID + 1 // stays small enough that v*10+9 cannot overflow
		}
	}
	return v, i, true
}

// String returns the RANGE encoding without brackets, e.g. "0-2,4"; the
// empty set is "". This is the form Python's flux.idset.IDset prints.
func (s Set) String() string {
	return string(s.appendEncoding(nil, Ranges))
}

// Encode renders the set with libidset's idset_encode rules: Ranges writes
// runs (even runs of two) as "lo-hi", Brackets wraps sets of more than one
// id in "[...]", no flags lists every id. The empty set is always "". Any
// flag bit other than Ranges and Brackets is an error wrapping ErrFlags.
//
// Without Ranges the output holds every id, so encoding a set such as
// "0-2147483647" that way produces gigabytes.
func (s Set) Encode(flags Flags) (string, error) {
	if flags&^(Ranges|Brackets) != 0 {
		return "", fmt.Errorf("%w: %#x", ErrFlags, uint(flags))
	}
	return string(s.appendEncoding(nil, flags)), nil
}

// AppendText appends the String form to b, implementing
// encoding.TextAppender.
func (s Set) AppendText(b []byte) ([]byte, error) {
	return s.appendEncoding(b, Ranges), nil
}

// MarshalText implements encoding.TextMarshaler with the String form, so a
// Set is a plain string in JSON and TOML.
func (s Set) MarshalText() ([]byte, error) {
	return s.appendEncoding(nil, Ranges), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using Parse. On error
// the receiver is left unchanged.
func (s *Set) UnmarshalText(text []byte) error {
	set, err := Parse(string(text))
	if err != nil {
		return err
	}
	*s = set
	return nil
}

// appendEncoding writes the encoding into exactly encodedLen bytes grown
// onto b, formatting digits in place rather than through repeated appends.
func (s Set) appendEncoding(b []byte, flags Flags) []byte {
	start, size := len(b), s.encodedLen(flags)
	b = slices.Grow(b, size)[:start+size]
	w := b[start:]
	pos := 0
	brackets := flags&Brackets != 0 && s.n > 1
	if brackets {
		w[pos] = '['
		pos++
	}
	for i, r := range s.spans {
		if i > 0 {
			w[pos] = ','
			pos++
		}
		if flags&Ranges != 0 {
			pos = putID(w, pos, r.lo)
			if r.hi != r.lo {
				w[pos] = '-'
				pos = putID(w, pos+1, r.hi)
			}
			continue
		}
		for id := r.lo; ; id++ {
			pos = putID(w, pos, id)
			if id == r.hi {
				break
			}
			w[pos] = ','
			pos++
		}
	}
	if brackets {
		w[pos] = ']'
	}
	return b
}

// putID writes id in decimal at w[pos:] and returns the position after it.
func putID(w []byte, pos int, id uint32) int {
	end := pos + digits(id)
	i := end
	for id >= 100 {
		q := id / 100
		r := (id - q*100) * 2
		i -= 2
		w[i], w[i+1] = digitPairs[r], digitPairs[r+1]
		id = q
	}
	if id >= 10 {
		w[i-2], w[i-1] = digitPairs[id*2], digitPairs[id*2+1]
	} else {
		w[i-1] = byte('0' + id)
	}
	return end
}

// encodedLen is the exact length of the encoding, so that encoding makes a
// single buffer allocation however large the set.
func (s Set) encodedLen(flags Flags) int {
	var n uint64
	if flags&Brackets != 0 && s.n > 1 {
		n += 2
	}
	for i, r := range s.spans {
		if i > 0 {
			n++
		}
		if flags&Ranges != 0 {
			n += uint64(digits(r.lo))
			if r.hi != r.lo {
				n += 1 + uint64(digits(r.hi))
			}
			continue
		}
		n += digitSum(r.lo, r.hi) + uint64(r.hi-r.lo) // digits plus commas
	}
	if n > math.MaxInt {
		return math.MaxInt
	}
	return int(n)
}

func digits(v uint32) int {
	switch {
	case v < 10:
		return 1
	case v < 100:
		return 2
	case v < 1000:
		return 3
	case v < 10000:
		return 4
	case v < 100000:
		return 5
	case v < 1000000:
		return 6
	case v < 10000000:
		return 7
	case v < 100000000:
		return 8
	case v < 1000000000:
		return 9
	}
	return 10
}

// digitSum is the total number of decimal digits in lo..hi.
func digitSum(lo, hi uint32) uint64 {
	var total uint64
	bandLo := uint64(0)
	bandHi := uint64(9)
	for d := uint64(1); bandLo <= uint64(hi); d++ {
		a, b := max(uint64(lo), bandLo), min(uint64(hi), bandHi)
		if a <= b {
			total += (b - a + 1) * d
		}
		bandLo, bandHi = bandHi+1, bandHi*10+9
	}
	return total
}
