package fluxkit

import (
	"context"
	"encoding/json"
	"fmt"
)

// EncodePayload turns v into a JSON payload: nil gives no payload, []byte and
// json.RawMessage are taken as already encoded, anything else is marshalled.
func EncodePayload(v any) ([]byte, error) {
	switch p := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		return p, nil
	case json.RawMessage:
		return p, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding payload: %w", err)
	}
	return b, nil
}

// DecodePayload unmarshals the payload of m into v. A missing or malformed
// payload is an EPROTO error naming the topic, so that a handler can answer
// it as is.
func DecodePayload(m *Message, v any) error {
	if len(m.Payload) == 0 {
		return Errorf(EPROTO, "%s: missing payload", m.Topic)
	}
	if err := json.Unmarshal(m.Payload, v); err != nil {
		return Errorf(EPROTO, "%s: malformed payload: %v", m.Topic, err)
	}
	return nil
}

// DecodeRequest decodes the payload of req into v, as [DecodePayload] does;
// when that fails it answers req with the error and returns false, so that
// a handler's prologue is
//
//	if !fluxkit.DecodeRequest(w, req, &in) {
//		return
//	}
func DecodeRequest(w Responder, req *Message, v any) bool {
	if err := DecodePayload(req, v); err != nil {
		_ = w.RespondError(err)
		return false
	}
	return true
}

// RPC sends a request with payload in (see [EncodePayload]) to nodeid and
// waits for its single response, decoding the payload into out when out is
// not nil. An error response is returned as an *Error.
func RPC(ctx context.Context, h Handle, topic string, nodeid uint32, in, out any) error {
	p, err := EncodePayload(in)
	if err != nil {
		return err
	}
	call, err := h.Request(ctx, NewRequest(topic, nodeid, p))
	if err != nil {
		return err
	}
	defer call.Close()
	m, err := call.Recv(ctx)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return DecodePayload(m, out)
}

// Stream sends a streaming request (FlagStreaming) and returns the Call that
// yields its responses.
func Stream(ctx context.Context, h Handle, topic string, nodeid uint32, in any) (Call, error) {
	p, err := EncodePayload(in)
	if err != nil {
		return nil, err
	}
	req := NewRequest(topic, nodeid, p)
	req.Flags |= FlagStreaming
	return h.Request(ctx, req)
}

// Notify sends a request that expects no response (FlagNoResponse).
func Notify(ctx context.Context, h Handle, topic string, nodeid uint32, in any) error {
	p, err := EncodePayload(in)
	if err != nil {
		return err
	}
	req := NewRequest(topic, nodeid, p)
	req.Flags |= FlagNoResponse
	_, err = h.Request(ctx, req)
	return err
}

// Respond answers with v encoded as by [EncodePayload].
func Respond(w Responder, v any) error {
	p, err := EncodePayload(v)
	if err != nil {
		return w.RespondError(err)
	}
	return w.Respond(p)
}

// RequireStreaming reports whether req has FlagStreaming; when it has not, it
// answers EPROTO first, as RFC 6 requires of a streaming service:
//
//	if !fluxkit.RequireStreaming(w, req) {
//		return
//	}
func RequireStreaming(w Responder, req *Message) bool {
	if req.IsStreaming() {
		return true
	}
	_ = w.RespondError(Errorf(EPROTO, "%s requires streaming RPC flag", req.Topic))
	return false
}
