package flub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

// A joiner learns the instance owner's userid from getinfo, so owner
// credentials carry the same userid on every rank.
func TestJoinerLearnsOwner(t *testing.T) {
	leakcheck.Check(t)
	in := startInstance(t, Config{Size: 3, OwnerUserid: new(uint32(4321))})
	ctx := ctxT(t, 30*time.Second)
	b, err := in.join(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := b.Attr("security.owner"); v != "4321" {
		t.Fatalf("joiner's security.owner = %q", v)
	}
	if got := b.Cred(); got.Userid != 4321 || !got.IsOwner() {
		t.Fatalf("joiner's own credentials %+v", got)
	}
	// A request from the joiner's own connection reaches rank 0 as the owner.
	got := make(chan uint32, 1)
	if _, err := in.root.Register("who.ami", 0, func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		got <- req.Userid
		_ = w.Respond(nil)
	}); err != nil {
		t.Fatal(err)
	}
	if err := fluxkit.RPC(ctx, b, "who.ami", 0, nil, nil); err != nil {
		t.Fatal(err)
	}
	if uid := <-got; uid != 4321 {
		t.Fatalf("request arrived with userid %d", uid)
	}
	err = fluxkit.RPC(ctx, b, "attr.set", b.Rank(), map[string]string{"name": "security.owner", "value": "0"}, nil)
	if !errors.Is(err, fluxkit.EPERM) {
		t.Fatalf("attr.set security.owner: %v", err)
	}
}
