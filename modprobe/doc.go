// Package modprobe is a Go implementation of flux-core's "flux modprobe":
// declarative, parallel start-up and shut-down of broker modules and other
// tasks.
//
//	m, err := modprobe.New(h, modprobe.Config{}) // h: the local broker
//	if err != nil { ... }
//	report, err := m.RC1(ctx)
//
// # Lifecycle
//
// [New] takes the [fluxkit.Handle] of the local broker and a [Config]
// whose zero fields are defaults; it calls [Config.Validate], which
// names the first field out of range. A Modprobe owns no goroutines
// between calls: a run ([Modprobe.RC1], [Session.Execute], ...) starts
// its tasks and returns when every one has, so there is no Close. The
// context of a run cancels it; [ExecConfig.TaskTimeout] bounds each task.
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
//	# print = "text"; rc-scripts = 1 (run_all_rc_scripts); fail = "msg";
//	# builtin = "fsck"; when-env, when-attrs, when-config
//
// when-* conditions use needs-* syntax ("x" set, "!x" unset) and also
// "x=value"; when-env looks at the local environment only (with the
// changes earlier tasks made), as flux-core's rc1 does for
// FLUX_SCHED_MODULE and FLUX_DISABLE_JOB_CLEANUP. Unlike needs-*, which
// decide at planning whether an entry takes part at all, a task's when-*
// are checked as it runs: when they fail it does nothing and succeeds. A
// task's actions run in the order setenv, setopt, print, rpc, run,
// rc-scripts, fail. An rpc goes to the local broker's service
// (FLUX_NODEID_ANY) unless nodeid is given, with no payload unless
// payload is.
//
// # Built-in actions
//
// builtin = "NAME" runs logic of flux-core's rc1.py and rc3.py that TOML
// cannot express, written in Go; it cannot be combined with the other
// actions. The task that uses it keeps its name, ranks, ordering and
// conditions in TOML, so the task graph stays declarative: an
// administrator can disable such a task (FLUX_MODPROBE_DISABLE) and order
// tasks of their own around it, and a program can ship its own rc files
// (Config.Builtin) that use the same actions. Values are shared between tasks as in flux-core
// ([Context.Set]): "dumpfile" and "dumplink" (strings, "" for none) and
// "dump_restored" (bool).
//
//   - check-restore: the dump to restore is the content.restore attribute
//     or, for "auto", the file that STATEDIR/dump/RESTORE links to (none
//     without the link), where STATEDIR is the statedir attribute when
//     statedir-cleanup is "0" and the current directory otherwise. When
//     there is one, "truncate" is added to the content backing module's
//     arguments. Sets dumpfile and dumplink.
//   - restore: prints "restoring content from FILE" and, if FILE exists,
//     runs flux restore --sd-notify --quiet --checkpoint --size-limit=100M
//     FILE and sets dump_restored; then removes the RESTORE link if it
//     leads to a file.
//   - fsck: looks up the KVS checkpoint (content.checkpoint-get); none
//     (ENOENT) means a first start and nothing is checked, nor is a
//     restored dump. Otherwise runs flux fsck --repair --job-aware
//     --quiet; when that fails, removes the content.dump attribute (rc3
//     must not dump damaged content) and fails.
//   - slurm-expiration-sync: parses SLURM_JOB_ID (local environment, then
//     the broker's) as Python's int() does; an invalid one prints "invalid
//     SLURM_JOB_ID. Skipping expiration sync" on stderr and succeeds.
//     Otherwise sets YOGRT_BACKEND=flux (here and in the broker) and
//     starts flux slurm-expiration-sync --jobid=ID in the background
//     through the broker's rexec service (rexec.exec without streaming,
//     label slurm-sync, the run's environment and current directory).
//   - fake-resources: encodes R with flux R encode from the
//     [fake-resources] table (nnodes, required; cores-per-node, default
//     64; gpus-per-node, default 0; host-prefix, default "fake";
//     hwloc-xml-path; amend-r), as flux.testing.fake_resources does,
//     writes it to resource.R in the KVS, prints "Encoding fake R: ..."
//     and "Fake resources injected.", and replaces the resource module's
//     arguments with monitor-force-up noverify.
//   - content-dump: dumps to the content.dump attribute's file with flux
//     dump --sd-notify --quiet --ignore-failed-read --no-cache
//     --maxreqs=128 --checkpoint FILE, after printing "dumping content to
//     FILE"; for "auto", FILE is STATEDIR/dump/YYYYmmdd_HHMMSS.tgz (the
//     directory is created) and STATEDIR/dump/RESTORE is then linked to
//     it for content.restore=auto.
//
// The embedded rc1.toml and rc3.toml reproduce flux-core v0.88.0's
// rc1.py and rc3.py: the same task graph (names, ranks, ordering,
// requires, needs, conditions) and, task by task, the same commands,
// RPCs and output, through run, rpc and the actions above. Paths are
// spelled as Python's pathlib spells them.
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
//   - a modprobe.d or rcN.d directory that exists but cannot be read, and
//     an entry there that is not a regular file, is an error naming it
//     (flux-core skips it silently); so is a flux-core Python rc file
//     (rcN.d/*.py, or a file given to run), refused with "rc files are
//     TOML here";
//   - a legacy rcN.d script directory that is not a directory is reported
//     like one that cannot be read ("Cannot access directory DIR: ...",
//     and the task fails after the other scripts ran) where flux-core
//     skips it;
//   - the paths that restore and content-dump give flux restore and flux
//     dump are quoted for bash (flux-core's are split and expanded);
//   - slurm-expiration-sync waits for rexec to report the process started
//     and fails when it does not (flux-core never reads the answer), and
//     it cannot sign the request, which an instance owned by another user
//     requires: that is an error (flux-core signs with flux-security);
//     its int() parsing accepts ASCII digits only;
//   - fake-resources stores flux R encode's JSON compacted (flux-core
//     stores Python's re-serialization of the same object) and runs an
//     amend-r amender with flux python, so an amender that cannot be
//     loaded is reported after R was encoded; a count that is not an
//     integer in range is an error naming the key;
//   - cron-load is a shell loop: a crontab that cannot be loaded prints
//     "could not load crontab: FILE" on stderr and the task fails with
//     bash's exit status;
//   - content-dump does nothing when content.dump is unset by the time it
//     runs, and for both "auto" actions STATEDIR is the current directory
//     when statedir-cleanup is "0" but there is no statedir (flux-core
//     would use "None");
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
// A Go task's zero Ranks is "all" and its nil Priority is DefaultPriority,
// as an unset key is in TOML; ranks = "" (the empty set, MustParseRanks(""))
// and priority = 0 (new(0)) mean what they say in both.
package modprobe
