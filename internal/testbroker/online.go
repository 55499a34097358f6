package testbroker

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
)

// onlineGroup serves groups.get for broker.online.
type onlineGroup struct {
	b        *Broker
	mu       sync.Mutex
	last     idset.Set
	watchers map[fluxkit.Responder]string // responder -> sender
}

func newOnlineGroup(b *Broker) *onlineGroup {
	return &onlineGroup{b: b, watchers: map[fluxkit.Responder]string{}}
}

func (g *onlineGroup) get(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Name string `json:"name"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	members := idset.Set{}
	if in.Name == "broker.online" {
		members = g.b.Online()
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	_ = fluxkit.Respond(w, map[string]string{"members": members.String()})
	if in.Name == "broker.online" && req.IsStreaming() {
		g.last = members
		g.watchers[w] = req.Sender()
	}
}

func (g *onlineGroup) disconnect(_ context.Context, _ fluxkit.Responder, req *fluxkit.Message) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for w, sender := range g.watchers {
		if sender == req.Sender() {
			delete(g.watchers, w)
		}
	}
}

func (g *onlineGroup) changed() {
	members := g.b.Online()
	g.mu.Lock()
	defer g.mu.Unlock()
	if members.Equal(g.last) {
		return
	}
	g.last = members
	p, _ := json.Marshal(map[string]string{"members": members.String()})
	for w := range g.watchers {
		_ = w.Respond(p)
	}
}
