// Package fluxkit is the shared broker contract of fluxkit, a pure-Go
// re-implementation of subsystems of the Flux resource manager (flux-core).
//
// The package holds only what every component needs to talk to a broker
// without knowing which broker it is:
//
//   - [Message], the RFC 3 message with its wire encoding ([Message.Frames],
//     [DecodeFrames]) and constants;
//   - [Error], the RFC 6 error response as a Go error that matches
//     syscall errnos with errors.Is;
//   - [Handle], the narrow interface a component (modprobe, journal, exec,
//     flub) uses to send RPCs, serve requests and exchange events;
//   - [JobID], the RFC 19 FLUID job identifier and its encodings.
//
// Components depend on this package and on idset, never on each other, so
// the same component runs over the in-process test broker
// (internal/testbroker) and over a real multi-process overlay (flub).
//
// Payloads are kept as JSON bytes, as on the wire, so that nothing pays for a
// decode it does not need; [RPC] and [Respond] are the JSON conveniences.
package fluxkit
