package connect_test

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/internal/realflux"
	"github.com/stretchr/testify/require"
)

// The ping benchmarks run against one real broker so that fluxkit, the C
// client (flux ping) and the Python bindings are measured in one run:
//
//	go test -run '^$' -bench 'RealPing' ./connect/
//
// Each reports ns per broker.ping round trip; the CLI and Python figures
// include one process start, amortized over b.N pings.
func BenchmarkRealPing(b *testing.B) {
	in := realflux.Start(b, realflux.Options{Size: 1})
	ctx := context.Background()
	h, err := connect.Open(ctx, in.URIs[0])
	require.NoError(b, err)
	defer h.Close()
	payload := []byte(`{"seq":1,"pad":""}`)

	b.Run("fluxkit/sequential", func(b *testing.B) {
		var err error
		for b.Loop() {
			var c fluxkit.Call
			if c, err = h.Request(ctx, fluxkit.NewRequest("broker.ping", 0, payload)); err != nil {
				break
			}
			_, err = c.Recv(ctx)
			c.Close()
			if err != nil {
				break
			}
		}
		require.NoError(b, err)
	})
	b.Run("fluxkit/pipelined", func(b *testing.B) {
		const window = 256
		calls := make(chan fluxkit.Call, window)
		errs := make(chan error, 1)
		go func() {
			for c := range calls {
				if _, err := c.Recv(ctx); err != nil {
					errs <- err
					return
				}
				c.Close()
			}
			errs <- nil
		}()
		var err error
		for b.Loop() {
			var c fluxkit.Call
			if c, err = h.Request(ctx, fluxkit.NewRequest("broker.ping", 0, payload)); err != nil {
				break
			}
			calls <- c
		}
		close(calls)
		require.NoError(b, err)
		require.NoError(b, <-errs)
	})
	b.Run("flux-ping", func(b *testing.B) {
		// flux ping prints a line per ping, as its users see it.
		cmd := exec.Command(in.Flux, "ping", "-i", "0", "-c", strconv.Itoa(b.N), "broker")
		cmd.Env = append(cmd.Environ(), "FLUX_URI="+in.URIs[0])
		b.ResetTimer()
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, "%s", out)
	})
	b.Run("python", func(b *testing.B) {
		script := fmt.Sprintf(`import flux
h = flux.Flux()
for i in range(%d):
    h.rpc("broker.ping", {"seq": i, "pad": ""}, nodeid=0).get()
`, b.N)
		cmd := exec.Command(in.Flux, "python", "-c", script)
		cmd.Env = append(cmd.Environ(), "FLUX_URI="+in.URIs[0])
		b.ResetTimer()
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, "%s", out)
	})
}
