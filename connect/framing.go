package connect

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/fluxkit/fluxkit"
)

// frameMagic starts every message on a local:// (or relayed ssh://) stream.
// flux-core writes it in host byte order, which on every platform Flux runs
// on (x86_64, aarch64, ppc64le) puts the bytes 12 00 ee ff on the wire;
// fluxkit writes and expects that little-endian order.
const frameMagic uint32 = 0xffee0012

// headerSize is the magic and the length of the frames that follow.
const headerSize = 8

// maxMessage bounds the length a peer may announce, so that a corrupt or
// hostile header cannot make the reader allocate gigabytes. flux-core has no
// such bound; 1 GiB is far above any message it sends (KVS values larger than
// that are refused by the KVS itself).
const maxMessage = 1 << 30

// appendMessage appends m as flux-core's sendfd() writes it: magic, a
// big-endian length that counts the frames only (not the 8-byte header), then
// each frame as a one-byte size (or 0xff and a four-byte big-endian size for
// 255 bytes and more) and its data.
func appendMessage(b []byte, m *fluxkit.Message) []byte {
	frames := m.Frames()
	n := 0
	for _, f := range frames {
		n += frameSizeLen(len(f)) + len(f)
	}
	b = binary.LittleEndian.AppendUint32(b, frameMagic)
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

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{fluxkit.ErrProto}, args...)...)
}

// decodeMessage decodes one message from the front of b. It returns the
// message and the number of bytes it used. When b holds only part of a
// message it returns io.ErrUnexpectedEOF; any other error is a protocol
// error (EPROTO).
func decodeMessage(b []byte) (*fluxkit.Message, int, error) {
	if len(b) < headerSize {
		return nil, 0, io.ErrUnexpectedEOF
	}
	n, err := parseHeader(b)
	if err != nil {
		return nil, 0, err
	}
	total := headerSize + n
	if len(b) < total {
		return nil, 0, io.ErrUnexpectedEOF
	}
	m, err := decodeBody(b[headerSize:total])
	if err != nil {
		return nil, 0, err
	}
	return m, total, nil
}

func parseHeader(b []byte) (int, error) {
	if binary.LittleEndian.Uint32(b) != frameMagic {
		return 0, protoErr("bad message magic % x", b[:4])
	}
	n := binary.BigEndian.Uint32(b[4:])
	if uint64(n) > maxMessage || uint64(n) > uint64(math.MaxInt-headerSize) {
		return 0, protoErr("message length %d too large", n)
	}
	return int(n), nil
}

func decodeBody(body []byte) (*fluxkit.Message, error) {
	var frames [][]byte
	for len(body) > 0 {
		size := int(body[0])
		body = body[1:]
		if size == 0xff {
			if len(body) < 4 {
				return nil, protoErr("truncated frame size")
			}
			size = int(binary.BigEndian.Uint32(body))
			body = body[4:]
		}
		if size > len(body) {
			return nil, protoErr("frame of %d bytes overruns the message", size)
		}
		frames = append(frames, body[:size])
		body = body[size:]
	}
	return fluxkit.DecodeFrames(frames)
}

// messageReader reads framed messages from a stream, reusing one buffer for
// message bodies (DecodeFrames copies what it keeps).
type messageReader struct {
	r   *bufio.Reader
	buf []byte
}

func newMessageReader(r io.Reader) *messageReader {
	return &messageReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// read returns the next message. A clean end of stream between messages is
// io.EOF; an end inside a message is io.ErrUnexpectedEOF.
func (mr *messageReader) read() (*fluxkit.Message, error) {
	var hdr [headerSize]byte
	if _, err := io.ReadFull(mr.r, hdr[:]); err != nil {
		return nil, err
	}
	n, err := parseHeader(hdr[:])
	if err != nil {
		return nil, err
	}
	if cap(mr.buf) < n {
		mr.buf = make([]byte, n)
	}
	body := mr.buf[:n]
	if _, err := io.ReadFull(mr.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if cap(mr.buf) > 1<<20 {
		mr.buf = nil // do not pin one huge message's buffer forever
	}
	return decodeBody(body)
}
