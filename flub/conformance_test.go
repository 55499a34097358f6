package flub

import (
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/handletest"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/require"
)

// conformance is a five-broker overlay over CURVE, seen through the suite
// every fluxkit.Handle implementation runs.
type conformance struct {
	brokers []*Broker
	owner   uint32
}

func (c conformance) Size() int { return len(c.brokers) }

func (c conformance) Owner(t *testing.T, r uint32) fluxkit.Handle {
	return c.connect(t, r, fluxkit.Cred{Userid: c.owner, Roles: fluxkit.RoleOwner | fluxkit.RoleLocal})
}

func (c conformance) Guest(t *testing.T, r uint32, uid uint32) fluxkit.Handle {
	return c.connect(t, r, fluxkit.Cred{Userid: uid, Roles: fluxkit.RoleUser | fluxkit.RoleLocal})
}

func (c conformance) connect(t *testing.T, r uint32, cred fluxkit.Cred) fluxkit.Handle {
	t.Helper()
	h, err := c.brokers[r].Connect(cred)
	require.NoError(t, err)
	t.Cleanup(func() { h.Close() })
	return h
}

func TestBrokerPassesTheHandleConformanceSuite(t *testing.T) {
	handletest.Run(t, func(t *testing.T) handletest.Instance {
		in := startInstance(t, Config{Size: 5, OwnerUserid: new(uint32(1000))})
		ctx := testutil.Context(t)
		brokers := make([]*Broker, 5)
		brokers[0] = in.root
		for i := 1; i < 5; i++ {
			b, err := in.join(ctx, "conf")
			require.NoError(t, err)
			brokers[b.Rank()] = b
		}
		testutil.WaitFor(t, "overlay full", func() bool { return in.root.Online().Len() == 5 })
		return conformance{brokers: brokers, owner: 1000}
	})
}
