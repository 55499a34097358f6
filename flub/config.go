package flub

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
)

// Defaults of the timing knobs shared by Config and JoinConfig.
const (
	DefaultLease            = 60 * time.Second
	DefaultHeartbeat        = time.Second
	DefaultTorpidMax        = 30 * time.Second
	DefaultParentTimeout    = 30 * time.Second
	DefaultReconnectTimeout = 10 * time.Second
	DefaultTCPUserTimeout   = 20 * time.Second
	DefaultSendTimeout      = 5 * time.Second
	DefaultBindHost         = "127.0.0.1"
)

// Config configures the initial broker of an instance (rank 0), the
// instance's boot server and its rank pool. The zero value of each field
// is its documented default; Owner is required. [Start] validates it.
type Config struct {
	// Size is the final instance size, the size override S; ranks 1..S-1
	// are offered to joiners. Default 1, at most MaxSize. Memory follows
	// the ranks in use, not the size.
	Size uint32
	// Topo is tbon.topo: "kary:K" or "binomial". Default "kary:32". Joiners
	// adopt it, or are refused when configured with another.
	Topo string
	// Owner is the public key of the instance owner's certificate: the only
	// key the boot server grants owner credentials to.
	Owner curve.Key
	// OwnerUserid is the owner's userid carried in owner credentials.
	// Default os.Getuid().
	OwnerUserid uint32
	// Guests are other keys the boot server accepts, with RoleUser and the
	// given userid (their FLUB requests get EPERM).
	Guests map[curve.Key]uint32
	// Hostname is rank 0's entry in the hostlist. Default os.Hostname().
	Hostname string
	// Attrs are extra broker attributes; "instance-level" defaults to "0".
	Attrs map[string]string
	// InstanceConfig is the instance configuration sent in getinfo as
	// "config"; it must be a JSON object. Default {}.
	InstanceConfig json.RawMessage
	// BindHost is the address brokers bind. Default 127.0.0.1.
	BindHost string
	// Lease bounds how long an allocated rank may take to come online
	// before it returns to the pool (D4), and how long the rank of a broker
	// orphaned by the loss of an ancestor is kept for it. Default 60 s.
	Lease time.Duration
	// Heartbeat is the idle interval after which a child sends a
	// heartbeat (flux-core's tbon.torpid_min), and the liveness-check
	// period. Default 1 s.
	Heartbeat time.Duration
	// TorpidMax is the silence after which a child is flagged torpid
	// (flux-core's tbon.torpid_max): logged, listed in the broker.torpid
	// group, but still online and its rank still held. Only a failed
	// connection makes a child lost. Default 30 s; must exceed Heartbeat.
	TorpidMax time.Duration
	// HandshakeTimeout bounds each CURVE handshake on the boot server and
	// the overlay sockets. Default 30 s (libzmq's ZMQ_HANDSHAKE_IVL).
	HandshakeTimeout time.Duration
	// TCPUserTimeout bounds how long data sent over an overlay link may
	// stay unacknowledged before the link is dropped (flux-core's
	// tbon.tcp_user_timeout): what makes a child on a dead host lost
	// rather than merely torpid. Default 20 s; Linux only.
	TCPUserTimeout time.Duration
	// Keys is the broker's key pair. Default: a fresh pair.
	Keys *curve.KeyPair
	// Transport carries CURVE for zmq4. Default: the process-wide
	// transport returned by DefaultTransport.
	Transport *curve.Transport
	// Logger receives the broker's log. Default: discard.
	Logger *slog.Logger
	// Now is the clock for leases and liveness. Default time.Now.
	Now func() time.Time
	// Version is the hello version. Default Version.
	Version uint32
	// Env is the broker's environment, which broker.getenv reads and
	// broker.setenv changes (never the process environment). Default
	// (nil): a copy of the process environment when the broker starts.
	Env map[string]string
	// Modules are the Go modules module.load can start on this broker,
	// keyed by module name: a load runs the entry named by the base of its
	// path without extension, else by its name. See [ModuleFunc]. Default:
	// none (every load fails with ENOENT).
	Modules map[string]ModuleFunc
	// ModuleTimeout bounds how long module.load waits for a module to
	// call SetRunning before it cancels the module and fails the load
	// with ETIMEDOUT. Default DefaultModuleTimeout (30 s).
	ModuleTimeout time.Duration

	getinfoHook func(map[string]any)             // tests: reshape getinfo responses
	frameHook   func(id string, frames [][]byte) // tests: see frames from children
}

// JoinConfig configures a broker joining a running instance. BootURI and
// Owner are required; every other zero field takes its documented default.
type JoinConfig struct {
	// BootURI is the instance's boot server, as printed by rank 0
	// ([Broker.BootURI]).
	BootURI string
	// Owner is the instance owner's key pair (the owner certificate); the
	// boot server grants owner credentials to it alone.
	Owner curve.KeyPair
	// Topo is the joiner's tbon.topo. Default (""): adopt the instance's,
	// as rank 0 reports it in getinfo ("kary:32" from a server that does
	// not). When set, it must be the instance's: rank 0 refuses the joiner
	// otherwise, before allocating a rank, with "tbon.topo mismatch".
	Topo string
	// Hostname is sent to rank 0 to replace this rank's placeholder.
	// Default os.Hostname().
	Hostname string
	// Attrs are attributes already set on the joiner (-S on the command
	// line). getinfo's attributes may not overwrite them.
	Attrs map[string]string
	// ParentTimeout bounds the wait for the parent to come online (D4);
	// keep it below the instance's lease. Default 30 s.
	ParentTimeout time.Duration
	// ReconnectTimeout is how long a broker whose parent connection
	// failed keeps reconnecting to that parent (with backoff) before it
	// takes the parent for gone and rejoins through the boot server;
	// refused connections cut it short. Keep it below the instance's
	// lease. Default 10 s.
	ReconnectTimeout time.Duration
	// HandshakeTimeout bounds each CURVE handshake, with the boot server
	// and with the parent; ctx's deadline bounds the whole join as well.
	// Default 30 s (libzmq's ZMQ_HANDSHAKE_IVL).
	HandshakeTimeout time.Duration
	// TCPUserTimeout as in Config, for the link to the parent and, on an
	// interior broker, to its children. Default 20 s.
	TCPUserTimeout time.Duration
	// BindHost is the address an interior joiner binds. Default 127.0.0.1.
	BindHost string
	// Heartbeat and TorpidMax as in Config.
	Heartbeat time.Duration
	TorpidMax time.Duration
	// Transport carries CURVE. Default DefaultTransport().
	Transport *curve.Transport
	// Logger receives the broker's log. Default: discard.
	Logger *slog.Logger
	// Now is the broker's clock. Default time.Now.
	Now func() time.Time
	// Version is the hello version. Default Version.
	Version uint32
	// Env is the broker's environment, which broker.getenv reads and
	// broker.setenv changes (never the process environment). Default
	// (nil): a copy of the process environment when the broker starts.
	Env map[string]string
	// Modules are the Go modules module.load can start on this broker,
	// keyed by module name: a load runs the entry named by the base of its
	// path without extension, else by its name. See [ModuleFunc]. Default:
	// none (every load fails with ENOENT).
	Modules map[string]ModuleFunc
	// ModuleTimeout bounds how long module.load waits for a module to
	// call SetRunning before it cancels the module and fails the load
	// with ETIMEDOUT. Default DefaultModuleTimeout (30 s).
	ModuleTimeout time.Duration

	hooks *joinHooks // tests
}

var (
	transportOnce sync.Once
	transportVal  *curve.Transport
	transportErr  error
)

// DefaultTransport returns the CURVE transport registered under the
// scheme "flub-curve", creating it on first use. zmq4's transport registry
// is process-wide and cannot forget a name, which is why this one value is
// shared rather than owned by a broker.
func DefaultTransport() (*curve.Transport, error) {
	transportOnce.Do(func() { transportVal, transportErr = curve.NewTransport("flub-curve") })
	return transportVal, transportErr
}

// shared is what Config and JoinConfig have in common; what names the
// config struct in errors.
type shared struct {
	what             string
	topo             string // "" on a joiner: adopt the instance's
	bindHost         string
	heartbeat        time.Duration
	torpidMax        time.Duration
	handshakeTimeout time.Duration
	tcpUserTimeout   time.Duration
	transport        *curve.Transport
	log              *slog.Logger
	now              func() time.Time
	version          uint32
	env              map[string]string
	modules          map[string]ModuleFunc
	moduleTimeout    time.Duration
}

// apply validates s and fills p with it and the defaults.
func (s shared) apply(p *params) error {
	if s.topo != "" {
		t, err := ParseTopology(s.topo)
		if err != nil {
			return fmt.Errorf("error creating topology: %w", err)
		}
		p.topo = t
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Heartbeat", s.heartbeat}, {"TorpidMax", s.torpidMax}, {"HandshakeTimeout", s.handshakeTimeout},
		{"TCPUserTimeout", s.tcpUserTimeout}, {"ModuleTimeout", s.moduleTimeout}} {
		if d.v < 0 {
			return fluxkit.Errorf(fluxkit.EINVAL, "%s.%s: negative duration %v", s.what, d.name, d.v)
		}
	}
	p.bindHost = orString(s.bindHost, DefaultBindHost)
	p.heartbeat = orDuration(s.heartbeat, DefaultHeartbeat)
	p.torpidMax = orDuration(s.torpidMax, DefaultTorpidMax)
	if p.heartbeat >= p.torpidMax {
		return fluxkit.Errorf(fluxkit.EINVAL, "%s.Heartbeat (%v) must be less than TorpidMax (%v)", s.what, p.heartbeat, p.torpidMax)
	}
	p.handshakeTimeout = orDuration(s.handshakeTimeout, curve.DefaultHandshakeTimeout)
	p.tcpUserTimeout = orDuration(s.tcpUserTimeout, DefaultTCPUserTimeout)
	tr := s.transport
	if tr == nil {
		var err error
		if tr, err = DefaultTransport(); err != nil {
			return err
		}
	}
	p.transport = tr
	p.log = s.log
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.now = s.now
	if p.now == nil {
		p.now = time.Now
	}
	p.version = s.version
	if p.version == 0 {
		p.version = Version
	}
	p.moduleTimeout = orDuration(s.moduleTimeout, DefaultModuleTimeout)
	p.modules = make(map[string]ModuleFunc, len(s.modules))
	for name, fn := range s.modules {
		if name == "" || fn == nil {
			return fluxkit.Errorf(fluxkit.EINVAL, "%s.Modules: module %q needs a name and a function", s.what, name)
		}
		p.modules[name] = fn
	}
	p.env = make(map[string]string, len(s.env))
	if s.env == nil {
		for _, kv := range os.Environ() {
			if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
				p.env[k] = v
			}
		}
		return nil
	}
	for k, v := range s.env {
		p.env[k] = v
	}
	return nil
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
