package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/kvs"
	"github.com/fluxkit/fluxkit/modprobe"
)

type options struct {
	cmd  string
	args []string

	dryRun, verbose, showDeps, timing, full, dot bool
	offline                                      bool
	confDirSet                                   bool
	setAlt, disable                              listFlag

	rank      uint
	size      int
	attrs     map[string]string
	env       map[string]string
	config    string
	loaded    string
	loadDelay time.Duration
	confDir   string
	trace     string
	limit     int
	timeout   time.Duration

	lookup func(string) (string, bool)
}

// whatIfFlags describe the in-process instance; they need --offline.
var whatIfFlags = []string{"rank", "size", "attr", "env", "config", "loaded", "load-delay"}

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

// parseFlags parses a command's options; -h prints its usage on stdout and
// returns flag.ErrHelp. Every other error is a *usageError.
func parseFlags(cmd string, args []string, stdout io.Writer) (*options, error) {
	arity, ok := commands[cmd]
	if !ok {
		return nil, usagef("unknown command %q (see %s --help)", cmd, prog)
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
	var attrs, env listFlag
	fs.UintVar(&o.rank, "rank", 0, "rank to act on")
	fs.IntVar(&o.size, "size", 0, fmt.Sprintf("instance size, 1 to %d (default rank+1)", testbroker.MaxSize))
	fs.Var(&attrs, "attr", "broker attribute KEY=VALUE")
	fs.Var(&env, "env", "broker environment KEY=VALUE")
	fs.StringVar(&o.config, "config", "", "broker config TOML file")
	fs.StringVar(&o.loaded, "loaded", "", "modules already loaded, or rc1")
	fs.StringVar(&o.confDir, "confdir", "/etc/flux", "flux confdir: DIR/modprobe is searched, DIR/rcN.d holds legacy scripts")
	fs.DurationVar(&o.loadDelay, "load-delay", 10*time.Millisecond, "simulated module load/remove time")
	fs.BoolVar(&o.offline, "offline", false, "act on an in-process what-if instance, not the one FLUX_URI names")
	set := map[string]bool{}
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, commandHelp(fs, cmd, arity, stdout)
			}
			return nil, &usageError{err.Error()}
		}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if fs.NArg() == 0 {
			break
		}
		o.args = append(o.args, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(o.args) < arity[0] || (arity[1] >= 0 && len(o.args) > arity[1]) {
		return nil, usagef("%s: wrong number of arguments", cmd)
	}
	if !o.offline {
		for _, name := range whatIfFlags {
			if set[name] {
				return nil, usagef("--%s describes the in-process instance: add --offline", name)
			}
		}
	}
	o.confDirSet = set["confdir"]
	switch {
	case !set["size"]:
		o.size = int(o.rank) + 1
	case o.size < 1 || o.size > testbroker.MaxSize:
		return nil, usagef("--size %d: want 1 to %d ranks", o.size, testbroker.MaxSize)
	}
	if int(o.rank) >= o.size {
		return nil, usagef("--rank %d is not below --size %d", o.rank, o.size)
	}
	if o.limit < 0 || o.timeout < 0 || o.loadDelay < 0 {
		return nil, usagef("--limit, --timeout and --load-delay must not be negative")
	}
	for _, a := range o.setAlt {
		if svc, mod, ok := strings.Cut(a, "="); !ok || svc == "" || mod == "" {
			return nil, usagef("--set-alternative: invalid value '%s' (want NAME=MODULE)", a)
		}
	}
	var err error
	if o.attrs, err = keyValues("attr", attrs); err != nil {
		return nil, err
	}
	if o.env, err = keyValues("env", env); err != nil {
		return nil, err
	}
	return o, nil
}

// commandHelp prints a command's usage on stdout and returns flag.ErrHelp,
// or the error that kept it from being printed.
func commandHelp(fs *flag.FlagSet, cmd string, arity [2]int, stdout io.Writer) error {
	args := ""
	if arity[1] != 0 {
		args = " ARGS"
	}
	if _, err := fmt.Fprintf(stdout, "usage: %s %s [OPTIONS]%s\n", prog, cmd, args); err != nil {
		return err
	}
	fs.SetOutput(stdout)
	fs.PrintDefaults()
	return flag.ErrHelp
}

func keyValues(flagName string, l listFlag) (map[string]string, error) {
	m := map[string]string{}
	for _, kv := range l {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--%s: invalid value '%s' (want KEY=VALUE)", flagName, kv)
		}
		m[k] = v
	}
	return m, nil
}

// instance is what a command acts on: the handle of its rank's broker and
// what goes with it.
type instance struct {
	h fluxkit.Handle
	// modules loads and removes modules (with the simulated latency).
	modules modprobe.Modules
	shell   modprobe.Shell
	// about names the instance in --timing output.
	about string
	// offline is set for the in-process instance.
	offline bool
	close   func() error
}

// errNoInstance is the error outside an instance without --offline.
var errNoInstance = errors.New("FLUX_URI is not set: run inside a Flux instance (flux start, or a job), or add --offline to act on an in-process what-if instance")

// openInstance chooses the instance the options act on: the in-process one
// with --offline, else the running instance FLUX_URI names, as flux-core's
// flux modprobe does.
func openInstance(ctx context.Context, o *options) (*instance, error) {
	if o.offline {
		return inProcess(ctx, o)
	}
	getenv := func(k string) string {
		v, _ := o.lookup(k)
		return v
	}
	if getenv("FLUX_URI") == "" {
		return nil, errNoInstance
	}
	h, err := connect.New(ctx, connect.Config{Getenv: getenv})
	if err != nil {
		return nil, err
	}
	if !o.confDirSet {
		if dir, err := brokerConfDir(ctx, h); err == nil {
			o.confDir = dir
		}
	}
	return &instance{
		h:       h,
		modules: modprobe.HandleModules(h),
		shell:   modprobe.Bash{},
		about:   "the instance at " + h.URI(),
		close:   h.Close,
	}, nil
}

// brokerConfDir asks the broker for its installation's confdir, where
// flux-core's modprobe looks for DIR/modprobe.
func brokerConfDir(ctx context.Context, h fluxkit.Handle) (string, error) {
	var out struct {
		Values map[string]string `json:"values"`
	}
	if err := fluxkit.RPC(ctx, h, "broker.conf-builtin", h.Rank(), map[string]any{"keys": []string{"confdir"}}, &out); err != nil {
		return "", err
	}
	if d := out.Values["confdir"]; d != "" {
		return d, nil
	}
	return "", errors.New("no confdir")
}

// inProcess starts the in-process instance the options describe, with
// stubs for the services it lacks and the --loaded modules loaded.
func inProcess(ctx context.Context, o *options) (*instance, error) {
	cfg := testbroker.Config{Size: o.size, Attrs: o.attrs, Env: o.env}
	if o.config != "" {
		b, err := os.ReadFile(o.config)
		if err != nil {
			return nil, err
		}
		cfg.Config = string(b)
	}
	b, err := testbroker.Start(cfg)
	var ce *testbroker.ConfigError
	switch {
	case errors.As(err, &ce):
		return nil, fmt.Errorf("%s:%d:%d: %w", o.config, ce.Line, ce.Column, ce.Err)
	case err != nil && o.config != "":
		return nil, fmt.Errorf("%s: %w", o.config, err)
	case err != nil:
		return nil, err
	}
	rank := uint32(o.rank)
	in := &instance{
		h:       b.Owner(rank),
		shell:   simShell{verbose: o.verbose},
		about:   fmt.Sprintf("the in-process %d-rank instance", b.Size()),
		offline: true,
		close:   b.Close,
	}
	if err := stubs(in.h); err != nil {
		b.Close()
		return nil, err
	}
	if err := preload(ctx, o, in); err != nil {
		b.Close()
		return nil, fmt.Errorf("--loaded: %w", err)
	}
	in.modules = &delayed{Modules: modprobe.HandleModules(in.h), rank: b.Rank(rank), delay: o.loadDelay, set: map[string]bool{}}
	return in, nil
}

// stubs answers the RPCs the default rc tasks send to services the
// in-process instance does not have, as a fresh instance would: there is
// no KVS checkpoint yet, and background processes are not started.
func stubs(h fluxkit.Handle) error {
	for _, topic := range []string{"runat.push", "content.flush", "rexec.exec", "content.checkpoint-get"} {
		if _, err := h.Register(topic, 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			if req.Topic == "content.checkpoint-get" {
				_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "no checkpoint"))
				return
			}
			_ = w.Respond([]byte("{}"))
		}); err != nil {
			return err
		}
	}
	return nil
}

// preload loads --loaded modules without delay or output.
func preload(ctx context.Context, o *options, in *instance) error {
	if o.loaded == "" {
		return nil
	}
	m, err := modprobe.New(in.h, modprobe.Config{
		LookupEnv: o.lookup, ConfDir: o.confDir, Shell: in.shell,
		Stdout: io.Discard, Stderr: io.Discard,
	})
	if err != nil {
		return err
	}
	if o.loaded == "rc1" {
		_, err := m.RC1(ctx)
		return err
	}
	_, err = m.Load(ctx, strings.Split(o.loaded, ",")...)
	if errors.Is(err, modprobe.ErrAllLoaded) {
		return nil
	}
	return err
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

// execute runs a parsed command. Tasks that failed were reported already;
// the error is then a runFailed.
func execute(ctx context.Context, o *options, stdout, stderr io.Writer) (err error) {
	var trace *traceFile
	if o.trace != "" {
		// A bad path fails before anything runs.
		if trace, err = openTrace(o.trace); err != nil {
			return fmt.Errorf("--trace: %w", err)
		}
		defer func() {
			if cerr := trace.close(); err == nil && cerr != nil {
				err = fmt.Errorf("--trace: %w", cerr)
			}
		}()
	}
	in, err := openInstance(ctx, o)
	if err != nil {
		return err
	}
	defer in.close()
	m, err := modprobe.New(in.h, modprobe.Config{
		Modules:   in.modules,
		LookupEnv: o.lookup,
		ConfDir:   o.confDir,
		Shell:     in.shell,
		Stdout:    stdout,
		Stderr:    stderr,
		DryRun:    o.dryRun,
		Verbose:   o.verbose,
		Exec:      modprobe.ExecConfig{Limit: o.limit, TaskTimeout: o.timeout},
	})
	if err != nil {
		return err
	}
	sel := modprobe.Selection{SetAlternative: o.setAlt, Disable: o.disable}
	switch o.cmd {
	case "show":
		out, err := m.Show(ctx, o.args[0], sel)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, out)
		return err
	case "list-dependencies":
		width := 0 // modprobe.DefaultTreeWidth
		if c, ok := o.lookup("COLUMNS"); ok {
			if n, err := strconv.Atoi(c); err == nil && n > 1 {
				width = n
			}
		}
		return m.ListDependencies(ctx, stdout, o.args[0], o.full, width, sel)
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
		return nil
	}
	if err != nil {
		return err
	}
	if o.showDeps {
		_, err := fmt.Fprintln(stdout, s.Plan().DepsJSON())
		return err
	}
	if o.dot {
		_, err := fmt.Fprint(stdout, s.Plan().Dot())
		return err
	}
	rep, err := s.Execute(ctx)
	var re *modprobe.RunError
	switch {
	case errors.As(err, &re):
		err = runFailed{err}
	case err != nil:
		return err
	}
	if trace != nil {
		if werr := trace.write(rep, uint32(o.rank)); werr != nil {
			return fmt.Errorf("--trace: %w", werr)
		}
	}
	if o.timing {
		if werr := s.WriteStats(ctx, rep); werr != nil {
			return werr
		}
		// A real instance keeps modprobe.stats; the in-process one
		// vanishes with the command, so show what it stored.
		if in.offline {
			if werr := printStats(ctx, stdout, in, rep, o.cmd); werr != nil {
				return werr
			}
		}
	}
	return err
}

// traceFile is the --trace file, opened before the run. A file this
// command created and never wrote is removed again.
type traceFile struct {
	f       *os.File
	created bool
	written bool
}

func openTrace(path string) (*traceFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		return &traceFile{f: f, created: true}, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	// An existing file keeps its content until the trace replaces it; a
	// FIFO or a pipe (--trace >(...)) is written as it is.
	if f, err = os.OpenFile(path, os.O_WRONLY, 0); err != nil {
		return nil, err
	}
	return &traceFile{f: f}, nil
}

func (t *traceFile) write(rep *modprobe.Report, rank uint32) error {
	t.written = true
	if fi, err := t.f.Stat(); err == nil && fi.Mode().IsRegular() {
		if err := t.f.Truncate(0); err != nil {
			return err
		}
	}
	return rep.WriteTrace(t.f, rank)
}

func (t *traceFile) close() error {
	err := t.f.Close()
	if t.created && !t.written {
		_ = os.Remove(t.f.Name()) // ours, and empty
	}
	return err
}

// printStats shows what --timing stored in the KVS of the instance (which
// for the in-process one vanishes when the command exits) and the run's
// summary.
func printStats(ctx context.Context, w io.Writer, in *instance, rep *modprobe.Report, cmd string) error {
	if in.h.Rank() != 0 {
		if _, err := fmt.Fprintln(w, "modprobe.stats is written on rank 0 only"); err != nil {
			return err
		}
	} else {
		var stats []modprobe.Stat
		if err := kvs.LookupJSON(ctx, in.h, "", "modprobe.stats", &stats); err != nil {
			return err
		}
		fmt.Fprintf(w, "modprobe.stats (KVS of %s):\n", in.about)
		fmt.Fprintf(w, "  %9s  %9s  %s\n", "start", "duration", "name")
		for _, st := range stats {
			fmt.Fprintf(w, "  %8.4fs  %8.4fs  %s\n", st.StartTime, st.Duration, st.Name)
		}
	}
	_, err := fmt.Fprintf(w, "%s: %s\n", cmd, rep.Summary())
	return err
}
