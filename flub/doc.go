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
//     leases, online/offline transitions, orphaned ranks and reclaims).
//     Its memory, like rank 0's, follows the ranks in use: an instance
//     may announce any size up to [MaxSize] (2^31, the idset limit).
//   - [Broker]: one broker of the overlay, over zmq4 ROUTER (parent) and
//     DEALER (child) sockets secured with CURVE (package flub/curve).
//     Messages are RFC 3 frames; requests are routed by nodeid along the
//     tree with route stacks, responses follow the stack back, events flow
//     down from rank 0. Control messages carry heartbeats, subtree status
//     and disconnect. A Broker implements [fluxkit.Handle]; so does each
//     [Conn] that [Broker.Connect] opens with other credentials.
//   - [Start] boots rank 0 with its boot server; [Join] adds a broker:
//     getinfo, validate, wait for the parent, kex, bind, connect, hello.
//   - [Client], from [DialBoot], is a connection to the boot server. It
//     sends requests and nothing else, so it is a [Requester], not a
//     fluxkit.Handle.
//
// # Lifecycle
//
// Start, Join and DialBoot take a context, for the I/O they do before they
// return, and a [Config], [JoinConfig] or [ClientConfig] whose Validate
// method they call first: Validate names the first field out of range and
// changes nothing. The zero value of a field is its documented default
// except where zero means something, and there the field is a pointer:
// Config.OwnerUserid (nil: this process's userid; 0: root) and
// JoinConfig.ReconnectTimeout (nil: 10 s; 0: rejoin after one failed
// attempt). [Broker.Close] waits for every goroutine and socket the broker
// started; [Broker.Done] and [Broker.Err] say when and why a broker stopped
// on its own ([ErrParentLost], [ErrDisconnected], [ErrReplaced]).
// [Broker.Shutdown] is the graceful exit: modules first, then
// overlay.goodbye to the parent, bounded by its context, then Close.
//
// Inside, one goroutine per broker (the loop) owns all routing and
// membership state. Socket readers and client calls hand it closures
// through an unbounded queue, and every socket has its own writer
// goroutine, so two brokers writing to each other never wait on each
// other's loop. Everything else is plain data the loop drives: the
// [Pool], the membership sets (members.go), the hello checks (hello.go).
//
// # Broker services and modules
//
// Every broker answers, itself, the services a component expects of its
// broker, with internal/testbroker's payloads and roles so that a
// component behaves the same on both: attr.get, attr.set (rank, size,
// tbon.*, hostlist and instance-level are immutable: EPERM), config.get,
// broker.getenv {"names"} → {"env"} and broker.setenv {"env"} over the
// broker's own environment (Config.Env, default the process environment at
// start), broker.ping, module.load, module.remove and module.list; rank 0
// also serves flux-core's KVS protocol (package kvs), enough for
// modprobe.stats. Guests may use attr.get, config.get, broker.ping and
// module.list; everything else answers them EPERM "Request requires owner
// credentials".
//
// A module is a [ModuleFunc] registered in Config.Modules (or
// JoinConfig.Modules) and started by module.load on a goroutine the broker
// owns, with a [Conn] of its own. The load is answered when the module
// calls SetRunning (flux_module_set_running), so a client that saw the
// load succeed finds the services the module registered first; a module
// that returns, panics or is not running within ModuleTimeout fails its
// load with a text naming it. module.remove cancels the module, waits for
// it to return and closes its Conn before answering. A module that fails
// later is logged and leaves module.list. [Broker.Close] removes every
// module, while the broker still routes their last messages, before it
// stops. With these, package modprobe runs rc1 and rc3 across the overlay
// (see examples/modprobe-overlay).
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
// # Design decisions
//
// Where flux-core's FLUB left a choice open, or fluxkit needed more than
// flux-core's payloads say, these are the choices, each with what makes
// it hold:
//
//   - getinfo answers with "config", the instance configuration, which
//     flux-core's server leaves out (the joiner then has none). The joiner
//     checks the answer before it touches anything: integers with
//     0 < rank < size, string attributes, an object for config
//     (parseGetinfoResponse, TestJoinerChecksGetinfoAnswers).
//   - A kex name that is a canonical decimal rank binds the key to that
//     rank: hello from that key for another rank is refused EPERM, so a
//     joiner cannot take a rank it was not given
//     (TestKexBindsTheKeyToTheNamedRank). Keys are never removed.
//   - A rank handed out by getinfo is leased (Config.Lease, default 60 s)
//     and returns to the pool if its joiner never comes online; a joiner
//     waits for its parent at most JoinConfig.ParentTimeout (default 30 s,
//     keep it below the lease) before it gives up, ETIMEDOUT, without a key
//     exchange (TestUnusedRanksReturnWhenTheirLeaseEnds). Every rank that
//     goes offline returns to the pool, whichever way it was booted.
//   - The hostlist names unjoined ranks extra<rank>. A joiner sends its
//     hostname in getinfo (a key flux-core's server ignores) and rank 0
//     puts it in the hostlist once the rank is online.
//   - getinfo also carries the joiner's configured tbon.topo: rank 0
//     refuses a mismatch before it allocates a rank, and a joiner with
//     none adopts the instance's (TestTopologyCheckedAtGetinfo).
//   - groups.get accepts "until": R, answering once R is online and then
//     ending the stream, so waiting joiners cost rank 0 one response each
//     instead of one per membership change. groups.get also serves
//     broker.torpid.
//   - Rank 0 is the only broker booted with the instance (PMI size 1);
//     [SizeOverride] and [Quorum] implement the PMI-side checks of the
//     size attribute and broker.quorum.
//
// # Membership and failures
//
// A parent reports each change among its children to rank 0 as one
// message (overlay.member) that every broker on the way applies to its view
// of its subtree: a child that comes online, or replaces the broker that
// held its rank, is one "join" carrying its online descendants, so rank 0
// never sees a held rank offline and getinfo never hands it out twice
// (TestPropertyNoRankHandedOutWhileHeld).
//
// As in flux-core, a child silent for TorpidMax is torpid: logged, listed
// in broker.torpid, still online. Only a failed connection makes it lost;
// its rank then returns to the pool. Its descendants are not lost with it:
// rank 0 holds their ranks (orphaned) for the lease. zmq4 does not
// reconnect, so a child whose parent connection fails does, with backoff,
// for JoinConfig.ReconnectTimeout; when the parent is gone for good (its
// port refuses, another key answers, or the time is up) it rejoins through
// the boot server, reclaiming its own rank (overlay.flub-reclaim), waits
// for a replacement parent and comes back with its subtree (hello with
// "reconnect" and "subtree"). A broker that finds its rank held by another
// key on its return stops with [ErrReplaced]. Requests in flight over a
// lost link fail with EHOSTUNREACH, as flux-core's RPC tracking does.
// Joiners adopt the instance's tbon.topo, which getinfo reports, or are
// refused before they cost a rank.
//
// The CURVE listeners refuse no connection short of the descriptor limit
// (as libzmq): idle connections cannot lock peers out. Handshake failures
// say "server key mismatch", "client key not authorized" or "handshake
// timed out".
package flub
