package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/modprobe"
)

type options struct {
	cmd  string
	args []string

	dryRun, verbose, showDeps, timing, full, dot bool
	setAlt, disable                              listFlag

	rank      uint
	size      int
	attrs     listFlag
	env       listFlag
	config    string
	loaded    string
	loadDelay time.Duration
	confDir   string
	trace     string
	limit     int
	timeout   time.Duration

	lookup func(string) (string, bool)
}

// arity: minimum and maximum positional arguments (-1: no maximum).
var commands = map[string][2]int{
	"load":              {1, -1},
	"remove":            {0, -1},
	"list-dependencies": {1, 1},
	"show":              {1, 1},
	"run":               {1, 1},
	"rc1":               {0, 0},
	"rc3":               {0, 0},
}

func parseFlags(cmd string, args []string, stderr io.Writer) (*options, error) {
	arity, ok := commands[cmd]
	if !ok {
		return nil, &usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
	o := &options{cmd: cmd}
	fs := flag.NewFlagSet(prog+" "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	both := func(p *bool, short, long, help string) {
		fs.BoolVar(p, long, false, help)
		if short != "" {
			fs.BoolVar(p, short, false, help)
		}
	}
	switch cmd {
	case "load", "remove", "run", "rc1", "rc3":
		both(&o.dryRun, "", "dry-run", "print what would run without doing it")
		fs.BoolVar(&o.dryRun, "dry", false, "same as --dry-run")
		fs.BoolVar(&o.dot, "dot", false, "print the plan as a Graphviz digraph")
		fs.StringVar(&o.trace, "trace", "", "write a Chrome trace-event file")
		fs.IntVar(&o.limit, "limit", 0, "run at most N tasks at once")
		fs.DurationVar(&o.timeout, "timeout", 0, "per-task timeout")
		both(&o.verbose, "v", "verbose", "be more verbose")
		fs.BoolVar(&o.showDeps, "show-deps", false, "print the predecessor map as JSON and exit")
		if cmd == "rc1" {
			fs.BoolVar(&o.timing, "timing", false, "store task timing in the KVS key modprobe.stats")
		}
	case "show", "list-dependencies":
		fs.Var(&o.setAlt, "S", "set alternative NAME=MODULE")
		fs.Var(&o.setAlt, "set-alternative", "set alternative NAME=MODULE")
		fs.Var(&o.disable, "D", "disable NAME[,NAME...]")
		fs.Var(&o.disable, "disable", "disable NAME[,NAME...]")
		if cmd == "list-dependencies" {
			both(&o.full, "f", "full", "show duplicate dependencies")
		}
	}
	fs.UintVar(&o.rank, "rank", 0, "rank to act on")
	fs.IntVar(&o.size, "size", 0, "instance size")
	fs.Var(&o.attrs, "attr", "broker attribute KEY=VALUE")
	fs.Var(&o.env, "env", "broker environment KEY=VALUE")
	fs.StringVar(&o.config, "config", "", "broker config TOML file")
	fs.StringVar(&o.loaded, "loaded", "", "modules already loaded, or rc1")
	fs.StringVar(&o.confDir, "confdir", "/etc/flux", "flux confdir: DIR/modprobe is searched, DIR/rcN.d holds legacy scripts")
	fs.DurationVar(&o.loadDelay, "load-delay", 10*time.Millisecond, "simulated module load/remove time")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s %s [OPTIONS]", prog, cmd)
		if arity[1] != 0 {
			fmt.Fprint(stderr, " ARGS")
		}
		fmt.Fprintln(stderr)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.Usage()
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		if fs.NArg() == 0 {
			break
		}
		o.args = append(o.args, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(o.args) < arity[0] || (arity[1] >= 0 && len(o.args) > arity[1]) {
		return nil, &usageError{fmt.Sprintf("%s: wrong number of arguments", cmd)}
	}
	if o.size == 0 {
		o.size = int(o.rank) + 1
	}
	if o.size < 1 || int(o.rank) >= o.size {
		return nil, &usageError{fmt.Sprintf("--rank %d is not below --size %d", o.rank, o.size)}
	}
	if o.limit < 0 || o.timeout < 0 || o.loadDelay < 0 {
		return nil, &usageError{"--limit, --timeout and --load-delay must not be negative"}
	}
	return o, nil
}

func keyValues(flagName string, l listFlag) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range l {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, &usageError{fmt.Sprintf("--%s: invalid value '%s' (want KEY=VALUE)", flagName, kv)}
		}
		m[k] = v
	}
	return m, nil
}

// instance starts the in-process broker the options describe.
func instance(o *options) (*testbroker.Broker, error) {
	attrs, err := keyValues("attr", o.attrs)
	if err != nil {
		return nil, err
	}
	env, err := keyValues("env", o.env)
	if err != nil {
		return nil, err
	}
	cfg := testbroker.Config{Size: o.size, Attrs: attrs, Env: env}
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return nil, err
		}
		cfg.Config = string(b)
	}
	b, err := testbroker.Start(cfg)
	if err != nil {
		if o.config != "" {
			return nil, fmt.Errorf("%s: %w", o.config, err)
		}
		return nil, err
	}
	return b, nil
}

// stubs answers the RPCs the default rc tasks send to services the
// in-process instance does not have.
func stubs(h fluxkit.Handle) error {
	for _, topic := range []string{"runat.push", "content.flush"} {
		if _, err := h.Register(topic, 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
			_ = w.Respond([]byte("{}"))
		}); err != nil {
			return err
		}
	}
	return nil
}

// delayed gives every module load and removal the simulated latency.
type delayed struct {
	modprobe.Modules
	rank  *testbroker.Rank
	delay time.Duration
	mu    sync.Mutex
	set   map[string]bool
}

func (d *delayed) latency(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.set[name] {
		d.set[name] = true
		d.rank.SetModuleLatency(name, d.delay)
	}
}

func (d *delayed) Load(ctx context.Context, req modprobe.LoadRequest) error {
	name := req.Name
	if name == "" {
		name = req.Path
	}
	d.latency(name)
	return d.Modules.Load(ctx, req)
}

func (d *delayed) Remove(ctx context.Context, name string) error {
	d.latency(name)
	return d.Modules.Remove(ctx, name)
}

// simShell runs commands under bash, except those invoking flux, which
// the in-process instance cannot serve, and legacy rcN.d scripts, which
// belong to a real instance: they are reported with -v.
type simShell struct {
	verbose bool
}

func (s simShell) Run(ctx context.Context, command string, env []string, stdout, stderr io.Writer) error {
	legacy := strings.HasPrefix(command, "'") && (strings.Contains(command, "/rc1.d/") || strings.Contains(command, "/rc3.d/"))
	if legacy || strings.Contains(command, "flux ") {
		if s.verbose {
			fmt.Fprintf(stderr, "simulated: %s\n", command)
		}
		return nil
	}
	return modprobe.Bash{}.Run(ctx, command, env, stdout, stderr)
}

func execute(ctx context.Context, o *options, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		var ue *usageError
		fmt.Fprintf(stderr, "%s: ERROR: %v\n", prog, err)
		if errors.As(err, &ue) {
			return 2
		}
		return 1
	}
	b, err := instance(o)
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	rank := uint32(o.rank)
	h := b.Owner(rank)
	if err := stubs(h); err != nil {
		return fail(err)
	}
	base := modprobe.Config{
		Handle:    h,
		LookupEnv: o.lookup,
		ConfDir:   o.confDir,
		Shell:     simShell{verbose: o.verbose},
		Stdout:    stdout,
		Stderr:    stderr,
		Exec:      modprobe.ExecConfig{Limit: o.limit, TaskTimeout: o.timeout},
	}
	if err := preload(ctx, o, base); err != nil {
		return fail(fmt.Errorf("--loaded: %w", err))
	}
	cfg := base
	cfg.DryRun, cfg.Verbose = o.dryRun, o.verbose
	cfg.Modules = &delayed{Modules: modprobe.HandleModules(h), rank: b.Rank(rank), delay: o.loadDelay, set: map[string]bool{}}
	m, err := modprobe.New(cfg)
	if err != nil {
		return fail(err)
	}
	sel := modprobe.Selection{SetAlternative: o.setAlt, Disable: o.disable}
	switch o.cmd {
	case "show":
		out, err := m.Show(ctx, o.args[0], sel)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, out)
		return 0
	case "list-dependencies":
		width := 0 // modprobe.DefaultTreeWidth
		if c, ok := o.lookup("COLUMNS"); ok {
			if n, err := strconv.Atoi(c); err == nil && n > 1 {
				width = n
			}
		}
		if err := m.ListDependencies(ctx, stdout, o.args[0], o.full, width, sel); err != nil {
			return fail(err)
		}
		return 0
	}
	var s *modprobe.Session
	switch o.cmd {
	case "rc1":
		s, err = m.PrepareRC1(ctx)
	case "rc3":
		s, err = m.PrepareRC3(ctx)
	case "run":
		s, err = m.PrepareRunFile(ctx, o.args[0])
	case "load":
		s, err = m.PrepareLoad(ctx, o.args)
	case "remove":
		s, err = m.PrepareRemove(ctx, o.args)
	}
	if errors.Is(err, modprobe.ErrAllLoaded) {
		fmt.Fprintf(stderr, "%s: INFO: %v\n", prog, err)
		return 0
	}
	if err != nil {
		return fail(err)
	}
	if o.showDeps {
		fmt.Fprintln(stdout, s.Plan().DepsJSON())
		return 0
	}
	if o.dot {
		fmt.Fprint(stdout, s.Plan().Dot())
		return 0
	}
	rep, err := s.Execute(ctx)
	code := 0
	var re *modprobe.RunError
	switch {
	case errors.As(err, &re):
		code = 1 // each failure was printed as "TASK: ERROR"
	case err != nil:
		return fail(err)
	}
	if o.trace != "" {
		if err := writeTrace(o.trace, rep, rank); err != nil {
			return fail(err)
		}
	}
	if o.timing {
		if err := s.WriteStats(ctx, rep); err != nil {
			return fail(err)
		}
		printStats(stdout, b, rank)
		fmt.Fprintf(stdout, "%s: %s\n", o.cmd, rep.Summary())
	}
	return code
}

func writeTrace(path string, rep *modprobe.Report, rank uint32) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteTrace(f, rank); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// printStats shows what --timing stored in the in-process KVS, which
// vanishes when the command exits.
func printStats(w io.Writer, b *testbroker.Broker, rank uint32) {
	if rank != 0 {
		fmt.Fprintln(w, "modprobe.stats is written on rank 0 only")
		return
	}
	raw, ok := b.KVSGet("modprobe.stats")
	if !ok {
		return
	}
	var stats []modprobe.Stat
	if err := json.Unmarshal(raw, &stats); err != nil {
		return
	}
	fmt.Fprintf(w, "modprobe.stats (KVS of the in-process %d-rank instance):\n", b.Size())
	fmt.Fprintf(w, "  %9s  %9s  %s\n", "start", "duration", "name")
	for _, st := range stats {
		fmt.Fprintf(w, "  %8.4fs  %8.4fs  %s\n", st.StartTime, st.Duration, st.Name)
	}
}

// preload loads --loaded modules without delay or output.
func preload(ctx context.Context, o *options, base modprobe.Config) error {
	if o.loaded == "" {
		return nil
	}
	base.Stdout, base.Stderr = io.Discard, io.Discard
	m, err := modprobe.New(base)
	if err != nil {
		return err
	}
	if o.loaded == "rc1" {
		_, err := m.RC1(ctx)
		return err
	}
	names := strings.Split(o.loaded, ",")
	_, err = m.Load(ctx, names...)
	if errors.Is(err, modprobe.ErrAllLoaded) {
		return nil
	}
	return err
}
