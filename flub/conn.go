package flub

import (
	"context"
	"strings"
	"sync"

	"github.com/fluxkit/fluxkit"
)

// registration is one Register call.
type registration struct {
	conn   *Conn
	topic  string
	allow  fluxkit.Role
	h      fluxkit.HandlerFunc
	ctx    context.Context
	cancel context.CancelFunc
}

// Conn is a client connection to one broker of the overlay, with the
// credentials it was opened with. It implements [fluxkit.Handle].
type Conn struct {
	b      *Broker
	id     string
	cred   fluxkit.Cred
	ctx    context.Context
	cancel context.CancelFunc
	calls  calls
	work   *queue[func()]
	// running answers a module's load (nil on other connections).
	running func()

	mu     sync.Mutex
	worker bool
	used   map[usedService]struct{}
	closed bool
	regs   map[*registration]struct{}
}

type usedService struct {
	service string
	nodeid  uint32
}

var _ fluxkit.Handle = (*Conn)(nil)

// Rank is the rank of the broker.
func (c *Conn) Rank() uint32 { return c.b.rank }

// Size is the instance size.
func (c *Conn) Size() uint32 { return c.b.size }

// Cred is the identity of this connection.
func (c *Conn) Cred() fluxkit.Cred { return c.cred }

// Request sends a request; see [fluxkit.Handle].
func (c *Conn) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	m, cl, err := c.calls.open(ctx, req, []string{c.id})
	if err != nil {
		return nil, err
	}
	m.Userid, m.Rolemask = c.cred.Userid, c.cred.Roles
	if svc := m.Service(); !strings.HasSuffix(m.Topic, ".disconnect") {
		c.mu.Lock()
		if c.used == nil {
			c.used = map[usedService]struct{}{}
		}
		c.used[usedService{svc, m.Nodeid}] = struct{}{}
		c.mu.Unlock()
	}
	if !c.b.post(func() { c.b.routeRequest(m) }) {
		err = errClosed
	}
	return cl.sent(err)
}

// SetRunning tells the broker that the module this connection belongs to
// is running, which answers its module.load (see [ModuleFunc]). On a
// connection that is not a module's it does nothing.
func (c *Conn) SetRunning() {
	if c.running != nil {
		c.running()
	}
}

// Register serves topic on this connection; see [fluxkit.Handle].
func (c *Conn) Register(topic string, allow fluxkit.Role, h fluxkit.HandlerFunc) (func(), error) {
	if topic == "" || h == nil {
		return nil, fluxkit.Errorf(fluxkit.EINVAL, "Register needs a topic and a handler")
	}
	ctx, cancel := context.WithCancel(c.ctx)
	reg := &registration{conn: c, topic: topic, allow: allow, h: h, ctx: ctx, cancel: cancel}
	errc := make(chan error, 1)
	if !c.b.post(func() { errc <- c.b.addHandler(reg) }) {
		cancel()
		return nil, errClosed
	}
	select {
	case err := <-errc:
		if err != nil {
			cancel()
			return nil, err
		}
	case <-c.b.ctx.Done():
		cancel()
		return nil, errClosed
	}
	c.mu.Lock()
	if c.regs == nil {
		c.regs = map[*registration]struct{}{}
	}
	c.regs[reg] = struct{}{}
	start := !c.worker
	c.worker = true
	c.mu.Unlock()
	if start {
		c.b.spawn(func() {
			for {
				f, ok, _ := c.work.pop(c.ctx, nil)
				if !ok {
					return
				}
				f()
			}
		})
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			c.mu.Lock()
			delete(c.regs, reg)
			c.mu.Unlock()
			c.b.post(func() { c.b.removeHandler(reg) })
		})
	}, nil
}

// Publish sends an event to every subscriber of the instance.
func (c *Conn) Publish(ctx context.Context, topic string, payload []byte, flags fluxkit.MsgFlags) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m := &fluxkit.Message{
		Type: fluxkit.TypeEvent, Topic: topic, Payload: append([]byte(nil), payload...),
		Flags: flags & fluxkit.FlagPrivate, Userid: c.cred.Userid, Rolemask: c.cred.Roles,
	}
	if !c.b.post(func() { c.b.publish(m) }) {
		return errClosed
	}
	return nil
}

// Subscribe delivers events whose topic starts with prefix.
func (c *Conn) Subscribe(ctx context.Context, prefix string) (fluxkit.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s := &subscription{b: c.b, prefix: prefix, cred: c.cred, q: newQueue[*fluxkit.Message]()}
	if !c.b.post(func() { c.b.subs[s] = struct{}{} }) {
		return nil, errClosed
	}
	return s, nil
}

// Close disconnects: pending calls end, registrations go away, and the
// services this connection used get "<service>.disconnect".
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	used := c.used
	regs := c.regs
	c.regs = nil
	c.mu.Unlock()
	c.calls.closeAll()
	c.cancel()
	c.work.close()
	c.b.post(func() {
		for reg := range regs {
			c.b.removeHandler(reg)
		}
		delete(c.b.clients, c.id)
		for u := range used {
			m := fluxkit.NewRequest(u.service+".disconnect", u.nodeid, nil)
			m.Flags |= fluxkit.FlagNoResponse
			m.Userid, m.Rolemask = c.cred.Userid, c.cred.Roles
			m.Route = []string{c.id}
			c.b.routeRequest(m)
		}
	})
	return nil
}

// responder answers one request by posting to the broker loop.
type responder struct {
	b   *Broker
	req *fluxkit.Message
}

func (r *responder) Respond(payload []byte) error {
	if r.req.IsNoResponse() {
		return nil
	}
	resp := fluxkit.ResponseTo(r.req, append([]byte(nil), payload...), 0)
	if !r.b.post(func() { r.b.routeResponse(resp) }) {
		return errClosed
	}
	return nil
}

func (r *responder) RespondError(err error) error {
	if r.req.IsNoResponse() {
		return nil
	}
	resp := errorResponse(r.req, err)
	if !r.b.post(func() { r.b.routeResponse(resp) }) {
		return errClosed
	}
	return nil
}

func errorResponse(req *fluxkit.Message, err error) *fluxkit.Message {
	var payload []byte
	if t := fluxkit.ErrorText(err); t != "" {
		payload = []byte(t)
	}
	return fluxkit.ResponseTo(req, payload, uint32(fluxkit.Errno(err)))
}

// subscription is one Subscribe.
type subscription struct {
	b      *Broker
	prefix string
	cred   fluxkit.Cred
	q      *queue[*fluxkit.Message]
	once   sync.Once
}

func (s *subscription) Recv(ctx context.Context) (*fluxkit.Message, error) {
	m, ok, err := s.q.pop(ctx, nil)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fluxkit.Errorf(fluxkit.ENODATA, "subscription closed")
	}
	return m, nil
}

func (s *subscription) Close() error {
	s.once.Do(func() {
		s.q.close()
		s.b.post(func() { delete(s.b.subs, s) })
	})
	return nil
}
