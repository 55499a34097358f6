// Package curve implements ZeroMQ's CURVE security mechanism (ZMTP-CURVE,
// RFC 25/26) for github.com/go-zeromq/zmq4, byte-compatible with libzmq
// 4.3.4, together with Z85 (RFC 32), CURVE key pairs and Flux/CZMQ
// certificate files.
//
// # Fitting into zmq4
//
// zmq4 v0.17 ships no CURVE, and its Security interface cannot express
// libzmq's encrypted framing: it would encrypt what zmq4 has already
// framed, whereas libzmq's CURVE boxes every frame, its MORE and COMMAND
// flags included, in a MESSAGE command of its own. This package therefore
// works through zmq4's exported transport API: a [Transport] registered
// under its own scheme carries CURVE on the wire, while the zmq4 socket
// above it runs the ordinary NULL mechanism. The transport's connections intercept zmq4's
// NULL greeting and READY, run the CURVE handshake with the real peer
// (carrying zmq4's Socket-Type and Identity in INITIATE or READY), then hand
// zmq4 a synthesized NULL greeting and READY describing the peer. After
// that, each plain frame zmq4 writes becomes one MESSAGE command with MORE
// and COMMAND moved inside the box, and each MESSAGE from the peer becomes
// one plain frame again. PING is answered and PONG consumed inside the
// connection.
//
// A [Server] or [Client] holds one socket's keys; its Endpoint method
// rewrites a Flux "tcp://host:port" URI into the transport's scheme with
// the configuration's id in the address, since a zmq4 transport sees only
// the address:
//
//	tr, _ := curve.NewTransport("curve") // once per process
//	srv, _ := tr.NewServer(curve.ServerConfig{Keys: cert.Keys, Authorizer: curve.AllowList(childKey)})
//	ep, _ := srv.Endpoint("tcp://10.0.0.1:0")
//	router := zmq4.NewRouter(ctx)
//	_ = router.Listen(ep)
//
// The listener finishes each CURVE handshake on its own goroutine under a
// deadline and hands zmq4 only authenticated connections, so a stalled or
// hostile client never holds up zmq4's accept loop. The authorizer (the ZAP
// role) maps a client key to allow with a user id, deny (ERROR "400") or
// temporary failure (close); [Server.Peer] returns, for the routing id a
// ROUTER puts first in each message, the peer's authenticated key, user id
// and metadata.
//
// Limits of the design: frames are parsed twice (once by zmq4, once here);
// zmq4 believes the mechanism is NULL, so zmq4's own metadata API shows only
// Socket-Type and Identity (use Peer for the rest); transport names are
// process-wide and cannot be unregistered, so a program creates one
// Transport per scheme; a zmq4 socket on a curve endpoint must keep zmq4's
// default NULL security.
//
// [Transport.NewServer] and [Transport.NewClient] call
// [ServerConfig.Validate] and [ClientConfig.Validate], which name the field
// at fault; the zero value of every other field is its documented default.
//
// The handshake logic is a pair of pure state machines (no I/O), so every
// check can be exercised without sockets; the connection code drives them.
package curve
