// Command flux-modprobe is fluxkit's flux-modprobe(1): it plans and runs
// broker module loading, removal and start-up/shut-down tasks with the
// modprobe package.
//
// Inside a Flux instance (FLUX_URI set, as in rc1, rc3, a job or a shell
// under flux start) every command acts on that instance through the connect
// package, as flux-core's flux modprobe does: modules are loaded and removed
// with module.load/module.remove, attributes, config and environment are the
// broker's, rc tasks run their flux commands, and rc1 --timing stores
// modprobe.stats in its KVS. So fluxkit can boot a real instance:
//
//	flux start -Sbroker.rc1_path="flux-modprobe rc1" -Sbroker.rc3_path="flux-modprobe rc3"
//
// With --offline a command acts instead on an in-process what-if instance
// (internal/testbroker) whose state comes from flags given after the
// subcommand: --rank, --size, --attr, --config, --env, --loaded and
// --load-delay, which need --offline. That answers "what would rc1 do on
// rank 3 with this config?" anywhere, even inside an instance:
//
//	go run ./examples/flux-modprobe rc1 --offline --timing
//	go run ./examples/flux-modprobe rc1 --offline --dry-run --rank 3 --config my.toml
//	go run ./examples/flux-modprobe remove --offline --loaded rc1 kvs
//
// Outside an instance without --offline, a command fails and says how to
// choose. The instance a command acts on is chosen in one place,
// openInstance.
//
// -h or --help prints usage on stdout and exits 0. A usage error prints
// one line, "flux-modprobe: WHAT IS WRONG", and exits 2; a failure prints
// "flux-modprobe: ERROR: ..." as flux-core does and exits 1, and so does
// a failure to write the output. An interrupt (SIGINT, SIGTERM) cancels
// the run; one stuck where no cancellation reaches, such as opening a FIFO
// that nobody opens, is abandoned after a few seconds with exit status 130.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

const prog = "flux-modprobe"

// interruptGrace is how long an interrupted run may take to stop its tasks
// before the process leaves without it.
const interruptGrace = 3 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	done := make(chan int, 1)
	go func() { done <- run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv) }()
	os.Exit(exitCode(ctx, stop, done, os.Stderr, interruptGrace))
}

// exitCode waits for the run's exit code. Once ctx is interrupted the run
// has grace to wind down (its tasks are cancelled); a run blocked where no
// context reaches is left behind, and a second interrupt kills at once.
func exitCode(ctx context.Context, stop func(), done <-chan int, stderr io.Writer, grace time.Duration) int {
	select {
	case code := <-done:
		stop()
		return code
	case <-ctx.Done():
	}
	stop()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case code := <-done:
		return code
	case <-t.C:
		fmt.Fprintf(stderr, "%s: interrupted\n", prog)
		return 130
	}
}

// usageError is a command-line mistake: one line on stderr, exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	out := &checkedWriter{w: stdout}
	code := dispatch(ctx, args, out, stderr, lookup)
	if err := out.failure(); err != nil && code == 0 {
		fmt.Fprintf(stderr, "%s: ERROR: writing output: %v\n", prog, err)
		return 1
	}
	return code
}

func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	if len(args) == 0 {
		return usage(stderr, usagef("no command given (see %s --help)", prog))
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		_, err := fmt.Fprint(stdout, usageText)
		return fail(stderr, err)
	}
	o, err := parseFlags(args[0], args[1:], stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		return usage(stderr, err)
	}
	o.lookup = lookup
	return fail(stderr, execute(ctx, o, stdout, stderr))
}

// usage reports a usage error, or a failure to print help.
func usage(stderr io.Writer, err error) int {
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	return fail(stderr, err)
}

// fail reports err, if any, as flux-core does, and returns the exit code.
func fail(stderr io.Writer, err error) int {
	var rf runFailed
	switch {
	case err == nil:
		return 0
	case errors.As(err, &rf):
		return 1 // each failed task was printed as "TASK: ERROR"
	}
	fmt.Fprintf(stderr, "%s: ERROR: %v\n", prog, err)
	return 1
}

// runFailed is a run in which tasks failed, already reported.
type runFailed struct{ error }

// checkedWriter remembers the first write error, after which every write
// fails at once, so that output lost to a full disk or a closed pipe
// fails the command instead of vanishing.
type checkedWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	c.err = err
	return n, err
}

func (c *checkedWriter) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

const usageText = `usage: flux-modprobe COMMAND [OPTIONS] [ARGS]

Commands (flux-modprobe(1)):
  load [--dry-run] MODULE...          load modules and everything they require
  remove [--dry-run] MODULE...|all    remove modules and requirements left unused
  list-dependencies [-S NAME=MODULE] [-D NAME] [-f] MODULE
  show [-S NAME=MODULE] [-D NAME] MODULE
  run [-v] [--show-deps] [--dry-run] FILE   run a declarative rc file alone
  rc1 [-v] [--timing] [--show-deps] [--dry-run]
  rc3 [-v] [--show-deps] [--dry-run]
Run flux-modprobe COMMAND --help for the options of each.

Inside a Flux instance (FLUX_URI set) every command acts on it, as
flux-core's flux modprobe does. With --offline it acts instead on an
in-process what-if instance described by these options (after the command),
which need --offline:
  --offline           use the in-process instance, not the one FLUX_URI names
  --rank N            rank to act on (default 0)
  --size N            instance size, 1 to 16777216 (default rank+1)
  --attr KEY=VALUE    broker attribute, repeatable
  --config FILE       broker config TOML, including [modules] updates
  --env KEY=VALUE     broker environment variable, repeatable
  --loaded LIST       modules already loaded (comma-separated); "rc1" loads
                      what rc1 loads on the rank first
  --load-delay DUR    simulated time of each module load/remove (default 10ms)
  --confdir DIR       flux confdir: DIR/modprobe is on the default search
                      path (default: the broker's confdir inside an instance,
                      /etc/flux with --offline); with --offline DIR/rcN.d
                      scripts are not run

Other fluxkit options:
  --dot               print the plan as a Graphviz digraph instead of running
  --trace FILE        write a Chrome trace-event JSON file (Perfetto,
                      chrome://tracing) of the run; FILE is opened before
                      anything runs
  --limit N           run at most N tasks at once (default: no limit)
  --timeout DUR       fail a task that runs longer than DUR

In the in-process instance, rc task commands that invoke "flux" and
legacy rcN.d scripts are not run (there is no flux there); -v shows them. Other commands run under
bash. The runat.push, content.flush, content.checkpoint-get (no
checkpoint: a first start) and rexec.exec RPCs of the default tasks are
answered by stubs.

Environment: FLUX_MODPROBE_PATH replaces the search path of modprobe.d/,
rc1.d/ and rc3.d/ directories (default: the embedded defaults and
/etc/flux/modprobe), FLUX_MODPROBE_PATH_APPEND extends it,
FLUX_MODPROBE_DISABLE=NAME,... disables modules and tasks for rc1 and
show. Configuration files are TOML: modprobe.d/*.toml as in flux-core
(an alternatives table is honoured; a re-declared [[modules]] entry is
merged key by key into the earlier one), rc1.d/*.toml and rc3.d/*.toml as
declarative [[setup]] and [[tasks]] (see the modprobe package docs); a
flux-core Python rc file is refused.
--show-deps prints JSON with sorted keys and sorted, duplicate-free lists.

Exit status: 0 on success, 1 on failure (including output that could not
be written), 2 on a usage error, 130 when interrupted and stuck.
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
