// Command flux-job-exec is fluxkit's exec service in place of flux-core's
// job-exec module: one copy runs on every broker of a Flux instance, each
// connected to its own rank's broker through the connect package. The copy
// on rank 0 is the coordinator: it says job-manager.exec-hello and serves
// the job-exec service (RFC 32) to the job manager. Every copy, rank 0's
// included, is the agent of its rank: it starts that rank's job shells
// (flux-core's flux-shell, as job-exec starts it) for the jobs the
// coordinator launches over a k-ary tree of each job's ranks, serves the
// shells' job-exec.shell-barrier on its rank, and keeps a record of every
// shell under --runtime-dir, so that a copy restarted on the rank finds
// its shells again.
//
// To swap it in for job-exec in a running instance (flux-core v0.88):
//
//	flux module remove job-exec
//	flux exec -r all --bg flux-job-exec
//	flux dmesg | grep 'flux-job-exec: ready'
//
// flux exec --bg runs a copy on every rank, detached; what a copy writes to
// stderr goes to the broker's log (flux dmesg). Rank 0 writes
// "flux-job-exec: ready" once the job manager has accepted its hello, the
// other ranks "flux-job-exec: rank N ready" once their agent serves. Rank
// 0 first waits (up to --agent-wait) for the agents of the ranks online,
// so that no job is launched towards a rank whose agent is still
// starting. Jobs waiting to start run as soon as the coordinator is ready.
//
// A copy serves until SIGTERM (or SIGINT), or until its broker goes away,
// and then exits 0. Running jobs are left running: a coordinator started
// again reattaches to them, as job-exec's restart does, and an agent
// started again on its rank takes its shells over. To go back to job-exec
// once no job runs:
//
//	flux exec -r all pkill -TERM -x flux-job-exec
//	flux module load job-exec
//
// (Each rank's shells are forked by a keeper, a copy of this program in a
// session of its own that records their exit statuses, so that a copy
// started again learns them; it ignores SIGTERM, so that pkill leaves it
// be, and ends by itself once the rank has no shells and no copy.)
//
// Options:
//
//	--runtime-dir DIR   where the agent keeps its records (default:
//	                    <broker rundir>/fluxkit-exec)
//	--job-shell PATH    the job shell for jobs that name none, when
//	                    [exec] job-shell does not (default: the broker's
//	                    built-in shell_path, as job-exec uses)
//	--agent-wait DUR    how long rank 0 waits for the other agents
//	                    (default 30s)
//	-v, --verbose       log what the service does to stderr
//
// The [exec] table of the instance's configuration is read as job-exec
// reads it (kill-timeout, term-signal, kill-signal, max-kill-count,
// max-kill-timeout, barrier-timeout, shell-exit-timeout, job-shell, imp,
// ...). -h or --help prints usage on stdout and exits 0; a usage error
// prints one line and exits 2; a failure prints "flux-job-exec: ERROR" and
// exits 1.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/exec"
)

const prog = "flux-job-exec"

func main() {
	if len(os.Args) > 1 && os.Args[1] == exec.KeeperFlag {
		os.Exit(exec.RunKeeper(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv))
}

const usageText = `usage: flux-job-exec [--runtime-dir DIR] [--job-shell PATH] [--agent-wait DUR] [-v]

Run one copy on every broker of a Flux instance, in place of the job-exec
module:

  flux module remove job-exec
  flux exec -r all --bg flux-job-exec

Each copy connects to its own broker ($FLUX_URI). Rank 0's copy serves the
job-exec service to the job manager and writes "flux-job-exec: ready" to
stderr once its hello is accepted; every copy starts the job shells of its
rank. A copy serves until SIGTERM or until its broker goes away, then
exits 0.

Options:
  --runtime-dir DIR   where the agent keeps its shell records
                      (default <broker rundir>/fluxkit-exec)
  --job-shell PATH    job shell for jobs that name none, when [exec]
                      job-shell does not (default: the broker's built-in)
  --agent-wait DUR    how long rank 0 waits for the other ranks' agents
                      (default 30s)
  -v, --verbose       log to stderr
`

// options are the command line's.
type options struct {
	runtimeDir string
	jobShell   string
	agentWait  time.Duration
	verbose    bool
}

// usageError is a command-line mistake: one line on stderr, exit 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func parseFlags(args []string) (options, error) {
	o := options{agentWait: 30 * time.Second}
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.runtimeDir, "runtime-dir", "", "")
	fs.StringVar(&o.jobShell, "job-shell", "", "")
	fs.DurationVar(&o.agentWait, "agent-wait", o.agentWait, "")
	fs.BoolVar(&o.verbose, "v", false, "")
	fs.BoolVar(&o.verbose, "verbose", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, &usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return o, &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if o.agentWait < 0 {
		return o, &usageError{fmt.Sprintf("--agent-wait %v is negative", o.agentWait)}
	}
	return o, nil
}

// run is the program: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	o, err := parseFlags(args)
	var ue *usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		if _, err := io.WriteString(stdout, usageText); err != nil {
			fmt.Fprintf(stderr, "%s: ERROR: %v\n", prog, err)
			return 1
		}
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := connectAndServe(ctx, o, getenv, logger, stderr); err != nil {
		fmt.Fprintf(stderr, "%s: ERROR: %v\n", prog, err)
		return 1
	}
	return 0
}

func connectAndServe(ctx context.Context, o options, getenv func(string) string, logger *slog.Logger, stderr io.Writer) error {
	h, err := connect.New(ctx, connect.Config{Getenv: getenv, Logger: logger})
	if err != nil {
		return err
	}
	defer h.Close()
	keeper, err := keeperCommand()
	if err != nil {
		return err
	}
	cfg := Config{
		RuntimeDir: o.runtimeDir,
		JobShell:   o.jobShell,
		AgentWait:  o.agentWait,
		Keeper:     keeper,
		Environ:    os.Environ(),
		Logger:     logger,
		Ready:      stderr,
	}
	return Serve(ctx, h, cfg)
}

// keeperCommand runs this program as the agent's keeper.
func keeperCommand() ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding this program for the keeper: %w", err)
	}
	return []string{exe, exec.KeeperFlag}, nil
}
