package flub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/require"
)

// instance is a test instance: rank 0 plus the owner key pair.
type instance struct {
	t     testing.TB
	root  *Broker
	owner curve.KeyPair
	topo  string
}

// testLogger logs to stderr when FLUB_TEST_LOG is set, for debugging a
// failing test; otherwise brokers log nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("FLUB_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// startInstance starts rank 0 with cfg, filling in a fresh owner, a
// kary:2 tree and fast heartbeats where cfg leaves them unset.
func startInstance(t testing.TB, cfg Config) *instance {
	t.Helper()
	owner := mustKeyPair(t)
	cfg.Owner = owner.Public
	if cfg.Topo == "" {
		cfg.Topo = "kary:2"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "host0"
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 100 * time.Millisecond
	}
	if cfg.TorpidMax == 0 {
		cfg.TorpidMax = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger()
	}
	root, err := Start(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { root.Close() })
	return &instance{t: t, root: root, owner: owner, topo: cfg.Topo}
}

func (in *instance) joinConfig(host string) JoinConfig {
	return JoinConfig{
		BootURI: in.root.BootURI(), Owner: in.owner, Topo: in.topo, Hostname: host,
		Heartbeat: 100 * time.Millisecond, TorpidMax: 2 * time.Second,
		ParentTimeout: 20 * time.Second, Logger: testLogger(),
	}
}

// join adds a broker, closed when the test ends.
func (in *instance) join(ctx context.Context, host string) (*Broker, error) {
	b, err := Join(ctx, in.joinConfig(host))
	if err == nil {
		in.t.Cleanup(func() { b.Close() })
	}
	return b, err
}

// mustJoin is join, failing the test on an error.
func (in *instance) mustJoin(ctx context.Context, host string) *Broker {
	in.t.Helper()
	b, err := in.join(ctx, host)
	require.NoError(in.t, err, "join as %s", host)
	return b
}

// fullInstance is a kary:2 instance of seven brokers, joined at once.
func fullInstance(t *testing.T) (*instance, map[uint32]*Broker) {
	in := startInstance(t, Config{Size: 7})
	var cfgs []JoinConfig
	for i := 1; i <= 6; i++ {
		cfgs = append(cfgs, in.joinConfig(fmt.Sprintf("node%d", i)))
	}
	brokers := joinAll(t, cfgs)
	testutil.WaitFor(t, "overlay full", func() bool { return in.root.Status() == StatusFull })
	return in, brokers
}

// joinAll joins a broker with each config at once and returns them by
// rank; they are closed when the test ends.
func joinAll(t *testing.T, cfgs []JoinConfig) map[uint32]*Broker {
	t.Helper()
	ctx := testutil.Context(t)
	var mu sync.Mutex
	brokers := map[uint32]*Broker{}
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, cfg := range cfgs {
		wg.Go(func() {
			b, err := Join(ctx, cfg)
			if errs[i] = err; err != nil {
				return
			}
			t.Cleanup(func() { b.Close() })
			mu.Lock()
			brokers[b.Rank()] = b
			mu.Unlock()
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return brokers
}

// ownerClient opens a boot-server client with the owner's key.
func (in *instance) ownerClient(t testing.TB) *Client {
	t.Helper()
	c, err := DialBoot(testutil.Context(t), ClientConfig{BootURI: in.root.BootURI(), Keys: in.owner})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

type getinfoReply struct {
	Rank   int               `json:"rank"`
	Size   int               `json:"size"`
	Attrs  map[string]string `json:"attrs"`
	Config json.RawMessage   `json:"config"`
}

func getinfo(t testing.TB, r Requester, nodeid uint32) (getinfoReply, error) {
	t.Helper()
	var reply getinfoReply
	err := rpc(testutil.Context(t), r, topicGetinfo, nodeid, map[string]any{}, &reply)
	return reply, err
}

// requireRank checks that a getinfo through r hands out rank want.
func requireRank(t testing.TB, r Requester, want int, msgAndArgs ...any) getinfoReply {
	t.Helper()
	reply, err := getinfo(t, r, 0)
	require.NoError(t, err, msgAndArgs...)
	require.Equal(t, want, reply.Rank, msgAndArgs...)
	return reply
}

// requireError checks that err carries errno and that its text contains
// text.
func requireError(t testing.TB, err error, errno error, text string, msgAndArgs ...any) {
	t.Helper()
	require.ErrorIs(t, err, errno, msgAndArgs...)
	require.ErrorContains(t, err, text, msgAndArgs...)
}

func mustKeyPair(t testing.TB) curve.KeyPair {
	t.Helper()
	k, err := curve.GenerateKeyPair(nil)
	require.NoError(t, err)
	return k
}

func mustKey(t testing.TB) curve.Key { return mustKeyPair(t).Public }

// logged counts the records whose message is msg in the output of a
// testutil.Logger.
func logged(logs *testutil.Buffer, msg string) int {
	field := "msg=" + msg
	if strings.ContainsAny(msg, " =\"") {
		field = "msg=" + strconv.Quote(msg)
	}
	n := 0
	for _, l := range testutil.Lines(logs.String()) {
		if strings.Contains(l+" ", " "+field+" ") {
			n++
		}
	}
	return n
}

// testChild is a hand-driven child DEALER.
type testChild struct {
	sock  zmq4.Socket
	uuid  string
	close func() // idempotent; also run at cleanup
}

func dialChild(t testing.TB, keys curve.KeyPair, server curve.Key, uri string) *testChild {
	t.Helper()
	tr, _ := DefaultTransport()
	cl, err := tr.NewClient(curve.ClientConfig{Keys: keys, ServerKey: server})
	require.NoError(t, err)
	ep, err := cl.Endpoint(uri)
	require.NoError(t, err)
	uuid := newUUID()
	ctx, cancel := context.WithCancel(context.Background())
	s := zmq4.NewDealer(ctx, zmq4.WithID(zmq4.SocketIdentity(uuid)), zmq4.WithDialerMaxRetries(2))
	closeAll := sync.OnceFunc(func() { cancel(); s.Close(); cl.Close() })
	t.Cleanup(closeAll)
	require.NoError(t, s.Dial(ep))
	return &testChild{sock: s, uuid: uuid, close: closeAll}
}

// kexChild authorizes a fresh key at nodeid for rank name through c and
// dials that broker's overlay socket with it.
func kexChild(t testing.TB, c *Client, nodeid uint32, name string) *testChild {
	t.Helper()
	k := mustKeyPair(t)
	var raw json.RawMessage
	require.NoError(t, rpc(testutil.Context(t), c, topicKex, nodeid, kexRequest{Name: name, Pubkey: k.Public.String()}, &raw))
	pk, uri, err := parseKexResponse(raw)
	require.NoError(t, err)
	return dialChild(t, k, pk, uri)
}

func (c *testChild) send(t testing.TB, frames ...[]byte) {
	t.Helper()
	require.NoError(t, c.sock.Send(zmq4.NewMsgFrom(frames...)))
}

func (c *testChild) recv(t testing.TB) *fluxkit.Message {
	t.Helper()
	got := make(chan zmq4.Msg, 1)
	go func() {
		m, err := c.sock.Recv()
		if err == nil {
			got <- m
		}
		close(got)
	}()
	select {
	case m, ok := <-got:
		require.True(t, ok, "recv failed")
		msg, err := fluxkit.DecodeFrames(m.Frames)
		require.NoError(t, err)
		return msg
	case <-time.After(testutil.DefaultTimeout):
		require.FailNow(t, "no message from parent")
	}
	return nil
}

func (c *testChild) hello(t testing.TB, rank uint32) *fluxkit.Message {
	t.Helper()
	p, _ := json.Marshal(helloPayload{Rank: rank, Version: protocolVersion, UUID: c.uuid, Status: StatusFull})
	m := fluxkit.NewRequest(topicHello, fluxkit.NodeidAny, p)
	m.Rolemask = fluxkit.RoleOwner
	c.send(t, m.Frames()...)
	return c.recv(t)
}
