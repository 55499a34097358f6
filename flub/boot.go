package flub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/go-zeromq/zmq4"
)

// BootScheme is the scheme of a boot-server URI.
const BootScheme = "flub://"

// FormatBootURI returns the boot-server URI "flub://host:port/<Z85 key>":
// where to connect and the CURVE key the server must prove. The key comes
// last because Z85 text may itself contain '/'.
func FormatBootURI(hostport string, key curve.Key) string {
	return BootScheme + hostport + "/" + key.String()
}

// ParseBootURI splits a boot-server URI into a "tcp://host:port" endpoint
// and the server's public key.
func ParseBootURI(uri string) (endpoint string, key curve.Key, err error) {
	rest, ok := strings.CutPrefix(uri, BootScheme)
	if !ok {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: scheme must be %s", uri, BootScheme)
	}
	hostport, z85, ok := strings.Cut(rest, "/")
	if !ok {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: missing /<server public key>", uri)
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: address %q: %v", uri, hostport, err)
	}
	key, err = curve.ParseKey(z85)
	if err != nil {
		return "", key, fluxkit.Errorf(fluxkit.EINVAL, "boot uri %q: server key: %v", uri, err)
	}
	return "tcp://" + hostport, key, nil
}

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

// Start validates cfg and starts rank 0 of an instance of cfg.Size ranks
// whose other ranks join later through its boot server ([Broker.BootURI]).
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	var p params
	err := shared{
		what: "Config", topo: orString(cfg.Topo, DefaultTopo), bindHost: cfg.BindHost,
		heartbeat: cfg.Heartbeat, torpidMax: cfg.TorpidMax, handshakeTimeout: cfg.HandshakeTimeout,
		tcpUserTimeout: cfg.TCPUserTimeout, transport: cfg.Transport, log: cfg.Logger, now: cfg.Now, version: cfg.Version,
		env: cfg.Env, modules: cfg.Modules, moduleTimeout: cfg.ModuleTimeout,
	}.apply(&p)
	if err != nil {
		return nil, err
	}
	if cfg.Owner.IsZero() {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "Config.Owner: the owner's public key is required")
	}
	if cfg.Size > MaxSize {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "Config.Size: %d exceeds the maximum instance size %d", cfg.Size, uint64(MaxSize))
	}
	p.size = max(cfg.Size, 1)
	pool, err := NewPool(p.size, 1)
	if err != nil {
		return nil, err
	}
	p.pool = pool
	if cfg.Lease < 0 {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "Config.Lease: negative duration %v", cfg.Lease)
	}
	p.lease = orDuration(cfg.Lease, DefaultLease)
	p.config = json.RawMessage("{}")
	if len(cfg.InstanceConfig) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cfg.InstanceConfig, &obj); err != nil || obj == nil {
			return nil, fluxkit.Errorf(fluxkit.EINVAL, "Config.InstanceConfig: not a JSON object")
		}
		p.config = cfg.InstanceConfig
	}
	p.owner = cfg.Owner
	p.ownerUID = cfg.OwnerUserid
	if p.ownerUID == 0 {
		p.ownerUID = uint32(os.Getuid())
	}
	p.guests = cfg.Guests
	p.getinfoHook, p.frameHook = cfg.getinfoHook, cfg.frameHook
	p.hostname = cfg.Hostname
	if p.hostname == "" {
		p.hostname, _ = os.Hostname()
	}
	p.attrs = map[string]string{"instance-level": "0"}
	for k, v := range cfg.Attrs {
		p.attrs[k] = v
	}
	p.attrs["security.owner"] = strconv.FormatUint(uint64(p.ownerUID), 10)
	if cfg.Keys != nil {
		p.keys = *cfg.Keys
	} else if p.keys, err = curve.GenerateKeyPair(nil); err != nil {
		return nil, err
	}
	return newBroker(ctx, p)
}

// Client is a connection to an instance's boot server, authenticated by a
// CURVE key pair: the owner's certificate for FLUB. It implements the
// request side of [fluxkit.Handle]; Register, Publish and Subscribe fail
// with ENOSYS.
type Client struct {
	sock   zmq4.Socket
	cl     *curve.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	calls  calls
	sendMu sync.Mutex
	once   sync.Once
}

var _ fluxkit.Handle = (*Client)(nil)

// ClientOptions tunes DialBoot; zero values are defaults.
type ClientOptions struct {
	Transport        *curve.Transport // default DefaultTransport()
	Logger           *slog.Logger     // default discard
	HandshakeTimeout time.Duration    // default 30 s; ctx's deadline bounds it too
}

// DialBoot connects to the boot server at uri with the given key pair.
// It fails if the server refuses the key or does not hold the URI's key.
func DialBoot(ctx context.Context, uri string, keys curve.KeyPair, opt ClientOptions) (*Client, error) {
	ep, serverKey, err := ParseBootURI(uri)
	if err != nil {
		return nil, err
	}
	tr := opt.Transport
	if tr == nil {
		if tr, err = DefaultTransport(); err != nil {
			return nil, err
		}
	}
	if opt.HandshakeTimeout < 0 {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "ClientOptions.HandshakeTimeout: negative duration %v", opt.HandshakeTimeout)
	}
	cl, err := tr.NewClient(curve.ClientConfig{Keys: keys, ServerKey: serverKey, Logger: opt.Logger, HandshakeTimeout: opt.HandshakeTimeout})
	if err != nil {
		return nil, err
	}
	cep, err := cl.Endpoint(ep)
	if err != nil {
		_ = cl.Close()
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &Client{cl: cl, ctx: cctx, cancel: cancel}
	// A boot client has no loop to stall, so its send guard is generous.
	c.sock = zmq4.NewDealer(cctx, zmq4.WithID(zmq4.SocketIdentity(newUUID())),
		zmq4.WithTimeout(6*DefaultSendTimeout), zmq4.WithDialerMaxRetries(2), zmq4.WithDialerRetry(100*time.Millisecond))
	if err = dial(ctx, cancel, c.sock, cep); err != nil {
		_ = c.sock.Close()
		_ = cl.Close()
		return nil, fmt.Errorf("boot server %s: %w", strings.TrimPrefix(ep, "tcp://"), err)
	}
	c.wg.Add(1)
	go c.read()
	return c, nil
}

// dial connects s to ep, or gives up when ctx ends (cancel, which ends
// s's context, aborts the attempt). A CURVE failure comes back without
// the layers zmq4 wraps around it: "server key mismatch", "client key not
// authorized", "handshake timed out after ...".
func dial(ctx context.Context, cancel context.CancelFunc, s zmq4.Socket, ep string) error {
	errc := make(chan error, 1)
	go func() { errc <- s.Dial(ep) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		cancel()
		<-errc
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		var hs *curve.HandshakeError
		var re *curve.RefusedError
		if errors.As(err, &hs) || errors.As(err, &re) {
			return dialError{curve.Failure(err), err}
		}
	}
	return err
}

// dialError shows a CURVE failure alone while keeping zmq4's whole chain
// for errors.Is and errors.As.
type dialError struct {
	shown, full error
}

func (e dialError) Error() string { return strings.TrimPrefix(e.shown.Error(), "curve: ") }
func (e dialError) Unwrap() error { return e.full }

func (c *Client) read() {
	defer c.wg.Done()
	defer c.calls.closeAll()
	for {
		msg, err := c.sock.Recv()
		if err != nil {
			return
		}
		m, err := fluxkit.DecodeFrames(msg.Frames)
		if err != nil || m.Type != fluxkit.TypeResponse {
			continue
		}
		c.calls.deliver(m)
	}
}

// Rank is 0: the boot server is rank 0.
func (c *Client) Rank() uint32 { return 0 }

// Size is unknown to a boot client (0); getinfo tells it.
func (c *Client) Size() uint32 { return 0 }

// Cred is what the client asserts; the server decides from its key.
func (c *Client) Cred() fluxkit.Cred {
	return fluxkit.Cred{Userid: fluxkit.UseridUnknown, Roles: fluxkit.RoleOwner}
}

// Request sends a request through the boot server.
func (c *Client) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	if req == nil || req.Type != fluxkit.TypeRequest {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "Request takes a message of type request")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m := req.Clone()
	m.Route = nil
	m.Flags |= fluxkit.FlagRoute
	var cl *call
	if !m.IsNoResponse() {
		var ok bool
		if cl, ok = c.calls.add(m.IsStreaming()); !ok {
			return nil, errClosed
		}
		m.Matchtag = cl.tag
	}
	c.sendMu.Lock()
	err := c.sock.Send(zmq4.NewMsgFrom(m.Frames()...))
	c.sendMu.Unlock()
	if err != nil {
		if cl != nil {
			cl.Close()
		}
		return nil, fluxkit.Errorf(fluxkit.ECONNRESET, "boot server: send: %v", err)
	}
	if cl == nil {
		return nil, nil
	}
	return cl, nil
}

// Register is not supported on a boot client.
func (c *Client) Register(string, fluxkit.Role, fluxkit.HandlerFunc) (func(), error) {
	return nil, fluxkit.Errorf(fluxkit.ENOSYS, "a boot client cannot serve requests")
}

// Publish is not supported on a boot client.
func (c *Client) Publish(context.Context, string, []byte, fluxkit.MsgFlags) error {
	return fluxkit.Errorf(fluxkit.ENOSYS, "a boot client cannot publish")
}

// Subscribe is not supported on a boot client.
func (c *Client) Subscribe(context.Context, string) (fluxkit.Subscription, error) {
	return nil, fluxkit.Errorf(fluxkit.ENOSYS, "a boot client cannot subscribe")
}

// Close disconnects and waits for the reader.
func (c *Client) Close() error {
	c.once.Do(func() {
		c.cancel()
		_ = c.sock.Close()
		c.wg.Wait()
		_ = c.cl.Close()
	})
	return nil
}
