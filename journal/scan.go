package journal

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// The hot paths (backlog ingestion, live events) read small, flat JSON
// objects millions of times; encoding/json's reflection and map decoding
// cost several times more than the work itself, so they use this scanner.
// It validates what it walks over (well-formed JSON, no depth bomb) and
// hands out sub-slices of the input instead of allocating.

var (
	errSyntax   = errors.New("malformed JSON")
	errTooDeep  = errors.New("JSON nested too deeply")
	errNotObj   = errors.New("not a JSON object")
	errNotArray = errors.New("not a JSON array")
)

const maxDepth = 256

func skipWS(b []byte, i int) int {
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

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) (int, error) { return valueEndDepth(b, i, 0) }

func valueEndDepth(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch c := b[i]; {
	case c == '"':
		e, _, err := stringEnd(b, i)
		return e, err
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return 0, errTooDeep
		}
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == close {
			return i + 1, nil
		}
		for {
			if c == '{' {
				if i >= len(b) || b[i] != '"' {
					return 0, errSyntax
				}
				e, _, err := stringEnd(b, i)
				if err != nil {
					return 0, err
				}
				i = skipWS(b, e)
				if i >= len(b) || b[i] != ':' {
					return 0, errSyntax
				}
				i = skipWS(b, i+1)
			}
			e, err := valueEndDepth(b, i, depth+1)
			if err != nil {
				return 0, err
			}
			i = skipWS(b, e)
			if i >= len(b) {
				return 0, errSyntax
			}
			if b[i] == close {
				return i + 1, nil
			}
			if b[i] != ',' {
				return 0, errSyntax
			}
			i = skipWS(b, i+1)
		}
	case c == 't':
		return literalEnd(b, i, "true")
	case c == 'f':
		return literalEnd(b, i, "false")
	case c == 'n':
		return literalEnd(b, i, "null")
	default:
		e, _, err := numberEnd(b, i)
		return e, err
	}
}

func literalEnd(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, errSyntax
	}
	return i + len(lit), nil
}

// stringEnd returns the index past the string starting at b[i] (a quote)
// and whether it holds escapes.
func stringEnd(b []byte, i int) (int, bool, error) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, esc, nil
		case c == '\\':
			esc = true
			j++
			if j >= len(b) {
				return 0, false, errSyntax
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-j < 5 {
					return 0, false, errSyntax
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(b[k]) {
						return 0, false, errSyntax
					}
				}
				j += 4
			default:
				return 0, false, errSyntax
			}
		case c < 0x20:
			return 0, false, errSyntax
		}
	}
	return 0, false, errSyntax
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// numberEnd returns the index past the number at b[i] and whether it is an
// integer in jansson's sense (no fraction, no exponent).
func numberEnd(b []byte, i int) (int, bool, error) {
	j := i
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j >= len(b) {
		return 0, false, errSyntax
	}
	if b[j] == '0' {
		j++
	} else if b[j] >= '1' && b[j] <= '9' {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
	} else {
		return 0, false, errSyntax
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
			return 0, false, errSyntax
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
			return 0, false, errSyntax
		}
	}
	return j, isInt, nil
}

// trim returns b without surrounding whitespace.
func trim(b []byte) []byte {
	i := skipWS(b, 0)
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

// checkValue reports whether b is exactly one JSON value (whitespace around
// allowed).
func checkValue(b []byte) error {
	i := skipWS(b, 0)
	e, err := valueEnd(b, i)
	if err != nil {
		return err
	}
	if skipWS(b, e) != len(b) {
		return errSyntax
	}
	return nil
}

// eachMember calls fn for every member of the JSON object b (trimmed, one
// value) with the decoded key and the raw value. A key holding escapes is
// decoded with encoding/json (rare).
func eachMember(b []byte, fn func(key string, val []byte) error) error {
	if len(b) == 0 || b[0] != '{' {
		return errNotObj
	}
	i := skipWS(b, 1)
	if i < len(b) && b[i] == '}' {
		if i+1 != len(b) {
			return errSyntax
		}
		return nil
	}
	for {
		key, next, err := memberKey(b, i)
		if err != nil {
			return err
		}
		i = next
		ve, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:ve]); err != nil {
			return err
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return errSyntax
		}
		if b[i] == '}' {
			if i+1 != len(b) {
				return errSyntax
			}
			return nil
		}
		if b[i] != ',' {
			return errSyntax
		}
		i = skipWS(b, i+1)
	}
}

// memberKey reads an object member's key starting at b[i] (its opening
// quote) and the colon after it. It returns the key, which aliases b unless
// it had escapes, and the index of the value.
func memberKey(b []byte, i int) (key string, next int, err error) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, errSyntax
	}
	e, esc, err := stringEnd(b, i)
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
	i = skipWS(b, e)
	if i >= len(b) || b[i] != ':' {
		return "", 0, errSyntax
	}
	return key, skipWS(b, i+1), nil
}

// eachElem calls fn for every element of the JSON array b.
func eachElem(b []byte, fn func(val []byte) error) error {
	if len(b) == 0 || b[0] != '[' {
		return errNotArray
	}
	i := skipWS(b, 1)
	if i < len(b) && b[i] == ']' {
		if i+1 != len(b) {
			return errSyntax
		}
		return nil
	}
	for {
		ve, err := valueEnd(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:ve]); err != nil {
			return err
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return errSyntax
		}
		if b[i] == ']' {
			if i+1 != len(b) {
				return errSyntax
			}
			return nil
		}
		if b[i] != ',' {
			return errSyntax
		}
		i = skipWS(b, i+1)
	}
}

// member returns the raw value of key in object b, or nil.
func member(b []byte, key string) ([]byte, error) {
	var out []byte
	err := eachMember(b, func(k string, v []byte) error {
		if k == key {
			out = v
		}
		return nil
	})
	return out, err
}

// Value kinds, as jansson types them.
const (
	kindNone = iota
	kindObject
	kindArray
	kindString
	kindInt
	kindReal
	kindBool
	kindNull
)

// kind classifies a raw (valid) JSON value.
func kind(v []byte) int {
	if len(v) == 0 {
		return kindNone
	}
	switch v[0] {
	case '{':
		return kindObject
	case '[':
		return kindArray
	case '"':
		return kindString
	case 't', 'f':
		return kindBool
	case 'n':
		return kindNull
	}
	if _, isInt, err := numberEnd(v, 0); err == nil && isInt {
		return kindInt
	}
	return kindReal
}

var errType = errors.New("wrong type")

// asString decodes a raw JSON string.
func asString(v []byte) (string, error) {
	if len(v) < 2 || v[0] != '"' {
		return "", errType
	}
	e, esc, err := stringEnd(v, 0)
	if err != nil || e != len(v) {
		return "", errSyntax
	}
	if !esc && utf8.Valid(v[1:len(v)-1]) {
		return string(v[1 : len(v)-1]), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errSyntax
	}
	return s, nil
}

// viewString is asString without the copy, for a string used only while
// the input is held (compared, or formatted into an error).
func viewString(v []byte) (string, error) {
	if len(v) >= 2 && v[0] == '"' {
		if e, esc, err := stringEnd(v, 0); err == nil && e == len(v) && !esc && utf8.Valid(v[1:len(v)-1]) {
			return unsafe.String(unsafe.SliceData(v[1:]), len(v)-2), nil
		}
	}
	return asString(v)
}

// asInt decodes a raw JSON integer (jansson integer: no fraction/exponent).
func asInt(v []byte) (int64, error) {
	if kind(v) != kindInt {
		return 0, errType
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
		return 0, errType
	}
	return n, nil
}

var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// asFloat decodes a raw JSON number, integer or real.
func asFloat(v []byte) (float64, error) {
	k := kind(v)
	if k != kindInt && k != kindReal {
		return 0, errType
	}
	// Exact fast path (Clinger): up to 15 significant digits and a short
	// fraction, which covers every timestamp Flux writes.
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
		if !ok || digits > 15 {
			ok = false
			break
		}
	}
	if ok && frac < len(pow10) {
		f := float64(mant) / pow10[frac]
		if neg {
			f = -f
		}
		return f, nil
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(v), len(v)), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, errType
	}
	if math.IsInf(f, 0) {
		return 0, errType
	}
	return f, nil
}

// asBool decodes a raw JSON boolean.
func asBool(v []byte) (bool, error) {
	switch string(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, errType
}

// appendFloat appends f the way jansson's real encoding reads back exactly.
func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		b = strconv.AppendFloat(b, f, 'f', -1, 64)
		return append(b, ".0"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
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

// skipValue returns the index past the value at b[i] without validating
// it: for input already validated (a second walk over a checked message)
// it finds the same end as valueEnd several times faster. On malformed
// input it returns some end or an error, never panics.
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
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
		return 0, errSyntax
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
	return 0, false, errSyntax
}

// decodeKey decodes a key holding escapes (rare). It is a function of its
// own so that the string it decodes into is heap-allocated only on this
// path: taken by address in the walkers, it escaped on every call.
//
//go:noinline
func decodeKey(q []byte) (string, error) {
	var key string
	if err := json.Unmarshal(q, &key); err != nil {
		return "", errSyntax
	}
	return key, nil
}

// fastMembers is eachMember for validated input: keys and values are
// found with skipValue.
func fastMembers(b []byte, fn func(key string, val []byte) error) error {
	if len(b) == 0 || b[0] != '{' {
		return errNotObj
	}
	i := skipWS(b, 1)
	if i < len(b) && b[i] == '}' {
		return nil
	}
	for i < len(b) {
		if b[i] != '"' {
			return errSyntax
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
		i = skipWS(b, e)
		if i >= len(b) || b[i] != ':' {
			return errSyntax
		}
		i = skipWS(b, i+1)
		ve, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(key, b[i:ve]); err != nil {
			return err
		}
		i = skipWS(b, ve)
		if i >= len(b) || b[i] == '}' {
			return nil
		}
		if b[i] != ',' {
			return errSyntax
		}
		i = skipWS(b, i+1)
	}
	return nil
}

// fastElems is eachElem for validated input.
func fastElems(b []byte, fn func(val []byte) error) error {
	if len(b) == 0 || b[0] != '[' {
		return errNotArray
	}
	i := skipWS(b, 1)
	if i < len(b) && b[i] == ']' {
		return nil
	}
	for i < len(b) {
		ve, err := skipValue(b, i)
		if err != nil {
			return err
		}
		if err := fn(b[i:ve]); err != nil {
			return err
		}
		i = skipWS(b, ve)
		if i >= len(b) || b[i] == ']' {
			return nil
		}
		if b[i] != ',' {
			return errSyntax
		}
		i = skipWS(b, i+1)
	}
	return nil
}

// fastMember is member for validated input.
func fastMember(b []byte, key string) []byte {
	var out []byte
	_ = fastMembers(b, func(k string, v []byte) error {
		if k == key {
			out = v
		}
		return nil
	})
	return out
}
