// Package modprobe is a Go implementation of flux-core's "flux modprobe":
// declarative, parallel start-up and shut-down of broker modules and other
// tasks.
//
// # Model
//
// Modules are described in TOML ([[modules]] with name, module, args,
// ranks, provides, requires, needs, before, after, needs-attrs,
// needs-config, needs-env, priority, disabled, exec). Tasks are Go values
// ([Task], grouped in an [RC] with an optional setup hook) or declarative
// rc files (below). Every entry is registered under its name and under
// each service it provides; the provider of a service is the enabled one
// with the highest (priority, load order), and alternatives raise a
// provider's priority above its competitors.
//
// Configuration is read as flux-core reads it: the built-in modprobe.toml
// (by default the embedded copy of flux-core's, see [Defaults]), then
// modprobe.d/*.toml in each directory of the search path (default: the
// built-in directory and CONFDIR/modprobe; FLUX_MODPROBE_PATH replaces
// it, FLUX_MODPROBE_PATH_APPEND extends it), then the broker config's
// [modules] table (config.get), walked in the order of its keys.
//
// # Planning and execution
//
// Planning is pure (no goroutines, clock or I/O): the driver first
// gathers the attributes, config and environment that needs-* conditions
// name, then the planner filters active entries by enablement on the
// rank, drops entries whose needs have no enabled provider (cascading),
// closes over requires, and builds the predecessor graph from before and
// after (with "*"). Shut-down swaps each loaded module's before and after.
// The needs check is keyed by service, so planning is linear in entries
// plus edges.
//
// The executor starts each task the moment its last predecessor finishes,
// with no levels and, by default, no concurrency cap ([ExecConfig.Limit]
// sets one). The first failure stops new starts; running tasks finish;
// the rest are reported once each as skipped. Cancelling the context
// stops the run the same way; [ExecConfig.TaskTimeout] bounds each task.
// Dry runs execute one task at a time in a deterministic order.
//
// # Declarative rc files
//
// So that an administrator needs no Go compiler, rc1.toml, rc1.d/*.toml,
// rc3.toml and rc3.d/*.toml (built-in first, then along the search path)
// hold what flux-core's rc1.py/rc3.py files hold:
//
//	# setup(): run in order when the file is loaded
//	[[setup]]
//	when-env = ["!FLUX_SCHED_MODULE=none"]   # also when-attrs, when-config
//	load = ["sched", "feasibility"]          # load_modules()
//	setopt = { sched = "queue-depth=8" }     # setopt(); setopt-overwrite = true
//	alternatives = { content-backing = "content-files" }
//	alternatives-from-attrs = { content-backing = "content.backing-module" }
//	enable = ["feasibility"]                 # also disable
//	setenv = { FOO = "bar" }                 # broker.setenv and local
//
//	[[tasks]]                                # @task(...)
//	name = "post-start-event"
//	ranks = "0"
//	after = ["content-backing", "kvs"]
//	requires = ["kvs"]
//	needs = ["content-backing"]
//	run = "flux startlog --post-start-event" # bash -c
//	# also: rpc = "topic", payload = {...}, nodeid = N; setopt; setenv;
//	# print = "text"; rc-scripts = 1 (run_all_rc_scripts); fail = "msg"
//
// when-* conditions use needs-* syntax ("x" set, "!x" unset) and also
// "x=value"; when-env looks at the local environment only, as flux-core's
// rc1 does for FLUX_SCHED_MODULE. A task's actions run in the order
// setenv, setopt, print, rpc, run, rc-scripts, fail.
//
// The embedded rc1.toml and rc3.toml reproduce the task graph of
// flux-core's rc1.py and rc3.py exactly (names, ranks, ordering,
// requires, needs, conditions). Their actions run the same flux commands
// and RPCs, simplified where the Python code computes arguments
// (check-restore always adds "truncate" to the content backing module's
// arguments when content.restore is set; restore and content-dump take the
// path from the attribute as is).
//
// # Departures from flux-core
//
// Where flux-core is buggy or quirky, this package does the sensible
// thing:
//
//   - an alternatives table in a modprobe TOML file is honoured (flux-core
//     fails with "no such task or module alternatives");
//   - a re-declared [[modules]] entry is merged key by key into the
//     earlier one (as in flux-core, whose documentation says the last
//     entry "will be used"); a merge or update that changes provides
//     re-registers the entry's services;
//   - hyphenated keys (needs-config, needs-attrs, needs-env) work in
//     updates and merges;
//   - TOML syntax errors name the file, line and column; every other
//     configuration error names the file, the line and the key path, and
//     an unknown key gets a "did you mean" hint; value types are checked;
//   - a failed update leaves the entry unchanged;
//   - a modprobe.d, rcN.d or legacy rcN.d script directory that exists but
//     cannot be read, and an entry there that is not a regular file, is an
//     error naming it (flux-core skips it silently); so is a flux-core
//     Python rc file (rcN.d/*.py, or a file given to run), refused with
//     "rc files are TOML here";
//   - a module or task that names itself in after, before or requires is a
//     cycle error when it is read, and one ordered after or before a
//     service it provides itself is a cycle error when planned;
//   - names and provided services must not contain commas, "*" or control
//     characters, which the disable lists, before/after and terminals
//     could not carry;
//   - a dry run or a print that cannot write its output fails the task;
//   - --show-deps output has sorted keys and sorted, duplicate-free lists;
//   - cancelled or skipped tasks print no error line, and tasks that never
//     started are left out of the timing array;
//   - list-dependencies --full stops at a requires cycle (marking the
//     repeated name "(cycle)") and refuses trees above 100000 nodes;
//     the tree is streamed, in memory that grows with its depth and time
//     that grows with the bytes written;
//   - show keeps flux-core's key set (no needs-* keys);
//   - ">N" and "<N" use Go integer syntax (no whitespace or "_");
//   - Setenv changes the run's own copy of the environment (passed to the
//     commands it runs), never the process environment;
//   - an executor option limits concurrency and another bounds each task,
//     which flux-core lacks; a panicking task fails like an erroring one;
//   - FLUX_MODPROBE_PATH_PREPEND does not exist.
//
// For a Go task, an empty Ranks means "all" and a zero Priority means 100;
// in TOML, ranks = "" is the empty set and priority = 0 is zero.
package modprobe
