package flub

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
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
	DefaultBindHost         = "127.0.0.1"
)

// Config configures the initial broker of an instance (rank 0), the
// instance's boot server and its rank pool. The zero value of every field
// is its documented default, except where a field is a pointer: there nil
// is the default and a zero is the zero it says. Owner is required.
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
	// Default (nil) os.Getuid(); new(uint32(0)) makes root the owner.
	OwnerUserid *uint32
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
	// before it returns to the pool, and how long the rank of a broker
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

	hooks *startHooks // tests
}

// startHooks let tests reshape what rank 0 says and see what it hears.
type startHooks struct {
	getinfo func(map[string]any)             // reshape getinfo responses
	frames  func(id string, frames [][]byte) // see frames from children
	version uint32                           // hello with another version
}

// JoinConfig configures a broker joining a running instance. BootURI and
// Owner are required. The zero value of every other field is its
// documented default, except where a field is a pointer: there nil is the
// default and a zero is the zero it says.
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
	// ParentTimeout bounds the wait for the parent to come online; keep
	// it below the instance's lease, which holds the rank meanwhile.
	// Default 30 s.
	ParentTimeout time.Duration
	// ReconnectTimeout is how long a broker whose parent connection
	// failed keeps reconnecting to that parent (with backoff) before it
	// takes the parent for gone and rejoins through the boot server;
	// refused connections cut it short. Keep it below the instance's
	// lease. Default (nil) 10 s; zero rejoins after one failed attempt.
	ReconnectTimeout *time.Duration
	// HandshakeTimeout bounds each CURVE handshake, with the boot server
	// and with the parent; ctx's deadline bounds the whole join as well.
	// Default 30 s (libzmq's ZMQ_HANDSHAKE_IVL).
	HandshakeTimeout time.Duration
	// TCPUserTimeout as in Config, for the link to the parent and, on an
	// interior broker, to its children. Default 20 s.
	TCPUserTimeout time.Duration
	// BindHost is the address an interior joiner binds. Default 127.0.0.1.
	BindHost string
	// Heartbeat, TorpidMax, Transport, Logger, Now, Env, Modules and
	// ModuleTimeout are as in [Config].
	Heartbeat     time.Duration
	TorpidMax     time.Duration
	Transport     *curve.Transport
	Logger        *slog.Logger
	Now           func() time.Time
	Env           map[string]string
	Modules       map[string]ModuleFunc
	ModuleTimeout time.Duration

	hooks *joinHooks // tests
}

// Validate reports the first field of c that is out of range, naming it.
// It changes nothing; Start calls it.
func (c *Config) Validate() error {
	if c.Size > MaxSize {
		return fluxkit.Errorf(fluxkit.EINVAL, "Config.Size: %d exceeds the maximum instance size %d", c.Size, uint64(MaxSize))
	}
	if _, err := ParseTopology(orString(c.Topo, DefaultTopo)); err != nil {
		return fmt.Errorf("Config.Topo: %w", err)
	}
	if c.Owner.IsZero() {
		return fluxkit.Errorf(fluxkit.EINVAL, "Config.Owner: the owner's public key is required")
	}
	if len(c.InstanceConfig) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(c.InstanceConfig, &obj); err != nil || obj == nil {
			return fluxkit.Errorf(fluxkit.EINVAL, "Config.InstanceConfig: not a JSON object")
		}
	}
	if c.Lease < 0 {
		return fluxkit.Errorf(fluxkit.EINVAL, "Config.Lease: negative duration %v", c.Lease)
	}
	return c.knobs().validate("Config")
}

// Validate reports the first field of c that is out of range, naming it.
// It changes nothing; Join calls it.
func (c *JoinConfig) Validate() error {
	if _, _, err := ParseBootURI(c.BootURI); err != nil {
		return fmt.Errorf("JoinConfig.BootURI: %w", err)
	}
	if c.Owner.Public.IsZero() {
		return fluxkit.Errorf(fluxkit.EINVAL, "JoinConfig.Owner: the owner key pair is required")
	}
	if c.Topo != "" {
		if _, err := ParseTopology(c.Topo); err != nil {
			return fmt.Errorf("JoinConfig.Topo: %w", err)
		}
	}
	if c.ParentTimeout < 0 {
		return fluxkit.Errorf(fluxkit.EINVAL, "JoinConfig.ParentTimeout: negative duration %v", c.ParentTimeout)
	}
	if c.ReconnectTimeout != nil && *c.ReconnectTimeout < 0 {
		return fluxkit.Errorf(fluxkit.EINVAL, "JoinConfig.ReconnectTimeout: negative duration %v", *c.ReconnectTimeout)
	}
	return c.knobs().validate("JoinConfig")
}

// knobs is what every broker is configured with, rank 0 or joiner.
type knobs struct {
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

func (c *Config) knobs() knobs {
	k := knobs{bindHost: c.BindHost, heartbeat: c.Heartbeat, torpidMax: c.TorpidMax,
		handshakeTimeout: c.HandshakeTimeout, tcpUserTimeout: c.TCPUserTimeout, transport: c.Transport,
		log: c.Logger, now: c.Now, env: c.Env, modules: c.Modules, moduleTimeout: c.ModuleTimeout}
	if c.hooks != nil {
		k.version = c.hooks.version
	}
	return k
}

func (c *JoinConfig) knobs() knobs {
	k := knobs{bindHost: c.BindHost, heartbeat: c.Heartbeat, torpidMax: c.TorpidMax,
		handshakeTimeout: c.HandshakeTimeout, tcpUserTimeout: c.TCPUserTimeout, transport: c.Transport,
		log: c.Logger, now: c.Now, env: c.Env, modules: c.Modules, moduleTimeout: c.ModuleTimeout}
	if c.hooks != nil {
		k.version = c.hooks.version
	}
	return k
}

// validate checks the knobs of the config named what.
func (k knobs) validate(what string) error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"Heartbeat", k.heartbeat}, {"TorpidMax", k.torpidMax}, {"HandshakeTimeout", k.handshakeTimeout},
		{"TCPUserTimeout", k.tcpUserTimeout}, {"ModuleTimeout", k.moduleTimeout}} {
		if d.v < 0 {
			return fluxkit.Errorf(fluxkit.EINVAL, "%s.%s: negative duration %v", what, d.name, d.v)
		}
	}
	if hb, tm := orDuration(k.heartbeat, DefaultHeartbeat), orDuration(k.torpidMax, DefaultTorpidMax); hb >= tm {
		return fluxkit.Errorf(fluxkit.EINVAL, "%s.Heartbeat (%v) must be less than TorpidMax (%v)", what, hb, tm)
	}
	for name, fn := range k.modules {
		if name == "" || fn == nil {
			return fluxkit.Errorf(fluxkit.EINVAL, "%s.Modules: module %q needs a name and a function", what, name)
		}
	}
	return nil
}

// withDefaults returns validated knobs with every default filled in and the
// maps copied, so that the caller's config stays the caller's.
func (k knobs) withDefaults() (knobs, error) {
	k.bindHost = orString(k.bindHost, DefaultBindHost)
	k.heartbeat = orDuration(k.heartbeat, DefaultHeartbeat)
	k.torpidMax = orDuration(k.torpidMax, DefaultTorpidMax)
	k.handshakeTimeout = orDuration(k.handshakeTimeout, curve.DefaultHandshakeTimeout)
	k.tcpUserTimeout = orDuration(k.tcpUserTimeout, DefaultTCPUserTimeout)
	k.moduleTimeout = orDuration(k.moduleTimeout, DefaultModuleTimeout)
	if k.transport == nil {
		tr, err := DefaultTransport()
		if err != nil {
			return k, err
		}
		k.transport = tr
	}
	if k.log == nil {
		k.log = slog.New(slog.DiscardHandler)
	}
	if k.now == nil {
		k.now = time.Now
	}
	if k.version == 0 {
		k.version = protocolVersion
	}
	k.modules = maps.Clone(k.modules)
	if k.modules == nil {
		k.modules = map[string]ModuleFunc{}
	}
	if k.env != nil {
		k.env = maps.Clone(k.env)
		return k, nil
	}
	k.env = map[string]string{}
	for _, kv := range os.Environ() {
		if name, v, ok := strings.Cut(kv, "="); ok && name != "" {
			k.env[name] = v
		}
	}
	return k, nil
}

// params returns rank 0's parameters: c, validated, with its defaults.
func (c *Config) params() (params, error) {
	var p params
	k, err := c.knobs().withDefaults()
	if err != nil {
		return p, err
	}
	p.knobs = k
	p.topo, _ = ParseTopology(orString(c.Topo, DefaultTopo))
	p.size = max(c.Size, 1)
	if p.pool, err = NewPool(p.size, 1); err != nil {
		return p, err
	}
	p.lease = orDuration(c.Lease, DefaultLease)
	p.config = json.RawMessage("{}")
	if len(c.InstanceConfig) > 0 {
		p.config = c.InstanceConfig
	}
	p.owner = c.Owner
	p.ownerUID = uint32(os.Getuid())
	if c.OwnerUserid != nil {
		p.ownerUID = *c.OwnerUserid
	}
	p.guests = c.Guests
	if c.hooks != nil {
		p.getinfoHook, p.frameHook = c.hooks.getinfo, c.hooks.frames
	}
	p.hostname = c.Hostname
	if p.hostname == "" {
		p.hostname, _ = os.Hostname()
	}
	p.attrs = map[string]string{"instance-level": "0"}
	maps.Copy(p.attrs, c.Attrs)
	p.attrs["security.owner"] = strconv.FormatUint(uint64(p.ownerUID), 10)
	if c.Keys != nil {
		p.keys = *c.Keys
	} else if p.keys, err = curve.GenerateKeyPair(nil); err != nil {
		return p, err
	}
	return p, nil
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
