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
)

// RefusedError is returned to a client whose server answered the handshake
// with an ERROR command. A server that denies a key sends reason "400".
type RefusedError struct {
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("curve: handshake refused by server: ERROR %s", e.Reason)
}

// Unwrap makes a refusal match ErrHandshake.
func (e *RefusedError) Unwrap() error { return ErrHandshake }

func handshakeErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrHandshake}, args...)...)
}

func protocolErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}
