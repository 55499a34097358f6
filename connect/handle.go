package connect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"strconv"
	"sync"
	"syscall"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/callq"
)

// Handle is a connection to one broker of a running Flux instance. It
// implements [fluxkit.Handle]; every method is safe for concurrent use.
//
// The handle owns three goroutines: a reader that routes what the broker
// sends, a writer that batches what callers send, and a dispatcher that runs
// registered handlers one at a time in arrival order. [Handle.Close] ends
// them and waits.
type Handle struct {
	cfg   Config
	uri   string
	tr    transport
	log   *slog.Logger
	rank  uint32
	size  uint32
	cred  fluxkit.Cred
	stamp *fluxkit.Cred // testing credentials stamped on messages sent

	ctx    context.Context // ends when the handle ends
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}

	calls callq.Table

	mu       sync.Mutex
	err      error                    // why the handle ended; nil while it runs
	handlers map[string]*registration // by topic
	services map[string]*service      // by service name
	subs     map[*subscription]struct{}

	out outQueue
	in  inbox
}

var _ fluxkit.Handle = (*Handle)(nil)

// ErrClosed is wrapped by the errors of calls made on, or pending when, a
// handle closed by its owner. It matches ECONNRESET, as a lost broker does.
var ErrClosed = &fluxkit.Error{Errnum: fluxkit.ECONNRESET, Text: "connect: handle closed"}

// Open connects to the broker at uri, as flux_open() does: local://PATH (or
// a bare socket path), ssh://[user@]host[:port]/PATH, or flux-core's
// path-like "." (the enclosing instance), ".." (its parent, "../.." and so
// on) and "/" (the root instance). An empty uri means $FLUX_URI; when that
// is unset too, Open returns an error wrapping [ErrNoURI].
//
// Open learns the handle's rank, the instance size and the credentials the
// broker gives this connection before it returns.
func Open(ctx context.Context, uri string) (*Handle, error) {
	return New(ctx, Config{URI: uri})
}

// New connects as [Open] does, with cfg.
func New(ctx context.Context, cfg Config) (*Handle, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	uri := cfg.URI
	if uri == "" {
		uri = cfg.Getenv("FLUX_URI")
		if uri == "" {
			return nil, fmt.Errorf("connect: %w", ErrNoURI)
		}
	}
	t, err := parseURI(uri)
	if err != nil {
		return nil, fmt.Errorf("connect: FLUX_URI: %w", err)
	}
	if t.relative {
		resolved, err := resolveAncestor(ctx, cfg, t)
		if err != nil {
			return nil, err
		}
		uri = resolved
		if t, err = parseURI(uri); err != nil {
			return nil, fmt.Errorf("connect: %s: %w", uri, err)
		}
	}
	stamp, err := testingCred(cfg)
	if err != nil {
		return nil, err
	}
	var tr transport
	switch t.scheme {
	case "local":
		retries := retryCount
		if s := cfg.Getenv("FLUX_LOCAL_CONNECTOR_RETRY_COUNT"); s != "" {
			if retries, err = strconv.Atoi(s); err != nil || retries < 0 {
				return nil, fmt.Errorf("connect: FLUX_LOCAL_CONNECTOR_RETRY_COUNT=%q is not a count", s)
			}
		}
		tr, err = dialLocal(ctx, t.path, retries)
	case "ssh":
		tr, err = dialSSH(ctx, t, sshOptions{
			ssh:      cmp.Or(cfg.Getenv("FLUX_SSH"), "ssh"),
			rcmd:     cfg.Getenv("FLUX_SSH_RCMD"),
			ldPath:   cfg.Getenv("LD_LIBRARY_PATH"),
			pathEnv:  cfg.Getenv("PATH"),
			lookPath: exec.LookPath,
		})
	}
	if err != nil {
		return nil, fmt.Errorf("connect: %s: %w", t, err)
	}
	h := newHandle(cfg, t.String(), tr, stamp)
	if err := h.identify(ctx); err != nil {
		h.Close()
		return nil, fmt.Errorf("connect: %s: %w", t, err)
	}
	return h, nil
}

func newHandle(cfg Config, uri string, tr transport, stamp *fluxkit.Cred) *Handle {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handle{
		cfg:      cfg,
		uri:      uri,
		tr:       tr,
		log:      cfg.Logger.With("uri", uri),
		stamp:    stamp,
		ctx:      ctx,
		cancel:   cancel,
		done:     make(chan struct{}),
		handlers: map[string]*registration{},
		services: map[string]*service{},
		subs:     map[*subscription]struct{}{},
	}
	h.out.init(tr, cfg.MaxPending, func(err error) { h.end(lostError(err)) })
	h.in.init()
	h.wg.Add(3)
	go h.readLoop()
	go h.writeLoop()
	go h.dispatchLoop()
	go func() {
		h.wg.Wait()
		close(h.done)
	}()
	return h
}

// identify asks the broker who this connection is: broker.ping answers with
// the rank and the credentials the request arrived with, attr.get with the
// size. The requests are pipelined.
func (h *Handle) identify(ctx context.Context) error {
	ping, err := h.Request(ctx, fluxkit.NewRequest("broker.ping", fluxkit.NodeidAny, []byte(`{"seq":0,"pad":""}`)))
	if err != nil {
		return err
	}
	defer ping.Close()
	size, err := h.attrCall(ctx, "size")
	if err != nil {
		return err
	}
	defer size.Close()
	m, err := ping.Recv(ctx)
	if err != nil {
		return fmt.Errorf("broker.ping: %w", err)
	}
	var p struct {
		Userid   uint32 `json:"userid"`
		Rolemask uint32 `json:"rolemask"`
		Rank     uint32 `json:"rank"`
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil {
		return fmt.Errorf("broker.ping: %w", err)
	}
	v, err := recvAttr(ctx, size)
	if err != nil {
		return fmt.Errorf("attr.get size: %w", err)
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("attr.get size: %q is not a size", v)
	}
	h.rank, h.size = p.Rank, uint32(n)
	h.cred = fluxkit.Cred{Userid: p.Userid, Roles: fluxkit.Role(p.Rolemask)}
	return nil
}

func (h *Handle) attrCall(ctx context.Context, name string) (fluxkit.Call, error) {
	return h.Request(ctx, fluxkit.NewRequest("attr.get", fluxkit.NodeidAny, []byte(`{"name":`+strconv.Quote(name)+`}`)))
}

func recvAttr(ctx context.Context, c fluxkit.Call) (string, error) {
	m, err := c.Recv(ctx)
	if err != nil {
		return "", err
	}
	var v struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(m.Payload, &v); err != nil {
		return "", err
	}
	return v.Value, nil
}

// resolveAncestor turns ".", ".." ... and "/" into a URI by walking the
// parent-uri attribute from the enclosing instance, as flux-core does.
func resolveAncestor(ctx context.Context, cfg Config, t target) (string, error) {
	uri := cfg.Getenv("FLUX_URI")
	if uri == "" {
		return "", fmt.Errorf("connect: %w", ErrNoURI)
	}
	for n := 0; t.ancestor < 0 || n < t.ancestor; n++ {
		c := cfg
		c.URI = uri
		h, err := New(ctx, c)
		if err != nil {
			return "", err
		}
		call, err := h.attrCall(ctx, "parent-uri")
		var parent string
		if err == nil {
			parent, err = recvAttr(ctx, call)
			call.Close()
		}
		h.Close()
		switch {
		case errors.Is(err, syscall.ENOENT) && t.ancestor < 0:
			return uri, nil // the root has no parent-uri
		case errors.Is(err, syscall.ENOENT):
			return "", fmt.Errorf("connect: %s has no parent instance", uri)
		case err != nil:
			return "", fmt.Errorf("connect: parent-uri of %s: %w", uri, err)
		}
		uri = parent
	}
	return uri, nil
}

// Rank is the rank of the broker this handle is connected to.
func (h *Handle) Rank() uint32 { return h.rank }

// Size is the number of ranks in the instance.
func (h *Handle) Size() uint32 { return h.size }

// Cred is the identity requests sent on this handle carry, as the broker
// reported it when the handle was opened.
func (h *Handle) Cred() fluxkit.Cred { return h.cred }

// URI is the broker URI this handle is connected to.
func (h *Handle) URI() string { return h.uri }

// Done is closed when the handle has ended, by Close or because the broker
// went away, and its goroutines have returned.
func (h *Handle) Done() <-chan struct{} { return h.done }

// Err is why the handle ended: nil while it runs, an error wrapping
// ErrClosed after Close, or the connection error (ECONNRESET) when the
// broker went away.
func (h *Handle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Close disconnects. Pending calls and subscriptions end with an error
// wrapping [ErrClosed]; the broker drops this client's services and
// subscriptions and sends "<service>.disconnect" to every service this
// client sent requests to. Close waits for the handle's goroutines, so a
// handler that is running finishes first. Calling it again is harmless.
func (h *Handle) Close() error {
	h.end(ErrClosed)
	<-h.done
	return nil
}

// end records why the handle ends (the first reason wins) and stops it.
func (h *Handle) end(reason error) {
	h.mu.Lock()
	if h.err != nil {
		h.mu.Unlock()
		return
	}
	h.err = reason
	subs := h.subs
	h.subs = map[*subscription]struct{}{}
	regs := h.handlers
	h.handlers = map[string]*registration{}
	h.mu.Unlock()

	h.cancel()
	_ = h.tr.Close()
	h.out.close()
	h.in.close()
	h.calls.Close(reason)
	for s := range subs {
		s.Fail(reason)
	}
	for _, r := range regs {
		r.cancel()
	}
}

// readLoop routes what the broker sends until the connection ends.
func (h *Handle) readLoop() {
	defer h.wg.Done()
	mr := newMessageReader(h.tr)
	for {
		m, err := mr.read()
		if err != nil {
			h.end(lostError(err))
			return
		}
		switch m.Type {
		case fluxkit.TypeResponse:
			h.deliverResponse(m)
		case fluxkit.TypeRequest:
			h.deliverRequest(m)
		case fluxkit.TypeEvent:
			h.deliverEvent(m)
		default:
			h.log.Debug("dropping message", "type", m.Type, "topic", m.Topic)
		}
	}
}

// lostError describes the end of the connection as seen by the reader.
func lostError(err error) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return &fluxkit.Error{Errnum: fluxkit.ECONNRESET, Text: "connect: broker connection lost"}
	case errors.Is(err, fluxkit.ErrProto):
		return &fluxkit.Error{Errnum: fluxkit.EPROTO, Text: "connect: " + err.Error()}
	}
	return &fluxkit.Error{Errnum: fluxkit.ECONNRESET, Text: "connect: broker connection lost: " + err.Error()}
}

// send queues m for the broker, waiting (bounded by ctx) for room in the
// queue.
func (h *Handle) send(ctx context.Context, m *fluxkit.Message) error {
	h.stampCred(m)
	return h.sendErr(h.out.put(ctx, m))
}

// reply queues a response, which never waits for room.
func (h *Handle) reply(m *fluxkit.Message) error {
	h.stampCred(m)
	return h.sendErr(h.out.putNoWait(m))
}

func (h *Handle) stampCred(m *fluxkit.Message) {
	if h.stamp != nil {
		m.Userid, m.Rolemask = h.stamp.Userid, h.stamp.Roles
	}
}

// sendErr turns a closed queue into the reason the handle ended.
func (h *Handle) sendErr(err error) error {
	if errors.Is(err, errOutClosed) {
		return h.endedErr()
	}
	return err
}

// endedErr is the error for an operation attempted after the handle ended.
func (h *Handle) endedErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	return ErrClosed
}

func (h *Handle) writeLoop() {
	defer h.wg.Done()
	h.out.run()
}
