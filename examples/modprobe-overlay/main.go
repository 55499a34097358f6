// Command modprobe-overlay runs flux-core's start-up and shut-down, as
// package modprobe plans them, across a real flub overlay: three brokers
// (rank 0 started with flub.Start, two joiners with flub.Join) linked by
// zmq4 over CURVE on 127.0.0.1, in one process.
//
// Every broker is given a Go module for each module of modprobe's
// embedded modprobe.toml. A module registers its "<module>.stats-get"
// service (the content module also content.flush, which rc3 sends),
// takes a simulated --delay to start, reports running and serves until
// it is removed. modprobe then runs rc1 on every rank at once, each
// through its own broker's fluxkit.Handle: config.get, attr.get,
// broker.getenv/setenv and module.load travel over the overlay like any
// request, and rank 0 stores modprobe.stats in its KVS. The program
// prints what each rank loaded (asked from rank 0 with module.list across
// the tree), rc1's summary on each rank, then runs rc3 (the other ranks
// first, rank 0 last, as an instance shuts down) and leaves the overlay.
//
//	go run ./examples/modprobe-overlay
//	go run ./examples/modprobe-overlay -delay 50ms -topo kary:1 -v
//
// rc task commands that invoke flux (there is no flux here) are not run;
// -v lists them. runat.push, a broker built-in in flux-core, is answered
// by a stub on rank 0.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/kvs"
	"github.com/fluxkit/fluxkit/modprobe"
	"github.com/pelletier/go-toml/v2"
)

const prog = "modprobe-overlay"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, options{lookupEnv: os.LookupEnv})
	stop()
	os.Exit(code)
}

// options are what the tests control beyond the command line.
type options struct {
	// lookupEnv is modprobe's view of the local environment.
	lookupEnv func(string) (string, bool)
	// brokerEnv is every broker's environment (nil: the process's).
	brokerEnv map[string]string
}

// config is the command line.
type config struct {
	size    uint32
	topo    string
	delay   time.Duration
	verbose bool
}

func parseFlags(args []string, stdout io.Writer) (config, error) {
	var c config
	fl := flag.NewFlagSet(prog, flag.ContinueOnError)
	// Errors are reported in one line by run; help goes to stdout.
	fl.SetOutput(io.Discard)
	fl.Usage = func() {
		fmt.Fprintf(stdout, "usage: %s [-size N] [-topo TOPO] [-delay DUR] [-v]\n\nrc1 and rc3 of the embedded default across a CURVE overlay of N brokers.\n\n", prog)
		fl.SetOutput(stdout)
		fl.PrintDefaults()
	}
	size := fl.Uint("size", 3, "number of brokers (rank 0 and size-1 joiners)")
	fl.StringVar(&c.topo, "topo", "kary:2", "tbon.topo of the instance")
	fl.DurationVar(&c.delay, "delay", 10*time.Millisecond, "simulated start-up (and shut-down) time of every module")
	fl.BoolVar(&c.verbose, "v", false, "trace modprobe and list the simulated flux commands")
	if err := fl.Parse(args); err != nil {
		return c, err
	}
	if fl.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	if *size < 1 || *size > 64 {
		return c, fmt.Errorf("-size %d: want 1 to 64 brokers", *size)
	}
	if c.delay < 0 {
		return c, fmt.Errorf("-delay %v: negative duration", c.delay)
	}
	c.size = uint32(*size)
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, o options) int {
	c, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	if err := demo(ctx, c, o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	return 0
}

// moduleNames are the modules (the "module" key, else the name) of the
// embedded modprobe.toml: what a broker must be able to load.
func moduleNames(builtin fs.FS) ([]string, error) {
	raw, err := fs.ReadFile(builtin, "modprobe.toml")
	if err != nil {
		return nil, err
	}
	var doc struct {
		Modules []struct {
			Name   string `toml:"name"`
			Module string `toml:"module"`
		} `toml:"modules"`
	}
	if err := toml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("modprobe.toml: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range doc.Modules {
		n := m.Module
		if n == "" {
			n = m.Name
		}
		if n != "" && !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out, nil
}

// simModules registers a simModule under each name.
func simModules(names []string, delay time.Duration) map[string]flub.ModuleFunc {
	mods := make(map[string]flub.ModuleFunc, len(names))
	for _, n := range names {
		mods[n] = simModule(n, delay)
	}
	return mods
}

// stubRunat answers rc1's push-cleanup on rank 0: runat is a broker
// built-in in flux-core that flub does not have.
func stubRunat(in *instance) (func(), error) {
	return in.brokers[0].Register("runat.push", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.Respond([]byte("{}"))
	})
}

// forward passes req on to rank 0 and its answer back.
func forward(ctx context.Context, h fluxkit.Handle, w fluxkit.Responder, req *fluxkit.Message) {
	fwd := fluxkit.NewRequest(req.Topic, 0, req.Payload)
	fwd.Userid, fwd.Rolemask = req.Userid, req.Rolemask
	call, err := h.Request(ctx, fwd)
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	defer call.Close()
	rsp, err := call.Recv(ctx)
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	_ = w.Respond(rsp.Payload)
}

// simModule is a stand-in for a flux-core module: it registers its
// service, takes delay to start, reports running and serves until removed.
func simModule(name string, delay time.Duration) flub.ModuleFunc {
	return func(ctx context.Context, h fluxkit.Handle, args []string) error {
		started := time.Now()
		topics := []string{name + ".stats-get"}
		if name == "content" {
			// rc3 flushes the content store; rc1's fsck looks up the
			// checkpoint, which a fresh instance does not have.
			topics = append(topics, "content.flush", "content.checkpoint-get")
		}
		if name == "kvs" && h.Rank() != 0 {
			// As flux-core's kvs module on a rank other than 0, pass
			// KVS requests on to rank 0, whose broker holds the store.
			var wg sync.WaitGroup
			defer wg.Wait()
			for _, topic := range []string{"kvs.lookup", "kvs.commit"} {
				un, err := h.Register(topic, fluxkit.RoleUser, func(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
					wg.Add(1)
					go func() {
						defer wg.Done()
						forward(ctx, h, w, req)
					}()
				})
				if err != nil {
					return err
				}
				defer un()
			}
		}
		for _, topic := range topics {
			un, err := h.Register(topic, fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
				if req.Topic == "content.checkpoint-get" {
					_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "No checkpoint"))
					return
				}
				_ = fluxkit.Respond(w, map[string]any{"module": name, "args": args, "uptime": time.Since(started).Seconds()})
			})
			switch {
			case fluxkit.Errno(err) == fluxkit.EEXIST:
				// The same module loaded under a second name (sdbus and
				// sdbus-sys): the first instance serves the topic.
			case err != nil:
				return err
			default:
				defer un()
			}
		}
		if err := sleep(ctx, delay); err != nil {
			return err
		}
		flub.SetRunning(h)
		<-ctx.Done()
		time.Sleep(delay) // the module's own shut-down, which remove waits for
		return nil
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// simShell stands in for bash: every command of the default rc files
// calls flux, which does not exist here, so nothing is run; -v lists them.
type simShell struct {
	rank uint32
	log  func(format string, args ...any)
}

func (s simShell) Run(_ context.Context, command string, _ []string, _, _ io.Writer) error {
	s.log("rank %d: simulated: %s\n", s.rank, command)
	return nil
}

// instance is the overlay: brokers[r] is rank r.
type instance struct {
	brokers []*flub.Broker
	once    sync.Once
}

// close leaves the overlay: the joiners say goodbye, then rank 0 stops.
func (in *instance) close(ctx context.Context) {
	in.once.Do(func() { in.leave(ctx) })
}

func (in *instance) leave(ctx context.Context) {
	for r := len(in.brokers) - 1; r > 0; r-- {
		if b := in.brokers[r]; b != nil {
			_ = b.Shutdown(ctx) // overlay.goodbye, then Close
		}
	}
	if in.brokers[0] != nil {
		_ = in.brokers[0].Close()
	}
}

// start boots rank 0 and joins the others concurrently, in any order.
func start(ctx context.Context, c config, o options, mods map[string]flub.ModuleFunc) (*instance, error) {
	owner, err := curve.GenerateKeyPair(nil)
	if err != nil {
		return nil, err
	}
	root, err := flub.Start(ctx, flub.Config{
		Size: c.size, Topo: c.topo, Owner: owner.Public, Hostname: "node0",
		Env: o.brokerEnv, Modules: mods,
	})
	if err != nil {
		return nil, fmt.Errorf("rank 0: %w", err)
	}
	in := &instance{brokers: make([]*flub.Broker, c.size)}
	in.brokers[0] = root
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	for i := uint32(1); i < c.size; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := flub.Join(ctx, flub.JoinConfig{
				BootURI: root.BootURI(), Owner: owner, Topo: c.topo, Hostname: fmt.Sprintf("node%d", i),
				Env: o.brokerEnv, Modules: mods,
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			in.brokers[b.Rank()] = b
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		in.close(ctx)
		return nil, err
	}
	for root.Status() != flub.StatusFull {
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			in.close(context.Background())
			return nil, err
		}
	}
	return in, nil
}

// rankRun is one rank's modprobe run.
type rankRun struct {
	rep *modprobe.Report
	err error
	out bytes.Buffer
}

// phase runs rc1 or rc3 on the given ranks at once, each through its own
// broker's handle.
func phase(ctx context.Context, in *instance, ranks []uint32, rc int, o options, verbose bool, stderr io.Writer) map[uint32]*rankRun {
	var mu sync.Mutex
	logf := func(format string, args ...any) {
		if verbose {
			mu.Lock()
			fmt.Fprintf(stderr, format, args...)
			mu.Unlock()
		}
	}
	runs := map[uint32]*rankRun{}
	var wg sync.WaitGroup
	for _, r := range ranks {
		rr := &rankRun{}
		runs[r] = rr
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr.rep, rr.err = runRC(ctx, in.brokers[r], rc, o, verbose, &rr.out, logf)
		}()
	}
	wg.Wait()
	if verbose {
		for _, r := range ranks {
			fmt.Fprintf(stderr, "--- rank %d rc%d output\n%s", r, rc, runs[r].out.String())
		}
	}
	return runs
}

// runRC runs rc1 or rc3 through h, as flux-modprobe does on h's rank: rc1
// also writes modprobe.stats (on rank 0 only). The simulated shell logs
// its commands with logf; modprobe's output goes to out.
func runRC(ctx context.Context, h fluxkit.Handle, rc int, o options, verbose bool, out io.Writer, logf func(string, ...any)) (*modprobe.Report, error) {
	m, err := modprobe.New(h, modprobe.Config{
		LookupEnv: o.lookupEnv, Shell: simShell{rank: h.Rank(), log: logf},
		Stdout: out, Stderr: out, Verbose: verbose,
	})
	if err != nil {
		return nil, err
	}
	var s *modprobe.Session
	if rc == 1 {
		s, err = m.PrepareRC1(ctx)
	} else {
		s, err = m.PrepareRC3(ctx)
	}
	if err != nil {
		return nil, err
	}
	rep, err := s.Execute(ctx)
	if err == nil && rc == 1 {
		err = s.WriteStats(ctx, rep)
	}
	return rep, err
}

// loaded asks rank r's module.list from rank 0, across the overlay.
func loaded(ctx context.Context, root fluxkit.Handle, r uint32) ([]string, error) {
	var out struct {
		Mods []struct {
			Name string `json:"name"`
			Path string `json:"path"`
		} `json:"mods"`
	}
	if err := fluxkit.RPC(ctx, root, "module.list", r, map[string]any{}, &out); err != nil {
		return nil, fmt.Errorf("module.list on rank %d: %w", r, err)
	}
	var names []string
	for _, m := range out.Mods {
		if m.Path != "builtin" {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

func demo(ctx context.Context, c config, o options, stdout, stderr io.Writer) error {
	names, err := moduleNames(modprobe.Defaults())
	if err != nil {
		return err
	}
	t0 := time.Now()
	in, err := start(ctx, c, o, simModules(names, c.delay))
	if err != nil {
		return err
	}
	defer in.close(context.Background())
	root := in.brokers[0]
	fmt.Fprintf(stdout, "overlay: %d brokers, %s, %s, boot %s (%v)\n", c.size, c.topo, root.Status(), root.BootURI(), time.Since(t0).Round(time.Millisecond))
	fmt.Fprintf(stdout, "modules: %d Go modules on every rank (%s), %v to start each\n", len(names), strings.Join(names, " "), c.delay)

	unstub, err := stubRunat(in)
	if err != nil {
		return err
	}
	defer unstub()

	all := make([]uint32, c.size)
	for r := range all {
		all[r] = uint32(r)
	}
	t1 := time.Now()
	runs := phase(ctx, in, all, 1, o, c.verbose, stderr)
	fmt.Fprintf(stdout, "rc1 on %d ranks: %v\n", c.size, time.Since(t1).Round(time.Millisecond))
	var errs []error
	for _, r := range all {
		rr := runs[r]
		if rr.err != nil {
			errs = append(errs, fmt.Errorf("rank %d rc1: %w", r, rr.err))
			continue
		}
		mods, err := loaded(ctx, root, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rank %d loaded: %s\n", r, strings.Join(mods, " "))
		fmt.Fprintf(stdout, "rank %d rc1: %s\n", r, rr.rep.Summary())
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var stats []modprobe.Stat
	if err := kvs.LookupJSON(ctx, in.brokers[c.size-1], "", "modprobe.stats", &stats); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "modprobe.stats: %d entries in rank 0's KVS\n", len(stats))

	// Shut down as an instance does: the other ranks, then rank 0.
	t3 := time.Now()
	for _, group := range [][]uint32{all[1:], all[:1]} {
		if len(group) == 0 {
			continue
		}
		runs := phase(ctx, in, group, 3, o, c.verbose, stderr)
		for _, r := range group {
			if rr := runs[r]; rr.err != nil {
				errs = append(errs, fmt.Errorf("rank %d rc3: %w", r, rr.err))
			} else {
				fmt.Fprintf(stdout, "rank %d rc3: %s\n", r, rr.rep.Summary())
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rc3 on %d ranks: %v\n", c.size, time.Since(t3).Round(time.Millisecond))
	for _, r := range all {
		mods, err := loaded(ctx, root, r)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "rank %d after rc3: %d modules loaded\n", r, len(mods))
	}
	in.close(ctx)
	fmt.Fprintln(stdout, "overlay shut down")
	return nil
}
