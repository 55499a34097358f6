// Command flux-job-list serves a Flux instance's job-list service with
// fluxkit's journal consumer, in place of flux-core's job-list module:
//
//	flux module remove job-list
//	flux-job-list &          # inside the instance: FLUX_URI names it
//	flux jobs -a
//
// It connects to the broker with package connect, subscribes to
// job-purge-inactive, follows the job manager's job-manager.events-journal
// from its full backlog, and registers job-list.list, list-id,
// list-attrs, job-stats, stats-get, job-state-pause and -unpause,
// disconnect and config-reload, answering as flux-core v0.88's job-list
// does, so flux jobs, flux job list-ids and the Python bindings work
// unchanged. It reads [queues], [job-list] max_comparisons and [access]
// private-mode from the broker's configuration (config.get), and looks up
// jobs it has not seen in the KVS, as the module does.
//
// It writes "flux-job-list: ready" to stderr once the backlog is indexed
// (after the journal's sentinel), and serves until SIGTERM or SIGINT, until
// the job manager ends the journal (flux-core's "journal: EOF (exiting)"),
// or until the instance goes away; then it exits 0. A failure (the service
// is already registered, the journal breaks) is one line on stderr and
// exit 1.
//
// -h or --help prints usage on stdout and exits 0; a usage error prints
// one line, "flux-job-list: WHAT IS WRONG", and exits 2.
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

	"github.com/fluxkit/fluxkit/connect"
)

const prog = "flux-job-list"

const usage = `Usage: flux-job-list [-v] [--uri URI] [--service NAME]

Serves the job-list service of the Flux instance FLUX_URI names (or URI),
in place of flux-core's job-list module (flux module remove job-list
first). Writes "flux-job-list: ready" to stderr once the job manager's
journal backlog is indexed, and serves until SIGTERM, until the journal
ends, or until the instance goes away.

Options:
  -h, --help          print this help and exit
  -v, --verbose       log what job-list logs at debug level too
      --uri URI       the broker to serve (default: $FLUX_URI)
      --service NAME  serve as NAME.list and so on instead of job-list, beside
                      flux-core's module (to compare the two answers)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// run is the command line: help on stdout (0), a usage error as one line
// on stderr (2), a failure as one line on stderr (1).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var verbose bool
	var uri, service string
	fs.BoolVar(&verbose, "v", false, "")
	fs.BoolVar(&verbose, "verbose", false, "")
	fs.StringVar(&uri, "uri", "", "")
	fs.StringVar(&service, "service", "", "")
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", prog, fs.Arg(0))
		return 2
	}
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	h, err := connect.New(ctx, connect.Config{URI: uri, Getenv: getenv, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	defer h.Close()
	err = serve(ctx, h, options{
		log:     log,
		service: service,
		ready:   func() { fmt.Fprintf(stderr, "%s: ready\n", prog) },
		gone:    h.Done(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	return 0
}
