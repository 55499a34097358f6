package smoke

import (
	"context"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/connect"
	"github.com/fluxkit/fluxkit/internal/realflux"
)

func TestProbe(t *testing.T) {
	in := realflux.Start(t, realflux.Options{Size: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, _ := connect.Open(ctx, in.URIs[0])
	defer h.Close()
	try := func(topic string, nodeid uint32, in any) {
		var out any
		err := fluxkit.RPC(ctx, h, topic, nodeid, in, &out)
		t.Logf("%s %v -> %v err=%v", topic, in, out, err)
	}
	try("module.list", 0, map[string]any{})
	try("config.get", 0, map[string]any{})
	try("broker.getenv", 0, map[string]any{"names": []string{"PATH", "NOPE"}})
	try("broker.setenv", 0, map[string]any{"env": map[string]any{"FOO": "bar", "BAZ": nil}})
	try("broker.setenv", 0, map[string]any{"name": "FOO", "value": "bar"})
	try("attr.get", 0, map[string]any{"name": "content.backing-module"})
	try("attr.get", 0, map[string]any{"name": "broker.rc1_path"})
	try("attr.get", 0, map[string]any{"name": "rundir"})
	try("module.remove", 0, map[string]any{"name": "nosuch"})
	try("module.load", 0, map[string]any{"path": "nosuchmod", "args": []string{}})
	try("groups.get", 0, map[string]any{"name": "broker.online"})
}
