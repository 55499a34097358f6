package flub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/idset"
)

// joinHooks let tests observe and pace a joiner's steps.
type joinHooks struct {
	afterGetinfo func(rank uint32)
	beforeKex    func(rank, parent uint32)
	// parentURI rewrites the parent URI from kex, on joining and on
	// rejoining (a proxy the test can cut).
	parentURI func(string) string
	version   uint32 // hello with another version
}

// ErrParentTimeout is wrapped by the error of a joiner whose parent did
// not come online within JoinConfig.ParentTimeout.
var ErrParentTimeout = errors.New("flub: parent wait timed out")

// Join adds a broker to the instance behind cfg.BootURI: getinfo,
// validate, wait for the parent, kex, bind if it has children, connect and
// hello. It returns the broker once its parent accepted it. It calls
// cfg.Validate and refuses what that refuses. Errors read
// "boot-flub: <text>" and keep the errno of the failed step.
func Join(ctx context.Context, cfg JoinConfig) (*Broker, error) {
	b, err := join(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("boot-flub: %w", err)
	}
	return b, nil
}

func join(ctx context.Context, cfg JoinConfig) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k, err := cfg.knobs().withDefaults()
	if err != nil {
		return nil, err
	}
	p := params{knobs: k}
	if cfg.Topo != "" {
		p.topo, _ = ParseTopology(cfg.Topo)
	}
	rp := &rejoinParams{
		bootURI: cfg.BootURI, owner: cfg.Owner,
		parentTimeout:    orDuration(cfg.ParentTimeout, DefaultParentTimeout),
		reconnectTimeout: DefaultReconnectTimeout,
	}
	if cfg.ReconnectTimeout != nil {
		rp.reconnectTimeout = *cfg.ReconnectTimeout
	}
	if cfg.hooks != nil {
		rp.parentURI = cfg.hooks.parentURI
	}
	p.rejoin = rp
	hostname := cfg.Hostname
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	boot, err := DialBoot(ctx, ClientConfig{BootURI: cfg.BootURI, Keys: cfg.Owner, Transport: p.transport, Logger: p.log, HandshakeTimeout: p.handshakeTimeout})
	if err != nil {
		return nil, err
	}
	defer boot.Close()

	// The rank, checked before any attribute or topology is taken.
	var raw json.RawMessage
	if err := rpc(ctx, boot, topicGetinfo, 0, getinfoRequest{Hostname: hostname, Topo: cfg.Topo}, &raw); err != nil {
		return nil, err
	}
	info, err := parseGetinfoResponse(raw)
	if err != nil {
		return nil, err
	}
	// The instance's topology, adopted or checked (a server that does
	// not report it gets the configured one or the default, as flux-core's
	// joiner does)
	if v, ok := info.Attrs["tbon.topo"]; ok {
		t, err := ParseTopology(v)
		if err != nil {
			return nil, fluxkit.Errorf(fluxkit.EPROTO, "getinfo: tbon.topo %q: %s", v, fluxkit.ErrorText(err))
		}
		if cfg.Topo != "" && t != p.topo {
			return nil, fluxkit.Errorf(fluxkit.EINVAL, "%s: the joiner is configured with %s, the instance uses %s", textTopoMismatch, p.topo, t)
		}
		p.topo = t
		delete(info.Attrs, "tbon.topo") // an attribute the broker computes
	} else if cfg.Topo == "" {
		p.topo, _ = ParseTopology(DefaultTopo)
	}
	// Attributes are immutable: a preset one is a conflict.
	attrs := make(map[string]string, len(cfg.Attrs)+len(info.Attrs))
	maps.Copy(attrs, cfg.Attrs)
	for k, v := range info.Attrs {
		if _, ok := attrs[k]; ok {
			return nil, fluxkit.Errorf(fluxkit.EEXIST, "%s: File exists (%s)", textSetAttrs, k)
		}
		attrs[k] = v
	}
	if v, ok := attrs["security.owner"]; ok {
		uid, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fluxkit.Errorf(fluxkit.EPROTO, "%s: security.owner %q is not a userid", textSetAttrs, v)
		}
		p.ownerUID = uint32(uid)
	} else {
		p.ownerUID = uint32(os.Getuid())
	}
	p.rank, p.size = info.Rank, info.Size
	parent := p.topo.Parent(p.rank)
	if parent < 0 {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "rank %d has no parent in %s topology", p.rank, p.topo)
	}
	log := p.log.With("joiner", p.rank)
	log.Info("flub: allocated", "rank", p.rank, "size", p.size, "parent", parent)

	if cfg.hooks != nil && cfg.hooks.afterGetinfo != nil {
		cfg.hooks.afterGetinfo(p.rank)
	}
	// The parent must be online before its key can be exchanged.
	if err := waitOnline(ctx, boot, uint32(parent), rp.parentTimeout); err != nil {
		return nil, err
	}

	if cfg.hooks != nil && cfg.hooks.beforeKex != nil {
		cfg.hooks.beforeKex(p.rank, uint32(parent))
	}
	// Key exchange with the parent, with a fresh key pair.
	keys, err := curve.GenerateKeyPair(nil)
	if err != nil {
		return nil, err
	}
	var kexRaw json.RawMessage
	kreq := kexRequest{Name: strconv.FormatUint(uint64(p.rank), 10), Pubkey: keys.Public.String()}
	if err := rpc(ctx, boot, topicKex, uint32(parent), kreq, &kexRaw); err != nil {
		return nil, fmt.Errorf("overlay.flub-kex to rank %d: %w", parent, err)
	}
	p.parentKey, p.parentURI, err = parseKexResponse(kexRaw)
	if err != nil {
		return nil, err
	}
	if rp.parentURI != nil {
		p.parentURI = rp.parentURI(p.parentURI)
	}
	p.keys = keys
	p.hostname = hostname
	p.attrs = attrs
	p.config = info.Config

	// Bind if interior, connect to the parent, say hello.
	b, err := newBroker(ctx, p)
	if err != nil {
		return nil, err
	}
	select {
	case err = <-b.helloDone:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	log.Info("flub: online", "parent", parent, "endpoint", b.endpoint)
	return b, nil
}

// parentTimeoutError is ETIMEDOUT with flux-core's text that also matches
// ErrParentTimeout.
type parentTimeoutError struct{ fe *fluxkit.Error }

func (e *parentTimeoutError) Error() string { return e.fe.Text }

func (e *parentTimeoutError) Unwrap() []error { return []error{e.fe, ErrParentTimeout} }

// waitOnline waits until rank is in broker.online, bounded by timeout:
// ETIMEDOUT naming the parent.
func waitOnline(ctx context.Context, r Requester, rank uint32, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	call, err := send(wctx, r, topicGroups, 0, fluxkit.FlagStreaming, map[string]any{"name": "broker.online", "until": rank})
	if err != nil {
		return fmt.Errorf("broker.online: %w", err)
	}
	defer call.Close()
	for {
		m, err := call.Recv(wctx)
		if err != nil {
			if wctx.Err() != nil && ctx.Err() == nil {
				return &parentTimeoutError{fluxkit.Errorf(fluxkit.ETIMEDOUT,
					"timed out waiting for parent rank %d to come online (%v)", rank, timeout)}
			}
			return fmt.Errorf("broker.online: %w", err)
		}
		var r struct {
			Members string `json:"members"`
		}
		if err := fluxkit.DecodePayload(m, &r); err != nil {
			return fmt.Errorf("broker.online: %w", err)
		}
		set, err := idset.Parse(r.Members)
		if err != nil {
			return fmt.Errorf("broker.online: %w", err)
		}
		if set.Contains(rank) {
			return nil
		}
	}
}
