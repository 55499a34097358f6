#!/usr/bin/python3
"""libzmq CURVE peer for fluxkit's flub/curve interoperability tests.

Drives real libzmq (through Debian's python3-zmq) as the other end of the
Go implementation. Run with /usr/bin/python3. Modes:

  server        ROUTER CURVE server that echoes every message; optional ZAP
                allow-list (domain "flux"). Prints "READY <endpoint> <key>".
  client        DEALER CURVE client: sends frames, waits for the echo.
                Exit 0 exact echo, 1 mismatch, 2 timeout.
  bench-sink    ROUTER CURVE server counting messages on command.
  bench-source  DEALER CURVE client sending messages on command.
  bench-hs      repeated connect + echo + close, on command.
  selftest      server and clients in-process.

Every mode binds or connects on loopback only and exits on its own after
--lifetime seconds, when stdin closes, or on SIGTERM.
"""

import argparse
import binascii
import json
import os
import select
import signal
import sys
import threading
import time

import zmq
import zmq.utils.monitor
import zmq.utils.z85 as z85

# The libzmq test key pairs (zmq_curve(7), libzmq tests/test_security_curve.cpp).
TEST_CLIENT_PUBLIC = b"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"
TEST_CLIENT_SECRET = b"D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs"
TEST_SERVER_PUBLIC = b"rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
TEST_SERVER_SECRET = b"JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"

ZAP_ENDPOINT = "inproc://zeromq.zap.01"

stopping = threading.Event()


def on_term(signum, frame):
    stopping.set()


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def require_loopback(endpoint):
    if not endpoint.startswith("tcp://"):
        sys.exit("only tcp:// endpoints are supported: %s" % endpoint)
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("refusing non-loopback address %s" % endpoint)


def stdin_closed():
    """True once the parent has gone away (stdin at EOF)."""
    try:
        r, _, _ = select.select([sys.stdin], [], [], 0)
    except (ValueError, OSError):
        return True
    if not r:
        return False
    line = sys.stdin.readline()
    return line == ""


class ZapHandler(threading.Thread):
    """RFC 27 handler with Flux's policy: listed keys get 200/OK with the Z85
    key as user id; anything else 400 "No access"."""

    def __init__(self, ctx, allowed):
        super().__init__(daemon=True)
        self.allowed = set(allowed)
        self.sock = ctx.socket(zmq.REP)
        self.sock.linger = 0
        self.sock.bind(ZAP_ENDPOINT)

    def run(self):
        poller = zmq.Poller()
        poller.register(self.sock, zmq.POLLIN)
        while not stopping.is_set():
            if not dict(poller.poll(100)):
                continue
            req = self.sock.recv_multipart()
            reqid = req[1] if len(req) > 1 else b""
            status, text, user = b"400", b"No access", b""
            if len(req) >= 7 and req[0] == b"1.0" and req[5] == b"CURVE" and len(req[6]) == 32:
                key = z85.encode(req[6])
                if key in self.allowed:
                    status, text, user = b"200", b"OK", key
            log("ZAP", json.dumps({"status": status.decode(), "key": z85.encode(req[6]).decode() if len(req) >= 7 and len(req[6]) == 32 else ""}))
            self.sock.send_multipart([b"1.0", reqid, status, text, user, b""])
        self.sock.close(0)


def prop(frame, name):
    try:
        v = frame.get(name)
    except (zmq.ZMQError, TypeError, ValueError):
        return None
    if isinstance(v, bytes):
        v = v.decode("latin-1")
    return v


def set_heartbeat(sock, args):
    # With ZMQ_HEARTBEAT_IVL libzmq sends PING and drops the connection if
    # nothing (PONG) comes back within ZMQ_HEARTBEAT_TIMEOUT.
    ms = getattr(args, "heartbeat", 0)
    if ms:
        sock.heartbeat_ivl = ms
        sock.heartbeat_timeout = 3 * ms
        sock.heartbeat_ttl = 10 * ms


def make_server(ctx, args):
    if args.test_keys:
        public, secret = TEST_SERVER_PUBLIC, TEST_SERVER_SECRET
    else:
        public, secret = zmq.curve_keypair()
    if args.keyfile:
        with open(args.keyfile, "w") as f:
            f.write("%s %s\n" % (public.decode(), secret.decode()))
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    sock.curve_server = True
    sock.curve_secretkey = secret
    sock.curve_publickey = public
    if getattr(args, "allow", None):
        sock.zap_domain = b"flux"
    set_heartbeat(sock, args)
    require_loopback(args.bind)
    sock.bind(args.bind)
    return sock, public


def run_server(args):
    ctx = zmq.Context()
    zap = None
    if args.allow:
        zap = ZapHandler(ctx, [a.encode() for a in args.allow])
        zap.start()
    sock, public = make_server(ctx, args)
    out("READY %s %s" % (sock.last_endpoint.decode(), public.decode()))
    deadline = time.monotonic() + args.lifetime
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not stopping.is_set() and time.monotonic() < deadline:
        if stdin_closed():
            break
        if not dict(poller.poll(50)):
            continue
        frames = sock.recv_multipart(copy=False)
        first = frames[1] if len(frames) > 1 else frames[0]
        log("MSG", json.dumps({
            "rid": binascii.hexlify(frames[0].bytes).decode(),
            "identity": prop(first, "Identity"),
            "user_id": prop(first, "User-Id"),
            "socket_type": prop(first, "Socket-Type"),
            "frames": [binascii.hexlify(f.bytes).decode() for f in frames[1:]],
        }))
        sock.send_multipart([f.bytes for f in frames])
    stopping.set()
    sock.close(0)
    if zap:
        zap.join(1)
    ctx.term()


def client_keys(args):
    if args.test_keys:
        return TEST_CLIENT_PUBLIC, TEST_CLIENT_SECRET
    if args.public and args.secret:
        return args.public.encode(), args.secret.encode()
    return zmq.curve_keypair()


def make_client(ctx, endpoint, server_key, public, secret, identity=None, args=None):
    require_loopback(endpoint)
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    if args is not None:
        set_heartbeat(sock, args)
    sock.curve_serverkey = server_key
    sock.curve_publickey = public
    sock.curve_secretkey = secret
    if identity:
        sock.identity = identity
    sock.connect(endpoint)
    return sock


def run_client(args):
    frames = [binascii.unhexlify(f) if args.hex else f.encode() for f in args.frames]
    public, secret = client_keys(args)
    ctx = zmq.Context()
    sock = make_client(ctx, args.endpoint, args.server_key.encode(), public, secret,
                       args.identity.encode() if args.identity else None, args)
    mon = None
    if args.monitor:
        # Handshake outcome as libzmq itself classifies it.
        mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH
                                      | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
    messages = [frames] if args.multipart else [[f] for f in frames]
    status = 0
    for i, msg in enumerate(messages):
        if i == 1 and args.pause:
            time.sleep(args.pause)
        sock.send_multipart(msg)
        if not sock.poll(int(args.timeout * 1000)):
            out("TIMEOUT")
            status = 2
            break
        echo = sock.recv_multipart()
        out("ECHO " + " ".join(binascii.hexlify(f).decode() or "-" for f in echo))
        if echo != msg:
            status = 1
            break
    if mon is not None:
        names = {getattr(zmq, n): n[len("EVENT_"):] for n in dir(zmq) if n.startswith("EVENT_HANDSHAKE")}
        while mon.poll(100):
            ev = zmq.utils.monitor.recv_monitor_message(mon)
            out("EVENT %s %d" % (names.get(ev["event"], ev["event"]), ev["value"]))
        sock.disable_monitor()
        mon.close(0)
    sock.close(0)
    ctx.term()
    sys.exit(status)


def read_command(deadline):
    """Next stdin line, or None at EOF or when the lifetime ends."""
    while not stopping.is_set() and time.monotonic() < deadline:
        r, _, _ = select.select([sys.stdin], [], [], 0.1)
        if r:
            line = sys.stdin.readline()
            return line.split() if line else None
    return None


def commands(args):
    """The benchmark commands on stdin, split, until EOF or the lifetime ends."""
    deadline = time.monotonic() + args.lifetime
    while True:
        cmd = read_command(deadline)
        if not cmd:
            return
        yield cmd


def run_bench_sink(args):
    ctx = zmq.Context()
    args.test_keys = True
    sock, public = make_server(ctx, args)
    out("READY %s %s" % (sock.last_endpoint.decode(), public.decode()))
    for cmd in commands(args):
        n = int(cmd[1])
        sock.recv_multipart()
        start = time.perf_counter()
        for _ in range(n - 1):
            sock.recv_multipart(copy=False)
        out("DONE %.9f" % (time.perf_counter() - start))
    sock.close(0)
    ctx.term()


def run_bench_source(args):
    ctx = zmq.Context()
    sock = make_client(ctx, args.endpoint, args.server_key.encode(), TEST_CLIENT_PUBLIC, TEST_CLIENT_SECRET)
    out("READY")
    for cmd in commands(args):
        n, size = int(cmd[1]), int(cmd[2])
        payload = b"x" * size
        for _ in range(n):
            sock.send(payload, copy=size < 1024)
        out("SENT")
    sock.close(0)
    ctx.term()


def run_bench_hs(args):
    ctx = zmq.Context()
    out("READY")
    for cmd in commands(args):
        n = int(cmd[1])
        start = time.perf_counter()
        for _ in range(n):
            s = make_client(ctx, args.endpoint, args.server_key.encode(), TEST_CLIENT_PUBLIC, TEST_CLIENT_SECRET)
            s.send(b"x")
            if not s.poll(3000):
                out("TIMEOUT")
                s.close(0)
                sys.exit(2)
            s.recv()
            s.close(0)
        out("DONE %.9f" % (time.perf_counter() - start))
    ctx.term()


def run_selftest(args):
    allowed_pub, allowed_sec = zmq.curve_keypair()
    ctx = zmq.Context()
    zap = ZapHandler(ctx, [allowed_pub])
    zap.start()
    args.test_keys = True
    args.allow = [allowed_pub.decode()]
    srv, public = make_server(ctx, args)
    endpoint = srv.last_endpoint.decode()
    stop = threading.Event()

    def echo():
        poller = zmq.Poller()
        poller.register(srv, zmq.POLLIN)
        while not stop.is_set():
            if dict(poller.poll(50)):
                srv.send_multipart(srv.recv_multipart())

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    ok = True
    c = make_client(ctx, endpoint, public, allowed_pub, allowed_sec)
    for msg in ([b"hello"], [b"", b"a" * 300, b"x"]):
        c.send_multipart(msg)
        ok = ok and c.poll(3000) and c.recv_multipart() == msg
    c.close(0)
    bad_pub, bad_sec = zmq.curve_keypair()
    c = make_client(ctx, endpoint, public, bad_pub, bad_sec)
    c.send(b"x")
    ok = ok and not c.poll(500)
    c.close(0)
    stop.set()
    stopping.set()
    t.join(1)
    srv.close(0)
    zap.join(1)
    ctx.term()
    out("SELFTEST " + ("PASS" if ok else "FAIL"))
    sys.exit(0 if ok else 1)


def main():
    signal.signal(signal.SIGTERM, on_term)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)

    def common(sp):
        sp.add_argument("--lifetime", type=float, default=60, help="exit after this many seconds")

    s = sub.add_parser("server")
    common(s)
    s.add_argument("--bind", default="tcp://127.0.0.1:*")
    s.add_argument("--test-keys", action="store_true")
    s.add_argument("--allow", action="append", default=[], help="Z85 client key (repeatable)")
    s.add_argument("--keyfile")
    s.add_argument("--heartbeat", type=int, default=0, help="ZMQ_HEARTBEAT_IVL in ms")

    c = sub.add_parser("client")
    common(c)
    c.add_argument("--endpoint", required=True)
    c.add_argument("--server-key", required=True)
    c.add_argument("--test-keys", action="store_true")
    c.add_argument("--public")
    c.add_argument("--secret")
    c.add_argument("--identity")
    c.add_argument("--multipart", action="store_true")
    c.add_argument("--hex", action="store_true", help="frames are hex")
    c.add_argument("--timeout", type=float, default=3)
    c.add_argument("--heartbeat", type=int, default=0, help="ZMQ_HEARTBEAT_IVL in ms")
    c.add_argument("--pause", type=float, default=0, help="seconds to wait after the first echo")
    c.add_argument("--monitor", action="store_true", help="print handshake events")
    c.add_argument("frames", nargs="*")

    b = sub.add_parser("bench-sink")
    common(b)
    b.add_argument("--bind", default="tcp://127.0.0.1:*")
    b.add_argument("--keyfile")

    for name in ("bench-source", "bench-hs"):
        b = sub.add_parser(name)
        common(b)
        b.add_argument("--endpoint", required=True)
        b.add_argument("--server-key", required=True)

    st = sub.add_parser("selftest")
    common(st)
    st.add_argument("--bind", default="tcp://127.0.0.1:*")
    st.add_argument("--keyfile")

    args = p.parse_args()
    # A watchdog bounds every mode even if its loop never returns.
    watchdog = threading.Timer(args.lifetime + 5, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    {
        "server": run_server,
        "client": run_client,
        "bench-sink": run_bench_sink,
        "bench-source": run_bench_source,
        "bench-hs": run_bench_hs,
        "selftest": run_selftest,
    }[args.mode](args)


if __name__ == "__main__":
    main()
