// Command flub-join grows a fluxkit overlay instance with FLUB.
//
// "start" runs rank 0 of an instance of --size ranks, writes (or reuses)
// the owner certificate, prints the boot-server URI and reports the
// overlay status (full, partial, degraded) and each rank's state as ranks
// join and leave:
//
//	flub-join start --size 7 --topo kary:2 --cert owner.cert
//
// "join" adds one broker to a running instance: it authenticates to the
// boot server with the owner certificate, prints its rank, parent and
// state, stays up until interrupted and then leaves cleanly with
// overlay.goodbye:
//
//	flub-join join --boot 'flub://127.0.0.1:4567/<key>' --cert owner.cert --topo kary:2
//
// Both exit non-zero with "flub-join: <error>" on stderr when they fail.
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "usage: %s start|join [flags]\n", prog)
		return 2
	}
	var err error
	switch args[0] {
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
		fmt.Fprintf(stderr, "%s: unknown command %q (want start or join)\n", prog, args[0])
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	return 0
}

func logger(verbose bool, w io.Writer) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(w, nil))
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
	fs.SetOutput(stderr)
	size := fs.Uint("size", 1, "final instance size (the size override)")
	topo := fs.String("topo", flub.DefaultTopo, "tbon.topo")
	certPath := fs.String("cert", "owner.cert", "owner certificate (created if missing)")
	host := fs.String("hostname", "", "rank 0 hostname (default: the host's)")
	lease := fs.Duration("lease", flub.DefaultLease, "allocation lease")
	heartbeat := fs.Duration("heartbeat", flub.DefaultHeartbeat, "heartbeat interval")
	torpid := fs.Duration("torpid-max", flub.DefaultTorpidMax, "silence before a child is flagged torpid")
	verbose := fs.Bool("v", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *size < 1 || *size > 1<<31 {
		return fmt.Errorf("--size %d: must be between 1 and 2^31", *size)
	}
	cert, err := ownerCert(*certPath, true)
	if err != nil {
		return err
	}
	b, err := flub.Start(ctx, flub.Config{
		Size: uint32(*size), Topo: *topo, Owner: cert.Keys.Public, Hostname: *host,
		Lease: *lease, Heartbeat: *heartbeat, TorpidMax: *torpid, Logger: logger(*verbose, stderr),
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

// report renders the overlay status as `flux overlay status` would.
func report(b *flub.Broker) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "status: %s online=%s\n", b.Status(), b.Online())
	for _, r := range b.Ranks() {
		state := "offline"
		if r.Online {
			state = "online"
		}
		fmt.Fprintf(&sb, "  %d %s: %s\n", r.Rank, r.Hostname, state)
	}
	return sb.String()
}

func join(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(prog+" join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	boot := fs.String("boot", "", "boot-server URI printed by start (required)")
	certPath := fs.String("cert", "owner.cert", "owner certificate")
	topo := fs.String("topo", flub.DefaultTopo, "tbon.topo (must match the instance)")
	host := fs.String("hostname", "", "hostname reported to rank 0 (default: the host's)")
	parentTimeout := fs.Duration("parent-timeout", flub.DefaultParentTimeout, "how long to wait for the parent")
	heartbeat := fs.Duration("heartbeat", flub.DefaultHeartbeat, "heartbeat interval")
	torpid := fs.Duration("torpid-max", flub.DefaultTorpidMax, "silence before a child is flagged torpid")
	var attrs attrFlag
	fs.Var(&attrs, "S", "preset attribute name=value (repeatable)")
	verbose := fs.Bool("v", false, "log to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *boot == "" {
		return errors.New("--boot is required")
	}
	cert, err := ownerCert(*certPath, false)
	if err != nil {
		return err
	}
	b, err := flub.Join(ctx, flub.JoinConfig{
		BootURI: *boot, Owner: cert.Keys, Topo: *topo, Hostname: *host, Attrs: attrs.m,
		ParentTimeout: *parentTimeout, Heartbeat: *heartbeat, TorpidMax: *torpid,
		Logger: logger(*verbose, stderr),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rank: %d\nparent: %d\nendpoint: %s\nstate: online\n", b.Rank(), b.Parent(), b.Endpoint())
	select {
	case <-ctx.Done():
		lctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := b.Leave(lctx)
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
