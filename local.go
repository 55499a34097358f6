package fluxkit

import (
	"encoding/binary"
	"io"
	"math"
)

// LocalMagic is the magic that starts every message on a local:// connector
// socket. flux-core writes it in host byte order, which on every platform
// Flux runs on (x86_64, aarch64, ppc64le) puts the bytes 12 00 ee ff on the
// wire; fluxkit writes and expects that little-endian order.
const LocalMagic uint32 = 0xffee0012

// localHeader is the magic and the length of the frames that follow.
const localHeader = 8

// AppendLocal appends m in the framing of the local:// connector: magic,
// a big-endian length that counts the frames only (not the 8-byte header,
// whatever RFC 3 says), then each frame as a one-byte size (or 0xff and a
// four-byte big-endian size for 255 bytes and more) and its data.
func (m *Message) AppendLocal(b []byte) []byte {
	frames := m.Frames()
	n := 0
	for _, f := range frames {
		n += frameSizeLen(len(f)) + len(f)
	}
	b = binary.LittleEndian.AppendUint32(b, LocalMagic)
	b = binary.BigEndian.AppendUint32(b, uint32(n))
	for _, f := range frames {
		if len(f) < 0xff {
			b = append(b, byte(len(f)))
		} else {
			b = append(b, 0xff)
			b = binary.BigEndian.AppendUint32(b, uint32(len(f)))
		}
		b = append(b, f...)
	}
	return b
}

func frameSizeLen(n int) int {
	if n < 0xff {
		return 1
	}
	return 5
}

// DecodeLocal decodes one local:// message from the front of b. It returns
// the message and the number of bytes it used. When b holds only part of a
// message it returns io.ErrUnexpectedEOF and the caller reads more; any other
// error is a protocol error.
func DecodeLocal(b []byte) (*Message, int, error) {
	if len(b) < localHeader {
		return nil, 0, io.ErrUnexpectedEOF
	}
	if binary.LittleEndian.Uint32(b) != LocalMagic {
		return nil, 0, protoErr("bad local:// magic % x", b[:4])
	}
	n := binary.BigEndian.Uint32(b[4:])
	if uint64(n) > uint64(math.MaxInt-localHeader) {
		return nil, 0, protoErr("message length %d too large", n)
	}
	total := localHeader + int(n)
	if len(b) < total {
		return nil, 0, io.ErrUnexpectedEOF
	}
	body := b[localHeader:total]
	var frames [][]byte
	for len(body) > 0 {
		size := int(body[0])
		body = body[1:]
		if size == 0xff {
			if len(body) < 4 {
				return nil, 0, protoErr("truncated frame size")
			}
			size = int(binary.BigEndian.Uint32(body))
			body = body[4:]
		}
		if size > len(body) {
			return nil, 0, protoErr("frame of %d bytes overruns the message", size)
		}
		frames = append(frames, body[:size])
		body = body[size:]
	}
	m, err := DecodeFrames(frames)
	if err != nil {
		return nil, 0, err
	}
	return m, total, nil
}
