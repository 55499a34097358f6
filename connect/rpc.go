package connect

import (
	"context"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/callq"
)

// Request sends req; see [fluxkit.Handle]. The handle assigns the matchtag,
// turns NodeidUpstream into the upstream flag on its own rank, as
// flux_rpc() does, and leaves the credentials for the broker to fill in
// (unless Config.Userid/Rolemask stamp them). ctx bounds only the wait for
// room in the send queue.
func (h *Handle) Request(ctx context.Context, req *fluxkit.Message) (fluxkit.Call, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := fluxkit.ValidateRequest(req); err != nil {
		return nil, err
	}
	noResp := req.IsNoResponse()
	m := *req
	m.Route = nil
	m.Flags &^= fluxkit.FlagRoute
	if m.Nodeid == fluxkit.NodeidUpstream {
		m.Flags |= fluxkit.FlagUpstream
		m.Nodeid = h.rank
	}
	if m.Userid == 0 && m.Rolemask == 0 {
		m.Userid = fluxkit.UseridUnknown
	}
	var c *callq.Call
	if noResp {
		m.Matchtag = fluxkit.MatchtagNone
		if err := h.Err(); err != nil {
			return nil, err
		}
	} else {
		var err error
		if c, err = h.calls.Add(m.IsStreaming()); err != nil {
			return nil, err
		}
		m.Matchtag = c.Matchtag()
	}
	if err := h.send(ctx, &m); err != nil {
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	if c == nil {
		return nil, nil
	}
	return c, nil
}

// deliverResponse hands a response to the call that holds its matchtag; a
// response nobody waits for (a closed call) is dropped.
func (h *Handle) deliverResponse(m *fluxkit.Message) { h.calls.Deliver(m) }
