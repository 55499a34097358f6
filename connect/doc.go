// Package connect gives Go programs a [fluxkit.Handle] to a running
// flux-core broker, without cgo or libflux: the pure-Go counterpart of
// flux_open().
//
//	h, err := connect.Open(ctx, "") // $FLUX_URI, as inside a Flux instance
//	if err != nil { ... }
//	defer h.Close()
//	err = fluxkit.RPC(ctx, h, "broker.ping", 0, map[string]any{"seq": 1, "pad": ""}, nil)
//
// # URIs
//
// local://PATH (or a bare socket path) connects to the broker's local
// connector socket; ssh://[user@]host[:port]/PATH runs "flux relay PATH" on
// host through FLUX_SSH (default ssh), with FLUX_SSH_RCMD choosing the remote
// flux command, exactly as flux-core's ssh connector does; ".", "..",
// "../.." and "/" name the enclosing instance and its ancestors. An empty
// URI means $FLUX_URI; with that unset too, Open fails with [ErrNoURI].
//
// # Protocol
//
// The wire is flux-core's: the server writes one byte when it accepts a
// client (zero, or an errno), then both sides exchange RFC 3 messages, each
// preceded by the magic 0xffee0012 (host order) and a big-endian length of
// its frames. The broker side (the connector-local module, or flux relay)
// keeps per-client state the handle relies on: requests get the client's
// route pushed, so responses find it; event.subscribe/event.unsubscribe and
// service.add/service.remove are answered by it; and when the client goes
// away it removes the client's services and subscriptions and sends
// "<service>.disconnect" (for a dotted service topic a.b.c, "a.b.disconnect")
// to every service the client sent requests to.
//
// The handle does what libflux does on the client side: it allocates
// matchtags, routes responses to calls, answers requests for unknown
// methods of its services with ENOSYS "Unknown service method 'TOPIC'" and
// requests from senders without the allowed roles with EPERM, runs handlers
// one at a time in arrival order, base64-encodes event.publish payloads and
// turns NodeidUpstream into the upstream flag. On open it sends broker.ping
// and attr.get size (pipelined) to learn its rank, the instance size and the
// credentials the broker gives it.
//
// # Differences from the in-process broker
//
// The real broker is the authority. Where it differs from fluxkit's test
// broker, the test broker was changed to match (see internal/testbroker):
// guests may register only services named "<userid>-...", a second client
// registering a service gets EEXIST, and an unknown service is ENOSYS "No
// service matching TOPIC is registered".
//
// # Lifecycle
//
// A Handle owns three goroutines (reader, writer, dispatcher). [Handle.Close]
// ends them and waits; [Handle.Done] and [Handle.Err] report an end caused by
// the broker going away, after which every pending call and subscription has
// returned an error wrapping ECONNRESET.
package connect
