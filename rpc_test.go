package fluxkit

import (
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
)

type recordResponder struct {
	payloads [][]byte
	errs     []error
}

func (r *recordResponder) Respond(p []byte) error { r.payloads = append(r.payloads, p); return nil }
func (r *recordResponder) RespondError(err error) error {
	r.errs = append(r.errs, err)
	return nil
}

func TestDecodeRequest(t *testing.T) {
	var in struct{ Name string }
	w := &recordResponder{}
	assert.True(t, DecodeRequest(w, NewRequest("a.b", 0, []byte(`{"Name":"x"}`)), &in))
	assert.Equal(t, "x", in.Name)
	assert.Empty(t, w.errs)
	for _, bad := range [][]byte{nil, []byte(`{`), []byte(`[1]`)} {
		w := &recordResponder{}
		assert.False(t, DecodeRequest(w, NewRequest("a.b", 0, bad), &in), "%q", bad)
		if assert.Len(t, w.errs, 1) {
			assert.ErrorIs(t, w.errs[0], syscall.EPROTO)
		}
		assert.Empty(t, w.payloads)
	}
}

func TestRequireStreaming(t *testing.T) {
	w := &recordResponder{}
	req := NewRequest("svc.watch", 0, nil)
	assert.False(t, RequireStreaming(w, req))
	if assert.Len(t, w.errs, 1) {
		assert.ErrorIs(t, w.errs[0], syscall.EPROTO)
		assert.EqualError(t, w.errs[0], "svc.watch requires streaming RPC flag")
	}
	req.Flags |= FlagStreaming
	assert.True(t, RequireStreaming(&recordResponder{}, req))
}

func TestValidateRequestNamesWhatIsWrong(t *testing.T) {
	assert.NoError(t, ValidateRequest(NewRequest("a.b", 0, nil)))
	ev := NewRequest("a.b", 0, nil)
	ev.Type = TypeEvent
	noTopic := NewRequest("", 0, nil)
	both := NewRequest("a.b", 0, nil)
	both.Flags |= FlagNoResponse | FlagStreaming
	for m, want := range map[*Message]string{
		ev:      "message type event is not a request",
		noTopic: "request has no topic",
		both:    "NORESPONSE and STREAMING are exclusive",
	} {
		err := ValidateRequest(m)
		assert.ErrorIs(t, err, syscall.EINVAL)
		assert.EqualError(t, err, want)
	}
}

// An error response carries the errno and text RespondError promises, and
// reads back as the same error.
func TestErrorResponseRoundTrip(t *testing.T) {
	req := NewRequest("a.b", 0, nil)
	req.Flags |= FlagStreaming
	req.Matchtag = 7
	m := ErrorResponse(req, Errorf(ENOENT, "no such key"))
	assert.Equal(t, uint32(ENOENT), m.Errnum)
	assert.Equal(t, uint32(7), m.Matchtag)
	assert.True(t, m.IsStreaming())
	err := ErrorFromResponse(m)
	assert.ErrorIs(t, err, syscall.ENOENT)
	assert.EqualError(t, err, "no such key")

	m = ErrorResponse(req, syscall.EPERM)
	assert.Equal(t, uint32(EPERM), m.Errnum)
	assert.Empty(t, m.Payload, "a bare errno has no text of its own")
	m = ErrorResponse(req, nil)
	assert.Equal(t, uint32(EINVAL), m.Errnum, "an error without errno is EINVAL")
}
