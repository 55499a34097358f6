package journal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
)

// ConsumerConfig configures a [Consumer].
type ConsumerConfig struct {
	// Logger receives what job-list logs. Default: discard.
	Logger *slog.Logger
	// Nodeid the journal request is sent to. Default fluxkit.NodeidAny.
	Nodeid *uint32
	// Credit, when positive, asks the producer for flow control: at most
	// Credit responses in flight, replenished as they are applied (a
	// fluxkit extension; Flux's job manager ignores the key and streams
	// without limit). Default 0: no flow control, as in Flux.
	Credit int
	// Queues are the configured queue names (empty job-stats entries).
	Queues []string
	// StatsPeriod is the minimum interval between job-stats updates to
	// streaming watchers. Default 200ms.
	StatsPeriod time.Duration
	// Lookup tells whether a job the consumer has not seen exists, for
	// list-id: nil when it does, ENOENT when it does not (any other error
	// is the answer's errno). flux-core's job-list looks up the job's KVS
	// directory. Default: ask the job manager (job-manager.getattr at
	// Nodeid), which holds every job from its submission until it is
	// purged, as the KVS holds the job's directory.
	Lookup func(ctx context.Context, id fluxkit.JobID) error
	// Service is the name the consumer serves under: its requests are
	// "<Service>.list" and so on. Default "job-list", flux-core's; another
	// name lets a consumer run beside flux-core's module, to compare them.
	Service string
	// MaxComparisons, MaxHosts and PrivateMode: see [IndexConfig]. A
	// job-list.config-reload request (the broker's, on a config reload)
	// sets them and Queues from the new configuration.
	MaxComparisons *uint64
	MaxHosts       int
	PrivateMode    bool
}

// Consumer is the job-list side on a Handle: it registers job-list's
// services, subscribes to purge events and follows the journal with a
// full subscription. Its methods are safe for concurrent use.
type Consumer struct {
	cfg    ConsumerConfig
	h      fluxkit.Handle
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	unreg  []func()
	sub    fluxkit.Subscription

	mu     sync.Mutex
	idx    *Index
	gen    int // incremented per stream (Reconnect)
	call   fluxkit.Call
	initCh chan struct{}
	doneCh chan struct{}
	closed bool
}

// NewConsumer starts a consumer on h.
func NewConsumer(h fluxkit.Handle, cfg ConsumerConfig) (*Consumer, error) {
	if h == nil {
		return nil, errors.New("journal: NewConsumer: nil Handle")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Nodeid == nil {
		any := fluxkit.NodeidAny
		cfg.Nodeid = &any
	}
	if cfg.Credit < 0 {
		return nil, fmt.Errorf("journal: ConsumerConfig.Credit %d is negative", cfg.Credit)
	}
	if cfg.StatsPeriod == 0 {
		cfg.StatsPeriod = 200 * time.Millisecond
	}
	if cfg.Service == "" {
		cfg.Service = service
	}
	if strings.ContainsAny(cfg.Service, ". ") {
		return nil, fmt.Errorf("journal: ConsumerConfig.Service %q is not a service name", cfg.Service)
	}
	if cfg.StatsPeriod < 0 {
		return nil, fmt.Errorf("journal: ConsumerConfig.StatsPeriod %v is negative", cfg.StatsPeriod)
	}
	if cfg.Lookup == nil {
		nodeid := *cfg.Nodeid
		cfg.Lookup = func(ctx context.Context, id fluxkit.JobID) error {
			return jobExists(ctx, h, nodeid, id)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{cfg: cfg, h: h, log: cfg.Logger, ctx: ctx, cancel: cancel}
	sub, err := h.Subscribe(ctx, EventPurge)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("journal: subscribe %s: %w", EventPurge, err)
	}
	c.sub = sub
	for _, t := range []string{TopicList, TopicListID, TopicListAttrs, TopicJobStats, TopicStatsGet,
		TopicPause, TopicUnpause, TopicListDiscon, TopicConfigReload} {
		allow := fluxkit.RoleUser
		if t == TopicConfigReload {
			allow = fluxkit.RoleNone // the owner's (the broker's) alone
		}
		topic := cfg.Service + strings.TrimPrefix(t, service)
		u, err := h.Register(topic, allow, c.handle)
		if err != nil {
			c.unregister()
			_ = sub.Close()
			cancel()
			return nil, fmt.Errorf("journal: register %s: %w", topic, err)
		}
		c.unreg = append(c.unreg, u)
	}
	if err := c.start(); err != nil {
		c.unregister()
		_ = sub.Close()
		cancel()
		return nil, err
	}
	c.wg.Add(2)
	go c.purgeLoop()
	go c.statsLoop()
	return c, nil
}

// jobExists asks the job manager whether it holds job id. It answers
// EINVAL "unknown job" for one it does not hold, which is ENOENT here, as
// the KVS answers for a job directory that does not exist.
func jobExists(ctx context.Context, h fluxkit.Handle, nodeid uint32, id fluxkit.JobID) error {
	err := fluxkit.RPC(ctx, h, TopicGetattr, nodeid, map[string]any{"id": id, "attrs": []string{}}, nil)
	if fluxkit.Errno(err) == fluxkit.EINVAL {
		return fluxkit.ENOENT
	}
	return err
}

func (c *Consumer) unregister() {
	for _, u := range c.unreg {
		u()
	}
	c.unreg = nil
}

func (c *Consumer) newIndex() *Index {
	return NewIndex(IndexConfig{
		Queues:         c.cfg.Queues,
		MaxComparisons: c.cfg.MaxComparisons,
		MaxHosts:       c.cfg.MaxHosts,
		PrivateMode:    c.cfg.PrivateMode,
		Send:           c.send,
		Logf:           func(format string, args ...any) { c.log.Debug(fmt.Sprintf(format, args...)) },
		Lookup: func(id fluxkit.JobID, done func(error)) {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				err := c.cfg.Lookup(c.ctx, id)
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.closed {
					return
				}
				done(err)
			}()
		},
	})
}

// start opens a fresh full subscription with a fresh index (caller holds
// no lock; c.mu is taken here).
func (c *Consumer) start() error {
	req := map[string]any{"full": true}
	if c.cfg.Credit > 0 {
		req["credit"] = c.cfg.Credit
	}
	call, err := fluxkit.Stream(c.ctx, c.h, TopicJournal, *c.cfg.Nodeid, req)
	if err != nil {
		return fmt.Errorf("journal: %s: %w", TopicJournal, err)
	}
	c.mu.Lock()
	old := c.idx
	c.idx = c.newIndex()
	if old != nil {
		// Requests the old index was holding are answered by the new one
		// once it is initialised.
		c.idx.deferred = append(c.idx.deferred, old.deferred...)
		old.deferred = nil
		old.Shutdown()
	}
	c.gen++
	c.call = call
	c.initCh = make(chan struct{})
	c.doneCh = make(chan struct{})
	gen, initCh, doneCh := c.gen, c.initCh, c.doneCh
	c.mu.Unlock()
	c.wg.Add(1)
	go c.read(call, gen, initCh, doneCh)
	return nil
}

func (c *Consumer) read(call fluxkit.Call, gen int, initCh, doneCh chan struct{}) {
	defer c.wg.Done()
	defer close(doneCh)
	defer call.Close()
	inited := false
	used := 0
	pipeline(c.ctx, call, func(d *decodedMsg) bool {
		c.mu.Lock()
		if c.gen != gen || c.closed {
			c.mu.Unlock()
			return false
		}
		idx := c.idx
		if err := d.recvErr; err != nil {
			if c.ctx.Err() != nil {
				c.mu.Unlock()
				return false
			}
			if e := idx.JournalEnd(err); e != nil {
				c.log.Error("journal ended", "err", e)
			} else {
				c.log.Info("journal: EOF (exiting)")
			}
			c.mu.Unlock()
			return false
		}
		jerr := idx.journalDecoded(d.payload, &d.msg, d.err)
		if !inited && idx.Initialized() {
			inited = true
			close(initCh)
		}
		c.mu.Unlock()
		if jerr != nil {
			c.log.Error("journal consumer stopped", "err", jerr)
			return false
		}
		if c.cfg.Credit > 0 {
			used++
			if used >= (c.cfg.Credit+1)/2 {
				if err := fluxkit.Notify(c.ctx, c.h, TopicJournalCredit, *c.cfg.Nodeid,
					map[string]any{"matchtag": call.Matchtag(), "credit": used}); err != nil {
					c.log.Error("journal credit", "err", err)
				}
				used = 0
			}
		}
		return true
	})
}

// decodedMsg is a journal response received and decoded off the
// consumer's lock.
type decodedMsg struct {
	payload []byte
	msg     message
	err     error // parseMessage's
	recvErr error // Recv's: the stream has ended
}

// receiver is the part of a fluxkit.Call the pipeline reads.
type receiver interface {
	Recv(ctx context.Context) (*fluxkit.Message, error)
}

// decodeQueue bounds the responses decoded ahead of the index.
const decodeQueue = 64

// pipeline receives and decodes responses on a goroutine of its own while
// fn applies them on the caller's: decoding (validating every byte,
// decoding the entries) is pure and about half of a backlog's cost, so on
// two cores it overlaps with applying. fn gets every response in order,
// then the stream's end (recvErr), and must not keep d; it returns false
// to stop. pipeline returns when fn has stopped, after the stream's end,
// or when ctx is done, and only once its goroutine has ended.
func pipeline(ctx context.Context, r receiver, fn func(d *decodedMsg) bool) {
	ctx, stop := context.WithCancel(ctx)
	ch := make(chan *decodedMsg, decodeQueue)
	// Spent messages go back to the decoder, with their entries' storage.
	free := make(chan *decodedMsg, decodeQueue+2)
	// A decoder that finds the queue full waits for it to be half empty
	// (space): waking it for every slot freed would cost a goroutine switch
	// per response, as much as decoding one.
	space := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			m, err := r.Recv(ctx)
			var d *decodedMsg
			select {
			case d = <-free:
			default:
				d = new(decodedMsg)
			}
			d.recvErr = err
			if err == nil {
				d.payload = m.Payload
				d.msg, d.err = parseMessage(m.Payload, d.msg.entries)
			}
			select {
			case ch <- d:
			default:
				select {
				case <-space:
				case <-ctx.Done():
					return
				}
				select {
				case ch <- d:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		stop()
		<-done
	}()
	for d := range ch {
		if len(ch) <= decodeQueue/2 {
			select {
			case space <- struct{}{}:
			default:
			}
		}
		if !fn(d) || d.recvErr != nil {
			return
		}
		// Cleared so that recycled storage does not pin old payloads.
		clear(d.msg.entries)
		*d = decodedMsg{msg: message{entries: d.msg.entries[:0]}}
		select {
		case free <- d:
		default:
		}
	}
}

func (c *Consumer) purgeLoop() {
	defer c.wg.Done()
	for {
		m, err := c.sub.Recv(c.ctx)
		if err != nil {
			return
		}
		ids, err := ParsePurge(m.Payload)
		if err != nil {
			c.log.Error("malformed purge event", "err", err)
			continue
		}
		c.mu.Lock()
		if !c.closed {
			c.idx.Purge(ids)
		}
		c.mu.Unlock()
	}
}

func (c *Consumer) statsLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.StatsPeriod)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		if !c.closed {
			c.idx.FlushStats()
		}
		c.mu.Unlock()
	}
}

func (c *Consumer) handle(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOSYS, "job-list is shutting down"))
		return
	}
	if c.cfg.Service != service {
		// The index knows job-list's own topics.
		r := *req
		r.Topic = service + strings.TrimPrefix(req.Topic, c.cfg.Service)
		req = &r
	}
	if req.Topic == TopicConfigReload {
		c.reload(w, req)
		return
	}
	c.idx.Request(w, req)
}

// reload applies a new configuration (job-list.config-reload, whose
// payload is the configuration object): [queues] names, job-list's
// max_comparisons and [access] private-mode.
func (c *Consumer) reload(w fluxkit.Responder, req *fluxkit.Message) {
	conf, err := ParseConfig(req.Payload)
	if err != nil {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "%v", err))
		return
	}
	c.cfg.Queues, c.cfg.MaxComparisons, c.cfg.PrivateMode = conf.Queues, &conf.MaxComparisons, conf.PrivateMode
	c.idx.reconfigure(conf)
	_ = w.Respond(nil)
}

// send is the index's Send: each list answer goes out from a goroutine of
// its own, so that neither the index's lock nor the handler waits for it,
// and a client slow to take a huge answer holds up no other.
func (c *Consumer) send(w fluxkit.Responder, payloads [][]byte, end error) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for _, p := range payloads {
			if c.ctx.Err() != nil {
				_ = w.RespondError(fluxkit.Errorf(fluxkit.ECANCELED, "job-list shutting down"))
				return
			}
			_ = w.Respond(p)
		}
		if end != nil {
			_ = w.RespondError(end)
		}
	}()
}

// Initialized is closed when the current stream's backlog has been applied.
func (c *Consumer) Initialized() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.initCh
}

// Done is closed when the current stream has ended: ENODATA (Err nil) or a
// terminal error (Err).
func (c *Consumer) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.doneCh
}

// Err is the current stream's terminal error, nil while it runs or after a
// clean end.
func (c *Consumer) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idx.Err()
}

// Reconnect drops the current stream and index and rebuilds from a fresh
// full subscription; requests waiting on the old index's initialisation
// carry over, list-id waiters and job-stats watchers of the old index are
// ended (ECANCELED / ENODATA) so their clients can re-ask.
func (c *Consumer) Reconnect(ctx context.Context) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errors.New("journal: consumer closed")
	}
	old := c.call
	c.gen++
	c.mu.Unlock()
	if old != nil {
		_ = fluxkit.Notify(ctx, c.h, TopicJournalCancel, *c.cfg.Nodeid, map[string]any{"matchtag": old.Matchtag()})
		old.Close()
	}
	return c.start()
}

// Close cancels the stream, unregisters the services and waits for the
// consumer's goroutines.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	call := c.call
	c.mu.Unlock()
	c.unregister()
	if call != nil {
		_ = fluxkit.Notify(context.Background(), c.h, TopicJournalCancel, *c.cfg.Nodeid, map[string]any{"matchtag": call.Matchtag()})
	}
	c.mu.Lock()
	c.closed = true
	c.idx.Shutdown()
	c.mu.Unlock()
	c.cancel()
	_ = c.sub.Close()
	c.wg.Wait()
	return nil
}

// Snapshot runs fn with the index locked, a test and tooling aid.
func (c *Consumer) Snapshot(fn func(x *Index)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fn(c.idx)
}
