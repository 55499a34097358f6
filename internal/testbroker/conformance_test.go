package testbroker

import (
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/handletest"
)

type instance struct{ b *Broker }

func (i instance) Size() int                                   { return i.b.Size() }
func (i instance) Owner(_ *testing.T, r uint32) fluxkit.Handle { return i.b.Owner(r) }
func (i instance) Guest(_ *testing.T, r uint32, uid uint32) fluxkit.Handle {
	return i.b.Guest(r, uid)
}

func TestConformance(t *testing.T) {
	handletest.Run(t, func(t *testing.T) handletest.Instance {
		return instance{newBroker(t, Config{Size: 5, Fanout: 2})}
	})
}
