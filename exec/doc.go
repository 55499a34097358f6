// Package exec is fluxkit's job-shell launcher: the exec service between the
// job manager and the job shells, speaking RFC 32 with the job manager over
// a [fluxkit.Handle].
//
// Two components share the work, as flux-core issue #3346 asks:
//
//   - The [Coordinator] runs on rank 0. It says job-manager.exec-hello,
//     serves the streaming <service>.start request and answers start,
//     reattached, exception, finish and release in RFC 32 order. It owns
//     each job's exec eventlog (RFC 50, stored in the KVS in batches), the
//     expiration timer, the termination algorithm, critical and lost ranks,
//     and release accounting. Its decisions are made by a pure per-job state
//     machine driven with the current time, so every timeline can be replayed
//     under a virtual clock.
//   - An [Agent] runs on every rank. The first rank of a job (its leader)
//     receives exec-agent.launch and forwards it over a k-ary tree of the
//     job's ranks; each agent spawns its own rank's shell, at most once per
//     (job, rank), in its own process group, captures its stdout and stderr
//     from the first byte with acknowledged, back-pressured delivery, reaps
//     it once, runs the optional per-rank epilog and reports started,
//     exited and released ranks up the tree in batches. Rank 0 therefore
//     sends and receives a constant number of messages per job.
//
// Methods: "bulk-exec" (the default, real processes), "testexec" (simulated
// shells, selected by attributes.system.exec.test) and "bypass" (an external
// controller starts and finishes the job with <service>.bypass). Guests may
// use only the configured default unless exec.<method>.allow-guests is set,
// and a guest's bulk-exec job needs exec.imp, which runs "<imp> exec <shell>".
//
// Shell barriers: when a job shell is configured (exec.job-shell or the
// jobspec's job_shell) and the job has several shells, each shell enters two
// barriers through exec-agent.barrier-enter on its own rank; entries are
// reduced up the job's tree and released down it by the leader, so rank 0
// is not involved. A shell exiting while a barrier is pending fails it with
// EIO; an exit before the first barrier is fatal; the first barrier is
// bounded by exec.barrier-timeout, after which a query reduced up the tree
// finds exactly the ranks that never entered, and they are drained. A bare
// command run without a job shell passes no barriers.
//
// Releases are held until finish, so a normal stream is start, finish,
// releases; with a per-rank epilog (exec.epilog) ranks are released as
// their epilogs end, in batches, the last with final:true. Lost ranks are
// released with the others.
//
// Termination (§2.6 of the spec), pinned by TestKillEscalationTimeline and
// returned by [Settings.KillSchedule]: at the first fatal exception the
// shells get term-signal; their tasks get kill-signal every kill-timeout
// (kto) until 5·kto; from 5·kto the shells themselves get kill-signal, the
// interval doubling from kto and capped at 300 s; one interval after the
// max-kill-count'th shell kill (or at max-kill-timeout when set) the ranks
// still active are drained ("unkillable user processes for job <f58>") and
// forced complete with status 256. [Settings.EffectiveMaxKillTimeout] (the
// stats value) is that drain time: 940 s with flux-core's defaults, because
// fluxkit gives the last shell kill the same grace as the others where
// flux-core's documented estimate (640 s) does not.
//
// Restart: a new coordinator says hello again; the job manager re-sends
// start with reattach. The coordinator reloads the exec eventlog, requires
// the recoverable event, and asks the agents (which kept their records and
// their shells) for the state of every rank; it answers reattached, and
// shells that ended meanwhile give finish and releases. A start re-sent
// without reattach adopts shells already running (exec.adopt-on-restart,
// default true) or, when that is false, fails the job.
package exec
