package kvs_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/internal/realflux"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testbroker/brokertest"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/fluxkit/fluxkit/kvs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// step is one action of a KVS script and what it observed: a value, a
// directory listing, or an errno.
type step struct {
	name string
	run  func(ctx context.Context, h fluxkit.Handle) (string, error)
}

func put(key, val string) step {
	return step{"put " + key, func(ctx context.Context, h fluxkit.Handle) (string, error) {
		var t kvs.Txn
		t.Put(key, []byte(val))
		return "", kvs.Commit(ctx, h, "", &t)
	}}
}

func txn(name string, build func(*kvs.Txn)) step {
	return step{name, func(ctx context.Context, h fluxkit.Handle) (string, error) {
		var t kvs.Txn
		build(&t)
		return "", kvs.Commit(ctx, h, "", &t)
	}}
}

func get(key string) step {
	return getNS("", key)
}

func getNS(ns, key string) step {
	return step{"get " + ns + ":" + key, func(ctx context.Context, h fluxkit.Handle) (string, error) {
		b, err := kvs.Lookup(ctx, h, ns, key)
		return string(b), err
	}}
}

func readdir(key string) step {
	return step{"readdir " + key, func(ctx context.Context, h fluxkit.Handle) (string, error) {
		m, err := kvs.LookupDir(ctx, h, "", key)
		return fmt.Sprint(slices.Sorted(maps.Keys(m))), err
	}}
}

func readlink(key string) step {
	return step{"readlink " + key, func(ctx context.Context, h fluxkit.Handle) (string, error) {
		t, err := kvs.LookupTreeobj(ctx, h, "", key, kvs.FlagReadLink)
		return t.Type + " " + string(t.Data), err
	}}
}

// script exercises what fluxkit's components rely on, and the corners where
// a fake KVS could drift from flux-core's.
var script = []step{
	put("test.a.b", `{"x":1}`),
	get("test.a.b"),
	get("test.a"),
	readdir("test.a"),
	readdir("test.a.b"),
	get("..test...a.b."),
	txn("append twice", func(t *kvs.Txn) {
		t.Append("test.log", []byte("one\n"))
		t.Append("test.log", []byte("two\n"))
	}),
	txn("append again", func(t *kvs.Txn) { t.Append("test.log", []byte("three\n")) }),
	get("test.log"),
	put("test.a.b.c", `1`),
	get("test.a.b.c"),
	readdir("test.a"),
	txn("unlink", func(t *kvs.Txn) { t.Unlink("test.a.b") }),
	get("test.a.b"),
	txn("unlink missing", func(t *kvs.Txn) { t.Unlink("test.nope.nope") }),
	txn("symlink", func(t *kvs.Txn) {
		t.Put("test.target.x", []byte("via link"))
		t.Symlink("test.s", "test.target")
	}),
	get("test.s.x"),
	readlink("test.s"),
	txn("atomic: a failing op undoes the earlier ones", func(t *kvs.Txn) {
		t.Put("test.atomic", []byte("no"))
		t.Mkdir("test.dir")
		t.Append("test.dir", []byte("x"))
	}),
	get("test.atomic"),
	txn("mkdir", func(t *kvs.Txn) { t.Mkdir("test.empty") }),
	readdir("test.empty"),
	get("test.missing"),
	getNS("no-such-namespace", "x"),
	txn("replace root", func(t *kvs.Txn) { t.Put(".", []byte("x")) }),
	put("test.bin", "\x00\xff\xfeinvalid utf-8"),
	get("test.bin"),
}

func runScript(t *testing.T, h fluxkit.Handle) []string {
	ctx := testutil.Context(t)
	var out []string
	for _, s := range script {
		v, err := s.run(ctx, h)
		var fe *fluxkit.Error
		switch {
		case errors.As(err, &fe):
			out = append(out, fmt.Sprintf("%s: errno %d", s.name, fe.Errnum))
		case err != nil:
			var en syscall.Errno
			if errors.As(err, &en) {
				out = append(out, fmt.Sprintf("%s: errno %d", s.name, en))
			} else {
				out = append(out, fmt.Sprintf("%s: %v", s.name, err))
			}
		default:
			out = append(out, fmt.Sprintf("%s: %q", s.name, v))
		}
	}
	return out
}

// The in-memory store answers the script as flux-core's KVS does, step for
// step, value for value, errno for errno. Without flux-core the store's
// answers are checked against the recorded ones below.
func TestStoreMatchesFluxCore(t *testing.T) {
	b := brokertest.New(t, testbroker.Config{Size: 2})
	got := runScript(t, b.Owner(1))
	if realflux.Flux() != "" {
		in := realflux.Start(t, realflux.Options{Size: 1})
		h, err := connect.Open(testutil.Context(t), in.URIs[0])
		require.NoError(t, err)
		defer h.Close()
		assert.Equal(t, runScript(t, h), got)
	}
	assert.Equal(t, fluxCoreAnswers, got)
}

// fluxCoreAnswers are flux-core v0.88.0's answers to script.
var fluxCoreAnswers = []string{
	"put test.a.b: \"\"",
	"get :test.a.b: \"{\\\"x\\\":1}\"",
	"get :test.a: errno 21",
	"readdir test.a: \"[b]\"",
	"readdir test.a.b: errno 20",
	"get :..test...a.b.: \"{\\\"x\\\":1}\"",
	"append twice: \"\"",
	"append again: \"\"",
	"get :test.log: \"one\\ntwo\\nthree\\n\"",
	"put test.a.b.c: \"\"",
	"get :test.a.b.c: \"1\"",
	"readdir test.a: \"[b]\"",
	"unlink: \"\"",
	"get :test.a.b: errno 2",
	"unlink missing: \"\"",
	"symlink: \"\"",
	"get :test.s.x: \"via link\"",
	"readlink test.s: \"symlink {\\\"target\\\":\\\"test.target\\\"}\"",
	"atomic: a failing op undoes the earlier ones: errno 21",
	"get :test.atomic: errno 2",
	"mkdir: \"\"",
	"readdir test.empty: \"[]\"",
	"get :test.missing: errno 2",
	"get no-such-namespace:x: errno 95",
	"replace root: errno 22",
	"put test.bin: \"\"",
	"get :test.bin: \"\\x00\\xff\\xfeinvalid utf-8\"",
}
