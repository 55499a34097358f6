package curve

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-zeromq/zmq4"
	"github.com/stretchr/testify/require"
)

// The benchmarks put the Go implementation and libzmq (through pyzmq, in
// testdata/peer.py) side by side in one run, on loopback. Each group ends
// with a "ratio" entry computed from the entries before it. libzmq's rates
// include pyzmq's per-call overhead; the python helpers time themselves
// (first to last message) so process start-up is excluded.

// rates collects msgs/s (or handshakes/s) of a group's sub-benchmarks.
type rates map[string]float64

func (r rates) report(b *testing.B, name string, n int, elapsed time.Duration, unit string) {
	rate := float64(n) / elapsed.Seconds()
	r[name] = rate
	b.ReportMetric(rate, unit)
}

func (r rates) ratio(b *testing.B, pairs ...string) {
	b.Run("ratio", func(b *testing.B) {
		for b.Loop() {
		}
		for i := 0; i+1 < len(pairs); i += 2 {
			num, den := r[pairs[i]], r[pairs[i+1]]
			if num == 0 || den == 0 {
				continue
			}
			b.ReportMetric(num/den, pairs[i]+"/"+pairs[i+1])
		}
	})
}

func BenchmarkHandshake(b *testing.B) {
	r := rates{}
	b.Run("go", func(b *testing.B) {
		tr := newTransport(b)
		sk, ck := newKeys(b), newKeys(b)
		router, _, hp := goServer(b, tr, ServerConfig{Keys: sk, AllowAnyClient: true})
		echo(b, router, nil)
		cl := goClient(b, tr, ClientConfig{Keys: ck, ServerKey: sk.Public})
		ep := dialEndpoint(b, cl, hp)
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			d := zmq4.NewDealer(context.Background(), zmq4.WithLogger(quietLogger()), zmq4.WithDialerMaxRetries(0))
			if err := d.Dial(ep); err != nil {
				b.Fatal(err)
			}
			if err := d.Send(zmq4.NewMsgString("x")); err != nil {
				b.Fatal(err)
			}
			if _, err := recvErr(d, 5*time.Second); err != nil {
				b.Fatal(err)
			}
			d.Close()
		}
		r.report(b, "go", b.N, time.Since(start), "handshakes/s")
	})
	b.Run("libzmq", func(b *testing.B) {
		requirePeer(b)
		_, hp, _ := startPyServer(b, "--test-keys")
		hs := startPeer(b, "bench-hs", "--endpoint", "tcp://"+hp, "--server-key="+testServerPublic)
		hs.line(b, "READY", 20*time.Second)
		b.ResetTimer()
		fmt.Fprintf(hs.stdin, "HS %d\n", b.N)
		secs := doneSeconds(b, hs)
		r.report(b, "libzmq", b.N, secs, "handshakes/s")
	})
	r.ratio(b, "go", "libzmq")
}

func doneSeconds(b *testing.B, p *pyPeer) time.Duration {
	b.Helper()
	f := strings.Fields(p.line(b, "DONE", 5*time.Minute))
	require.Len(b, f, 2)
	s, err := strconv.ParseFloat(f[1], 64)
	require.NoError(b, err)
	return time.Duration(s * float64(time.Second))
}

// goThroughput sends b.N messages of size bytes from a DEALER to a ROUTER.
func goThroughput(b *testing.B, r rates, name string, size int, listen string, dial func(hostport string) string) {
	router := newRouter(b)
	require.NoError(b, router.Listen(listen))
	dealer := newDealer(b)
	require.NoError(b, dealer.Dial(dial(router.Addr().String())))
	payload := bytes.Repeat([]byte("x"), size)
	// One round trip first, so the handshake is not timed.
	require.NoError(b, dealer.Send(zmq4.NewMsg(payload)))
	recv(b, router, 10*time.Second)
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for range b.N {
			if err := dealer.Send(zmq4.NewMsg(payload)); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range b.N {
		if _, err := router.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	require.NoError(b, <-errc)
	r.report(b, name, b.N, elapsed, "msgs/s")
}

func BenchmarkThroughput(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			r := rates{}
			b.Run("zmq4-null", func(b *testing.B) {
				goThroughput(b, r, "null", size, "tcp://127.0.0.1:0", func(hp string) string { return "tcp://" + hp })
			})
			b.Run("go-curve", func(b *testing.B) {
				tr := newTransport(b)
				sk, ck := newKeys(b), newKeys(b)
				srv, err := tr.NewServer(ServerConfig{Keys: sk, AllowAnyClient: true})
				require.NoError(b, err)
				b.Cleanup(func() { srv.Close() })
				cl := goClient(b, tr, ClientConfig{Keys: ck, ServerKey: sk.Public})
				lep, err := srv.Endpoint("tcp://127.0.0.1:0")
				require.NoError(b, err)
				goThroughput(b, r, "go", size, lep, func(hp string) string { return dialEndpoint(b, cl, hp) })
			})
			b.Run("libzmq-curve", func(b *testing.B) {
				requirePeer(b)
				sink := startPeer(b, "bench-sink")
				f := strings.Fields(sink.line(b, "READY", 20*time.Second))
				src := startPeer(b, "bench-source", "--endpoint", f[1], "--server-key="+f[2])
				src.line(b, "READY", 20*time.Second)
				// Warm up: connect and handshake outside the timing.
				fmt.Fprintf(sink.stdin, "RECV 1\n")
				fmt.Fprintf(src.stdin, "SEND 1 %d\n", size)
				doneSeconds(b, sink)
				b.SetBytes(int64(size))
				b.ResetTimer()
				start := time.Now()
				fmt.Fprintf(sink.stdin, "RECV %d\n", b.N)
				fmt.Fprintf(src.stdin, "SEND %d %d\n", b.N, size)
				secs := doneSeconds(b, sink)
				if b.N < 1000 {
					secs = time.Since(start) // too few messages for the sink's own clock
				}
				r.report(b, "libzmq", b.N, secs, "msgs/s")
			})
			r.ratio(b, "go", "libzmq", "go", "null")
		})
	}
}

// BenchmarkCrypto is the cost of the cryptography alone: seal on one side
// and open on the other, per message, without sockets.
func BenchmarkCrypto(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ck, sk := newKeys(b), newKeys(b)
			c, err := newClientHandshake(nil, ck, sk.Public, nil)
			require.NoError(b, err)
			s := newServerHandshake(nil, sk)
			w, err := s.onHello(c.hello())
			require.NoError(b, err)
			init, _, err := c.step(w)
			require.NoError(b, err)
			_, _, err = s.onInitiate(init)
			require.NoError(b, err)
			rd, err := s.ready(nil)
			require.NoError(b, err)
			_, _, err = c.step(rd)
			require.NoError(b, err)
			payload := bytes.Repeat([]byte("x"), size)
			var frame, pt []byte
			hdr := 2
			if size+messageMinLen > 255 {
				hdr = 9
			}
			b.SetBytes(int64(size))
			for b.Loop() {
				frame, _ = c.sess.appendMessage(frame[:0], 0, payload)
				pt, err = s.sess.openMessage(pt, frame[hdr:])
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHandshakeCrypto(b *testing.B) {
	ck, sk := newKeys(b), newKeys(b)
	for b.Loop() {
		c, _ := newClientHandshake(nil, ck, sk.Public, nil)
		s := newServerHandshake(nil, sk)
		w, _ := s.onHello(c.hello())
		init, _, _ := c.step(w)
		s.onInitiate(init)
		rd, _ := s.ready(nil)
		if _, _, err := c.step(rd); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTransportOnly measures the translating connection without zmq4:
// the bytes zmq4 would write go straight into one conn and out of the
// other, so the figure is this package's own cost per message (sealing,
// framing, syscalls, opening), separate from zmq4's per-Send overhead.
func BenchmarkTransportOnly(b *testing.B) {
	for _, size := range []int{64, 64 << 10} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			client, server := connPair(b)
			payload := bytes.Repeat([]byte("x"), size)
			hdr := appendFrameHeader(nil, 0, size)
			b.SetBytes(int64(size))
			b.ResetTimer()
			errc := make(chan error, 1)
			go func() {
				for range b.N {
					if _, err := client.Write(hdr); err != nil {
						errc <- err
						return
					}
					if _, err := client.Write(payload); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			buf := make([]byte, size+len(hdr))
			for range b.N {
				if _, err := io.ReadFull(server, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			require.NoError(b, <-errc)
		})
	}
}

// connPair returns a client and a server conn, handshaken over loopback,
// with zmq4's side of the NULL handshake already played.
func connPair(b *testing.B) (*conn, *conn) {
	b.Helper()
	tr := &Transport{scheme: "pair", ends: map[string]any{}}
	sk, ck := newKeys(b), newKeys(b)
	srv, err := tr.NewServer(ServerConfig{Keys: sk, AllowAnyClient: true})
	require.NoError(b, err)
	b.Cleanup(func() { srv.Close() })
	cl, err := tr.NewClient(ClientConfig{Keys: ck, ServerKey: sk.Public})
	require.NoError(b, err)
	b.Cleanup(func() { cl.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	defer ln.Close()
	type res struct {
		c   *conn
		err error
	}
	sc := make(chan res, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			sc <- res{nil, err}
			return
		}
		c, err := srv.handshake(context.Background(), nil, raw)
		sc <- res{c, err}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(b, err)
	client := newConn(raw, false, cl, cl.log, time.Minute, DefaultMaxFrameSize)
	client.clientCfg = &cl.cfg
	client.hctx = context.Background()
	client.watch(context.Background())
	g := makeGreeting("NULL", 3, 0, 0)
	// zmq4's Open, played by hand on each side: greeting, READY, then
	// read the synthesized greeting and READY back.
	play := func(c *conn, typ string) error {
		if _, err := c.Write(append(g[:], zmq4Ready(typ, typ)...)); err != nil {
			return err
		}
		var in [64 + 2 + 255]byte
		if _, err := io.ReadFull(c, in[:66]); err != nil {
			return err
		}
		_, err := io.ReadFull(c, in[66:66+int(in[65])])
		return err
	}
	cerr := make(chan error, 1)
	go func() { cerr <- play(client, "DEALER") }()
	r := <-sc
	require.NoError(b, r.err)
	require.NoError(b, play(r.c, "ROUTER"))
	require.NoError(b, <-cerr)
	b.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// BenchmarkHandshakeFlood holds 2,000 idle connections on a server (none
// is refused: see TestHandshakeFloodLocksNoOneOut) and reports what each
// costs while it waits in its handshake, and how long a legitimate
// client's handshake takes during the flood. Run with -benchtime=1x.
func BenchmarkHandshakeFlood(b *testing.B) {
	const idle = 2000
	tr := newTransport(b)
	sk, ck := newKeys(b), newKeys(b)
	_, _, hp := goServer(b, tr, ServerConfig{Keys: sk, AllowAnyClient: true})
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	floodConns(b, hp, idle)
	runtime.GC()
	runtime.ReadMemStats(&m1)
	// Both ends live in this process; the client ends hold no goroutine
	// and a bare socket, so nearly all of the growth is the server's.
	grown := int64(m1.HeapInuse+m1.StackInuse) - int64(m0.HeapInuse+m0.StackInuse)
	cl := goClient(b, tr, ClientConfig{Keys: ck, ServerKey: sk.Public})
	ep := dialEndpoint(b, cl, hp)
	b.ResetTimer()
	for range b.N {
		d := newDealer(b)
		start := time.Now()
		require.NoError(b, d.Dial(ep))
		b.ReportMetric(float64(time.Since(start).Microseconds()), "µs/handshake")
		d.Close()
	}
	b.ReportMetric(float64(grown)/idle, "B/idle-conn")
}
