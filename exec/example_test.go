package exec_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/exec"
	"github.com/fluxkit/fluxkit/internal/testbroker"
)

// A 4-rank testexec job on an in-process instance: agents on every rank, the
// coordinator on rank 0, and a stand-in for the job manager.
func Example() {
	b, err := testbroker.Start(testbroker.Config{Size: 4})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	ctx := context.Background()

	jm := b.Owner(0)
	defer jm.Close()
	_, _ = jm.Register("job-manager.exec-hello", fluxkit.RoleNone, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.Respond(nil)
	})
	for r := uint32(0); r < 4; r++ {
		h := b.Owner(r)
		defer h.Close()
		a, err := exec.NewAgent(exec.AgentConfig{Handle: h})
		if err != nil {
			panic(err)
		}
		defer a.Close()
	}
	ch := b.Owner(0)
	defer ch.Close()
	coord, err := exec.New(ctx, exec.Config{Handle: ch})
	if err != nil {
		panic(err)
	}
	defer coord.Close()

	call, err := fluxkit.Stream(ctx, jm, "job-exec.start", 0, map[string]any{
		"id": 1234, "userid": b.OwnerID(), "reattach": false,
		"jobspec": json.RawMessage(`{"version":1,"attributes":{"system":{"exec":{"test":{"run_duration":"0.01s","wait_status":512}}}}}`),
		"R":       json.RawMessage(`{"version":1,"execution":{"R_lite":[{"rank":"0-3"}]}}`),
	})
	if err != nil {
		panic(err)
	}
	defer call.Close()
	for {
		m, err := call.Recv(ctx)
		if err != nil {
			panic(err)
		}
		var r exec.Response
		_ = json.Unmarshal(m.Payload, &r)
		data, _ := json.Marshal(r.Data)
		fmt.Println(r.Type, string(data))
		if r.Type == "release" && r.Data["final"] == true {
			break
		}
	}
	// Output:
	// start {}
	// finish {"status":512}
	// release {"final":true,"ranks":"0-3"}
}
