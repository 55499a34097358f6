// Package journal is the job manager's event journal and a job-list
// consumer of it, as flux-core has them since PR #5837 (with the later
// fixes flux-core HEAD carries).
//
// # Producer
//
// [Store] is the job manager's job table as a pure state machine: every
// active and inactive job with its complete eventlog (an append-only JSON
// array in memory), its jobspec without attributes.system.environment and
// its R without scheduling, kept current by jobspec-update and
// resource-update. [Store.Post] enforces the RFC 18 entry rules and the
// RFC 21 transitions; [Store.Submit] assigns RFC 19 ids. [Store.Restore]
// replays RFC 18 eventlogs after a restart and posts flux-restart to jobs
// in SCHED.
//
// A listener ([Store.Subscribe]) gets the backlog (inactive jobs if full,
// then active jobs, one response per job with jobspec and R attached), the
// sentinel {"id":-1,"events":[]}, then every event posted afterwards. The
// backlog is a snapshot of slice headers taken in the same step that
// registers the listener, so no event falls between backlog and live
// stream or appears in both, and it is encoded lazily as the listener
// takes it ([Store.Next]).
//
// Slow listeners: a listener's queue of live events is bounded
// ([StoreConfig.MaxQueue]); one that falls further behind is dropped with
// EOVERFLOW ([ErrOverflow]) and its memory freed, so it never stalls the
// producer or other listeners, and it recovers by subscribing again with
// full. A listener may also ask for credit-based flow control ("credit":n
// in the request, replenished by job-manager.events-journal-credit), which
// bounds the responses in flight end to end; Flux's own consumers do not
// send it and get Flux's unlimited stream.
//
// [Producer] serves a Store on a [fluxkit.Handle]:
// job-manager.events-journal (owner only, streaming required, full, allow,
// deny, credit), events-journal-cancel, events-journal-credit, disconnect,
// stats-get, purge (publishing job-purge-inactive) and getattr.
//
// # Consumer
//
// [Index] is job-list as a pure state machine, as flux-core v0.88's
// job-list module behaves: it applies journal responses, indexes jobs into
// the pending, running and inactive lists, derives attributes from the
// jobspec and R (package job decodes them: RFC 14/25 and RFC 20, read as
// job-list's job_data.c reads them, tasks per node or per core deferred to
// R, an R without hosts keeping the jobspec's cores), and answers
// job-list.list (RFC 31 constraints with the RFC 43 operators, hostlist,
// ranks and every timestamp included, flux-core's comparisons cap and the
// state match that skips lists no job of can match; streaming or not),
// list-id (with state waits), list-attrs, job-stats and stats-get. Job
// objects show their attributes in the order the request names them,
// t_priority and t_sched are the first entries to PRIORITY and SCHED, a
// memo merges into annotations.user keeping key order, and [access]
// private-mode limits guests to their own jobs. Requests that arrive
// before the sentinel are answered in order once the backlog is applied;
// the lists are sorted once at the sentinel.
//
// [Consumer] runs an Index on a Handle under the service name job-list (or
// another, to run beside flux-core's module): each list answer is sent
// from a goroutine of its own, so that a client slow to take a huge answer
// holds up neither the index nor other clients; job-list.config-reload
// applies a new configuration ([ParseConfig]).
//
// fluxkit fixes three gaps of flux-core's job-list: a job-purge-inactive
// event that arrives before the sentinel (or before the job's last events)
// is applied once the job is INACTIVE, so a purged job never reappears;
// list-id waiters of a purged or invalidated job are answered ENOENT; and
// jobs only move forwards. An event moves a job only as RFC 21 moves a job
// from the state it is in, and nothing moves an INACTIVE job, whose result
// is fixed when it gets there; so a duplicate or late event (a depend
// repeated after SCHED, a finish after clean, the events a live stream
// repeats where it overlaps the backlog) is logged and changes neither
// state, result, success nor statistics. The ways back RFC 21 has are
// kept: SCHED to PRIORITY on urgency, jobspec-update and flux-restart, and
// on to SCHED with the next priority. A second sentinel is logged and
// ignored.
//
// list-id for a job the index has not seen waits for it if the job exists,
// which [IndexConfig.Lookup] tells; a [Consumer] asks the job manager
// (job-manager.getattr), which holds every job from its submission until
// it is purged, where flux-core's job-list looks up the job's KVS
// directory. Error answers are flux-core's: its errno, and its text or
// strerror's words where it gives none.
//
// Malformed input stops the Index with a [ProtocolError] naming the job,
// the event and what is wrong. [Consumer] runs an Index on a Handle and can
// [Consumer.Reconnect] from a fresh full subscription. It receives and
// decodes responses on a goroutine of its own, a bounded queue ahead of the
// one applying them under its lock, so that a backlog's decoding and
// indexing use two cores.
//
// Ingestion is one validating pass over each response that also decodes
// its entries; job records keep rarely used fields out of line, and the
// strings and idsets jobs repeat (queue, cwd, names, R's ranks and cores)
// are interned, so a backlog costs about one allocation per job.
//
// All list orders are total: pending by priority descending then id
// ascending, running by t_run descending then id descending, inactive by
// t_inactive descending then id descending. So a consumer's lists are a
// function of the jobs' states, whatever moment it attached at.
package journal
