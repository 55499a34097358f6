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
