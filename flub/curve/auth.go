package curve

import "context"

// Verdict is an authorizer's answer, mirroring ZAP status codes.
type Verdict int

const (
	// Deny refuses the key: the client gets ERROR "400" (ZAP 400). It is
	// the zero value, so an unset Decision denies.
	Deny Verdict = iota
	// Allow accepts the key (ZAP 200).
	Allow
	// TempFail closes the connection without an ERROR (ZAP 300).
	TempFail
)

// Decision is what an Authorizer returns.
type Decision struct {
	Verdict Verdict
	// UserID is kept with an allowed connection and readable through
	// Server.Peer, as libzmq's User-Id message property.
	UserID string
	// Reason is the status text; it is logged, never sent.
	Reason string
}

// AuthRequest describes a client whose handshake reached authorization: its
// INITIATE, cookie and vouch have all been verified.
type AuthRequest struct {
	Domain  string // the server's ZAP domain ("flux" by default)
	Address string // the client's IP address, as ZAP's address frame
	Key     Key    // the client's permanent public key, proven by the vouch
}

// Authorizer plays the ZAP handler's role for a Server. It runs on the
// connection's own handshake goroutine, so a slow decision delays only that
// client; ctx ends with the handshake deadline or when the listener closes,
// and an Authorizer must return by then (closing the socket waits for it).
// A panic fails that handshake as a temporary failure and is logged.
type Authorizer func(ctx context.Context, req AuthRequest) Decision

// AllowList returns Flux's key-store policy: a listed key is allowed with
// its Z85 text as user id; anything else is denied with "No access".
func AllowList(keys ...Key) Authorizer {
	set := make(map[Key]struct{}, len(keys))
	for _, k := range keys {
		set[k] = struct{}{}
	}
	return func(_ context.Context, req AuthRequest) Decision {
		if _, ok := set[req.Key]; ok {
			return Decision{Verdict: Allow, UserID: req.Key.String(), Reason: "OK"}
		}
		return Decision{Verdict: Deny, Reason: "No access"}
	}
}
