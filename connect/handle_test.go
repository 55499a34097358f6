package connect

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenLearnsRankSizeAndCred(t *testing.T) {
	leakcheck.Check(t)
	f := newFakeBroker(t)
	f.rank, f.size = 3, 9
	f.cred = fluxkit.Cred{Userid: 1234, Roles: fluxkit.RoleUser | fluxkit.RoleLocal}
	h := openFake(t, f)
	assert.Equal(t, uint32(3), h.Rank())
	assert.Equal(t, uint32(9), h.Size())
	assert.Equal(t, f.cred, h.Cred())
	assert.Equal(t, f.uri(), h.URI())
}

func TestOpenWithoutURISaysHowToGetOne(t *testing.T) {
	_, err := New(testutil.Context(t), Config{Getenv: noEnv})
	require.ErrorIs(t, err, ErrNoURI)
	assert.Contains(t, err.Error(), "flux start")
}

func TestOpenReadsFluxURI(t *testing.T) {
	f := newFakeBroker(t)
	env := func(k string) string {
		if k == "FLUX_URI" {
			return f.uri()
		}
		return ""
	}
	h, err := New(testutil.Context(t), Config{Getenv: env})
	require.NoError(t, err)
	defer h.Close()
	assert.Equal(t, f.uri(), h.URI())
}

func TestOpenRefusedByBrokerGivesItsErrno(t *testing.T) {
	f := newFakeBroker(t)
	f.refuse = byte(syscall.EPERM)
	_, err := New(testutil.Context(t), Config{URI: f.uri(), Getenv: noEnv})
	require.ErrorIs(t, err, syscall.EPERM)
	assert.Contains(t, err.Error(), "refused")
}

func TestOpenMissingSocketNamesIt(t *testing.T) {
	env := func(k string) string {
		if k == "FLUX_LOCAL_CONNECTOR_RETRY_COUNT" {
			return "1"
		}
		return ""
	}
	_, err := New(testutil.Context(t), Config{URI: "local:///nonexistent/fluxkit/local", Getenv: env})
	require.ErrorIs(t, err, syscall.ENOENT)
	assert.Contains(t, err.Error(), "broker socket /nonexistent/fluxkit/local was not found")

	env2 := func(k string) string {
		if k == "FLUX_LOCAL_CONNECTOR_RETRY_COUNT" {
			return "many"
		}
		return ""
	}
	_, err = New(testutil.Context(t), Config{URI: "local:///nonexistent", Getenv: env2})
	assert.ErrorContains(t, err, `FLUX_LOCAL_CONNECTOR_RETRY_COUNT="many"`)
}

// A broker that goes away ends every pending call and subscription with
// ECONNRESET, and the handle reports it through Done and Err.
func TestBrokerGoingAwayEndsEverything(t *testing.T) {
	leakcheck.Check(t)
	got := make(chan string, 10)
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		if m.Topic == "event.subscribe" {
			_ = c.respond(m, "", 0)
			return
		}
		got <- m.Topic // hold everything else unanswered
	}
	h := openFake(t, f)
	ctx := testutil.Context(t)
	single, err := h.Request(ctx, fluxkit.NewRequest("hold.one", 0, nil))
	require.NoError(t, err)
	stream, err := fluxkit.Stream(ctx, h, "hold.many", 0, nil)
	require.NoError(t, err)
	sub, err := h.Subscribe(ctx, "ev.")
	require.NoError(t, err)
	<-got
	<-got
	f.drop()

	for name, recv := range map[string]func(context.Context) (*fluxkit.Message, error){
		"call": single.Recv, "stream": stream.Recv, "subscription": sub.Recv,
	} {
		_, err := recv(ctx)
		assert.ErrorIs(t, err, syscall.ECONNRESET, name)
		assert.ErrorContains(t, err, "broker connection lost", name)
	}
	select {
	case <-h.Done():
	case <-ctx.Done():
		require.FailNow(t, "Done not closed after the broker went away")
	}
	assert.ErrorIs(t, h.Err(), syscall.ECONNRESET)
	_, err = h.Request(ctx, fluxkit.NewRequest("x.y", 0, nil))
	assert.ErrorIs(t, err, syscall.ECONNRESET, "a request after the end")
	_, err = h.Register("x.y", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.ErrorIs(t, err, syscall.ECONNRESET, "a registration after the end")
	single.Close()
	stream.Close()
	sub.Close()
}

func TestCloseEndsCallsWithErrClosed(t *testing.T) {
	leakcheck.Check(t)
	f := newFakeBroker(t)
	f.serve = func(*fakeConn, *fluxkit.Message) {}
	h := openFake(t, f)
	ctx := testutil.Context(t)
	c, err := h.Request(ctx, fluxkit.NewRequest("hold.one", 0, nil))
	require.NoError(t, err)
	require.NoError(t, h.Close())
	_, err = c.Recv(ctx)
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, h.Err(), ErrClosed)
	require.NoError(t, h.Close(), "a second Close")
}

// Responses find their call by matchtag whatever their order, and a stream
// ends at its error response.
func TestResponsesRoutedByMatchtag(t *testing.T) {
	leakcheck.Check(t)
	f := newFakeBroker(t)
	var mu sync.Mutex
	var held []*fluxkit.Message
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		switch m.Topic {
		case "t.stream":
			for i := 0; i < 3; i++ {
				_ = c.respond(m, fmt.Sprintf(`{"i":%d}`, i), 0)
			}
			_ = c.respond(m, "", uint32(syscall.ENODATA))
		default:
			mu.Lock()
			held = append(held, m)
			if len(held) == 5 {
				for i := len(held) - 1; i >= 0; i-- { // answer in reverse
					_ = c.respond(held[i], string(held[i].Payload), 0)
				}
			}
			mu.Unlock()
		}
	}
	h := openFake(t, f)
	ctx := testutil.Context(t)
	var calls []fluxkit.Call
	for i := 0; i < 5; i++ {
		c, err := h.Request(ctx, fluxkit.NewRequest("t.echo", 0, []byte(fmt.Sprintf(`{"n":%d}`, i))))
		require.NoError(t, err)
		calls = append(calls, c)
	}
	for i, c := range calls {
		m, err := c.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf(`{"n":%d}`, i), string(m.Payload))
		_, err = c.Recv(ctx)
		assert.ErrorIs(t, err, syscall.ENODATA, "a single response only")
		c.Close()
	}
	s, err := fluxkit.Stream(ctx, h, "t.stream", 0, nil)
	require.NoError(t, err)
	defer s.Close()
	for i := 0; i < 3; i++ {
		m, err := s.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf(`{"i":%d}`, i), string(m.Payload))
	}
	_, err = s.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA)
}

// What the handle puts on the wire for a request: a matchtag, no route (the
// broker pushes the client's), unknown credentials for the broker to fill
// in, and NodeidUpstream as the upstream flag on the handle's own rank.
func TestRequestOnTheWire(t *testing.T) {
	seen := make(chan *fluxkit.Message, 4)
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		seen <- m
		_ = c.respond(m, "{}", 0)
	}
	h := openFake(t, f)
	ctx := testutil.Context(t)
	require.NoError(t, fluxkit.RPC(ctx, h, "t.up", fluxkit.NodeidUpstream, nil, nil))
	m := <-seen
	assert.Equal(t, h.Rank(), m.Nodeid)
	assert.NotZero(t, m.Flags&fluxkit.FlagUpstream)
	assert.NotZero(t, m.Matchtag)
	assert.Empty(t, m.Route)
	assert.Equal(t, fluxkit.UseridUnknown, m.Userid)
	assert.Equal(t, fluxkit.RoleNone, m.Rolemask)

	require.NoError(t, fluxkit.Notify(ctx, h, "t.quiet", 1, nil))
	m = <-seen
	assert.Equal(t, fluxkit.MatchtagNone, m.Matchtag)
	assert.True(t, m.IsNoResponse())
}

// Credentials set in Config are stamped on every message, as flux-core's
// FLUX_HANDLE_USERID/FLUX_HANDLE_ROLEMASK do.
func TestTestingCredentialsAreStamped(t *testing.T) {
	seen := make(chan *fluxkit.Message, 4)
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		seen <- m
		_ = c.respond(m, "{}", 0)
	}
	env := func(k string) string {
		switch k {
		case "FLUX_HANDLE_USERID":
			return "4242"
		case "FLUX_HANDLE_ROLEMASK":
			return "0x2"
		}
		return ""
	}
	h, err := New(testutil.Context(t), Config{URI: f.uri(), Getenv: env})
	require.NoError(t, err)
	defer h.Close()
	require.NoError(t, fluxkit.RPC(testutil.Context(t), h, "t.x", 0, nil, nil))
	m := <-seen
	assert.Equal(t, uint32(4242), m.Userid)
	assert.Equal(t, fluxkit.RoleUser, m.Rolemask)

	bad := func(k string) string {
		if k == "FLUX_HANDLE_USERID" {
			return "bob"
		}
		return ""
	}
	_, err = New(testutil.Context(t), Config{URI: f.uri(), Getenv: bad})
	assert.ErrorContains(t, err, `FLUX_HANDLE_USERID="bob"`)
}

// Userid 0 is root's, not "unset": like flux-core, a handle told to act as
// userid 0 stamps it, with no roles, whether Config or the environment
// says so; Config wins over the environment.
func TestTestingUseridZeroIsStamped(t *testing.T) {
	seen := make(chan *fluxkit.Message, 4)
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		seen <- m
		_ = c.respond(m, "{}", 0)
	}
	root := func(k string) string {
		if k == "FLUX_HANDLE_USERID" {
			return "0"
		}
		return ""
	}
	for _, cfg := range []Config{
		{URI: f.uri(), Getenv: noEnv, Userid: new(uint32(0))},
		{URI: f.uri(), Getenv: root},
		{URI: f.uri(), Getenv: func(k string) string { return map[string]string{"FLUX_HANDLE_USERID": "7"}[k] }, Userid: new(uint32(0))},
	} {
		h, err := New(testutil.Context(t), cfg)
		require.NoError(t, err)
		require.NoError(t, fluxkit.RPC(testutil.Context(t), h, "t.x", 0, nil, nil))
		m := <-seen
		assert.Equal(t, uint32(0), m.Userid)
		assert.Equal(t, fluxkit.RoleNone, m.Rolemask)
		h.Close()
	}

	h, err := New(testutil.Context(t), Config{URI: f.uri(), Getenv: noEnv})
	require.NoError(t, err)
	defer h.Close()
	require.NoError(t, fluxkit.RPC(testutil.Context(t), h, "t.x", 0, nil, nil))
	m := <-seen
	assert.Equal(t, fluxkit.UseridUnknown, m.Userid, "nothing set: the broker fills in the credentials")
}

func TestRegisterServesRequests(t *testing.T) {
	leakcheck.Check(t)
	responses := make(chan *fluxkit.Message, 16)
	adds := make(chan string, 4)
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		switch {
		case m.Type == fluxkit.TypeResponse:
			responses <- m
		case m.Topic == "service.add" || m.Topic == "service.remove":
			adds <- m.Topic + " " + string(m.Payload)
			_ = c.respond(m, "", 0)
		}
	}
	h := openFake(t, f)
	var order []int
	var mu sync.Mutex
	unreg, err := h.Register("svc.work", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		var in struct{ N int }
		if !fluxkit.DecodeRequest(w, req, &in) {
			return
		}
		mu.Lock()
		order = append(order, in.N)
		mu.Unlock()
		_ = fluxkit.Respond(w, map[string]int{"n": in.N})
	})
	require.NoError(t, err)
	assert.Equal(t, `service.add {"service":"svc"}`, <-adds)
	_, err = h.Register("svc.work", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.ErrorIs(t, err, syscall.EEXIST)
	unreg2, err := h.Register("svc.other", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	require.NoError(t, err)
	assert.Empty(t, adds, "a second topic of a service does not register it again")

	f.mu.Lock()
	c := f.conns[0]
	f.mu.Unlock()
	guest := fluxkit.Cred{Userid: 77, Roles: fluxkit.RoleUser}
	owner := fluxkit.Cred{Userid: 0, Roles: fluxkit.RoleOwner}
	send := func(topic string, tag uint32, cred fluxkit.Cred, payload string) {
		m := fluxkit.NewRequest(topic, 2, []byte(payload))
		m.Matchtag, m.Userid, m.Rolemask = tag, cred.Userid, cred.Roles
		m.Route = []string{"client-uuid"}
		require.NoError(t, c.send(m))
	}
	for i := 1; i <= 20; i++ {
		send("svc.work", uint32(i), guest, fmt.Sprintf(`{"N":%d}`, i))
	}
	send("svc.nomethod", 100, owner, "{}")
	send("svc.other", 101, guest, "{}")
	want := map[uint32]string{100: "Unknown service method 'svc.nomethod'", 101: "Request requires owner credentials"}
	for i := 0; i < 22; i++ {
		m := <-responses
		assert.Equal(t, []string{"client-uuid"}, m.Route, "a response carries the request's route back")
		if text, ok := want[m.Matchtag]; ok {
			assert.Equal(t, text, string(m.Payload))
			continue
		}
		assert.Zero(t, m.Errnum)
		assert.Equal(t, fmt.Sprintf(`{"n":%d}`, m.Matchtag), string(m.Payload))
	}
	mu.Lock()
	assert.Equal(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, order, "handlers run in arrival order")
	mu.Unlock()
	unreg()
	assert.Empty(t, adds, "the service stays while a topic remains")
	unreg2()
	assert.Equal(t, `service.remove {"service":"svc"}`, <-adds)
}

func TestRegisterRefusedByBroker(t *testing.T) {
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		if m.Topic == "service.add" {
			_ = c.respond(m, "", uint32(syscall.EPERM))
		}
	}
	h := openFake(t, f)
	_, err := h.Register("other.x", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	require.ErrorIs(t, err, syscall.EPERM)
	assert.ErrorContains(t, err, "registering service other")
	_, err = h.Register("bad", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {})
	assert.ErrorIs(t, err, syscall.EINVAL)
}

// Publish sends event.publish to rank 0 with the payload base64-encoded and
// NUL-terminated, as flux_event_publish() does; Subscribe delivers matching
// events only, and Close unsubscribes.
func TestPublishAndSubscribeOnTheWire(t *testing.T) {
	leakcheck.Check(t)
	reqs := make(chan *fluxkit.Message, 8)
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		if m.Type == fluxkit.TypeRequest {
			reqs <- m
			_ = c.respond(m, `{"seq":1}`, 0)
		}
	}
	h := openFake(t, f)
	ctx := testutil.Context(t)
	require.NoError(t, h.Publish(ctx, "a.b", []byte(`{"x":1}`), fluxkit.FlagPrivate))
	m := <-reqs
	assert.Equal(t, "event.publish", m.Topic)
	assert.Equal(t, uint32(0), m.Nodeid)
	v := decode(t, m)
	assert.Equal(t, "a.b", v["topic"])
	assert.Equal(t, float64(fluxkit.FlagPrivate), v["flags"])
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("{\"x\":1}\x00")), v["payload"])
	assert.ErrorIs(t, h.Publish(ctx, "a.b", nil, fluxkit.FlagStreaming), syscall.EINVAL)

	sub, err := h.Subscribe(ctx, "job.")
	require.NoError(t, err)
	m = <-reqs
	assert.Equal(t, "event.subscribe", m.Topic)
	assert.Equal(t, `{"topic":"job."}`, string(m.Payload))
	f.mu.Lock()
	c := f.conns[0]
	f.mu.Unlock()
	for i, topic := range []string{"job.a", "other", "job.b"} {
		require.NoError(t, c.send(&fluxkit.Message{Type: fluxkit.TypeEvent, Topic: topic, Seq: uint32(i + 1), Payload: []byte(`{}`)}))
	}
	for _, want := range []string{"job.a", "job.b"} {
		ev, err := sub.Recv(ctx)
		require.NoError(t, err)
		assert.Equal(t, want, ev.Topic)
	}
	require.NoError(t, sub.Close())
	m = <-reqs
	assert.Equal(t, "event.unsubscribe", m.Topic)
	_, err = sub.Recv(ctx)
	assert.ErrorIs(t, err, syscall.ENODATA)
}

// A broker that stops reading makes Request wait for queue room, bounded by
// its context, instead of queueing without limit.
func TestSendQueueIsBounded(t *testing.T) {
	leakcheck.Check(t)
	stall := make(chan struct{})
	f := newFakeBroker(t)
	f.serve = func(*fakeConn, *fluxkit.Message) { <-stall }
	h, err := New(testutil.Context(t), Config{URI: f.uri(), Getenv: noEnv, MaxPending: 1 << 20})
	require.NoError(t, err)
	defer func() {
		close(stall)
		h.Close()
	}()
	big := bytes.Repeat([]byte("x"), 256<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var err2 error
	for i := 0; i < 1000 && err2 == nil; i++ {
		err2 = fluxkit.Notify(ctx, h, "big.x", 0, big)
	}
	assert.ErrorIs(t, err2, context.DeadlineExceeded)
	h.out.mu.Lock()
	queued := len(h.out.buf)
	h.out.mu.Unlock()
	assert.LessOrEqual(t, queued, (1<<20)+(300<<10), "queue stays near MaxPending")
}

// Close waits for a handler that is running.
func TestCloseWaitsForRunningHandler(t *testing.T) {
	leakcheck.Check(t)
	f := newFakeBroker(t)
	f.serve = func(c *fakeConn, m *fluxkit.Message) {
		if m.Topic == "service.add" {
			_ = c.respond(m, "", 0)
		}
	}
	h := openFake(t, f)
	started, finished := make(chan struct{}), make(chan struct{})
	_, err := h.Register("slow.x", 0, func(ctx context.Context, _ fluxkit.Responder, _ *fluxkit.Message) {
		close(started)
		<-ctx.Done() // the handler's context ends with the handle
		time.Sleep(50 * time.Millisecond)
		close(finished)
	})
	require.NoError(t, err)
	f.mu.Lock()
	c := f.conns[0]
	f.mu.Unlock()
	req := fluxkit.NewRequest("slow.x", 2, nil)
	req.Matchtag, req.Userid, req.Rolemask = 9, 0, fluxkit.RoleOwner
	require.NoError(t, c.send(req))
	<-started
	require.NoError(t, h.Close())
	select {
	case <-finished:
	default:
		require.FailNow(t, "Close returned while a handler was running")
	}
}

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, (&Config{}).Validate())
	assert.ErrorContains(t, (&Config{MaxPending: -1}).Validate(), "MaxPending -1")
	err := (&Config{URI: "http://x"}).Validate()
	assert.ErrorContains(t, err, `unsupported scheme "http"`)
	_, err = New(testutil.Context(t), Config{URI: "ssh://"})
	assert.ErrorContains(t, err, "no host")
}

func TestLostErrorWording(t *testing.T) {
	for _, err := range []error{errors.New("read: connection reset by peer"), syscall.ECONNRESET} {
		le := lostError(err)
		assert.ErrorIs(t, le, syscall.ECONNRESET)
		assert.True(t, strings.HasPrefix(le.Error(), "connect: broker connection lost"), le.Error())
	}
}
