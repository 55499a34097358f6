package fluxkit

import (
	"context"
)

// Handle is what a component uses to talk to its broker: a connection to one
// rank of an instance, with the credentials it was opened with.
//
// Implementations: connect (a real flux-core broker, the authority where
// the others could differ), internal/testbroker (an in-process instance of
// N ranks) and the flub overlay broker; internal/handletest checks that
// they agree. Every method is safe for concurrent use.
type Handle interface {
	// Rank is the rank of the broker this handle is connected to.
	Rank() uint32
	// Size is the number of ranks in the instance.
	Size() uint32
	// Cred is the identity requests sent on this handle carry.
	Cred() Cred

	// Request sends req, a message of type TypeRequest. Nodeid is a rank,
	// NodeidAny (the nearest rank with the service, starting here and
	// walking towards rank 0) or NodeidUpstream (the same, skipping this
	// rank). The handle assigns the matchtag and the credentials.
	//
	// For a request with FlagNoResponse the returned Call is nil. Otherwise
	// the Call yields one response, or with FlagStreaming a stream of
	// responses ended by an error response (ENODATA for a normal end). The
	// caller must Close the Call when it stops reading.
	//
	// ctx bounds only the sending; Call.Recv takes its own.
	Request(ctx context.Context, req *Message) (Call, error)

	// Register makes h the handler of requests for topic (an exact topic
	// such as "job-manager.events-journal") and registers the service the
	// topic belongs to (what precedes the first dot) on this handle's rank.
	// A service has one provider per rank: another client's registration
	// fails EEXIST. A guest may register only services named after its
	// userid ("1001-myservice"); others fail EPERM.
	//
	// Requests from senders without the owner role or a role in allow get
	// EPERM without reaching h: "Request requires owner credentials" when
	// allow is 0 or RoleOwner, else "Request rejected due to insufficient
	// privilege". A request for a registered service but an unknown topic
	// gets ENOSYS "Unknown service method 'TOPIC'"; one for no service at
	// all, ENOSYS "No service matching TOPIC is registered".
	//
	// When a client that sent requests to the service goes away, the
	// broker sends a disconnect message (FlagNoResponse) with that client
	// as sender, once per topic prefix it used: the request topic with its
	// last component replaced ("svc.method" gives "svc.disconnect",
	// "a.b.c" gives "a.b.disconnect"). Register that topic to drop the
	// client's state.
	//
	// Handlers registered on one Handle run one at a time, in arrival
	// order, as a flux-core module's handlers run on its reactor. The
	// context passed to h ends when the registration or the handle ends.
	Register(topic string, allow Role, h HandlerFunc) (unregister func(), err error)

	// Publish sends an event to every subscriber of the instance. Rank 0
	// assigns the sequence number. flags may hold FlagPrivate, which limits
	// delivery to the instance owner and the publisher's user.
	Publish(ctx context.Context, topic string, payload []byte, flags MsgFlags) error

	// Subscribe delivers every event whose topic starts with prefix, in
	// sequence order, until the Subscription is closed.
	Subscribe(ctx context.Context, prefix string) (Subscription, error)
}

// ValidateRequest reports, as an EINVAL *Error, why req cannot be sent with
// [Handle.Request]: it is not a request, it has no topic, or it asks for
// both no response and streaming. Every Handle calls it first.
func ValidateRequest(req *Message) error {
	switch {
	case req.Type != TypeRequest:
		return Errorf(EINVAL, "message type %s is not a request", req.Type)
	case req.Topic == "":
		return Errorf(EINVAL, "request has no topic")
	case req.IsNoResponse() && req.IsStreaming():
		return Errorf(EINVAL, "NORESPONSE and STREAMING are exclusive")
	}
	return nil
}

// HandlerFunc serves one request. It may answer at once, later, or many
// times (a streaming request) through w, which stays valid after the function
// returns. It must not block for long: handlers of one Handle run one at a
// time.
type HandlerFunc func(ctx context.Context, w Responder, req *Message)

// Responder answers one request. Responses to a request with FlagNoResponse
// are dropped; responses to a client that has gone away are dropped.
type Responder interface {
	// Respond sends a successful response with the given JSON payload.
	// For a streaming request it may be called any number of times.
	Respond(payload []byte) error
	// RespondError sends an error response built from err with [Errno]
	// and [ErrorText]. It ends a stream.
	RespondError(err error) error
}

// Call is an RPC in flight, seen from the sender.
type Call interface {
	// Matchtag is the matchtag the request was sent with, which services'
	// cancel methods take.
	Matchtag() uint32
	// Recv waits for the next response. It returns the response message
	// and, for an error response, an *Error as well. After the last
	// response (a single RPC's only response, or a stream's error) it
	// returns an error wrapping ENODATA.
	Recv(ctx context.Context) (*Message, error)
	// Close abandons the RPC: later responses are dropped. It does not
	// tell the service; use the service's cancel method for that.
	Close()
}

// Subscription is a stream of events.
type Subscription interface {
	// Recv waits for the next event.
	Recv(ctx context.Context) (*Message, error)
	// Close ends the subscription; a pending Recv returns an error.
	Close() error
}
