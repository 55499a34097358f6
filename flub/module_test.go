package flub

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/kvs"
)

// chain starts a kary:1 instance of three brokers (0 → 1 → 2), so that a
// request from rank 2 to rank 0 crosses two overlay links. Every broker
// gets cfg's Env, Modules, ModuleTimeout and Logger.
func chain(t *testing.T, cfg Config) []*Broker {
	t.Helper()
	cfg.Size, cfg.Topo, cfg.OwnerUserid = 3, "kary:1", new(uint32(1000))
	in := startInstance(t, cfg)
	ctx := ctxT(t, 30*time.Second)
	brokers := []*Broker{in.root}
	for i := 1; i < 3; i++ {
		jc := in.joinConfig("node")
		jc.Env, jc.Modules, jc.ModuleTimeout = cfg.Env, cfg.Modules, cfg.ModuleTimeout
		if cfg.Logger != nil {
			jc.Logger = cfg.Logger
		}
		b, err := Join(ctx, jc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if b.Rank() != uint32(i) {
			t.Fatalf("joiner %d got rank %d", i, b.Rank())
		}
		brokers = append(brokers, b)
	}
	waitFor(t, "overlay full", 20*time.Second, func() bool { return in.root.Online().Len() == 3 })
	return brokers
}

func guestOf(t *testing.T, b *Broker) *Conn {
	t.Helper()
	g, err := b.Connect(fluxkit.Cred{Userid: 4242, Roles: fluxkit.RoleUser | fluxkit.RoleLocal})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// rawRPC returns a response's payload as is.
func rawRPC(ctx context.Context, h fluxkit.Handle, topic string, nodeid uint32, payload string) ([]byte, error) {
	call, err := h.Request(ctx, fluxkit.NewRequest(topic, nodeid, []byte(payload)))
	if err != nil {
		return nil, err
	}
	defer call.Close()
	m, err := call.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return m.Payload, nil
}

// broker.getenv/setenv, attr.set, broker.ping and rank 0's KVS, reached
// across two overlay hops, with the test broker's payloads.
func TestBuiltinServices(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("FLUB_PROCESS_ENV", "from-process")
	in := startInstance(t, Config{Size: 3, Topo: "kary:1", OwnerUserid: new(uint32(1000))})
	ctx := ctxT(t, 30*time.Second)
	var brokers = []*Broker{in.root}
	for i := 1; i < 3; i++ {
		jc := in.joinConfig("node")
		jc.Env = map[string]string{"FOO": "bar", "RANK_ENV": "yes"}
		b, err := Join(ctx, jc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		brokers = append(brokers, b)
	}
	waitFor(t, "overlay full", 20*time.Second, func() bool { return in.root.Online().Len() == 3 })
	root, leaf := brokers[0], brokers[2]

	// getenv: rank 0 defaults to the process environment, joiners to
	// JoinConfig.Env; unset names are left out.
	var env struct {
		Env map[string]string `json:"env"`
	}
	if err := fluxkit.RPC(ctx, leaf, "broker.getenv", 0, map[string]any{"names": []string{"FLUB_PROCESS_ENV", "FOO"}}, &env); err != nil ||
		len(env.Env) != 1 || env.Env["FLUB_PROCESS_ENV"] != "from-process" {
		t.Fatalf("rank 0 getenv: %v %v", env.Env, err)
	}
	env.Env = nil
	if err := fluxkit.RPC(ctx, root, "broker.getenv", 2, map[string]any{"names": []string{"FOO", "NOPE", "FLUB_PROCESS_ENV"}}, &env); err != nil ||
		len(env.Env) != 1 || env.Env["FOO"] != "bar" {
		t.Fatalf("rank 2 getenv: %v %v", env.Env, err)
	}
	// setenv changes the broker's environment only, null unsets.
	if p, err := rawRPC(ctx, root, "broker.setenv", 2, `{"env":{"FOO":"baz"}}`); err != nil || len(p) != 0 {
		t.Fatalf("setenv: %q %v", p, err)
	}
	if err := fluxkit.RPC(ctx, root, "broker.setenv", 2, map[string]any{"env": map[string]any{"RANK_ENV": nil}}, nil); err != nil {
		t.Fatal(err)
	}
	env.Env = nil
	if err := fluxkit.RPC(ctx, root, "broker.getenv", 2, map[string]any{"names": []string{"FOO", "RANK_ENV"}}, &env); err != nil ||
		len(env.Env) != 1 || env.Env["FOO"] != "baz" {
		t.Fatalf("after setenv: %v %v", env.Env, err)
	}
	env.Env = nil
	if err := fluxkit.RPC(ctx, root, "broker.getenv", 1, map[string]any{"names": []string{"FOO", "RANK_ENV"}}, &env); err != nil ||
		env.Env["FOO"] != "bar" || env.Env["RANK_ENV"] != "yes" {
		t.Fatalf("rank 1 is unchanged: %v %v", env.Env, err)
	}
	err := fluxkit.RPC(ctx, root, "broker.setenv", 1, map[string]any{"env": map[string]any{"A=B": "x"}}, nil)
	wantErr(t, "setenv bad name", err, fluxkit.EPROTO, "Protocol error")
	_, err = rawRPC(ctx, root, "broker.getenv", 1, `["FOO"]`)
	wantErr(t, "getenv not an object", err, fluxkit.EPROTO, "broker.getenv")

	// attr.set: new and mutable attributes change; computed ones do not.
	if p, err := rawRPC(ctx, leaf, "attr.set", 1, `{"name":"log-level","value":"7"}`); err != nil || len(p) != 0 {
		t.Fatalf("attr.set: %q %v", p, err)
	}
	var attr struct {
		Value string `json:"value"`
	}
	if err := fluxkit.RPC(ctx, root, "attr.get", 1, map[string]string{"name": "log-level"}, &attr); err != nil || attr.Value != "7" {
		t.Fatalf("attr.get after set: %q %v", attr.Value, err)
	}
	if v, ok := brokers[1].Attr("log-level"); !ok || v != "7" {
		t.Fatalf("Attr after set: %q %v", v, ok)
	}
	for _, name := range []string{"rank", "size", "tbon.topo", "hostlist", "instance-level"} {
		err := fluxkit.RPC(ctx, root, "attr.set", 2, map[string]string{"name": name, "value": "9"}, nil)
		wantErr(t, "attr.set "+name, err, fluxkit.EPERM, "attribute "+name+" is immutable")
	}
	if v, _ := leaf.Attr("rank"); v != "2" {
		t.Fatalf("rank changed: %s", v)
	}

	// broker.ping echoes, guests included.
	guest := guestOf(t, leaf)
	if p, err := rawRPC(ctx, guest, "broker.ping", 0, `{"seq":7,"pad":"x"}`); err != nil || string(p) != `{"seq":7,"pad":"x"}` {
		t.Fatalf("ping: %s %v", p, err)
	}
	if p, err := rawRPC(ctx, guest, "broker.ping", 1, ``); err != nil || string(p) != `{}` {
		t.Fatalf("empty ping: %s %v", p, err)
	}

	// Rank 0's KVS (flux-core's protocol), from rank 2.
	var txn kvs.Txn
	txn.Put("a", []byte("1"))
	if err := kvs.Commit(ctx, leaf, "", &txn); err != nil {
		t.Fatal(err)
	}
	txn = kvs.Txn{}
	txn.Put("b", []byte("[1,2]"))
	txn.Unlink("a")
	txn.Append("c", []byte("s"))
	if err := kvs.Commit(ctx, leaf, "", &txn); err != nil {
		t.Fatal(err)
	}
	if v, err := kvs.Lookup(ctx, leaf, "", "b"); err != nil || string(v) != "[1,2]" {
		t.Fatalf("lookup b: %s %v", v, err)
	}
	_, err = kvs.Lookup(ctx, leaf, "", "a")
	wantErr(t, "unlinked key", err, fluxkit.ENOENT, "kvs lookup a: No such file or directory")
	// A commit with a bad op changes nothing.
	txn = kvs.Txn{}
	txn.Put("d", []byte("4"))
	txn.Put(".", []byte("5"))
	err = kvs.Commit(ctx, root, "", &txn)
	wantErr(t, "bad op", err, fluxkit.EINVAL, "kvs commit: .: cannot replace the root directory")
	_, err = kvs.Lookup(ctx, root, "", "d")
	wantErr(t, "commit is atomic", err, fluxkit.ENOENT, "kvs lookup d: No such file or directory")
	// Only rank 0 has a KVS.
	err = fluxkit.RPC(ctx, root, "kvs.lookup", 1, map[string]any{"key": "b", "namespace": "primary", "flags": 0}, nil)
	wantErr(t, "kvs on rank 1", err, fluxkit.ENOSYS, "kvs.lookup")

	// Built-in topics cannot be taken over by Register.
	if _, err := leaf.Register("broker.ping", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {}); fluxkit.Errno(err) != fluxkit.EEXIST {
		t.Fatalf("register over a builtin: %v", err)
	}
	if _, err := root.Register("kvs.lookup", 0, func(context.Context, fluxkit.Responder, *fluxkit.Message) {}); fluxkit.Errno(err) != fluxkit.EEXIST {
		t.Fatalf("register over kvs.lookup: %v", err)
	}
}

// Owner-only services refuse guests, wherever the guest connects; the
// guest services answer them.
func TestBuiltinRoles(t *testing.T) {
	leakcheck.Check(t)
	brokers := chain(t, Config{Env: map[string]string{"X": "1"}, Modules: map[string]ModuleFunc{"idle": idleModule(nil)}})
	ctx := ctxT(t, 30*time.Second)
	guest := guestOf(t, brokers[2])
	owner := []struct {
		topic   string
		nodeid  uint32
		payload string
	}{
		{"attr.set", 1, `{"name":"x","value":"y"}`},
		{"broker.getenv", 1, `{"names":["X"]}`},
		{"broker.setenv", 2, `{"env":{"X":"2"}}`},
		{"module.load", 1, `{"path":"idle","args":[]}`},
		{"module.remove", 2, `{"name":"idle"}`},
		{"kvs.lookup", 0, `{"key":"k","namespace":"primary","flags":0}`},
		{"kvs.commit", 0, `{"namespace":"primary","flags":0,"ops":[{"key":"k","flags":0,"dirent":{"ver":1,"type":"val","data":"MQ=="}}]}`},
	}
	for _, o := range owner {
		_, err := rawRPC(ctx, guest, o.topic, o.nodeid, o.payload)
		wantErr(t, "guest "+o.topic, err, fluxkit.EPERM, fluxkit.TextOwnerRequired)
	}
	// Nothing changed: the refused requests never reached their service.
	var mods struct {
		Mods []modEntry `json:"mods"`
	}
	for r := uint32(1); r < 3; r++ {
		if err := fluxkit.RPC(ctx, guest, "module.list", r, map[string]any{}, &mods); err != nil || len(mods.Mods) != 1 {
			t.Fatalf("guest module.list on %d: %+v %v", r, mods, err)
		}
	}
	var env struct {
		Env map[string]string `json:"env"`
	}
	if err := fluxkit.RPC(ctx, brokers[0], "broker.getenv", 2, map[string]any{"names": []string{"X"}}, &env); err != nil || env.Env["X"] != "1" {
		t.Fatalf("env changed by a guest: %v %v", env, err)
	}
	if _, ok := brokers[1].Attr("x"); ok {
		t.Fatal("attribute set by a guest")
	}
	for _, topic := range []string{"broker.ping", "attr.get"} {
		if _, err := rawRPC(ctx, guest, topic, 1, `{"name":"rank"}`); err != nil {
			t.Fatalf("guest %s: %v", topic, err)
		}
	}
}

// idleModule registers nothing, is running at once and waits for its end,
// which it reports on stopped (when not nil).
func idleModule(stopped chan<- string) ModuleFunc {
	return func(ctx context.Context, h fluxkit.Handle, args []string) error {
		SetRunning(h)
		<-ctx.Done()
		if stopped != nil {
			stopped <- "idle"
		}
		return ctx.Err()
	}
}

// echoModule serves <service>.hello with its rank, args and credentials,
// registered before it reports running.
func echoModule(service string, stopped chan<- string) ModuleFunc {
	return func(ctx context.Context, h fluxkit.Handle, args []string) error {
		un, err := h.Register(service+".hello", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			_ = fluxkit.Respond(w, map[string]any{"rank": h.Rank(), "args": args, "owner": h.Cred().IsOwner()})
		})
		if err != nil {
			return err
		}
		defer un()
		time.Sleep(20 * time.Millisecond) // a start-up that takes time: the load must wait for it
		SetRunning(h)
		<-ctx.Done()
		stopped <- service
		return ctx.Err()
	}
}

func listModules(t *testing.T, ctx context.Context, h fluxkit.Handle, rank uint32) []modEntry {
	t.Helper()
	var out struct {
		Mods []modEntry `json:"mods"`
	}
	if err := fluxkit.RPC(ctx, h, "module.list", rank, map[string]any{}, &out); err != nil {
		t.Fatalf("module.list on %d: %v", rank, err)
	}
	return out.Mods
}

func modNames(mods []modEntry) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

// module.load / module.remove / module.list on a remote rank: the load
// answers once the module is running with its services registered; the
// module runs with a handle of its own; EEXIST, ENOENT; remove cancels,
// waits and closes the module's connection.
func TestModuleLoadRemoveList(t *testing.T) {
	leakcheck.Check(t)
	stopped := make(chan string, 4)
	brokers := chain(t, Config{Modules: map[string]ModuleFunc{"echo": echoModule("echo", stopped), "sdbus": echoModule("sdbus", stopped)}})
	ctx := ctxT(t, 30*time.Second)
	root := brokers[0]

	if got := listModules(t, ctx, root, 2); !slices.Equal(modNames(got), []string{"connector-local"}) || got[0].Path != "builtin" {
		t.Fatalf("initial list: %+v", got)
	}
	start := time.Now()
	if err := fluxkit.RPC(ctx, root, "module.load", 2, map[string]any{"path": "/usr/lib/flux/modules/echo.so", "args": []string{"a", "b=1"}, "exec": false}, nil); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Fatalf("load answered after %v, before the module was running", d)
	}
	// Its service is there as soon as the load answered, from anywhere.
	var hello struct {
		Rank  uint32   `json:"rank"`
		Args  []string `json:"args"`
		Owner bool     `json:"owner"`
	}
	if err := fluxkit.RPC(ctx, guestOf(t, brokers[1]), "echo.hello", 2, map[string]any{}, &hello); err != nil ||
		hello.Rank != 2 || !slices.Equal(hello.Args, []string{"a", "b=1"}) || !hello.Owner {
		t.Fatalf("echo.hello: %+v %v", hello, err)
	}
	// sdbus-sys loads the sdbus module under another name, as flux-core's
	// modprobe.toml does.
	if err := fluxkit.RPC(ctx, root, "module.load", 2, map[string]any{"path": "sdbus", "name": "sdbus-sys", "args": []string{"system"}}, nil); err != nil {
		t.Fatal(err)
	}
	got := listModules(t, ctx, brokers[1], 2)
	want := []modEntry{{Name: "connector-local", Path: "builtin"}, {Name: "echo", Path: "/usr/lib/flux/modules/echo.so", Args: []string{"a", "b=1"}}, {Name: "sdbus-sys", Path: "sdbus", Args: []string{"system"}}}
	if len(got) != len(want) {
		t.Fatalf("list: %+v", got)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].Path != want[i].Path || !slices.Equal(got[i].Args, want[i].Args) {
			t.Fatalf("list[%d]: %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := listModules(t, ctx, root, 1); len(got) != 1 {
		t.Fatalf("rank 1 has no modules: %+v", got)
	}

	err := fluxkit.RPC(ctx, root, "module.load", 2, map[string]any{"path": "echo", "args": []string{}}, nil)
	wantErr(t, "second load", err, fluxkit.EEXIST, "module echo is already loaded")
	err = fluxkit.RPC(ctx, root, "module.load", 2, map[string]any{"path": "/lib/frobnicate.so", "args": []string{}}, nil)
	wantErr(t, "unknown module", err, fluxkit.ENOENT, "module frobnicate: no such module on rank 2")
	err = fluxkit.RPC(ctx, root, "module.load", 2, map[string]any{"args": []string{}}, nil)
	wantErr(t, "no path", err, fluxkit.EINVAL, "missing module path")
	_, err = rawRPC(ctx, root, "module.load", 2, `{"path":`)
	wantErr(t, "malformed load", err, fluxkit.EPROTO, "module.load")

	// remove: cancelled, waited for, connection closed (its service is
	// gone by the time the answer arrives).
	if p, err := rawRPC(ctx, root, "module.remove", 2, `{"name":"echo"}`); err != nil || len(p) != 0 {
		t.Fatalf("remove: %q %v", p, err)
	}
	select {
	case s := <-stopped:
		if s != "echo" {
			t.Fatalf("stopped %s", s)
		}
	default:
		t.Fatal("remove answered before the module returned")
	}
	err = fluxkit.RPC(ctx, root, "echo.hello", 2, map[string]any{}, nil)
	wantErr(t, "removed module's service", err, fluxkit.ENOSYS, "echo.hello")
	err = fluxkit.RPC(ctx, root, "module.remove", 2, map[string]any{"name": "echo"}, nil)
	wantErr(t, "second remove", err, fluxkit.ENOENT, "module echo is not loaded")
	if got := listModules(t, ctx, root, 2); !slices.Equal(modNames(got), []string{"connector-local", "sdbus-sys"}) {
		t.Fatalf("list after remove: %+v", got)
	}
	// It loads again once removed.
	if err := fluxkit.RPC(ctx, root, "module.load", 2, map[string]any{"path": "echo", "args": []string{}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := fluxkit.RPC(ctx, root, "echo.hello", 2, map[string]any{}, &hello); err != nil || len(hello.Args) != 0 {
		t.Fatalf("reloaded: %+v %v", hello, err)
	}
}

// A module that fails, exits or panics before it is running fails its
// load with a text naming it; one that takes too long is cancelled; one
// that fails later is logged and dropped from module.list.
func TestModuleFailures(t *testing.T) {
	leakcheck.Check(t)
	logger, logs := newLogRecorder()
	failNow := make(chan struct{})
	cancelled := make(chan struct{}, 1)
	mods := map[string]ModuleFunc{
		"boom": func(context.Context, fluxkit.Handle, []string) error {
			return fluxkit.Errorf(fluxkit.EBUSY, "cannot reach the database")
		},
		"quitter": func(context.Context, fluxkit.Handle, []string) error { return nil },
		"panicky": func(context.Context, fluxkit.Handle, []string) error { panic("oops") },
		"slow": func(ctx context.Context, _ fluxkit.Handle, _ []string) error {
			<-ctx.Done()
			cancelled <- struct{}{}
			return ctx.Err()
		},
		"flaky": func(ctx context.Context, h fluxkit.Handle, _ []string) error {
			SetRunning(h)
			select {
			case <-failNow:
				return errors.New("flaky lost its backing store")
			case <-ctx.Done():
				return ctx.Err()
			}
		},
	}
	brokers := chain(t, Config{Modules: mods, ModuleTimeout: 300 * time.Millisecond, Logger: logger})
	ctx := ctxT(t, 30*time.Second)
	root := brokers[0]
	load := func(name string) error {
		return fluxkit.RPC(ctx, root, "module.load", 1, map[string]any{"path": name, "args": []string{}}, nil)
	}
	wantErr(t, "boom", load("boom"), fluxkit.EBUSY, "module boom: cannot reach the database")
	wantErr(t, "quitter", load("quitter"), fluxkit.EINVAL, "module quitter exited before it was running")
	wantErr(t, "panicky", load("panicky"), fluxkit.EINVAL, "module panicky panicked: oops")
	wantErr(t, "slow", load("slow"), fluxkit.ETIMEDOUT, "module slow was not running after 300ms")
	select {
	case <-cancelled:
	default:
		t.Fatal("the slow module was not cancelled before its load failed")
	}
	if got := listModules(t, ctx, root, 1); len(got) != 1 {
		t.Fatalf("failed loads are not listed: %+v", got)
	}
	// A failed load leaves no trace: the name loads again (and fails again).
	wantErr(t, "boom again", load("boom"), fluxkit.EBUSY, "cannot reach the database")

	if err := load("flaky"); err != nil {
		t.Fatal(err)
	}
	if got := modNames(listModules(t, ctx, root, 1)); !slices.Contains(got, "flaky") {
		t.Fatalf("flaky not listed: %v", got)
	}
	close(failNow)
	waitFor(t, "flaky dropped", 10*time.Second, func() bool {
		return !slices.Contains(modNames(listModules(t, ctx, root, 1)), "flaky")
	})
	if !slices.ContainsFunc(logs(), func(s string) bool { return s == "module failed" }) {
		t.Fatalf("flaky's failure was not logged: %q", logs())
	}
	err := fluxkit.RPC(ctx, root, "module.remove", 1, map[string]any{"name": "flaky"}, nil)
	wantErr(t, "remove failed module", err, fluxkit.ENOENT, "module flaky is not loaded")
}

// Close removes every module, waiting for each to return, on every rank;
// nothing is left running.
func TestModulesRemovedOnClose(t *testing.T) {
	leakcheck.Check(t)
	var running atomic.Int32
	var stoppedAfterClose atomic.Bool
	var farewells atomic.Int32
	mod := func(ctx context.Context, h fluxkit.Handle, _ []string) error {
		running.Add(1)
		defer running.Add(-1)
		SetRunning(h)
		<-ctx.Done()
		// Work after cancellation that Close must wait for, and a last
		// request that needs the broker still routing: modules stop
		// before the broker does.
		time.Sleep(30 * time.Millisecond)
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := fluxkit.RPC(fctx, h, "broker.ping", h.Rank(), map[string]any{}, nil); err == nil {
			farewells.Add(1)
		}
		stoppedAfterClose.Store(true)
		return nil
	}
	brokers := chain(t, Config{Modules: map[string]ModuleFunc{"a": mod, "b": mod}})
	ctx := ctxT(t, 30*time.Second)
	for r := range brokers {
		for _, name := range []string{"a", "b"} {
			if err := fluxkit.RPC(ctx, brokers[0], "module.load", uint32(r), map[string]any{"path": name, "args": []string{}}, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := running.Load(); n != 6 {
		t.Fatalf("%d modules running, want 6", n)
	}
	for r := len(brokers) - 1; r >= 0; r-- {
		if err := brokers[r].Close(); err != nil {
			t.Fatal(err)
		}
		if n := running.Load(); n != int32(2*r) {
			t.Fatalf("after closing rank %d: %d modules still running", r, n)
		}
	}
	if !stoppedAfterClose.Load() {
		t.Fatal("modules never stopped")
	}
	if n := farewells.Load(); n != 6 {
		t.Fatalf("%d of 6 modules could still talk to their broker while stopping", n)
	}
	// A closed broker loads nothing.
	if err := fluxkit.RPC(ctx, brokers[0], "module.load", 0, map[string]any{"path": "a"}, nil); err == nil {
		t.Fatal("load on a closed broker succeeded")
	}
}

// Bad module configuration is refused with the field at fault.
func TestModuleConfigErrors(t *testing.T) {
	_, err := Start(context.Background(), Config{Owner: mustKey(t), Modules: map[string]ModuleFunc{"nil": nil}, Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), `Config.Modules: module "nil" needs a name and a function`) {
		t.Fatalf("nil module: %v", err)
	}
	_, err = Start(context.Background(), Config{Owner: mustKey(t), ModuleTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "Config.ModuleTimeout: negative duration") {
		t.Fatalf("negative timeout: %v", err)
	}
	_, err = Join(context.Background(), JoinConfig{BootURI: FormatBootURI("127.0.0.1:1", mustKey(t)), Owner: mustKeyPair(t), ModuleTimeout: -1})
	if err == nil || !strings.Contains(err.Error(), "JoinConfig.ModuleTimeout: negative duration") {
		t.Fatalf("join negative timeout: %v", err)
	}
}

func mustKeyPair(t *testing.T) curve.KeyPair {
	t.Helper()
	k, err := curve.GenerateKeyPair(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKey(t *testing.T) curve.Key { return mustKeyPair(t).Public }

// A broker that stops on its own (here: DISCONNECT from its parent)
// cancels its modules; Shutdown stops modules before saying goodbye, while
// they can still reach rank 0. (A broker that merely loses its parent
// does not stop: it reconnects or rejoins.)
func TestModulesStopWithTheirBroker(t *testing.T) {
	leakcheck.Check(t)
	stopped := make(chan string, 2)
	var lastWords atomic.Int32
	farewell := func(ctx context.Context, h fluxkit.Handle, _ []string) error {
		SetRunning(h)
		<-ctx.Done()
		fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var txn kvs.Txn
		_ = txn.PutJSON("bye", h.Rank())
		if err := kvs.Commit(fctx, h, "", &txn); err == nil {
			lastWords.Add(1)
		}
		return nil
	}
	brokers := chain(t, Config{Modules: map[string]ModuleFunc{"echo": echoModule("echo", stopped), "farewell": farewell}})
	ctx := ctxT(t, 30*time.Second)
	for _, name := range []string{"echo", "farewell"} {
		if err := fluxkit.RPC(ctx, brokers[0], "module.load", 2, map[string]any{"path": name}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := fluxkit.RPC(ctx, brokers[0], "module.load", 1, map[string]any{"path": "farewell"}, nil); err != nil {
		t.Fatal(err)
	}
	// Rank 2 is disconnected by its parent and stops on its own: its
	// modules end with it.
	if err := brokers[1].Disconnect(ctx, 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-brokers[2].Done():
	case <-ctx.Done():
		t.Fatal("rank 2 did not stop when its parent disconnected it")
	}
	select {
	case s := <-stopped:
		if s != "echo" {
			t.Fatalf("stopped %s", s)
		}
	case <-ctx.Done():
		t.Fatal("rank 2's module was not cancelled when its broker stopped")
	}
	// Rank 1 leaves cleanly: its module still reaches rank 0's KVS.
	if err := brokers[1].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := kvs.LookupJSON(ctx, brokers[0], "", "bye", &v); err != nil || v != 1 || lastWords.Load() != 1 {
		t.Fatalf("rank 1's module's last words: %+v %v (%d)", v, err, lastWords.Load())
	}
	if err := brokers[2].Close(); err != nil {
		t.Fatal(err)
	}
}
