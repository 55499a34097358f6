// Package flub implements FLUB, the FLUx Bootstrap protocol, together with
// the TBON overlay it joins: brokers of one instance form a tree, and an
// instance started with a size larger than its initial brokers can grow
// into it while it runs.
//
// # Pieces
//
//   - [Topology]: kary:K, binomial and flat (kary:0) trees; parent,
//     children, depth.
//   - [Pool]: rank 0's rank pool, a pure state machine (lowest free rank,
//     leases, online/offline transitions).
//   - [Broker]: one broker of the overlay, over zmq4 ROUTER (parent) and
//     DEALER (child) sockets secured with CURVE (package flub/curve).
//     Messages are RFC 3 frames; requests are routed by nodeid along the
//     tree with route stacks, responses follow the stack back, events flow
//     down from rank 0. Control messages carry heartbeats, subtree status
//     and disconnect. A Broker implements [fluxkit.Handle].
//   - [Start] boots rank 0 with its boot server; [Join] adds a broker:
//     getinfo, validate, wait for the parent, kex, bind, connect, hello.
//
// # The boot server
//
// flux-core joiners reach rank 0 through a connector (local:// or ssh://)
// that proves the caller is the instance owner. fluxkit's boot server is a
// second CURVE ROUTER on rank 0, addressed by a boot URI
// "flub://host:port/<server public key>" ([FormatBootURI]). The joiner
// authenticates with the owner's certificate; the server grants owner
// credentials to that key only (guest keys, if configured, get RoleUser).
// Requests arriving on it are routed into the overlay like a local
// client's, so overlay.flub-kex reaches the parent through the tree.
//
// # Decisions where the spec left room
//
//   - The getinfo response carries "config" (D1); the joiner validates
//     0 < rank < size before touching anything (D2).
//   - A kex name that is a decimal rank binds the key to that rank; hello
//     from that key for another rank is refused EPERM (D3).
//   - Allocations carry a lease (default 60 s); the joiner's parent wait is
//     bounded (default 30 s) (D4). Every rank that goes offline returns to
//     the pool (D5). Placeholders are extra<rank>; the joiner sends its
//     hostname in getinfo and rank 0 substitutes it once the rank is
//     online (D6).
//   - groups.get accepts "until": R, answering once R is online and then
//     ending the stream, so waiting joiners cost rank 0 one response each
//     instead of one per membership change.
//   - A child whose parent connection drops, or that receives DISCONNECT,
//     stops ([Broker.Err]); its subtree leaves broker.online with it.
//   - Rank 0 is the only broker booted with the instance (PMI size 1);
//     [SizeOverride] and [Quorum] implement the PMI-side checks.
package flub
