package hostlist

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit/internal/errtext"
)

// Parse decodes a hostlist string such as "foo[1-3,5] bar7,baz" with
// libhostlist's rules (see the package documentation for the few places
// where it is deliberately stricter). Errors are *ParseError values
// wrapping ErrSyntax or ErrRange.
func Parse(s string) (Hostlist, error) {
	var b Builder
	b.fromInput = true
	for i := 0; i < len(s); {
		if isSep(s[i]) {
			i++
			continue
		}
		// Separators inside brackets do not end a token, so that
		// "foo[1, 3]" and "node[01-30]-[1-2,6]" stay whole.
		start, depth, unbalanced := i, 0, false
		for ; i < len(s) && (depth != 0 || !isSep(s[i])); i++ {
			switch s[i] {
			case '[':
				depth++
			case ']':
				depth--
				unbalanced = unbalanced || depth < 0
			}
		}
		tok := s[start:i]
		if unbalanced || depth != 0 {
			return Hostlist{}, &ParseError{Input: s, Token: tok, Reason: "mismatched brackets", Err: ErrSyntax}
		}
		if reason, err := b.appendToken(tok); err != nil {
			return Hostlist{}, &ParseError{Input: s, Token: tok, Reason: reason, Err: err}
		}
	}
	return b.take(), nil
}

// MustParse is like Parse but panics on error; it is meant for constants in
// tests and package initialisation.
func MustParse(s string) Hostlist {
	h, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return h
}

func isSep(c byte) bool { return c == ',' || c == ' ' || c == '\t' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// appendToken adds one balanced expression. On failure it returns why.
func (b *Builder) appendToken(tok string) (string, error) {
	open := strings.IndexByte(tok, '[')
	if open < 0 {
		b.appendName(tok)
		return "", nil
	}
	// Balance guarantees a ']' after the first '['. Anything after that
	// ']' is a literal suffix, even if it holds another bracket group.
	closing := open + 1 + strings.IndexByte(tok[open+1:], ']')
	prefix, list, suffix := tok[:open], tok[open+1:closing], tok[closing+1:]

	// Validate the whole list before appending any of it, so an error
	// leaves nothing half-added.
	elems := 0
	for elem := range strings.SplitSeq(list, ",") {
		elems++
		if elems > MaxBracketRanges {
			return "more than " + strconv.Itoa(MaxBracketRanges) + " ranges in brackets", ErrRange
		}
		if _, _, _, reason, err := parseElement(elem); err != nil {
			return reason, err
		}
	}
	prefix = b.intern(prefix)
	if suffix != "" {
		suffix = strings.Clone(suffix)
	}
	for elem := range strings.SplitSeq(list, ",") {
		lo, hi, width, _, _ := parseElement(elem)
		r := hostRange{prefix: prefix, lo: lo, hi: hi, width: width}
		if suffix != "" {
			r.kind, r.suffix = kindExpanded, suffix
		}
		b.push(r)
	}
	return "", nil
}

// parseElement decodes "lo" or "lo-hi" inside brackets. The width is the
// length of the lo text, so leading zeros there set the padding.
func parseElement(elem string) (lo, hi uint64, width int, reason string, err error) {
	loText, hiText, isRange := strings.Cut(elem, "-")
	if loText == "" || (isRange && hiText == "") {
		if elem == "" {
			return 0, 0, 0, "empty element in brackets", ErrSyntax
		}
		return 0, 0, 0, "invalid range '" + errtext.Shorten(elem) + "'", ErrSyntax
	}
	if !allDigits(loText) || !allDigits(hiText) {
		return 0, 0, 0, "invalid range '" + errtext.Shorten(elem) + "'", ErrSyntax
	}
	var ok bool
	if lo, ok = parseDecimal(loText); !ok {
		return 0, 0, 0, "number in '" + errtext.Shorten(elem) + "' does not fit in 64 bits", ErrRange
	}
	hi = lo
	if isRange {
		if hi, ok = parseDecimal(hiText); !ok {
			return 0, 0, 0, "number in '" + errtext.Shorten(elem) + "' does not fit in 64 bits", ErrRange
		}
	}
	if lo > hi {
		return 0, 0, 0, "range '" + errtext.Shorten(elem) + "' is decreasing", ErrSyntax
	}
	if hi-lo >= MaxRangeSize {
		return 0, 0, 0, "range '" + errtext.Shorten(elem) + "' has more than " + strconv.Itoa(MaxRangeSize) + " hosts", ErrRange
	}
	return lo, hi, len(loText), "", nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// parseDecimal converts a digit string of any length, leading zeros
// included, reporting false if the value exceeds 64 bits.
func parseDecimal(s string) (uint64, bool) {
	s = strings.TrimLeft(s, "0")
	if s == "" {
		return 0, true
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// splitName splits a plain host name into prefix and trailing number, as
// libhostlist does: "foo-1a-2" is foo-1a- and 2, "host" has no number.
func splitName(name string) hostRange {
	i := len(name)
	for i > 0 && isDigit(name[i-1]) {
		i--
	}
	if i == len(name) {
		return hostRange{prefix: name, kind: kindSingle}
	}
	v, ok := parseDecimal(name[i:])
	if !ok {
		// libhostlist drops such a host; keeping the name whole loses
		// nothing and still round-trips.
		return hostRange{prefix: name, kind: kindSingle}
	}
	return hostRange{prefix: name[:i], lo: v, hi: v, width: len(name) - i}
}

// String returns the compressed encoding libhostlist's hostlist_encode
// produces, e.g. "fooi,foo[1-3,5,7-8]".
func (h Hostlist) String() string {
	return string(h.appendEncoding(nil))
}

// AppendText appends the String form to b, implementing
// encoding.TextAppender.
func (h Hostlist) AppendText(b []byte) ([]byte, error) {
	return h.appendEncoding(b), nil
}

// MarshalText implements encoding.TextMarshaler with the String form, so a
// Hostlist is a plain string in JSON and TOML.
func (h Hostlist) MarshalText() ([]byte, error) {
	return h.appendEncoding(nil), nil
}

// UnmarshalText implements encoding.TextUnmarshaler using Parse. On error
// the receiver is left unchanged.
func (h *Hostlist) UnmarshalText(text []byte) error {
	l, err := Parse(string(text))
	if err != nil {
		return err
	}
	*h = l
	return nil
}

func (h Hostlist) appendEncoding(b []byte) []byte {
	b = slices.Grow(b, h.encodedLenEstimate())
	for i := 0; i < len(h.ranges); {
		if i > 0 {
			b = append(b, ',')
		}
		r := &h.ranges[i]
		switch r.kind {
		case kindSingle:
			b = append(b, r.prefix...)
			i++
			continue
		case kindExpanded:
			for v := r.lo; ; v++ {
				b = r.appendHost(b, v)
				if v == r.hi {
					break
				}
				b = append(b, ',')
			}
			i++
			continue
		}
		// Consecutive numbered ranges with the same prefix share one
		// bracket group, whatever their widths.
		j := i + 1
		for j < len(h.ranges) && h.ranges[j].kind == kindRange && h.ranges[j].prefix == r.prefix {
			j++
		}
		brackets := j-i > 1 || r.lo != r.hi
		b = append(b, r.prefix...)
		if brackets {
			b = append(b, '[')
		}
		for k := i; k < j; k++ {
			if k > i {
				b = append(b, ',')
			}
			x := &h.ranges[k]
			b = appendPadded(b, x.lo, x.width)
			if x.hi != x.lo {
				b = append(b, '-')
				b = appendPadded(b, x.hi, x.width)
			}
		}
		if brackets {
			b = append(b, ']')
		}
		i = j
	}
	return b
}

// encodedLenEstimate is an upper bound on the encoding's length (prefixes
// are counted once per range rather than once per bracket group), so
// encoding rarely needs to grow its buffer.
func (h Hostlist) encodedLenEstimate() int {
	n := 0
	for i := range h.ranges {
		r := &h.ranges[i]
		switch r.kind {
		case kindSingle:
			n += len(r.prefix) + 1
		case kindExpanded:
			per := len(r.prefix) + len(r.suffix) + max(r.width, digits(r.hi)) + 1
			if c := r.count(); per > math.MaxInt/c-n {
				return n // absurdly large: let append grow instead
			}
			n += per * r.count()
		default:
			n += len(r.prefix) + 2*max(r.width, digits(r.hi)) + 4
		}
	}
	return n
}

// appendPadded appends v in decimal, left-padded with zeros to width.
func appendPadded(b []byte, v uint64, width int) []byte {
	for pad := width - digits(v); pad > 0; pad-- {
		b = append(b, '0')
	}
	return strconv.AppendUint(b, v, 10)
}

func digits(v uint64) int {
	n := 1
	for v >= 10 {
		v /= 10
		n++
	}
	return n
}

// padding is the number of zeros v gets when printed at width w.
func padding(v uint64, w int) int {
	return max(0, w-digits(v))
}

// joinWidth reports whether a range starting at m with width wm may
// continue one starting at n with width wn without changing how any host
// prints, and the width the joined range should use. As in libhostlist
// only the two starting numbers need checking: if n prints the same under
// wm, the joined range can take wm; if m prints the same under wn, it can
// take wn (foo9,foo10 -> foo[9-10]; foo09,foo10 -> foo[09-10]; but
// foo01,foo1 cannot join).
func joinWidth(n uint64, wn int, m uint64, wm int) (int, bool) {
	if wn == wm {
		return wn, true
	}
	if padding(n, wn) == padding(n, wm) {
		return wm, true
	}
	if padding(m, wm) == padding(m, wn) {
		return wn, true
	}
	return 0, false
}
