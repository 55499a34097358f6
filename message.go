package fluxkit

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// MsgType is the RFC 3 message type.
type MsgType uint8

// RFC 3 message types.
const (
	TypeRequest  MsgType = 0x01
	TypeResponse MsgType = 0x02
	TypeEvent    MsgType = 0x04
	TypeControl  MsgType = 0x08
	TypeAny      MsgType = 0x0f
)

func (t MsgType) String() string {
	switch t {
	case TypeRequest:
		return "request"
	case TypeResponse:
		return "response"
	case TypeEvent:
		return "event"
	case TypeControl:
		return "control"
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// MsgFlags are the RFC 3 message flags.
type MsgFlags uint8

// RFC 3 message flags. FlagTopic, FlagPayload and FlagRoute describe which
// frames are present; [Message.Frames] derives them from the message's fields.
const (
	FlagTopic      MsgFlags = 0x01
	FlagPayload    MsgFlags = 0x02
	FlagNoResponse MsgFlags = 0x04
	FlagRoute      MsgFlags = 0x08
	FlagUpstream   MsgFlags = 0x10
	FlagPrivate    MsgFlags = 0x20
	FlagStreaming  MsgFlags = 0x40
	FlagUser1      MsgFlags = 0x80
)

// Special node ids, matchtags and user ids of RFC 3.
const (
	// NodeidAny sends a request to the nearest rank that has the service,
	// starting with the sender's own rank and walking towards rank 0.
	NodeidAny uint32 = 0xFFFFFFFF
	// NodeidUpstream is an API value only: the request is sent with
	// FlagUpstream and the sender's rank as nodeid, so that the sender's
	// own rank is skipped.
	NodeidUpstream uint32 = 0xFFFFFFFE
	MatchtagNone   uint32 = 0
	UseridUnknown  uint32 = 0xFFFFFFFF
)

// Control message types carried in the PROTO frame of a control message.
const (
	ControlHeartbeat  uint32 = 0
	ControlStatus     uint32 = 1
	ControlDisconnect uint32 = 2
)

// Role is an RFC 3 role mask.
type Role uint32

// RFC 3 roles.
const (
	RoleNone  Role = 0
	RoleOwner Role = 1
	RoleUser  Role = 2
	RoleLocal Role = 4
	RoleAdmin Role = 8
	RoleAll   Role = 0xFFFFFFFF
)

// Cred is the identity a message carries: who sent it, with which roles.
type Cred struct {
	Userid uint32
	Roles  Role
}

// IsOwner reports whether c holds the instance owner role.
func (c Cred) IsOwner() bool { return c.Roles&RoleOwner != 0 }

// Allowed reports whether c may use something open to the roles in allow.
// The owner is always allowed, as in flux-core's message handlers.
func (c Cred) Allowed(allow Role) bool { return c.IsOwner() || c.Roles&allow != 0 }

const (
	protoMagic   = 0x8E
	protoVersion = 0x01
	// ProtoSize is the length of the PROTO frame.
	ProtoSize = 20
)

// Message is an RFC 3 message.
//
// The PROTO frame's aux1/aux2 words are kept in named fields and mapped by
// type on encode: a request carries Nodeid and Matchtag, a response Errnum and
// Matchtag, an event Seq, a control message ControlType and ControlStatus.
//
// Payload holds the payload without the trailing NUL that flux-core puts
// after JSON and string payloads: [Message.Frames] appends it and
// [DecodeFrames] strips it, so a component sees plain JSON bytes.
type Message struct {
	Type     MsgType
	Flags    MsgFlags // only NoResponse, Upstream, Private, Streaming, User1 and Route are kept; see [Message.Frames]
	Topic    string
	Payload  []byte
	Userid   uint32
	Rolemask Role
	Nodeid   uint32 // requests
	Matchtag uint32 // requests and responses
	Errnum   uint32 // responses
	Seq      uint32 // events

	ControlType   uint32 // control messages
	ControlStatus uint32 // control messages

	// Route is the route stack, the original sender first and the most
	// recently pushed hop last. On the wire the order is reversed.
	Route []string
}

// NewRequest returns a request for topic addressed to nodeid with the given
// JSON payload (nil for none). Credentials are left unknown for the broker to
// fill in, as a client must.
func NewRequest(topic string, nodeid uint32, payload []byte) *Message {
	return &Message{
		Type:    TypeRequest,
		Flags:   FlagRoute,
		Topic:   topic,
		Payload: payload,
		Userid:  UseridUnknown,
		Nodeid:  nodeid,
	}
}

// Service is the service part of the topic: what precedes the first dot.
func (m *Message) Service() string {
	s, _, _ := strings.Cut(m.Topic, ".")
	return s
}

// Sender is the identity of the original sender of a routed message (the
// route frame next to the delimiter), or "" when there is none.
func (m *Message) Sender() string {
	if len(m.Route) == 0 {
		return ""
	}
	return m.Route[0]
}

// Cred returns the credentials the message carries.
func (m *Message) Cred() Cred { return Cred{Userid: m.Userid, Roles: m.Rolemask} }

// PushRoute pushes a hop onto the route stack.
func (m *Message) PushRoute(id string) {
	m.Flags |= FlagRoute
	m.Route = append(m.Route, id)
}

// PopRoute pops the most recent hop; ok is false when the stack is empty.
func (m *Message) PopRoute() (id string, ok bool) {
	if len(m.Route) == 0 {
		return "", false
	}
	id = m.Route[len(m.Route)-1]
	m.Route = m.Route[:len(m.Route)-1]
	return id, true
}

// Clone returns a deep copy of m.
func (m *Message) Clone() *Message {
	c := *m
	if m.Payload != nil {
		c.Payload = append([]byte(nil), m.Payload...)
	}
	if m.Route != nil {
		c.Route = append([]string(nil), m.Route...)
	}
	return &c
}

// IsStreaming reports whether m has FlagStreaming.
func (m *Message) IsStreaming() bool { return m.Flags&FlagStreaming != 0 }

// IsNoResponse reports whether m has FlagNoResponse.
func (m *Message) IsNoResponse() bool { return m.Flags&FlagNoResponse != 0 }

// ResponseTo builds the response to req: topic, matchtag, route stack and
// the streaming flag copied, as RFC 6 requires. errnum 0 is success.
func ResponseTo(req *Message, payload []byte, errnum uint32) *Message {
	r := &Message{
		Type:     TypeResponse,
		Flags:    req.Flags & (FlagRoute | FlagStreaming),
		Topic:    req.Topic,
		Payload:  payload,
		Userid:   UseridUnknown,
		Matchtag: req.Matchtag,
		Errnum:   errnum,
	}
	if req.Route != nil {
		r.Route = append([]string(nil), req.Route...)
	}
	return r
}

func (m *Message) aux() (uint32, uint32) {
	switch m.Type {
	case TypeRequest:
		return m.Nodeid, m.Matchtag
	case TypeResponse:
		return m.Errnum, m.Matchtag
	case TypeEvent:
		return m.Seq, 0
	case TypeControl:
		return m.ControlType, m.ControlStatus
	}
	return 0, 0
}

// Proto encodes the 20-byte PROTO frame.
func (m *Message) Proto() [ProtoSize]byte {
	var p [ProtoSize]byte
	p[0], p[1], p[2], p[3] = protoMagic, protoVersion, byte(m.Type), byte(m.wireFlags())
	binary.BigEndian.PutUint32(p[4:], m.Userid)
	binary.BigEndian.PutUint32(p[8:], uint32(m.Rolemask))
	a1, a2 := m.aux()
	binary.BigEndian.PutUint32(p[12:], a1)
	binary.BigEndian.PutUint32(p[16:], a2)
	return p
}

func (m *Message) wireFlags() MsgFlags {
	f := m.Flags &^ (FlagTopic | FlagPayload)
	if m.Topic != "" {
		f |= FlagTopic
	}
	if len(m.Payload) > 0 {
		f |= FlagPayload
	}
	if len(m.Route) > 0 {
		f |= FlagRoute
	}
	return f
}

// Frames encodes m as the ordered frames of RFC 3, as one ZeroMQ multipart
// message carries them: routes (most recent hop first) and the empty
// delimiter when FlagRoute is set, the topic without a NUL (as flux-core
// sends it), the payload with its trailing NUL, then PROTO.
func (m *Message) Frames() [][]byte {
	f := m.wireFlags()
	n := 1
	if f&FlagRoute != 0 {
		n += len(m.Route) + 1
	}
	if f&FlagTopic != 0 {
		n++
	}
	if f&FlagPayload != 0 {
		n++
	}
	frames := make([][]byte, 0, n)
	if f&FlagRoute != 0 {
		for i := len(m.Route) - 1; i >= 0; i-- {
			frames = append(frames, []byte(m.Route[i]))
		}
		frames = append(frames, []byte{})
	}
	if f&FlagTopic != 0 {
		frames = append(frames, []byte(m.Topic))
	}
	if f&FlagPayload != 0 {
		p := make([]byte, len(m.Payload)+1)
		copy(p, m.Payload)
		frames = append(frames, p)
	}
	proto := m.Proto()
	frames = append(frames, proto[:])
	return frames
}

// ErrProto is wrapped by every decoding error; it matches syscall.EPROTO.
var ErrProto = &Error{Errnum: EPROTO, Text: "protocol error"}

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProto}, args...)...)
}

// DecodeFrames decodes the frames of one RFC 3 message. It follows the flags,
// not the type, as flux-core does: route frames are the non-empty frames up to
// the first empty one, a frame missing for a set flag is an error, and extra
// frames before PROTO are ignored. The frames are not retained.
func DecodeFrames(frames [][]byte) (*Message, error) {
	if len(frames) == 0 {
		return nil, protoErr("no frames")
	}
	p := frames[len(frames)-1]
	if len(p) != ProtoSize {
		return nil, protoErr("PROTO frame is %d bytes, want %d", len(p), ProtoSize)
	}
	if p[0] != protoMagic || p[1] != protoVersion {
		return nil, protoErr("bad PROTO magic/version %02x %02x", p[0], p[1])
	}
	m := &Message{Type: MsgType(p[2])}
	switch m.Type {
	case TypeRequest, TypeResponse, TypeEvent, TypeControl:
	default:
		return nil, protoErr("bad message type 0x%02x", p[2])
	}
	flags := MsgFlags(p[3])
	m.Userid = binary.BigEndian.Uint32(p[4:])
	m.Rolemask = Role(binary.BigEndian.Uint32(p[8:]))
	a1, a2 := binary.BigEndian.Uint32(p[12:]), binary.BigEndian.Uint32(p[16:])
	switch m.Type {
	case TypeRequest:
		m.Nodeid, m.Matchtag = a1, a2
	case TypeResponse:
		m.Errnum, m.Matchtag = a1, a2
	case TypeEvent:
		m.Seq = a1
	case TypeControl:
		m.ControlType, m.ControlStatus = a1, a2
	}
	rest := frames[:len(frames)-1]
	if flags&FlagRoute != 0 {
		i := 0
		for i < len(rest) && len(rest[i]) > 0 {
			i++
		}
		if i == len(rest) {
			return nil, protoErr("route delimiter missing")
		}
		if i > 0 {
			m.Route = make([]string, i)
			for j := 0; j < i; j++ {
				m.Route[i-1-j] = string(rest[j])
			}
		}
		rest = rest[i+1:]
	}
	if flags&FlagTopic != 0 {
		t, err := nextFrame(&rest, "topic")
		if err != nil {
			return nil, err
		}
		m.Topic = string(t)
	}
	if flags&FlagPayload != 0 {
		pl, err := nextFrame(&rest, "payload")
		if err != nil {
			return nil, err
		}
		m.Payload = append([]byte{}, pl...)
	}
	m.Flags = flags &^ (FlagTopic | FlagPayload)
	return m, nil
}

// nextFrame takes the next of *rest, the frame of what, without the NUL
// that flux-core ends a topic or payload with.
func nextFrame(rest *[][]byte, what string) ([]byte, error) {
	if len(*rest) == 0 {
		return nil, protoErr("%s frame missing", what)
	}
	f := (*rest)[0]
	*rest = (*rest)[1:]
	if n := len(f); n > 0 && f[n-1] == 0 {
		f = f[:n-1]
	}
	return f, nil
}
