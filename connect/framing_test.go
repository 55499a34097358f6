package connect

import (
	"bytes"
	"encoding/hex"
	"io"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Byte vectors of messages as flux-core's sendfd() writes them on a
// local:// socket, one per message kind and frame-size form.
func TestLocalVectors(t *testing.T) {
	r1 := fluxkit.NewRequest("attr.get", fluxkit.NodeidAny, []byte(`{"name":"rank"}`))
	r1.Matchtag = 1
	r2 := fluxkit.ResponseTo(r1, []byte(`{"value":"0","flags":1}`), 0)
	r2.Userid, r2.Rolemask = 1000, 5
	r3 := fluxkit.ResponseTo(r1, []byte("unknown attribute"), uint32(syscall.ENOENT))
	r4 := fluxkit.NewRequest("kvs.disconnect", 3, nil)
	r4.Flags |= fluxkit.FlagNoResponse
	r5 := fluxkit.NewRequest("job-manager.events-journal", fluxkit.NodeidAny, []byte(`{}`))
	r5.Flags |= fluxkit.FlagStreaming
	r5.Matchtag = 2
	r6 := &fluxkit.Message{Type: fluxkit.TypeControl, Userid: fluxkit.UseridUnknown}
	r7 := &fluxkit.Message{Type: fluxkit.TypeEvent, Flags: fluxkit.FlagRoute, Topic: "heartbeat.pulse", Userid: fluxkit.UseridUnknown, Seq: 7}
	for _, tc := range []struct {
		name string
		m    *fluxkit.Message
		hex  string
	}{
		{"request", r1, "1200eeff000000300008617474722e676574107b226e616d65223a2272616e6b227d00148e01010bffffffff00000000ffffffff00000001"},
		{"response with credentials", r2, "1200eeff000000380008617474722e676574187b2276616c7565223a2230222c22666c616773223a317d00148e01020b000003e8000000050000000000000001"},
		{"error response", r3, "1200eeff000000320008617474722e67657412756e6b6e6f776e2061747472696275746500148e01020bffffffff000000000000000200000001"},
		{"request without response", r4, "1200eeff00000025000e6b76732e646973636f6e6e656374148e01010dffffffff000000000000000300000000"},
		{"streaming request", r5, "1200eeff00000035001a6a6f622d6d616e616765722e6576656e74732d6a6f75726e616c037b7d00148e01014bffffffff00000000ffffffff00000002"},
		{"control", r6, "1200eeff00000015148e010800ffffffff000000000000000000000000"},
		{"event", r7, "1200eeff00000026000f6865617274626561742e70756c7365148e010409ffffffff000000000000000700000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := testutil.Unhex(t, tc.hex)
			got := appendMessage(nil, tc.m)
			assert.Equal(t, hex.EncodeToString(want), hex.EncodeToString(got))
			back, n, err := decodeMessage(want)
			require.NoError(t, err)
			assert.Equal(t, len(want), n)
			assert.Equal(t, tc.m, back)
		})
	}
	t.Run("frame of 255 bytes or more has a 4-byte size", func(t *testing.T) {
		m := fluxkit.NewRequest("x.y", fluxkit.NodeidAny, bytes.Repeat([]byte("a"), 299))
		b := appendMessage(nil, m)
		assert.Equal(t, "1200eeff0000014b0003782e79ff0000012c", hex.EncodeToString(b[:18]))
		assert.Equal(t, "148e01010bffffffff00000000ffffffff00000000", hex.EncodeToString(b[len(b)-21:]))
		back, _, err := decodeMessage(b)
		require.NoError(t, err)
		assert.Equal(t, m, back)
	})
}

func TestDecodePartialMessage(t *testing.T) {
	b := appendMessage(nil, fluxkit.NewRequest("a.b", 0, []byte(`{}`)))
	for i := 0; i < len(b); i++ {
		_, _, err := decodeMessage(b[:i])
		assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "prefix %d", i)
	}
	two := append(append([]byte{}, b...), b...)
	_, n, err := decodeMessage(two)
	require.NoError(t, err)
	assert.Equal(t, len(b), n)
}

func FuzzDecodeMessage(f *testing.F) {
	for _, s := range []string{
		"1200eeff000000300008617474722e676574107b226e616d65223a2272616e6b227d00148e01010bffffffff00000000ffffffff00000001",
		"1200eeff00000015148e010800ffffffff000000000000000000000000",
		"1200eeff00000026000f6865617274626561742e70756c7365148e010409ffffffff000000000000000700000000",
		"1200eeff0000000100",
		"1200eeffffffffff",
	} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, n, err := decodeMessage(b)
		if err != nil {
			return
		}
		require.LessOrEqual(t, n, len(b), "used more bytes than given")
		// A decoded message re-encodes to something that decodes to the
		// same message (the first encoding may differ: NULs, extra frames).
		again, _, err := decodeMessage(appendMessage(nil, m))
		require.NoError(t, err, "re-decode")
		require.True(t, testutil.WireEqual(m, again), "round trip changed %+v into %+v", m, again)
	})
}

// The stream reader agrees with the buffer decoder on every input, however
// the bytes are split across reads.
func TestMessageReaderSplitsAndErrors(t *testing.T) {
	var stream []byte
	msgs := []*fluxkit.Message{
		fluxkit.NewRequest("attr.get", fluxkit.NodeidAny, []byte(`{"name":"rank"}`)),
		fluxkit.NewRequest("x.y", 3, bytes.Repeat([]byte("z"), 70000)),
		{Type: fluxkit.TypeEvent, Topic: "heartbeat.pulse", Userid: fluxkit.UseridUnknown, Seq: 9},
	}
	for _, m := range msgs {
		stream = appendMessage(stream, m)
	}
	mr := newMessageReader(&oneByteReader{b: stream})
	for i, want := range msgs {
		got, err := mr.read()
		require.NoError(t, err, "message %d", i)
		assert.True(t, testutil.WireEqual(want, got), "message %d: %+v", i, got)
	}
	_, err := mr.read()
	assert.ErrorIs(t, err, io.EOF)

	_, err = newMessageReader(bytes.NewReader(stream[:len(stream)-3])).read()
	require.NoError(t, err) // the first message is whole
	mr = newMessageReader(bytes.NewReader(stream[:20]))
	_, err = mr.read()
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "end of stream inside a message")

	huge := testutil.Unhex(t, "1200eeff 7fffffff")
	_, err = newMessageReader(bytes.NewReader(huge)).read()
	assert.ErrorIs(t, err, syscall.EPROTO, "a length above the bound is refused before allocating")
	_, err = newMessageReader(bytes.NewReader(testutil.Unhex(t, "deadbeef 00000000"))).read()
	assert.ErrorIs(t, err, syscall.EPROTO, "bad magic")
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}
