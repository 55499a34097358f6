// Command journal-demo runs the job manager's event journal and a job-list
// consumer over an in-process Flux instance: it submits and runs a few
// jobs, restarts the consumer from a fresh full subscription, and prints
// what job-list reports.
//
//	go run ./examples/journal-demo
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/journal"
)

const prog = "journal-demo"

const usage = `Usage: journal-demo [-h]

Runs the job manager's event journal and a job-list consumer over an
in-process Flux instance: submits and runs three jobs, restarts the
consumer from a fresh full subscription, and prints what job-list reports
(each job, then the job states).

Options:
  -h, --help  print this help and exit
`

const jobspec = `{"version":1,"resources":[{"type":"node","count":1,"with":[{"type":"slot","count":1,"label":"task","with":[{"type":"core","count":2}]}]}],` +
	`"tasks":[{"command":["/bin/%s"],"slot":"task","count":{"per_slot":1}}],"attributes":{"system":{"duration":60,"queue":"batch","environment":{"HOME":"/root"}}}}`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command line: help on stdout (0), a usage error as one line
// on stderr (2), a failure as one line on stderr (1).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
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
	if err := demo(ctx, stdout); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	return 0
}

func demo(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := testbroker.Start(testbroker.Config{Size: 2})
	if err != nil {
		return err
	}
	defer b.Close()
	jm := b.Owner(0)
	defer jm.Close()
	p, err := journal.NewProducer(jm, journal.ProducerConfig{KVS: true})
	if err != nil {
		return err
	}
	defer p.Close()
	jl := b.Owner(1)
	defer jl.Close()
	c, err := journal.NewConsumer(jl, journal.ConsumerConfig{Credit: 256})
	if err != nil {
		return err
	}
	defer c.Close()

	var last fluxkit.JobID
	for i, cmd := range []string{"hostname", "sleep", "false"} {
		id, err := p.Submit(journal.Submission{Userid: 1000, Urgency: 16, Jobspec: fmt.Appendf(nil, jobspec, cmd)})
		if err != nil {
			return err
		}
		last = id
		steps := []struct {
			name string
			ctx  any
		}{{"validate", nil}, {"depend", nil}, {"priority", map[string]int{"priority": 16 + i}}}
		if cmd != "sleep" {
			r := fmt.Appendf(nil, `{"version":1,"execution":{"R_lite":[{"rank":"%d","children":{"core":"0-1"}}],"nodelist":["node%d"],"expiration":0}}`, i, i)
			if err := p.SetR(id, r); err != nil {
				return err
			}
			status := 0
			if cmd == "false" {
				status = 256
			}
			steps = append(steps, []struct {
				name string
				ctx  any
			}{{"alloc", nil}, {"start", nil}, {"finish", map[string]int{"status": status}},
				{"release", map[string]any{"ranks": "all", "final": true}}, {"free", nil}, {"clean", nil}}...)
		}
		for _, s := range steps {
			if err := p.Post(id, s.name, s.ctx); err != nil {
				return err
			}
		}
	}
	// list-id with a state waits until job-list has caught up.
	var waited struct{ Job map[string]any }
	if err := fluxkit.RPC(ctx, jl, journal.TopicListID, 1, map[string]any{"id": last, "attrs": []string{"state"}, "state": 64}, &waited); err != nil {
		return err
	}
	if err := c.Reconnect(ctx); err != nil {
		return err
	}
	var list struct{ Jobs []map[string]any }
	if err := fluxkit.RPC(ctx, jl, journal.TopicList, 1, map[string]any{"max_entries": 0,
		"attrs": []string{"name", "state", "result", "queue", "ncores", "nodelist"}}, &list); err != nil {
		return err
	}
	for _, j := range list.Jobs {
		b, _ := json.Marshal(j)
		fmt.Fprintln(out, string(b))
	}
	var stats map[string]any
	if err := fluxkit.RPC(ctx, jl, journal.TopicJobStats, 1, map[string]any{}, &stats); err != nil {
		return err
	}
	fmt.Fprintln(out, "job_states:", stats["job_states"])
	return nil
}
