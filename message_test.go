package fluxkit_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The PROTO vectors of flux-core's src/common/libflux/test/message.c.
func TestProtoVectors(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    fluxkit.Message
		want string
	}{
		{"fields", fluxkit.Message{Type: fluxkit.MsgType(0xab), Flags: 0xcd &^ (fluxkit.FlagTopic | fluxkit.FlagPayload), Userid: 0x00010203, Rolemask: 0x04050607}, ""},
		{"control disconnect", fluxkit.Message{Type: fluxkit.TypeControl, Userid: 100, Rolemask: fluxkit.RoleOwner, ControlType: fluxkit.ControlDisconnect}, "8e 01 08 00 00000064 00000001 00000002 00000000"},
		{"hello", fluxkit.Message{Type: fluxkit.TypeRequest, Flags: fluxkit.FlagRoute | fluxkit.FlagTopic | fluxkit.FlagPayload, Topic: "overlay.hello", Payload: []byte("{}"), Userid: 100, Rolemask: fluxkit.RoleOwner, Nodeid: fluxkit.NodeidAny}, "8e 01 01 0b 00000064 00000001 ffffffff 00000000"},
	} {
		if tc.want == "" {
			continue // the first vector uses an invalid type; checked on the decode side below
		}
		p := tc.m.Proto()
		assert.Equal(t, tc.want, spaced(p[:]), tc.name)
	}
	// Decoding refuses the 0xab type of the upstream vector, as flux-core's
	// decoder does.
	_, err := fluxkit.DecodeFrames([][]byte{testutil.Unhex(t, "8e01abcd000102030405060708090a0b0c0d0e0f")})
	assert.ErrorIs(t, err, syscall.EPROTO)
}

func spaced(p []byte) string {
	h := hex.EncodeToString(p)
	return h[0:2] + " " + h[2:4] + " " + h[4:6] + " " + h[6:8] + " " + h[8:16] + " " + h[16:24] + " " + h[24:32] + " " + h[32:40]
}

func TestRoutesOnTheWire(t *testing.T) {
	m := fluxkit.NewRequest("svc.m", 2, nil)
	m.PushRoute("client")
	m.PushRoute("hop1")
	fr := m.Frames()
	// most recent hop first, then the original sender, then the delimiter.
	require.Len(t, fr, 5)
	assert.Equal(t, "hop1", string(fr[0]))
	assert.Equal(t, "client", string(fr[1]))
	assert.Empty(t, fr[2])
	back, err := fluxkit.DecodeFrames(fr)
	require.NoError(t, err)
	assert.Equal(t, "client", back.Sender())
	id, ok := back.PopRoute()
	assert.True(t, ok)
	assert.Equal(t, "hop1", id)
}

func TestDecodeFramesErrors(t *testing.T) {
	proto := func(typ, flags byte) []byte {
		p := testutil.Unhex(t, "8e010000ffffffff00000000ffffffff00000000")
		p[2], p[3] = typ, flags
		return p
	}
	for _, tc := range []struct {
		name   string
		frames [][]byte
	}{
		{"none", nil},
		{"short proto", [][]byte{proto(1, 0)[:19]}},
		{"bad magic", [][]byte{append([]byte{0x8f}, proto(1, 0)[1:]...)}},
		{"bad version", [][]byte{append([]byte{0x8e, 2}, proto(1, 0)[2:]...)}},
		{"bad type", [][]byte{proto(3, 0)}},
		{"missing delimiter", [][]byte{[]byte("r"), proto(1, byte(fluxkit.FlagRoute))}},
		{"missing topic", [][]byte{proto(1, byte(fluxkit.FlagTopic))}},
		{"missing payload", [][]byte{[]byte("t"), proto(1, byte(fluxkit.FlagTopic|fluxkit.FlagPayload))}},
	} {
		_, err := fluxkit.DecodeFrames(tc.frames)
		assert.ErrorIs(t, err, syscall.EPROTO, tc.name)
		assert.ErrorIs(t, err, fluxkit.ErrProto, tc.name)
	}
	// Extra frames before PROTO are ignored, as flux-core does.
	m, err := fluxkit.DecodeFrames([][]byte{[]byte("topic"), []byte("extra"), proto(4, byte(fluxkit.FlagTopic))})
	require.NoError(t, err)
	assert.Equal(t, "topic", m.Topic)
}

func TestResponseTo(t *testing.T) {
	req := fluxkit.NewRequest("job-manager.events-journal", 0, []byte(`{}`))
	req.Flags |= fluxkit.FlagStreaming
	req.Matchtag = 9
	req.PushRoute("uuid")
	r := fluxkit.ResponseTo(req, []byte(`{"id":1}`), 0)
	assert.Equal(t, fluxkit.TypeResponse, r.Type)
	assert.True(t, r.IsStreaming())
	assert.Equal(t, uint32(9), r.Matchtag)
	assert.Equal(t, []string{"uuid"}, r.Route)
	r.Route[0] = "changed"
	assert.Equal(t, "uuid", req.Route[0], "response must not share the request's route stack")
	assert.Equal(t, "job-manager", req.Service())
}

func TestErrors(t *testing.T) {
	e := fluxkit.Errorf(fluxkit.ENOENT, "unknown attribute %s", "x")
	assert.ErrorIs(t, e, syscall.ENOENT)
	assert.NotErrorIs(t, e, syscall.EPERM)
	wrapped := errors.Join(errors.New("ctx"), e)
	assert.ErrorIs(t, wrapped, syscall.ENOENT)
	assert.Equal(t, syscall.ENOENT, fluxkit.Errno(wrapped))
	assert.Equal(t, "unknown attribute x", fluxkit.ErrorText(e))
	assert.Equal(t, "No such file or directory", (&fluxkit.Error{Errnum: fluxkit.ENOENT}).Error(), "glibc's wording, as flux_strerror")
	assert.Equal(t, "Function not implemented", fluxkit.Strerror(fluxkit.ENOSYS))
	assert.Equal(t, "", fluxkit.ErrorText(syscall.EPERM))
	assert.Equal(t, syscall.EHOSTUNREACH, fluxkit.Errno(syscall.EHOSTUNREACH))
	assert.Equal(t, syscall.EINVAL, fluxkit.Errno(errors.New("plain")))

	m := fluxkit.ResponseTo(fluxkit.NewRequest("a.b", 0, nil), []byte(fluxkit.TextOwnerRequired), uint32(fluxkit.EPERM))
	err := fluxkit.ErrorFromResponse(m)
	assert.ErrorIs(t, err, syscall.EPERM)
	assert.EqualError(t, err, fluxkit.TextOwnerRequired)
	assert.NoError(t, fluxkit.ErrorFromResponse(fluxkit.ResponseTo(m, nil, 0)))
}

func FuzzDecodeFrames(f *testing.F) {
	// The input is split into frames at each 0x00 0x00 pair, so the corpus
	// can hold several frames; the last frame is the PROTO frame.
	for _, m := range []*fluxkit.Message{
		fluxkit.NewRequest("attr.get", fluxkit.NodeidAny, []byte(`{"name":"rank"}`)),
		{Type: fluxkit.TypeControl, Userid: fluxkit.UseridUnknown},
		{Type: fluxkit.TypeEvent, Flags: fluxkit.FlagRoute, Topic: "heartbeat.pulse", Route: []string{"a", "b"}, Seq: 7},
	} {
		f.Add(bytes.Join(m.Frames(), []byte{0, 0}))
	}
	f.Add([]byte{0x8e, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := fluxkit.DecodeFrames(bytes.Split(b, []byte{0, 0}))
		if err != nil {
			return
		}
		// A decoded message re-encodes to frames that decode to the same
		// message (the first encoding may differ: NULs, extra frames).
		again, err := fluxkit.DecodeFrames(m.Frames())
		require.NoError(t, err, "re-decode")
		require.True(t, testutil.WireEqual(m, again), "round trip changed %+v into %+v", m, again)
	})
}
