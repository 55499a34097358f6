package curve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/require"
)

// libzmq's test keys (tests/testutil_security.cpp).
const (
	testClientPublic = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
	testClientSecret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
	testServerPublic = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
	testServerSecret = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
)

func mustKey(t testing.TB, s string) Key {
	t.Helper()
	k, err := ParseKey(s)
	require.NoError(t, err)
	return k
}

func testClientKeys(t testing.TB) KeyPair {
	return KeyPair{Public: mustKey(t, testClientPublic), Secret: mustKey(t, testClientSecret)}
}

func testServerKeys(t testing.TB) KeyPair {
	return KeyPair{Public: mustKey(t, testServerPublic), Secret: mustKey(t, testServerSecret)}
}

func newKeys(t testing.TB) KeyPair {
	t.Helper()
	kp, err := GenerateKeyPair(nil)
	require.NoError(t, err)
	return kp
}

// newTransport registers a Transport under a fresh scheme: zmq4's registry
// is process-wide and never forgets a name.
func newTransport(t testing.TB) *Transport {
	t.Helper()
	var b [6]byte
	rand.Read(b[:])
	tr, err := NewTransport("curvetest" + hex.EncodeToString(b[:]))
	require.NoError(t, err)
	return tr
}

func quietLogger() *log.Logger { return log.New(io.Discard, "", 0) }

func newRouter(t testing.TB, opts ...zmq4.Option) zmq4.Socket {
	t.Helper()
	s := zmq4.NewRouter(context.Background(), append([]zmq4.Option{zmq4.WithLogger(quietLogger())}, opts...)...)
	t.Cleanup(func() { s.Close() })
	return s
}

func newDealer(t testing.TB, opts ...zmq4.Option) zmq4.Socket {
	t.Helper()
	s := zmq4.NewDealer(context.Background(), append([]zmq4.Option{zmq4.WithLogger(quietLogger()), zmq4.WithDialerMaxRetries(0)}, opts...)...)
	t.Cleanup(func() { s.Close() })
	return s
}

// recv receives with a timeout; zmq4's Recv has none.
func recv(t testing.TB, s zmq4.Socket, d time.Duration) zmq4.Msg {
	t.Helper()
	m, err := recvErr(s, d)
	require.NoError(t, err)
	return m
}

var errRecvTimeout = errors.New("recv timed out")

func recvErr(s zmq4.Socket, d time.Duration) (zmq4.Msg, error) {
	type res struct {
		m   zmq4.Msg
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := s.Recv()
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-time.After(d):
		// The goroutine ends when the test closes the socket.
		return zmq4.Msg{}, errRecvTimeout
	}
}

// goServer starts a Go ROUTER with a CURVE server endpoint on loopback.
func goServer(t testing.TB, tr *Transport, cfg ServerConfig) (zmq4.Socket, *Server, string) {
	t.Helper()
	srv, err := tr.NewServer(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	ep, err := srv.Endpoint("tcp://127.0.0.1:0")
	require.NoError(t, err)
	r := newRouter(t)
	require.NoError(t, r.Listen(ep))
	return r, srv, r.Addr().String()
}

func goClient(t testing.TB, tr *Transport, cfg ClientConfig) *Client {
	t.Helper()
	cl, err := tr.NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func dialEndpoint(t testing.TB, cl *Client, hostport string) string {
	t.Helper()
	ep, err := cl.Endpoint("tcp://" + hostport)
	require.NoError(t, err)
	return ep
}

const python = "/usr/bin/python3"

// requirePeer skips (or, under CI=true, fails) when libzmq via pyzmq with
// CURVE is unavailable.
func requirePeer(t testing.TB) { requirePeerAt(t, python) }

func requirePeerAt(t testing.TB, interp string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, interp, "-c", "import zmq; assert zmq.has('curve'); print(zmq.zmq_version())").CombinedOutput()
	if err == nil {
		return
	}
	msg := "libzmq peer unavailable (" + interp + " with python3-zmq and CURVE): " + strings.TrimSpace(string(out)) + " " + err.Error()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
		return
	}
	t.Skip(msg)
}

// recordTB notes Fatal and Skip instead of ending the test.
type recordTB struct {
	testing.TB
	fatal, skipped bool
}

func (r *recordTB) Helper()      {}
func (r *recordTB) Fatal(...any) { r.fatal = true }
func (r *recordTB) Skip(...any)  { r.skipped = true }

func TestMissingPeerFailsUnderCI(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recordTB{TB: t}
	requirePeerAt(r, "/nonexistent/python3")
	require.True(t, r.fatal, "under CI=true a missing peer is a failure")
	require.False(t, r.skipped)

	t.Setenv("CI", "")
	r = &recordTB{TB: t}
	requirePeerAt(r, "/nonexistent/python3")
	require.True(t, r.skipped, "locally a missing peer skips")
	require.False(t, r.fatal)
}

// pyPeer is a running testdata/peer.py.
type pyPeer struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr testutil.Buffer
	done   chan struct{}
	err    error
}

// startPeer runs peer.py with args, killed on cleanup and bounded by a
// lifetime.
func startPeer(t testing.TB, args ...string) *pyPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	full := append([]string{"testdata/peer.py"}, args...)
	full = append(full, "--lifetime", "60")
	p := &pyPeer{lines: make(chan string, 1024), done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, python, full...)
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 2 * time.Second
	var err error
	p.stdin, err = p.cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, p.cmd.Start())
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		p.cmd.Process.Signal(os.Interrupt)
		p.cmd.Process.Kill()
		<-p.done
		cancel()
		if t.Failed() {
			t.Logf("peer %v stderr:\n%s", args, p.Stderr())
		}
	})
	return p
}

func (p *pyPeer) Stderr() string { return p.stderr.String() }

// line returns the next stdout line with the given prefix.
func (p *pyPeer) line(t testing.TB, prefix string, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			require.True(t, ok, "peer exited before %q; stderr:\n%s", prefix, p.Stderr())
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			require.FailNow(t, "no line from the peer", "no %q within %v; stderr:\n%s", prefix, d, p.Stderr())
		}
	}
}

// exitCode waits for the peer to exit.
func (p *pyPeer) exitCode(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		require.FailNow(t, "the peer did not exit", "within %v", d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	require.NoError(t, p.err)
	return 0
}

// startPyServer starts the libzmq ROUTER echo server and returns its
// endpoint (host:port) and public key.
func startPyServer(t testing.TB, args ...string) (*pyPeer, string, Key) {
	t.Helper()
	p := startPeer(t, append([]string{"server"}, args...)...)
	f := strings.Fields(p.line(t, "READY ", 20*time.Second))
	require.Len(t, f, 3)
	return p, strings.TrimPrefix(f[1], "tcp://"), mustKey(t, f[2])
}

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }

// seen is a message a ROUTER received, with its sender as the server saw
// it.
type seen struct {
	frames [][]byte
	peer   Peer
	ok     bool
}

// echo serves the ROUTER r until the test ends: every message goes back
// to its sender. With srv not nil, each is also recorded with the sender
// srv saw, and received returns the records so far (benchmarks pass nil:
// recording would be measured).
func echo(t testing.TB, r zmq4.Socket, srv *Server) (received func() []seen) {
	var mu sync.Mutex
	var got []seen
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.Recv()
			if err != nil {
				return
			}
			if srv != nil {
				p, ok := srv.Peer(m.Frames[0])
				mu.Lock()
				got = append(got, seen{m.Frames, p, ok})
				mu.Unlock()
			}
			if r.Send(m) != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { r.Close(); <-done })
	return func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}
