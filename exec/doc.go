// Package exec is fluxkit's job-shell launcher: the exec service between the
// job manager and the job shells, speaking RFC 32 with the job manager over
// a [fluxkit.Handle].
//
// Two components share the work, as flux-core issue #3346 asks:
//
//   - The [Coordinator] runs on rank 0. It says job-manager.exec-hello,
//     serves the streaming <service>.start request and answers start,
//     reattached, exception, finish and release in RFC 32 order. It owns
//     each job's guest namespace and exec eventlog, kept in the KVS as
//     flux-core's job-exec keeps them (see below), the expiration timer,
//     the termination algorithm, critical and lost ranks, and release
//     accounting. Its decisions are made by a pure per-job state
//     machine driven with the current time, so every timeline can be replayed
//     under a virtual clock.
//   - An [Agent] runs on every rank. The first rank of a job (its leader)
//     receives exec-agent.launch and forwards it over a k-ary tree of the
//     job's ranks; each agent spawns its own rank's shell, at most once per
//     (job, rank), in its own process group, keeps a record of it on disk
//     (AgentConfig.RuntimeDir), has it write its stdout and stderr to files
//     from the first byte, delivers them with acknowledged offsets, reaps
//     it once, runs the optional per-rank epilog and reports started,
//     exited and released ranks up the tree in batches. Rank 0 therefore
//     sends and receives a constant number of messages per job.
//
// Methods: "bulk-exec" (the default, real processes; flux-core's "bgexec"
// may be configured too and runs the same way), "testexec" (simulated
// shells, selected by attributes.system.exec.test) and "bypass" (an external
// controller starts and finishes the job with <service>.bypass). Guests may
// use the configured method, and testexec, bypass or another method only
// where exec.<method>.allow-guests is set; a guest's job with real shells
// needs exec.imp, which runs "<imp> exec <shell>". Configuration is checked
// in one place, [Settings.Validate], whether it comes from the broker or
// from Config.
//
// Job shells are started as flux-core's job-exec starts flux-shell: the
// shell is the jobspec's attributes.system.exec.job_shell, else [exec]
// job-shell, else Config.JobShell (flux-core's built-in shell_path); its
// command line is "[<imp> exec] <shell> <jobid>" and its environment the
// agent's (AgentConfig.Environ, which should be the broker's) with
// FLUX_KVS_NAMESPACE naming the job's guest namespace, and for a guest's job
// FLUX_IMP_EXEC_HELPER. Without any job shell, fluxkit runs the jobspec's
// first command itself, one per rank, with the jobspec's environment and
// the variables a job's tasks see (FLUX_JOB_ID, FLUX_TASK_RANK, ...): the
// in-process tests' mode. The job manager's start request is answered in
// full whether it streams (fluxkit's) or not (flux-core's, which matches
// the responses by topic).
//
// Shell barriers: when a job shell runs and the job has several shells,
// each shell enters two barriers on its own rank: flux-shell through
// <ShellService>.shell-barrier (AgentConfig.ShellService, flux-core's
// "job-exec.shell-barrier", sent with NORESPONSE to the nearest rank with
// the service and answered by a response built by hand), other shells
// through exec-agent.barrier-enter. Entries are reduced up the job's tree
// and released down it by the leader, so rank 0 is not involved. A shell exiting while a barrier is pending fails it with
// EIO; an exit before the first barrier is fatal, and for a guest's job the
// ranks that exited without entering are drained; the first barrier is
// bounded by exec.barrier-timeout, after which a query reduced up the tree
// finds exactly the ranks that never entered, and they are drained. A bare
// command run without a job shell passes no barriers.
//
// Releases are held until finish, so a normal stream is start, finish,
// releases; with a per-rank epilog (exec.epilog) ranks are released as
// their epilogs end, in batches, the last with final:true. Lost ranks are
// released with the others.
//
// Termination, listed by [Settings.KillSchedule], which is the walk the
// coordinator itself follows, and pinned by TestKillEscalationTimeline: at
// the first fatal exception the shells get term-signal; their tasks (the
// shells' descendants, not the shells) get kill-signal every kill-timeout
// (kto) until 5·kto; from 5·kto the shells themselves get kill-signal, and
// after each such kill the job's kill-timeout doubles (capped at 300 s) and
// is the wait before the next, as flux-core's timers run (5, 7, 11, 19·kto
// ...). A guest's shells run under the IMP, which the owner signals only
// through it: its shell kills are SIGUSR1, which the IMP turns into SIGKILL
// of the job's cgroup (RFC 15), and its task kills go through
// job-manager.kill, on whose shell-<id>.kill event the shells signal their
// tasks, as flux-core does. One such wait after the max-kill-count'th shell kill (or at
// max-kill-timeout when set) the ranks still active are forced complete
// with status 256, and those that may still hold processes drained
// ("unkillable user processes for job <f58>"). Kills travel down the job's
// tree as RPCs answered rank by rank: ranks that hold nothing any more are
// spared the drain, and ranks the kill did not reach get it directly.
// [Settings.EffectiveMaxKillTimeout] (the stats value) is the drain time:
// 1235 s with flux-core's defaults, where flux-core's documented estimate
// is 640 s: fluxkit's schedule is the one flux-core's timers run, and it
// gives the last shell kill the same grace as the others.
//
// KVS: each job gets a guest namespace "job-<id>" owned by its user,
// linked from the primary namespace at job.<id>.guest; its exec eventlog is
// the RFC 18 eventlog exec.eventlog there (one JSON object per line, grown
// by appending), which the job shell appends to as well and which flux job
// eventlog -p exec and flux job attach read. Events are committed in
// rounds, one commit per job's namespace, all of a round in flight at once.
// A job's launch waits until its init and starting events are committed,
// and its release final until done is committed and the namespace grafted
// at job.<id>.guest and removed, as in flux-core. Besides flux-core's
// events the eventlog holds "termination" (see Restart), and log events
// carry the "offset" of their data.
//
// Output is bytes: a piece that is not UTF-8 is stored in its log event
// base64-encoded ("encoding":"base64", as RFC 24 does), a character split
// across writes is kept whole, and offsets count the bytes the shell wrote.
// The coordinator answers each piece with the offset it has stored up to,
// and the agent goes on from there, re-sending from its files what a new
// exec eventlog lacks.
//
// Restart: a new coordinator says hello again; the job manager re-sends
// start with reattach. The coordinator reloads the exec eventlog, requires
// the recoverable event, and asks the agents (which kept their records and
// their shells) for the state of every rank; it answers reattached, and
// shells that ended meanwhile give finish and releases. A termination in
// progress goes on where it stood (the "termination" event records it),
// and the leader reports the barriers already passed. A start re-sent
// without reattach adopts shells already running (exec.adopt-on-restart,
// default true) or, when that is false, fails the job; a duplicate start
// for a job in progress takes the job over rather than failing.
//
// An agent restart (with a RuntimeDir) leaves the shells running: the next
// agent on the rank finds them through their records, checked against the
// live processes, and its tree parent (or the coordinator, for a leader)
// re-establishes the broken launch stream; nothing is started twice. A
// shell whose job ended meanwhile is killed once the job's exec eventlog
// shows it done. A process can wait only for its own children, so an
// agent restarted in another process learns the exit status of a shell its
// predecessor started only from the rank's keeper (AgentConfig.Keeper,
// [RunKeeper]): one process per runtime directory, in a session of its own,
// that forks the shells the agent asks for over a socket there, records
// each one's status in its record before it reaps it, tells the agent, and
// outlives agents; without a keeper, such a rank fails the job.
//
// What is not flux-core's: flux-core v0.88 posts no recoverable event and
// cannot reattach bulk-exec jobs; fluxkit can, and posts it. The launch and
// kill traffic goes over fluxkit's agents, not the broker's rexec service.
package exec
