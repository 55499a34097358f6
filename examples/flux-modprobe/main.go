// Command flux-modprobe is fluxkit's flux-modprobe(1): it plans and runs
// broker module loading, removal and start-up/shut-down tasks with the
// modprobe package.
//
// fluxkit has no connector to a running Flux broker yet, so the command
// always runs against an in-process instance (internal/testbroker) whose
// state comes from flags given after the subcommand: --rank, --size,
// --attr, --config, --env, --loaded and --load-delay. That answers "what
// would rc1 do on rank 3 with this config?":
//
//	go run ./examples/flux-modprobe rc1 --timing
//	go run ./examples/flux-modprobe rc1 --dry-run --rank 3 --config my.toml
//	go run ./examples/flux-modprobe remove --loaded rc1 kvs
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
)

const prog = "flux-modprobe"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// usageError is a command-line mistake: usage goes to stderr, exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	o, err := parseFlags(cmd, rest, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: ERROR: %v\n", prog, err)
		var ue *usageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "Try '%s %s --help'.\n", prog, cmd)
			return 2
		}
		return 1
	}
	o.lookup = lookup
	return execute(ctx, o, stdout, stderr)
}

const usage = `usage: flux-modprobe COMMAND [OPTIONS] [ARGS]

Commands (flux-modprobe(1)):
  load [--dry-run] MODULE...          load modules and everything they require
  remove [--dry-run] MODULE...|all    remove modules and requirements left unused
  list-dependencies [-S NAME=MODULE] [-D NAME] [-f] MODULE
  show [-S NAME=MODULE] [-D NAME] MODULE
  run [-v] [--show-deps] [--dry-run] FILE   run a declarative rc file alone
  rc1 [-v] [--timing] [--show-deps] [--dry-run]
  rc3 [-v] [--show-deps] [--dry-run]

fluxkit has no connection to a running broker yet: every command runs
against an in-process instance described by these options (after the
command):
  --rank N            rank to act on (default 0)
  --size N            instance size (default rank+1)
  --attr KEY=VALUE    broker attribute, repeatable
  --config FILE       broker config TOML, including [modules] updates
  --env KEY=VALUE     broker environment variable, repeatable
  --loaded LIST       modules already loaded (comma-separated); "rc1" loads
                      what rc1 loads on the rank first
  --load-delay DUR    simulated time of each module load/remove (default 10ms)
  --confdir DIR       flux confdir (default /etc/flux): DIR/modprobe is on the
                      default search path; DIR/rcN.d scripts are not run

Other fluxkit options:
  --dot               print the plan as a Graphviz digraph instead of running
  --trace FILE        write a Chrome trace-event JSON file (Perfetto,
                      chrome://tracing) of the run
  --limit N           run at most N tasks at once (default: no limit)
  --timeout DUR       fail a task that runs longer than DUR

In the in-process instance, rc task commands that invoke "flux" and
legacy rcN.d scripts are not run (there is no flux there); -v shows them. Other commands run under
bash. The runat.push and content.flush RPCs of the default tasks are
answered by stubs.

Environment: FLUX_MODPROBE_PATH replaces the search path of modprobe.d/,
rc1.d/ and rc3.d/ directories (default: the embedded defaults and
/etc/flux/modprobe), FLUX_MODPROBE_PATH_APPEND extends it,
FLUX_MODPROBE_DISABLE=NAME,... disables modules and tasks for rc1 and
show. Configuration files are TOML: modprobe.d/*.toml as in flux-core
(an alternatives table is honoured; a re-declared [[modules]] entry is
merged key by key into the earlier one), rc1.d/*.toml and rc3.d/*.toml as
declarative [[setup]] and [[tasks]] (see the modprobe package docs).
--show-deps prints JSON with sorted keys and sorted, duplicate-free lists.
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
