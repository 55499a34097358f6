// Package jsonscan is fluxkit's one hand-written JSON scanner, for the hot
// paths that read small, flat JSON objects millions of times (a journal
// backlog, the jobspecs and Rs in it): encoding/json's reflection and map
// decoding cost several times more than the work itself there, which the
// paired benchmarks in package job measure.
//
// The validating walkers ([ValueEnd], [Members], [Elems], [Check]) check
// what they walk over (well-formed JSON, no depth bomb) and hand out
// sub-slices of the input instead of allocating. The Fast walkers
// ([FastMembers], [FastElems], [FastMember], [SkipValue]) are for input a
// validating walk has already checked: several times faster, and on
// malformed input they return some answer or an error, never panic.
// Values are typed as jansson types them: [Int] accepts only integers,
// [Float] integers and reals.
package jsonscan

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

var (
	ErrSyntax    = errors.New("malformed JSON")
	ErrTooDeep   = errors.New("JSON nested too deeply")
	ErrNotObject = errors.New("not a JSON object")
	ErrNotArray  = errors.New("not a JSON array")
)

const MaxDepth = 256

func SkipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// ValueEnd returns the index just past the JSON value starting at b[i].
func ValueEnd(b []byte, i int) (int, error) { return ValueEndDepth(b, i, 0) }

func ValueEndDepth(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, ErrSyntax
	}
	switch c := b[i]; {
	case c == '"':
		e, _, err := StringEnd(b, i)
		return e, err
	case c == '{' || c == '[':
		if depth >= MaxDepth {
			return 0, ErrTooDeep
		}
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		i = SkipWS(b, i+1)
		if i < len(b) && b[i] == close {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, ErrSyntax
				}
				e, _, err := StringEnd(b, i)
				if err != nil {
					return 0, err
				}
				i = SkipWS(b, e)
				if i >= len(b) || b[i] != ':' {
					return 0, ErrSyntax
				}
				i = SkipWS(b, i+1)
			}
			e, err := ValueEndDepth(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = SkipWS(b, e)
			if i >= len(b) {
				return 0, ErrSyntax
			}
			if b[i] == close {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, ErrSyntax
			}
			i = SkipWS(b, i+1)
		}
	case c == 't':
		return literalEnd(b, i, "true")
	case c == 'f':
		return literalEnd(b, i, "false")
	case c == 'n':
		return literalEnd(b, i, "null")
	default:
		e, _, err := NumberEnd(b, i)
		return e, err
	}
}

func literalEnd(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, ErrSyntax
	}
	return i + len(lit), nil
}

// StringEnd returns the index past the string starting at b[i] (a quote)
// and whether it holds escapes.
func StringEnd(b []byte, i int) (int, bool, error) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, nil
		case c == '\\':
			esc = true
			j++
			if j >= len(b) {
				return 0, false, ErrSyntax
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 {
					return 0, false, ErrSyntax
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(b[k]) {
						return 0, false, ErrSyntax
					}
				}
				j += 4
			default:
				return 0, false, ErrSyntax
			}
		case c < 0x20:
			return 0, false, ErrSyntax
		}
	}
	return 0, false, ErrSyntax
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// NumberEnd returns the index past the number at b[i] and whether it is an
// integer in jansson's sense (no fraction, no exponent).
func NumberEnd(b []byte, i int) (int, bool, error) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j >= len(b) {
		return 0, false, ErrSyntax
	}
	if b[j] == '0' {
		j++
	} else if b[j] >= '1' && b[j] <= '9' {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	} else {
		return 0, false, ErrSyntax
	}
	isInt := true
	if j < len(b) && b[j] == '.' {
		isInt = false
		j++
		s := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == s {
			return 0, false, ErrSyntax
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		isInt = false
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		s := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		if j == s {
			return 0, false, ErrSyntax
		}
	}
	return j, isInt, nil
}

// Trim returns b without surrounding whitespace.
func Trim(b []byte) []byte {
	i := SkipWS(b, 0)
	j := len(b)
	for j > i {
		switch b[j-1] {
		case ' ', '\t', '\n', '\r':
			j--
			continue
		}
		break
	}
	return b[i:j]
}

// Check reports whether b is exactly one JSON value (whitespace around
// allowed).
func Check(b []byte) error {
	i := SkipWS(b, 0)
	e, err := ValueEnd(b, i)
	if err != nil {
		return err
	}
	if SkipWS(b, e) != len(b) {
		return ErrSyntax
	}
	return nil
}

// Members calls fn for every Member of the JSON object b (trimmed, one
// value) with the decoded key and the raw value. A key holding escapes is
// decoded with encoding/json (rare).
func Members(b []byte, fn func(key string, val []byte) error) error {
	if len(b) == 0 || b[0] != '{' {
		return ErrNotObject
	}
	i := SkipWS(b, 1)
	if i < len(b) && b[i] == '}' {
		if i+1 != len(b) {
			return ErrSyntax
		}
		return nil
	}
	for {
		key, next, err := MemberKey(b, i)
		if err != nil {
			return err
		}
		i = next
		ve, err := ValueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:ve]); err != nil {
			return err
		}
		i = SkipWS(b, ve)
		if i >= len(b) {
			return ErrSyntax
		}
		if b[i] == '}' {
			if i+1 != len(b) {
				return ErrSyntax
			}
			return nil
		}
		if b[i] != ',' {
			return ErrSyntax
		}
		i = SkipWS(b, i+1)
	}
}

// MemberKey reads an object Member's key starting at b[i] (its opening
// quote) and the colon after it. It returns the key, which aliases b unless
// it had escapes, and the index of the value.
func MemberKey(b []byte, i int) (key string, next int, err error) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, ErrSyntax
	}
	e, esc, err := StringEnd(b, i)
	if err != nil {
		return "", 0, err
	}
	if esc {
		if key, err = decodeKey(b[i:e]); err != nil {
			return "", 0, err
		}
	} else {
		key = unsafe.String(unsafe.SliceData(b[i+1:]), e-i-2)
	}
	i = SkipWS(b, e)
	if i >= len(b) || b[i] != ':' {
		return "", 0, ErrSyntax
	}
	return key, SkipWS(b, i+1), nil
}

// Elems calls fn for every element of the JSON array b.
func Elems(b []byte, fn func(val []byte) error) error {
	if len(b) == 0 || b[0] != '[' {
		return ErrNotArray
	}
	i := SkipWS(b, 1)
	if i < len(b) && b[i] == ']' {
		if i+1 != len(b) {
			return ErrSyntax
		}
		return nil
	}
	for {
		ve, err := ValueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:ve]); err != nil {
			return err
		}
		i = SkipWS(b, ve)
		if i >= len(b) {
			return ErrSyntax
		}
		if b[i] == ']' {
			if i+1 != len(b) {
				return ErrSyntax
			}
			return nil
		}
		if b[i] != ',' {
			return ErrSyntax
		}
		i = SkipWS(b, i+1)
	}
}

// Member returns the raw value of key in object b, or nil.
func Member(b []byte, key string) ([]byte, error) {
	var out []byte
	err := Members(b, func(k string, v []byte) error {
		if k == key {
			out = v
		}
		return nil
	})
	return out, err
}

// Kind is the type of a JSON value, as jansson types them (an integer is a
// number without fraction or exponent).
type Kind int

// Value kinds.
const (
	None Kind = iota
	Object
	Array
	String
	Integer
	Real
	Boolean
	Null
)

// KindOf classifies a raw (valid) JSON value.
func KindOf(v []byte) Kind {
	if len(v) == 0 {
		return None
	}
	switch v[0] {
	case '{':
		return Object
	case '[':
		return Array
	case '"':
		return String
	case 't', 'f':
		return Boolean
	case 'n':
		return Null
	}
	if _, isInt, err := NumberEnd(v, 0); err == nil && isInt {
		return Integer
	}
	return Real
}

var ErrType = errors.New("wrong type")

// Unquote decodes a raw JSON string.
func Unquote(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", ErrType
	}
	e, esc, err := StringEnd(v, 0)
	if err != nil || e != len(v) {
		return "", ErrSyntax
	}
	if !esc && utf8.Valid(v[1:len(v)-1]) {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", ErrSyntax
	}
	return s, nil
}

// View is Unquote without the copy, for a string used only while
// the input is held (compared, or formatted into an error).
func View(v []byte) (string, error) {
	if len(v) >= 2 && v[0] == '"' {
		if e, esc, err := StringEnd(v, 0); err == nil && e == len(v) && !esc && utf8.Valid(v[1:len(v)-1]) {
			return unsafe.String(unsafe.SliceData(v[1:]), len(v)-2), nil
		}
	}
	return Unquote(v)
}

// Int decodes a raw JSON integer (jansson integer: no fraction/exponent).
func Int(v []byte) (int64, error) {
	if KindOf(v) != Integer {
		return 0, ErrType
	}
	neg := v[0] == '-'
	d := v
	if neg {
		d = v[1:]
	}
	if len(d) <= 18 {
		var n int64
		for _, c := range d {
			n = n*10 + int64(c-'0')
		}
		if neg {
			n = -n
		}
		return n, nil
	}
	n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(v), len(v)), 10, 64)
	if err != nil {
		return 0, ErrType
	}
	return n, nil
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// Float decodes a raw JSON number, integer or real.
func Float(v []byte) (float64, error) {
	k := KindOf(v)
	if k != Integer && k != Real {
		return 0, ErrType
	}
	// Exact fast path (Clinger): a mantissa a float64 holds exactly (at
	// most 2^53) and a power of ten it holds exactly (a fraction of at
	// most 22 digits): one correctly rounded division. That covers every
	// timestamp Flux writes (16 or 17 digits, microseconds or finer).
	var mant uint64
	digits, frac := 0, 0
	i := 0
	neg := false
	if v[0] == '-' {
		neg = true
		i = 1
	}
	inFrac := false
	ok := true
	for ; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= '0' && c <= '9':
			if mant == 0 && c == '0' && !inFrac {
				continue
			}
			mant = mant*10 + uint64(c-'0')
			digits++
			if inFrac {
				frac++
			}
		case c == '.':
			inFrac = true
		default:
			ok = false
		}
		if !ok || digits > 19 {
			ok = false
			break
		}
	}
	if ok && mant <= 1<<53 && frac < len(pow10) {
		f := float64(mant) / pow10[frac]
		if neg {
			f = -f
		}
		return f, nil
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(v), len(v)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, ErrType
	}
	if math.IsInf(f, 0) {
		return 0, ErrType
	}
	return f, nil
}

// Bool decodes a raw JSON boolean.
func Bool(v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, ErrType
}

// AppendFloat appends f as a JSON real that reads back exactly: the
// shortest decimal that does, as Python writes it, with ".0" on an
// integral value so that jansson reads a real, not an integer.
func AppendFloat(b []byte, f float64) []byte {
	a := math.Abs(f)
	switch {
	case f == math.Trunc(f) && a < 1e15:
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
		return append(b, ".0"...)
	case a >= 1e-4 && a < 1e16:
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// AppendString appends s as a JSON string.
func AppendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			enc, _ := json.Marshal(s)
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// SkipValue returns the index past the value at b[i] without validating
// it: for input already validated (a second walk over a checked message)
// it finds the same end as ValueEnd several times faster. On malformed
// input it returns some end or an error, never panics.
func SkipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, ErrSyntax
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				e, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, ErrSyntax
	}
	j := i
	for j < len(b) {
		switch b[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j, nil
		}
		j++
	}
	return j, nil
}

func skipString(b []byte, i int) (int, error) {
	e, _, err := skipStringEsc(b, i)
	return e, err
}

// skipStringEsc also reports whether the string holds escapes. Most
// strings here are short keys, where a plain loop beats IndexByte's call.
func skipStringEsc(b []byte, i int) (int, bool, error) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '"':
			return j + 1, esc, nil
		case '\\':
			esc = true
			j++
		}
	}
	return 0, false, ErrSyntax
}

// decodeKey decodes a key holding escapes (rare). It is a function of its
// own so that the string it decodes into is heap-allocated only on this
// path: taken by address in the walkers, it escaped on every call.
//
//go:noinline
func decodeKey(q []byte) (string, error) {
	var key string
	if err := json.Unmarshal(q, &key); err != nil {
		return "", ErrSyntax
	}
	return key, nil
}

// FastMembers is Members for validated input: keys and values are
// found with SkipValue.
func FastMembers(b []byte, fn func(key string, val []byte) error) error {
	if len(b) == 0 || b[0] != '{' {
		return ErrNotObject
	}
	i := SkipWS(b, 1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return ErrSyntax
		}
		e, esc, err := skipStringEsc(b, i)
		if err != nil {
			return err
		}
		raw := b[i+1 : e-1]
		var key string
		if esc {
			if key, err = decodeKey(b[i:e]); err != nil {
				return err
			}
		} else {
			key = unsafe.String(unsafe.SliceData(raw), len(raw))
		}
		i = SkipWS(b, e)
		if i >= len(b) || b[i] != ':' {
			return ErrSyntax
		}
		i = SkipWS(b, i+1)
		ve, err := SkipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:ve]); err != nil {
			return err
		}
		i = SkipWS(b, ve)
		if i >= len(b) || b[i] == '}' {
			return nil
		}
		if b[i] != ',' {
			return ErrSyntax
		}
		i = SkipWS(b, i+1)
	}
	return nil
}

// FastElems is Elems for validated input.
func FastElems(b []byte, fn func(val []byte) error) error {
	if len(b) == 0 || b[0] != '[' {
		return ErrNotArray
	}
	i := SkipWS(b, 1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for i < len(b) {
		ve, err := SkipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:ve]); err != nil {
			return err
		}
		i = SkipWS(b, ve)
		if i >= len(b) || b[i] == ']' {
			return nil
		}
		if b[i] != ',' {
			return ErrSyntax
		}
		i = SkipWS(b, i+1)
	}
	return nil
}

// FastMember is Member for validated input.
func FastMember(b []byte, key string) []byte {
	var out []byte
	_ = FastMembers(b, func(k string, v []byte) error {
		if k == key {
			out = v
		}
		return nil
	})
	return out
}
