package curve

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ZMTP frame flags (ZeroMQ RFC 23, "Framing").
const (
	flagMore     = 0x01
	flagLong     = 0x02
	flagCommand  = 0x04
	flagReserved = 0xF8
)

// Inner flags: the first plaintext byte of a MESSAGE box (libzmq's msg_t
// bits). COMMAND sits at bit 1 here, not at the wire frame's bit 2.
const (
	innerMore    = 0x01
	innerCommand = 0x02
)

const greetingLen = 64

// writeGreeting fills g with a ZMTP 3.1 greeting for mechanism. Like libzmq,
// the signature padding is the routing-id length + 1 and the as-server byte
// is 0 in both roles: peers decide roles from their own configuration.
func makeGreeting(mechanism string, major, minor byte, idLen int) [greetingLen]byte {
	var g [greetingLen]byte
	g[0] = 0xFF
	binary.BigEndian.PutUint64(g[1:9], uint64(idLen)+1)
	g[9] = 0x7F
	g[10] = major
	g[11] = minor
	copy(g[12:32], mechanism)
	return g
}

// checkGreeting validates a peer's greeting: a ZMTP signature, version 3.0
// or later, and exactly the expected mechanism. The as-server byte is
// deliberately ignored (libzmq sends 0 in both roles).
func checkGreeting(g []byte, mechanism string) error {
	if len(g) != greetingLen || g[0] != 0xFF || g[9]&0x01 == 0 {
		return fmt.Errorf("not a ZMTP 3 greeting signature")
	}
	if g[10] < 3 {
		return fmt.Errorf("ZMTP version %d.%d is older than 3.0", g[10], g[11])
	}
	var want [20]byte
	copy(want[:], mechanism)
	if !bytes.Equal(g[12:32], want[:]) {
		return fmt.Errorf("mechanism %q, want %q", strings.TrimRight(string(g[12:32]), "\x00"), mechanism)
	}
	return nil
}

// appendFrameHeader appends a ZMTP frame header, short form for bodies up to
// 255 bytes as senders must use.
func appendFrameHeader(dst []byte, flags byte, size int) []byte {
	if size > 255 {
		dst = append(dst, flags|flagLong)
		return binary.BigEndian.AppendUint64(dst, uint64(size))
	}
	return append(dst, flags&^flagLong, byte(size))
}

// appendCommandFrame appends a whole handshake command frame.
func appendCommandFrame(dst, body []byte) []byte {
	dst = appendFrameHeader(dst, flagCommand, len(body))
	return append(dst, body...)
}

// retainLimit is the largest frame buffer a connection keeps between frames;
// a rare huge frame should not pin its memory for the connection's life.
const retainLimit = 1 << 20

// growStep is the first allocation for a frame whose body is larger than
// the buffer in hand; the buffer then doubles as bytes actually arrive, so
// an announced size costs memory only once the peer has sent that much.
const growStep = 64 << 10

// frameReader reads ZMTP frames from a peer, enforcing a maximum size
// before allocating.
type frameReader struct {
	r   *bufio.Reader
	max uint64
	buf []byte
}

// next returns the next frame. body is valid until the following call.
func (fr *frameReader) next() (flags byte, body []byte, err error) {
	if cap(fr.buf) > retainLimit {
		fr.buf = nil
	}
	var hdr [9]byte
	if _, err = io.ReadFull(fr.r, hdr[:2]); err != nil {
		return 0, nil, err
	}
	flags = hdr[0]
	if flags&flagReserved != 0 {
		return 0, nil, fmt.Errorf("reserved frame flag bits %#02x set", flags&flagReserved)
	}
	size := uint64(hdr[1])
	if flags&flagLong != 0 {
		if _, err = io.ReadFull(fr.r, hdr[2:9]); err != nil {
			return 0, nil, err
		}
		size = binary.BigEndian.Uint64(hdr[1:9])
	}
	if size > fr.max {
		return 0, nil, fmt.Errorf("frame of %d bytes exceeds the %d-byte limit", size, fr.max)
	}
	body, err = fr.readBody(int(size))
	return flags, body, err
}

func (fr *frameReader) readBody(size int) ([]byte, error) {
	if size <= cap(fr.buf) {
		fr.buf = fr.buf[:size]
		_, err := io.ReadFull(fr.r, fr.buf)
		return fr.buf, err
	}
	buf := fr.buf[:0]
	for len(buf) < size {
		want := min(size, max(2*len(buf), growStep))
		if cap(buf) < want {
			nb := make([]byte, len(buf), want)
			copy(nb, buf)
			buf = nb
		}
		n, err := io.ReadFull(fr.r, buf[len(buf):want])
		buf = buf[:len(buf)+n]
		if err != nil {
			fr.buf = buf
			return nil, err
		}
	}
	fr.buf = buf
	return buf, nil
}

// hasCommandName reports whether a command body starts with the given
// length-prefixed name.
func hasCommandName(body []byte, name string) bool {
	return len(body) > len(name) && int(body[0]) == len(name) && string(body[1:1+len(name)]) == name
}

// commandName returns the name of a command body, or false if the body is
// too short for its own name length.
func commandName(body []byte) (string, bool) {
	if len(body) == 0 || int(body[0]) > len(body)-1 {
		return "", false
	}
	return string(body[1 : 1+int(body[0])]), true
}

// property is one ZMTP metadata entry. Names compare case-insensitively.
type property struct {
	Name  string
	Value string
}

// metadata is a parsed ZMTP metadata list, in wire order.
type metadata []property

// get returns the value of a property, matching names case-insensitively.
func (md metadata) get(name string) (string, bool) {
	for _, p := range md {
		if strings.EqualFold(p.Name, name) {
			return p.Value, true
		}
	}
	return "", false
}

func (md metadata) toMap() map[string]string {
	m := make(map[string]string, len(md))
	for _, p := range md {
		m[p.Name] = p.Value
	}
	return m
}

// parseMetadata decodes name-length(1) name value-length(4) value entries,
// bounds-checking every length against what remains.
func parseMetadata(b []byte) (metadata, error) {
	var md metadata
	for len(b) > 0 {
		nlen := int(b[0])
		b = b[1:]
		if nlen == 0 {
			return nil, fmt.Errorf("metadata: empty property name")
		}
		if nlen+4 > len(b) {
			return nil, fmt.Errorf("metadata: truncated property name")
		}
		name := string(b[:nlen])
		b = b[nlen:]
		vlen := binary.BigEndian.Uint32(b[:4])
		b = b[4:]
		if uint64(vlen) > uint64(len(b)) {
			return nil, fmt.Errorf("metadata: property %q value length %d exceeds the %d bytes left", name, vlen, len(b))
		}
		md = append(md, property{Name: name, Value: string(b[:vlen])})
		b = b[vlen:]
	}
	return md, nil
}

func appendProperty(dst []byte, name, value string) []byte {
	dst = append(dst, byte(len(name)))
	dst = append(dst, name...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// compatiblePeers returns the socket types that socket type t may talk to
// (RFC 23/37), or nil for a type zmq4 does not know. Unknown types must be
// refused before zmq4 sees them: zmq4's own compatibility check panics on
// one.
func compatiblePeers(t string) []string {
	switch t {
	case "PAIR":
		return []string{"PAIR"}
	case "PUB", "XPUB":
		return []string{"SUB", "XSUB"}
	case "SUB", "XSUB":
		return []string{"PUB", "XPUB"}
	case "REQ":
		return []string{"REP", "ROUTER"}
	case "REP":
		return []string{"REQ", "DEALER"}
	case "DEALER":
		return []string{"REP", "DEALER", "ROUTER"}
	case "ROUTER":
		return []string{"REQ", "DEALER", "ROUTER"}
	case "PULL":
		return []string{"PUSH"}
	case "PUSH":
		return []string{"PULL"}
	}
	return nil
}

func knownSocketType(t string) bool { return compatiblePeers(t) != nil }

// compatible reports whether socket types a and b may talk.
func compatible(a, b string) bool { return slices.Contains(compatiblePeers(a), b) }
