package flub

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/fluxkit/fluxkit/kvs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chain starts a kary:1 instance of three brokers (0 → 1 → 2), so that a
// request from rank 2 to rank 0 crosses two overlay links. Every broker
// gets cfg's Env, Modules, ModuleTimeout and Logger.
func chain(t *testing.T, cfg Config) []*Broker {
	t.Helper()
	cfg.Size, cfg.Topo, cfg.OwnerUserid = 3, "kary:1", new(uint32(1000))
	in := startInstance(t, cfg)
	ctx := testutil.Context(t)
	brokers := []*Broker{in.root}
	for i := 1; i < 3; i++ {
		jc := in.joinConfig("node")
		jc.Env, jc.Modules, jc.ModuleTimeout = cfg.Env, cfg.Modules, cfg.ModuleTimeout
		if cfg.Logger != nil {
			jc.Logger = cfg.Logger
		}
		b, err := Join(ctx, jc)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		require.Equal(t, uint32(i), b.Rank())
		brokers = append(brokers, b)
	}
	testutil.WaitFor(t, "overlay full", func() bool { return in.root.Online().Len() == 3 })
	return brokers
}

func guestOf(t *testing.T, b *Broker) *Conn {
	t.Helper()
	g, err := b.Connect(fluxkit.Cred{Userid: 4242, Roles: fluxkit.RoleUser | fluxkit.RoleLocal})
	require.NoError(t, err)
	t.Cleanup(func() { g.Close() })
	return g
}

// requireEmptyAnswer sends payload as is and checks the answer is empty.
func requireEmptyAnswer(t *testing.T, ctx context.Context, h fluxkit.Handle, topic string, nodeid uint32, payload string) {
	t.Helper()
	p, err := testutil.RawRPC(ctx, h, topic, nodeid, payload)
	require.NoError(t, err, topic)
	require.Empty(t, p, topic)
}

// broker.getenv/setenv, attr.set, broker.ping and rank 0's KVS, reached
// across two overlay hops, with the test broker's payloads.
func TestBuiltinServices(t *testing.T) {
	leakcheck.Check(t)
	t.Setenv("FLUB_PROCESS_ENV", "from-process")
	in := startInstance(t, Config{Size: 3, Topo: "kary:1", OwnerUserid: new(uint32(1000))})
	ctx := testutil.Context(t)
	var brokers = []*Broker{in.root}
	for i := 1; i < 3; i++ {
		jc := in.joinConfig("node")
		jc.Env = map[string]string{"FOO": "bar", "RANK_ENV": "yes"}
		b, err := Join(ctx, jc)
		require.NoError(t, err)
		t.Cleanup(func() { b.Close() })
		brokers = append(brokers, b)
	}
	testutil.WaitFor(t, "overlay full", func() bool { return in.root.Online().Len() == 3 })
	root, leaf := brokers[0], brokers[2]

	// getenv: rank 0 defaults to the process environment, joiners to
	// JoinConfig.Env; unset names are left out.
	getenv := func(h fluxkit.Handle, nodeid uint32, names ...string) map[string]string {
		t.Helper()
		var env struct {
			Env map[string]string `json:"env"`
		}
		require.NoError(t, fluxkit.RPC(ctx, h, "broker.getenv", nodeid, map[string]any{"names": names}, &env))
		return env.Env
	}
	assert.Equal(t, map[string]string{"FLUB_PROCESS_ENV": "from-process"}, getenv(leaf, 0, "FLUB_PROCESS_ENV", "FOO"))
	assert.Equal(t, map[string]string{"FOO": "bar"}, getenv(root, 2, "FOO", "NOPE", "FLUB_PROCESS_ENV"))
	// setenv changes the broker's environment only, null unsets.
	requireEmptyAnswer(t, ctx, root, "broker.setenv", 2, `{"env":{"FOO":"baz"}}`)
	require.NoError(t, fluxkit.RPC(ctx, root, "broker.setenv", 2, map[string]any{"env": map[string]any{"RANK_ENV": nil}}, nil))
	assert.Equal(t, map[string]string{"FOO": "baz"}, getenv(root, 2, "FOO", "RANK_ENV"))
	assert.Equal(t, map[string]string{"FOO": "bar", "RANK_ENV": "yes"}, getenv(root, 1, "FOO", "RANK_ENV"), "rank 1 is unchanged")
	err := fluxkit.RPC(ctx, root, "broker.setenv", 1, map[string]any{"env": map[string]any{"A=B": "x"}}, nil)
	requireError(t, err, fluxkit.EPROTO, "Protocol error", "setenv bad name")
	_, err = testutil.RawRPC(ctx, root, "broker.getenv", 1, `["FOO"]`)
	requireError(t, err, fluxkit.EPROTO, "broker.getenv", "getenv not an object")

	// attr.set: new and mutable attributes change; computed ones do not.
	requireEmptyAnswer(t, ctx, leaf, "attr.set", 1, `{"name":"log-level","value":"7"}`)
	var attr struct {
		Value string `json:"value"`
	}
	require.NoError(t, fluxkit.RPC(ctx, root, "attr.get", 1, map[string]string{"name": "log-level"}, &attr))
	assert.Equal(t, "7", attr.Value)
	v, ok := brokers[1].Attr("log-level")
	assert.True(t, ok)
	assert.Equal(t, "7", v)
	for _, name := range []string{"rank", "size", "tbon.topo", "hostlist", "instance-level"} {
		err := fluxkit.RPC(ctx, root, "attr.set", 2, map[string]string{"name": name, "value": "9"}, nil)
		requireError(t, err, fluxkit.EPERM, "attribute "+name+" is immutable", "attr.set "+name)
	}
	v, _ = leaf.Attr("rank")
	assert.Equal(t, "2", v)

	// broker.ping echoes, guests included.
	guest := guestOf(t, leaf)
	p, err := testutil.RawRPC(ctx, guest, "broker.ping", 0, `{"seq":7,"pad":"x"}`)
	require.NoError(t, err)
	assert.Equal(t, `{"seq":7,"pad":"x"}`, string(p))
	p, err = testutil.RawRPC(ctx, guest, "broker.ping", 1, ``)
	require.NoError(t, err)
	assert.Equal(t, `{}`, string(p), "an empty ping")

	// Rank 0's KVS (flux-core's protocol), from rank 2.
	var txn kvs.Txn
	txn.Put("a", []byte("1"))
	require.NoError(t, kvs.Commit(ctx, leaf, "", &txn))
	txn = kvs.Txn{}
	txn.Put("b", []byte("[1,2]"))
	txn.Unlink("a")
	txn.Append("c", []byte("s"))
	require.NoError(t, kvs.Commit(ctx, leaf, "", &txn))
	val, err := kvs.Lookup(ctx, leaf, "", "b")
	require.NoError(t, err)
	assert.Equal(t, "[1,2]", string(val))
	_, err = kvs.Lookup(ctx, leaf, "", "a")
	requireError(t, err, fluxkit.ENOENT, "kvs lookup a: No such file or directory", "unlinked key")
	// A commit with a bad op changes nothing.
	txn = kvs.Txn{}
	txn.Put("d", []byte("4"))
	txn.Put(".", []byte("5"))
	err = kvs.Commit(ctx, root, "", &txn)
	requireError(t, err, fluxkit.EINVAL, "kvs commit: .: cannot replace the root directory", "bad op")
	_, err = kvs.Lookup(ctx, root, "", "d")
	requireError(t, err, fluxkit.ENOENT, "kvs lookup d: No such file or directory", "commit is atomic")
	// Only rank 0 has a KVS.
	err = fluxkit.RPC(ctx, root, "kvs.lookup", 1, map[string]any{"key": "b", "namespace": "primary", "flags": 0}, nil)
	requireError(t, err, fluxkit.ENOSYS, "kvs.lookup", "kvs on rank 1")

	// Built-in topics cannot be taken over by Register.
	nop := func(context.Context, fluxkit.Responder, *fluxkit.Message) {}
	_, err = leaf.Register("broker.ping", 0, nop)
	assert.ErrorIs(t, err, fluxkit.EEXIST, "register over a builtin")
	_, err = root.Register("kvs.lookup", 0, nop)
	assert.ErrorIs(t, err, fluxkit.EEXIST, "register over kvs.lookup")
}

// Owner-only services refuse guests, wherever the guest connects; the
// guest services answer them.
func TestBuiltinRoles(t *testing.T) {
	leakcheck.Check(t)
	brokers := chain(t, Config{Env: map[string]string{"X": "1"}, Modules: map[string]ModuleFunc{"idle": idleModule(nil)}})
	ctx := testutil.Context(t)
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
		_, err := testutil.RawRPC(ctx, guest, o.topic, o.nodeid, o.payload)
		requireError(t, err, fluxkit.EPERM, fluxkit.TextOwnerRequired, "guest "+o.topic)
	}
	// Nothing changed: the refused requests never reached their service.
	for r := uint32(1); r < 3; r++ {
		assert.Len(t, listModules(t, ctx, guest, r), 1, "guest module.list on %d", r)
	}
	var env struct {
		Env map[string]string `json:"env"`
	}
	require.NoError(t, fluxkit.RPC(ctx, brokers[0], "broker.getenv", 2, map[string]any{"names": []string{"X"}}, &env))
	assert.Equal(t, "1", env.Env["X"], "env changed by a guest")
	_, ok := brokers[1].Attr("x")
	assert.False(t, ok, "attribute set by a guest")
	for _, topic := range []string{"broker.ping", "attr.get"} {
		_, err := testutil.RawRPC(ctx, guest, topic, 1, `{"name":"rank"}`)
		assert.NoError(t, err, "guest %s", topic)
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
	require.NoError(t, fluxkit.RPC(ctx, h, "module.list", rank, map[string]any{}, &out), "module.list on %d", rank)
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
	ctx := testutil.Context(t)
	root := brokers[0]
	load := func(nodeid uint32, req map[string]any) error {
		return fluxkit.RPC(ctx, root, "module.load", nodeid, req, nil)
	}

	assert.Equal(t, []modEntry{builtinModule}, listModules(t, ctx, root, 2), "initial list")
	start := time.Now()
	require.NoError(t, load(2, map[string]any{"path": "/usr/lib/flux/modules/echo.so", "args": []string{"a", "b=1"}, "exec": false}))
	require.GreaterOrEqual(t, time.Since(start), 20*time.Millisecond, "load answered before the module was running")
	// Its service is there as soon as the load answered, from anywhere.
	var hello struct {
		Rank  uint32   `json:"rank"`
		Args  []string `json:"args"`
		Owner bool     `json:"owner"`
	}
	require.NoError(t, fluxkit.RPC(ctx, guestOf(t, brokers[1]), "echo.hello", 2, map[string]any{}, &hello))
	assert.Equal(t, uint32(2), hello.Rank)
	assert.Equal(t, []string{"a", "b=1"}, hello.Args)
	assert.True(t, hello.Owner)
	// sdbus-sys loads the sdbus module under another name, as flux-core's
	// modprobe.toml does.
	require.NoError(t, load(2, map[string]any{"path": "sdbus", "name": "sdbus-sys", "args": []string{"system"}}))
	assert.Equal(t, []modEntry{builtinModule, {Name: "echo", Path: "/usr/lib/flux/modules/echo.so", Args: []string{"a", "b=1"}}, {Name: "sdbus-sys", Path: "sdbus", Args: []string{"system"}}},
		listModules(t, ctx, brokers[1], 2))
	assert.Len(t, listModules(t, ctx, root, 1), 1, "rank 1 has no modules")

	requireError(t, load(2, map[string]any{"path": "echo", "args": []string{}}), fluxkit.EEXIST, "module echo is already loaded")
	requireError(t, load(2, map[string]any{"path": "/lib/frobnicate.so", "args": []string{}}), fluxkit.ENOENT, "module frobnicate: no such module on rank 2")
	requireError(t, load(2, map[string]any{"args": []string{}}), fluxkit.EINVAL, "missing module path")
	_, err := testutil.RawRPC(ctx, root, "module.load", 2, `{"path":`)
	requireError(t, err, fluxkit.EPROTO, "module.load", "malformed load")

	// remove: cancelled, waited for, connection closed (its service is
	// gone by the time the answer arrives).
	requireEmptyAnswer(t, ctx, root, "module.remove", 2, `{"name":"echo"}`)
	select {
	case s := <-stopped:
		assert.Equal(t, "echo", s)
	default:
		require.FailNow(t, "remove answered before the module returned")
	}
	err = fluxkit.RPC(ctx, root, "echo.hello", 2, map[string]any{}, nil)
	requireError(t, err, fluxkit.ENOSYS, "echo.hello", "removed module's service")
	err = fluxkit.RPC(ctx, root, "module.remove", 2, map[string]any{"name": "echo"}, nil)
	requireError(t, err, fluxkit.ENOENT, "module echo is not loaded", "second remove")
	assert.Equal(t, []string{"connector-local", "sdbus-sys"}, modNames(listModules(t, ctx, root, 2)), "list after remove")
	// It loads again once removed.
	require.NoError(t, load(2, map[string]any{"path": "echo", "args": []string{}}))
	require.NoError(t, fluxkit.RPC(ctx, root, "echo.hello", 2, map[string]any{}, &hello))
	assert.Empty(t, hello.Args, "reloaded")
}

// A module that fails, exits or panics before it is running fails its
// load with a text naming it; one that takes too long is cancelled; one
// that fails later is logged and dropped from module.list.
func TestModuleFailures(t *testing.T) {
	leakcheck.Check(t)
	logger, logs := testutil.Logger()
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
	ctx := testutil.Context(t)
	root := brokers[0]
	load := func(name string) error {
		return fluxkit.RPC(ctx, root, "module.load", 1, map[string]any{"path": name, "args": []string{}}, nil)
	}
	requireError(t, load("boom"), fluxkit.EBUSY, "module boom: cannot reach the database")
	requireError(t, load("quitter"), fluxkit.EINVAL, "module quitter exited before it was running")
	requireError(t, load("panicky"), fluxkit.EINVAL, "module panicky panicked: oops")
	requireError(t, load("slow"), fluxkit.ETIMEDOUT, "module slow was not running after 300ms")
	select {
	case <-cancelled:
	default:
		require.FailNow(t, "the slow module was not cancelled before its load failed")
	}
	assert.Len(t, listModules(t, ctx, root, 1), 1, "failed loads are not listed")
	// A failed load leaves no trace: the name loads again (and fails again).
	requireError(t, load("boom"), fluxkit.EBUSY, "cannot reach the database", "boom again")

	require.NoError(t, load("flaky"))
	assert.Contains(t, modNames(listModules(t, ctx, root, 1)), "flaky")
	close(failNow)
	testutil.WaitFor(t, "flaky dropped", func() bool {
		return !slices.Contains(modNames(listModules(t, ctx, root, 1)), "flaky")
	})
	assert.Equal(t, 1, logged(logs, "module failed"), "flaky's failure:\n%s", logs)
	err := fluxkit.RPC(ctx, root, "module.remove", 1, map[string]any{"name": "flaky"}, nil)
	requireError(t, err, fluxkit.ENOENT, "module flaky is not loaded", "remove failed module")
}

// Close removes every module, waiting for each to return, on every rank;
// nothing is left running.
func TestModulesRemovedOnClose(t *testing.T) {
	leakcheck.Check(t)
	var running, farewells atomic.Int32
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
		return nil
	}
	brokers := chain(t, Config{Modules: map[string]ModuleFunc{"a": mod, "b": mod}})
	ctx := testutil.Context(t)
	for r := range brokers {
		for _, name := range []string{"a", "b"} {
			require.NoError(t, fluxkit.RPC(ctx, brokers[0], "module.load", uint32(r), map[string]any{"path": name, "args": []string{}}, nil))
		}
	}
	require.Equal(t, int32(6), running.Load(), "modules running")
	for r := len(brokers) - 1; r >= 0; r-- {
		require.NoError(t, brokers[r].Close())
		require.Equal(t, int32(2*r), running.Load(), "modules still running after closing rank %d", r)
	}
	assert.Equal(t, int32(6), farewells.Load(), "modules that could still talk to their broker while stopping")
	err := fluxkit.RPC(ctx, brokers[0], "module.load", 0, map[string]any{"path": "a"}, nil)
	assert.Error(t, err, "a load on a closed broker")
}

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
	ctx := testutil.Context(t)
	for _, name := range []string{"echo", "farewell"} {
		require.NoError(t, fluxkit.RPC(ctx, brokers[0], "module.load", 2, map[string]any{"path": name}, nil))
	}
	require.NoError(t, fluxkit.RPC(ctx, brokers[0], "module.load", 1, map[string]any{"path": "farewell"}, nil))
	// Rank 2 is disconnected by its parent and stops on its own: its
	// modules end with it.
	require.NoError(t, brokers[1].Disconnect(ctx, 2))
	select {
	case <-brokers[2].Done():
	case <-ctx.Done():
		require.FailNow(t, "rank 2 did not stop when its parent disconnected it")
	}
	select {
	case s := <-stopped:
		assert.Equal(t, "echo", s)
	case <-ctx.Done():
		require.FailNow(t, "rank 2's module was not cancelled when its broker stopped")
	}
	// Rank 1 leaves cleanly: its module still reaches rank 0's KVS.
	require.NoError(t, brokers[1].Shutdown(ctx))
	var v int
	require.NoError(t, kvs.LookupJSON(ctx, brokers[0], "", "bye", &v))
	assert.Equal(t, 1, v, "rank 1's module's last words")
	assert.Equal(t, int32(1), lastWords.Load())
	require.NoError(t, brokers[2].Close())
}
