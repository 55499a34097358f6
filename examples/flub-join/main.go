// Command flub-join grows a fluxkit overlay instance with FLUB.
//
// "start" runs rank 0 of an instance of --size ranks, writes (or reuses)
// the owner certificate, prints the boot-server URI and reports the
// overlay status (full, partial, degraded), the online and torpid ranks and
// the state of each rank in use as ranks join and leave. The size may be
// anything up to 2^31: what it costs follows the ranks in use.
//
//	flub-join start --size 7 --topo kary:2 --cert owner.cert
//
// "join" adds one broker to a running instance: it authenticates to the
// boot server with the owner certificate, prints its rank, parent and
// state, stays up until interrupted (reconnecting, or rejoining through
// the boot server, if its parent goes away) and then leaves cleanly with
// overlay.goodbye. Without --topo it adopts the instance's topology.
//
//	flub-join join --boot 'flub://127.0.0.1:4567/<key>' --cert owner.cert
//
// -h prints a command's flags on stdout. A usage error prints one line,
// "flub-join: <what is wrong>", and exits 2; a failure prints
// "flub-join: <error>" and exits 1.
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
	"strings"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit/flub"
	"github.com/fluxkit/fluxkit/flub/curve"
)

const prog = "flub-join"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError is a mistake on the command line: one line, exit 2.
type usageError string

func (e usageError) Error() string { return string(e) }

func usagef(format string, args ...any) error { return usageError(fmt.Sprintf(format, args...)) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var err error
	switch cmd := append(args, "")[0]; cmd {
	case "":
		err = usagef("missing command: start or join (see %s -h)", prog)
	case "-h", "-help", "--help", "help":
		fmt.Fprintf(stdout, "usage: %s start|join [flags]\n\n"+
			"  start   start rank 0 of an instance (--size N) and print its boot URI\n"+
			"  join    join a running instance given its boot URI and the owner certificate\n\n"+
			"Run %s start -h or %s join -h for the flags of each.\n", prog, prog, prog)
		return 0
	case "start":
		err = start(ctx, args[1:], stdout, stderr)
	case "join":
		err = join(ctx, args[1:], stdout, stderr)
	default:
		err = usagef("unknown command %q (want start or join)", cmd)
	}
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
}

// parse parses a command's flags: -h prints them on stdout (flag.ErrHelp),
// any mistake is a one-line usageError.
func parse(fs *flag.FlagSet, args []string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: %s [flags]\n\n", fs.Name())
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return err
		}
		return usageError(err.Error())
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	var bad error
	fs.Visit(func(f *flag.Flag) {
		if g, ok := f.Value.(flag.Getter); ok {
			if d, ok := g.Get().(time.Duration); ok && d < 0 && bad == nil {
				bad = usagef("--%s %v: a duration cannot be negative", f.Name, d)
			}
		}
	})
	return bad
}

// brokerFlags are the flags of both commands: the broker's timing and
// logging.
type brokerFlags struct {
	heartbeat, torpid, handshake *time.Duration
	verbose                      *bool
}

func newBrokerFlags(fs *flag.FlagSet) brokerFlags {
	return brokerFlags{
		heartbeat: fs.Duration("heartbeat", flub.DefaultHeartbeat, "heartbeat interval (tbon.torpid_min)"),
		torpid:    fs.Duration("torpid-max", flub.DefaultTorpidMax, "silence before a child is flagged torpid"),
		handshake: fs.Duration("handshake-timeout", curve.DefaultHandshakeTimeout, "bound on each CURVE handshake"),
		verbose:   fs.Bool("v", false, "log to stderr"),
	}
}

// check refuses what flub would refuse of the two intervals, as a usage
// error.
func (f brokerFlags) check() error {
	if *f.heartbeat > 0 && *f.torpid > 0 && *f.heartbeat >= *f.torpid {
		return usagef("--heartbeat %v must be less than --torpid-max %v", *f.heartbeat, *f.torpid)
	}
	return nil
}

// logger logs to w with -v, nowhere without.
func (f brokerFlags) logger(w io.Writer) *slog.Logger {
	if !*f.verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// checkTopo refuses a tbon.topo flub cannot parse, as a usage error.
func checkTopo(topo string) error {
	if _, err := flub.ParseTopology(topo); err != nil {
		return usagef("--topo %q: %v", topo, err)
	}
	return nil
}

// ownerCert reads the certificate at path or, with create, writes a new one.
func ownerCert(path string, create bool) (*curve.Cert, error) {
	c, err := curve.ReadCertFile(path)
	if err == nil || !create || !errors.Is(err, os.ErrNotExist) {
		return c, err
	}
	c, err = curve.GenerateCert(nil, "owner")
	if err != nil {
		return nil, err
	}
	return c, c.WriteFile(path)
}

func start(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(prog+" start", flag.ContinueOnError)
	size := fs.Uint64("size", 1, fmt.Sprintf("final instance size (the size override), 1 to %d", uint64(flub.MaxSize)))
	topo := fs.String("topo", flub.DefaultTopo, "tbon.topo: kary:K (kary:0 is flat) or binomial")
	certPath := fs.String("cert", "owner.cert", "owner certificate (created if missing)")
	host := fs.String("hostname", "", "rank 0 hostname (default: the host's)")
	lease := fs.Duration("lease", flub.DefaultLease, "allocation lease, and how long an orphaned rank is held")
	bf := newBrokerFlags(fs)
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if *size < 1 || *size > flub.MaxSize {
		return usagef("--size %d: an instance has 1 to %d ranks", *size, uint64(flub.MaxSize))
	}
	if err := checkTopo(*topo); err != nil {
		return err
	}
	if err := bf.check(); err != nil {
		return err
	}
	cert, err := ownerCert(*certPath, true)
	if err != nil {
		return err
	}
	b, err := flub.Start(ctx, flub.Config{
		Size: uint32(*size), Topo: *topo, Owner: cert.Keys.Public, Hostname: *host,
		Lease: *lease, Heartbeat: *bf.heartbeat, TorpidMax: *bf.torpid, HandshakeTimeout: *bf.handshake,
		Logger: bf.logger(stderr),
	})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(stdout, "boot-uri: %s\n", b.BootURI())
	var last string
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if s := report(b); s != last {
			fmt.Fprint(stdout, s)
			last = s
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// report renders the overlay status as `flux overlay status` would, for
// the ranks in use: the others are offline placeholders.
func report(b *flub.Broker) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "status: %s online=%s", b.Status(), b.Online())
	if t := b.Torpid(); !t.IsEmpty() {
		fmt.Fprintf(&sb, " torpid=%s", t)
	}
	sb.WriteByte('\n')
	for _, r := range b.Ranks() {
		state := "offline"
		switch {
		case r.Online && r.Torpid:
			state = "torpid"
		case r.Online:
			state = "online"
		case r.State == flub.Leased:
			state = "joining"
		case r.State == flub.Orphaned:
			state = "cut off"
		}
		fmt.Fprintf(&sb, "  %d %s: %s\n", r.Rank, r.Hostname, state)
	}
	return sb.String()
}

func join(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(prog+" join", flag.ContinueOnError)
	boot := fs.String("boot", "", "boot-server URI printed by start (required)")
	certPath := fs.String("cert", "owner.cert", "owner certificate")
	topo := fs.String("topo", "", "tbon.topo; refused unless it is the instance's (default: adopt the instance's)")
	host := fs.String("hostname", "", "hostname reported to rank 0 (default: the host's)")
	parentTimeout := fs.Duration("parent-timeout", flub.DefaultParentTimeout, "how long to wait for the parent")
	reconnect := fs.Duration("reconnect-timeout", flub.DefaultReconnectTimeout, "how long to reconnect to a lost parent before rejoining (0: rejoin after one failed attempt)")
	timeout := fs.Duration("timeout", 0, "bound on the whole join (0: none beyond the others)")
	bf := newBrokerFlags(fs)
	var attrs attrFlag
	fs.Var(&attrs, "S", "preset attribute name=value (repeatable)")
	if err := parse(fs, args, stdout); err != nil {
		return err
	}
	if *boot == "" {
		return usagef("--boot is required")
	}
	if _, _, err := flub.ParseBootURI(*boot); err != nil {
		return usagef("--boot: %v", err)
	}
	if *topo != "" {
		if err := checkTopo(*topo); err != nil {
			return err
		}
	}
	if err := bf.check(); err != nil {
		return err
	}
	cert, err := ownerCert(*certPath, false)
	if err != nil {
		return err
	}
	jctx := ctx
	if *timeout > 0 {
		var cancel context.CancelFunc
		jctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	b, err := flub.Join(jctx, flub.JoinConfig{
		BootURI: *boot, Owner: cert.Keys, Topo: *topo, Hostname: *host, Attrs: attrs.m,
		ParentTimeout: *parentTimeout, ReconnectTimeout: reconnect, HandshakeTimeout: *bf.handshake,
		Heartbeat: *bf.heartbeat, TorpidMax: *bf.torpid, Logger: bf.logger(stderr),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rank: %d\nparent: %d\ntopo: %s\nendpoint: %s\nstate: online\n", b.Rank(), b.Parent(), b.Topology(), b.Endpoint())
	select {
	case <-ctx.Done():
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := b.Shutdown(lctx)
		fmt.Fprintln(stdout, "state: left")
		return err
	case <-b.Done():
		b.Close()
		return fmt.Errorf("broker stopped: %w", b.Err())
	}
}

// attrFlag collects -S name=value.
type attrFlag struct{ m map[string]string }

func (a *attrFlag) String() string { return "" }

func (a *attrFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("attribute %q: want name=value", s)
	}
	if a.m == nil {
		a.m = map[string]string{}
	}
	a.m[k] = v
	return nil
}
