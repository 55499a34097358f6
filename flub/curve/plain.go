package curve

import (
	"encoding/binary"
	"fmt"
	"math"
)

// plainParser splits the byte stream zmq4 writes into its greeting and
// frames, whatever the chunking of the writes.
type plainParser struct {
	greet  [greetingLen]byte
	greetN int
	hdr    [9]byte
	hdrN   int
	inBody bool
	size   int
	body   []byte
}

func (pp *plainParser) feed(p []byte, onGreeting func([]byte) error, emit func(flags byte, body []byte) error) error {
	for len(p) > 0 {
		if pp.greetN < greetingLen {
			n := copy(pp.greet[pp.greetN:], p)
			pp.greetN += n
			p = p[n:]
			if pp.greetN == greetingLen {
				if err := onGreeting(pp.greet[:]); err != nil {
					return err
				}
			}
			continue
		}
		if !pp.inBody {
			if pp.hdrN == 0 {
				pp.hdr[0] = p[0]
				pp.hdrN = 1
				p = p[1:]
				continue
			}
			need := 2
			if pp.hdr[0]&flagLong != 0 {
				need = 9
			}
			n := copy(pp.hdr[pp.hdrN:need], p)
			pp.hdrN += n
			p = p[n:]
			if pp.hdrN < need {
				continue
			}
			size := uint64(pp.hdr[1])
			if need == 9 {
				size = binary.BigEndian.Uint64(pp.hdr[1:9])
			}
			if size > math.MaxInt32 {
				return fmt.Errorf("curve: zmq4 frame of %d bytes is too large", size)
			}
			pp.size = int(size)
			pp.inBody = true
			pp.body = pp.body[:0]
			if pp.size == 0 {
				if err := pp.emit(emit, nil); err != nil {
					return err
				}
			}
			continue
		}
		remaining := pp.size - len(pp.body)
		if len(pp.body) == 0 && len(p) >= remaining {
			// The common case: zmq4 wrote the whole body in one call, so it
			// is sealed straight from zmq4's buffer.
			if err := pp.emit(emit, p[:remaining]); err != nil {
				return err
			}
			p = p[remaining:]
			continue
		}
		take := min(remaining, len(p))
		pp.body = append(pp.body, p[:take]...)
		p = p[take:]
		if len(pp.body) == pp.size {
			if err := pp.emit(emit, pp.body); err != nil {
				return err
			}
		}
	}
	return nil
}

func (pp *plainParser) emit(emit func(byte, []byte) error, body []byte) error {
	flags := pp.hdr[0]
	pp.hdrN = 0
	pp.inBody = false
	if cap(pp.body) > retainLimit {
		pp.body = nil
	}
	return emit(flags, body)
}
