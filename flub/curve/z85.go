package curve

import (
	"errors"
	"fmt"
)

// ErrZ85 is wrapped by every Z85 and key-text error.
var ErrZ85 = errors.New("curve: invalid Z85")

const z85Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"

// z85Value maps a byte to its digit value, or 0xFF when the byte is not in
// the alphabet. A function over a switch-free table keeps it immutable.
func z85Value(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'z':
		return c - 'a' + 10
	case c >= 'A' && c <= 'Z':
		return c - 'A' + 36
	}
	switch c {
	case '.':
		return 62
	case '-':
		return 63
	case ':':
		return 64
	case '+':
		return 65
	case '=':
		return 66
	case '^':
		return 67
	case '!':
		return 68
	case '/':
		return 69
	case '*':
		return 70
	case '?':
		return 71
	case '&':
		return 72
	case '<':
		return 73
	case '>':
		return 74
	case '(':
		return 75
	case ')':
		return 76
	case '[':
		return 77
	case ']':
		return 78
	case '{':
		return 79
	case '}':
		return 80
	case '@':
		return 81
	case '%':
		return 82
	case '$':
		return 83
	case '#':
		return 84
	}
	return 0xFF
}

// Z85Encode encodes src as Z85 (ZeroMQ RFC 32). The length of src must be a
// multiple of 4. Like libzmq, an empty input encodes to the empty string.
func Z85Encode(src []byte) (string, error) {
	if len(src)%4 != 0 {
		return "", fmt.Errorf("%w: binary length %d is not a multiple of 4", ErrZ85, len(src))
	}
	out := make([]byte, 0, len(src)/4*5)
	for i := 0; i < len(src); i += 4 {
		v := uint32(src[i])<<24 | uint32(src[i+1])<<16 | uint32(src[i+2])<<8 | uint32(src[i+3])
		var group [5]byte
		for j := 4; j >= 0; j-- {
			group[j] = z85Alphabet[v%85]
			v /= 85
		}
		out = append(out, group[:]...)
	}
	return string(out), nil
}

// Z85Decode decodes Z85 text with libzmq's validation: the text must be at
// least 5 characters and a multiple of 5 long (so the empty string is
// rejected, as libzmq does), use only the Z85 alphabet, and no 5-character
// group may exceed 0xFFFFFFFF.
func Z85Decode(s string) ([]byte, error) {
	if len(s) < 5 || len(s)%5 != 0 {
		return nil, fmt.Errorf("%w: text length %d is not a positive multiple of 5", ErrZ85, len(s))
	}
	out := make([]byte, 0, len(s)/5*4)
	for i := 0; i < len(s); i += 5 {
		// A uint64 accumulator cannot overflow over five digits (85^5 < 2^33),
		// so a single range check per group equals libzmq's per-step checks.
		var v uint64
		for j := range 5 {
			d := z85Value(s[i+j])
			if d == 0xFF {
				return nil, fmt.Errorf("%w: byte %#02x at offset %d is not in the alphabet", ErrZ85, s[i+j], i+j)
			}
			v = v*85 + uint64(d)
		}
		if v > 0xFFFFFFFF {
			return nil, fmt.Errorf("%w: group at offset %d exceeds 32 bits", ErrZ85, i)
		}
		out = append(out, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return out, nil
}
