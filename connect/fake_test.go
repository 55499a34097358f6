package connect

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/require"
)

// fakeBroker is a scripted peer on a unix socket, speaking the local
// connector's protocol: it accepts clients (or refuses them with an errno
// byte), answers the identification requests every handle sends on open,
// and hands every other message to the test.
type fakeBroker struct {
	t      *testing.T
	path   string
	ln     net.Listener
	refuse byte // handshake byte; 0 accepts
	rank   uint32
	size   uint32
	cred   fluxkit.Cred

	// serve sees every message not answered by the fake itself; it runs on
	// the connection's reader goroutine.
	serve func(c *fakeConn, m *fluxkit.Message)

	once  sync.Once
	mu    sync.Mutex
	conns []*fakeConn
	wg    sync.WaitGroup
}

type fakeConn struct {
	net.Conn
	wmu sync.Mutex
}

func (c *fakeConn) send(m *fluxkit.Message) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.Write(appendMessage(nil, m))
	return err
}

func (c *fakeConn) respond(req *fluxkit.Message, payload string, errnum uint32) error {
	var p []byte
	if payload != "" {
		p = []byte(payload)
	}
	return c.send(fluxkit.ResponseTo(req, p, errnum))
}

// newFakeBroker makes a fake that starts accepting clients at the first call
// of uri(), so that a test sets its fields first.
func newFakeBroker(t *testing.T) *fakeBroker {
	t.Helper()
	dir, err := os.MkdirTemp("", "fluxkit-fake")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := &fakeBroker{t: t, path: filepath.Join(dir, "local"), size: 4, rank: 2,
		cred: fluxkit.Cred{Userid: uint32(os.Getuid()), Roles: fluxkit.RoleOwner | fluxkit.RoleLocal}}
	f.ln, err = net.Listen("unix", f.path)
	require.NoError(t, err)
	t.Cleanup(f.close)
	return f
}

func (f *fakeBroker) uri() string {
	f.once.Do(func() {
		f.wg.Add(1)
		go f.accept()
	})
	return "local://" + f.path
}

func (f *fakeBroker) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		c := &fakeConn{Conn: nc}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		if _, err := c.Write([]byte{f.refuse}); err != nil || f.refuse != 0 {
			c.Close()
			continue
		}
		f.wg.Add(1)
		go f.read(c)
	}
}

func (f *fakeBroker) read(c *fakeConn) {
	defer f.wg.Done()
	mr := newMessageReader(c)
	for {
		m, err := mr.read()
		if err != nil {
			return
		}
		switch {
		case m.Type == fluxkit.TypeRequest && m.Topic == "broker.ping":
			_ = c.respond(m, fmt.Sprintf(`{"seq":0,"pad":"","route":"x","userid":%d,"rolemask":%d,"rank":%d}`, f.cred.Userid, f.cred.Roles, f.rank), 0)
		case m.Type == fluxkit.TypeRequest && m.Topic == "attr.get" && string(m.Payload) == `{"name":"size"}`:
			_ = c.respond(m, fmt.Sprintf(`{"value":"%d","flags":0}`, f.size), 0)
		case f.serve != nil:
			f.serve(c, m)
		}
	}
}

// drop closes every client connection, as a broker that exits does.
func (f *fakeBroker) drop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.conns {
		c.Close()
	}
}

func (f *fakeBroker) close() {
	f.ln.Close()
	f.drop()
	f.wg.Wait()
}

func noEnv(string) string { return "" }

func openFake(t *testing.T, f *fakeBroker) *Handle {
	t.Helper()
	h, err := New(testutil.Context(t), Config{URI: f.uri(), Getenv: noEnv})
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

func decode(t *testing.T, m *fluxkit.Message) map[string]any {
	t.Helper()
	var v map[string]any
	require.NoError(t, json.Unmarshal(m.Payload, &v))
	return v
}

var _ io.Reader = (*fakeConn)(nil)
