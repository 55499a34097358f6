package curve

import (
	"errors"
	"fmt"
)

var (
	// ErrHandshake is wrapped by every CURVE handshake failure: a malformed
	// or unexpected command, a box that does not open, a refused client, a
	// deadline.
	ErrHandshake = errors.New("curve: handshake failed")

	// ErrProtocol is wrapped by violations after the handshake: a malformed
	// MESSAGE, a replayed or decreasing nonce, an oversized frame.
	ErrProtocol = errors.New("curve: protocol error")

	// ErrServerKeyMismatch is wrapped by a client handshake that the server
	// ended right after HELLO without answering it. A CURVE server, libzmq's
	// or this package's, does exactly that when HELLO was not sealed for its
	// key, so the client's ServerKey is not the server's.
	ErrServerKeyMismatch = errors.New("server key mismatch")

	// ErrClientKeyNotAuthorized is matched by the refusal of a server whose
	// authorizer (the ZAP handler) denied the client's key: ERROR "400".
	ErrClientKeyNotAuthorized = errors.New("client key not authorized")

	// ErrHandshakeTimeout is wrapped by a handshake that did not finish
	// within its HandshakeTimeout. The error also matches
	// os.ErrDeadlineExceeded.
	ErrHandshakeTimeout = errors.New("handshake timed out")
)

// HandshakeError is a failed CURVE handshake other than a refusal by the
// server ([RefusedError]). zmq4 wraps the error of a failed Dial in several
// layers of its own; errors.As finds this one underneath, and its text is
// the whole story.
type HandshakeError struct {
	err error
}

func (e *HandshakeError) Error() string { return "curve: handshake failed: " + e.err.Error() }

// Unwrap makes the error match ErrHandshake and whatever caused it.
func (e *HandshakeError) Unwrap() []error { return []error{ErrHandshake, e.err} }

// RefusedError is returned to a client whose server answered the handshake
// with an ERROR command. A server that denies a key sends reason "400",
// and the error then also matches ErrClientKeyNotAuthorized.
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Reason == "400" {
		return "curve: client key not authorized (the server answered ERROR 400)"
	}
	return fmt.Sprintf("curve: handshake refused by server: ERROR %s", e.Reason)
}

// Unwrap makes a refusal match ErrHandshake.
func (e *RefusedError) Unwrap() error { return ErrHandshake }

// Is matches ErrClientKeyNotAuthorized for reason "400".
func (e *RefusedError) Is(target error) bool {
	return target == ErrClientKeyNotAuthorized && e.Reason == "400"
}

// Failure returns the CURVE handshake failure inside err (a *RefusedError
// or a *HandshakeError) without the layers a zmq4 Dial adds around it, or
// err itself when it holds none.
func Failure(err error) error {
	var re *RefusedError
	if errors.As(err, &re) {
		return re
	}
	var he *HandshakeError
	if errors.As(err, &he) {
		return he
	}
	return err
}

func handshakeErr(format string, args ...any) error {
	return &HandshakeError{err: fmt.Errorf(format, args...)}
}

func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
