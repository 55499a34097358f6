// Package testbroker is an in-process Flux instance of N ranks for tests and
// simulations, with an httptest-like lifecycle: [New] returns a started
// instance and [Broker.Close] waits for everything it started.
//
// Each rank has broker attributes, a config tree, an environment, a module
// registry with settable load latency and injected failures, and the
// built-in services a component expects of its broker (attr.get, config.get,
// broker.getenv, module.load/remove/list, and on rank 0 a tiny KVS and
// groups.get for broker.online). Clients connect to a rank with
// [Broker.Connect] and get a [Handle] implementing [fluxkit.Handle].
//
// A rank is created, with its built-in services and their dispatcher, the
// first time anything uses it: a client connects to it, a request is
// routed to one of its built-ins, or a test calls [Broker.Rank], stops it or
// sets its link. An instance of [MaxSize] ranks costs what the ranks a test
// touches cost.
//
// Requests are routed by nodeid over a k-ary tree of ranks. Routing is done
// synchronously in the sender's goroutine: no goroutine per rank or per hop,
// so an RPC round trip costs two goroutine hand-offs (to the serving
// handle's dispatcher and back to the caller) and a thousand-rank instance
// is cheap. The route stack of a delivered request holds only the sending
// client's UUID; the tree matters for reachability and for link faults.
//
// Faults: [Broker.StopRank] makes a rank unreachable (requests to it or
// through it fail EHOSTUNREACH, requests in flight across it fail the same
// way, and it leaves broker.online); [Broker.StartRank] brings it back.
// [Broker.SetLink] delays or drops requests, responses and disconnect
// messages crossing a child's link to its parent, drawing from a RNG seeded
// by Config.Seed. A delay keeps the order of each direction of a link, as a
// TCP connection does: a message leaves a link no sooner than its delay
// after it entered and never ahead of one that entered before it, even when
// the delay is lowered or cleared meanwhile, so a stream's end never
// overtakes its last response. Errors the broker raises itself (an
// unreachable rank, a service gone) reach the caller at once, without
// crossing links. Events are never delayed or dropped: the overlay carries
// them reliably, and subscribers on a stopped rank simply miss them.
package testbroker
