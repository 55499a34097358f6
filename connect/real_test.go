package connect_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/internal/handletest"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/fluxkit/fluxkit/internal/realflux"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/require"
)

// realInstance serves the Handle conformance suite from a real flux-core
// instance: owners connect as the test's user (the instance owner), guests
// as the owner stamping a guest's credentials on every message, which the
// local connector honours from the owner only.
type realInstance struct{ in *realflux.Instance }

func (r realInstance) Size() int { return len(r.in.URIs) }

func (r realInstance) Owner(t *testing.T, rank uint32) fluxkit.Handle {
	return openReal(t, connect.Config{URI: r.in.URIs[rank]})
}

func (r realInstance) Guest(t *testing.T, rank uint32, userid uint32) fluxkit.Handle {
	return openReal(t, connect.Config{URI: r.in.URIs[rank], Userid: new(userid), Rolemask: fluxkit.RoleUser})
}

func TestConformanceOnRealBroker(t *testing.T) {
	in := realflux.Start(t, realflux.Options{Size: 3})
	handletest.Run(t, func(t *testing.T) handletest.Instance { return realInstance{in} })
}

// openReal connects with cfg for the rest of the test.
func openReal(t *testing.T, cfg connect.Config) *connect.Handle {
	t.Helper()
	h, err := connect.New(testutil.Context(t), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

// A real two-broker instance, driven the way Go Flux tooling would drive
// it: pings, a service that flux-core's Python bindings call, events in
// both directions with flux event pub/sub, and the job manager's journal.
func TestRealInstance(t *testing.T) {
	in := realflux.Start(t, realflux.Options{Size: 2})
	ctx := testutil.ContextTimeout(t, 60*time.Second)
	h0, h1 := openReal(t, connect.Config{URI: in.URIs[0]}), openReal(t, connect.Config{URI: in.URIs[1]})

	t.Run("IdentityAndPing", func(t *testing.T) {
		for r, h := range []*connect.Handle{h0, h1} {
			require.Equal(t, uint32(r), h.Rank())
			require.Equal(t, uint32(2), h.Size())
			require.True(t, h.Cred().IsOwner(), "the test's user owns the instance")
			require.Equal(t, uint32(os.Getuid()), h.Cred().Userid)
			for dst := uint32(0); dst < 2; dst++ {
				var pong struct {
					Rank uint32 `json:"rank"`
					Seq  int    `json:"seq"`
				}
				require.NoError(t, fluxkit.RPC(ctx, h, "broker.ping", dst, map[string]any{"seq": 7, "pad": ""}, &pong))
				require.Equal(t, dst, pong.Rank)
				require.Equal(t, 7, pong.Seq)
			}
		}
	})

	t.Run("ServiceCalledFromPython", func(t *testing.T) {
		unreg, err := h1.Register("gotest.greet", fluxkit.RoleUser, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
			var in struct {
				Name string `json:"name"`
			}
			if !fluxkit.DecodeRequest(w, req, &in) {
				return
			}
			_ = fluxkit.Respond(w, map[string]string{"greeting": "hello " + in.Name})
		})
		require.NoError(t, err)
		defer unreg()
		out, err := in.Run(ctx, "python", "-c",
			`import flux; print(flux.Flux().rpc("gotest.greet", {"name": "flux"}, nodeid=1).get()["greeting"])`)
		require.NoError(t, err)
		require.Equal(t, "hello flux\n", out)
		_, err = in.Run(ctx, "python", "-c", `import flux; flux.Flux().rpc("gotest.nomethod", {}, nodeid=1).get()`)
		require.ErrorContains(t, err, "Unknown service method 'gotest.nomethod'")
	})

	t.Run("EventsBothWays", func(t *testing.T) {
		sub, err := h1.Subscribe(ctx, "gotest.ev.")
		require.NoError(t, err)
		defer sub.Close()
		_, err = in.Run(ctx, "event", "pub", "gotest.ev.one", `{"n":1}`)
		require.NoError(t, err)
		m, err := sub.Recv(ctx)
		require.NoError(t, err)
		require.Equal(t, "gotest.ev.one", m.Topic)
		require.JSONEq(t, `{"n":1}`, string(m.Payload))
		require.NotZero(t, m.Seq)

		// flux event sub exits after one event; publish until it has seen
		// one, since its subscription takes effect at an unknown moment.
		subOut := make(chan string, 1)
		go func() {
			out, err := in.Run(ctx, "event", "sub", "--count=1", "gotest.fromgo")
			if err != nil {
				out = err.Error()
			}
			subOut <- out
		}()
		for {
			require.NoError(t, h0.Publish(ctx, "gotest.fromgo", []byte(`{"from":"go"}`), 0))
			select {
			case out := <-subOut:
				require.Contains(t, out, `gotest.fromgo`)
				require.Contains(t, out, `{"from":"go"}`)
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	t.Run("JournalStream", func(t *testing.T) {
		call, err := fluxkit.Stream(ctx, h0, "job-manager.events-journal", 0, map[string]any{"full": true})
		require.NoError(t, err)
		defer call.Close()
		id, err := in.Run(ctx, "submit", "true")
		require.NoError(t, err)
		id = strings.TrimSpace(id)
		want, err := fluxkit.ParseJobID(id)
		require.NoError(t, err)
		sawSentinel := false
		for {
			m, err := call.Recv(ctx)
			require.NoError(t, err)
			var batch struct {
				ID     int64 `json:"id"`
				Events []struct {
					Name string `json:"name"`
				} `json:"events"`
			}
			require.NoError(t, json.Unmarshal(m.Payload, &batch))
			if batch.ID == -1 {
				sawSentinel = true
				continue
			}
			if fluxkit.JobID(batch.ID) == want && len(batch.Events) > 0 && batch.Events[len(batch.Events)-1].Name == "clean" {
				require.True(t, sawSentinel, "the backlog sentinel precedes live events")
				return
			}
		}
	})
}

// An instance that exits under a handle ends its pending calls and
// subscriptions with an error, not a hang, whether it shuts down cleanly
// (the job manager ends its journal streams as it unloads) or dies.
func TestRealInstanceExitEndsCalls(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*realflux.Instance)
	}{
		{"Shutdown", func(in *realflux.Instance) { require.NoError(t, in.Stop()) }},
		{"Crash", func(in *realflux.Instance) { in.Kill() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leakcheck.Check(t)
			in := realflux.Start(t, realflux.Options{Size: 1})
			ctx := testutil.ContextTimeout(t, 60*time.Second)
			h := openReal(t, connect.Config{URI: in.URIs[0]})
			call, err := fluxkit.Stream(ctx, h, "job-manager.events-journal", 0, map[string]any{})
			require.NoError(t, err)
			defer call.Close()
			sub, err := h.Subscribe(ctx, "gotest.never")
			require.NoError(t, err)
			defer sub.Close()
			tc.stop(in)
			for {
				if _, err := call.Recv(ctx); err != nil {
					require.NotErrorIs(t, err, context.DeadlineExceeded)
					break
				}
			}
			_, err = sub.Recv(ctx)
			require.ErrorIs(t, err, syscall.ECONNRESET)
			select {
			case <-h.Done():
			case <-ctx.Done():
				require.FailNow(t, "handle did not end with its instance")
			}
			require.ErrorIs(t, h.Err(), syscall.ECONNRESET)
			_, err = h.Request(ctx, fluxkit.NewRequest("broker.ping", 0, []byte(`{}`)))
			require.ErrorIs(t, err, syscall.ECONNRESET)
		})
	}
}

// ssh:// runs "flux relay" through FLUX_SSH; here FLUX_SSH is a script that
// runs the command on this host, as flux-core's own tests do.
func TestRealSSHConnector(t *testing.T) {
	in := realflux.Start(t, realflux.Options{Size: 2})
	ctx := testutil.ContextTimeout(t, 60*time.Second)
	fakeSSH := filepath.Join(t.TempDir(), "fake-ssh")
	// Drop [-p port] and [user@]host, run the rest here.
	script := "#!/bin/sh\nwhile [ \"$1\" = -p ]; do shift 2; done\nshift\nexec \"$@\"\n"
	require.NoError(t, os.WriteFile(fakeSSH, []byte(script), 0o755))
	env := func(k string) string {
		switch k {
		case "FLUX_SSH":
			return fakeSSH
		case "PATH":
			return filepath.Dir(in.Flux) + ":" + os.Getenv("PATH")
		}
		return os.Getenv(k)
	}
	path := strings.TrimPrefix(in.URIs[1], "local://")
	h, err := connect.New(ctx, connect.Config{URI: "ssh://localhost:22" + path, Getenv: env})
	require.NoError(t, err)
	defer h.Close()
	require.Equal(t, uint32(1), h.Rank())
	require.NoError(t, fluxkit.RPC(ctx, h, "broker.ping", 0, map[string]any{"seq": 1, "pad": ""}, nil))
	_, err = h.Register("gotest.ssh", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.Respond([]byte(`{"via":"ssh"}`))
	})
	require.NoError(t, err)
	h0 := openReal(t, connect.Config{URI: in.URIs[0]})
	var out struct{ Via string }
	require.NoError(t, fluxkit.RPC(ctx, h0, "gotest.ssh", 1, nil, &out))
	require.Equal(t, "ssh", out.Via)
}
