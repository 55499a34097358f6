package flub

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/flub/curve"
)

// Topics served by the overlay.
const (
	topicGetinfo = "overlay.flub-getinfo"
	topicKex     = "overlay.flub-kex"
	// topicReclaim is fluxkit's: a broker orphaned by the loss of an
	// ancestor asks rank 0 for its own rank back (reclaimRequest).
	topicReclaim = "overlay.flub-reclaim"
	topicHello   = "overlay.hello"
	topicGoodbye = "overlay.goodbye"
	topicGroups  = "groups.get"
	// topicMember is fluxkit's internal notice from a parent to rank 0
	// that a child rank joined or left (the groups module's role).
	topicMember = "overlay.member"
)

// Error texts a flux-core joiner sees from a flux-core boot server.
const (
	textNoChildren   = "this broker cannot have children"
	textAuthorizeKey = "failed to authorize public key"
	textSetAttrs     = "error setting attributes"
	// textTopoMismatch is fluxkit's: a joiner configured with another
	// tbon.topo than the instance's is refused.
	textTopoMismatch = "tbon.topo mismatch"
)

// decodeObject checks that the payload is a JSON object and, with v non-nil,
// unpacks it; failures are EPROTO with flux's default text.
func decodeObject(m *fluxkit.Message, v any) error {
	p := bytes.TrimSpace(m.Payload)
	if len(p) == 0 || p[0] != '{' || !json.Valid(p) {
		return fluxkit.Errorf(fluxkit.EPROTO, "%s: payload is not a JSON object", m.Topic)
	}
	if v != nil {
		if err := json.Unmarshal(p, v); err != nil {
			return fluxkit.Errorf(fluxkit.EPROTO, "%s: %v", m.Topic, err)
		}
	}
	return nil
}

// getinfoRequest is the payload of overlay.flub-getinfo. Both keys are
// fluxkit extensions (flux-core servers ignore unknown keys). Rank 0
// substitutes Hostname for the placeholder once the rank is online. Topo
// is the joiner's configured tbon.topo: rank 0 refuses it, before
// allocating anything, when it is not the instance's.
type getinfoRequest struct {
	Hostname string `json:"hostname,omitempty"`
	Topo     string `json:"topo,omitempty"`
}

// decodeGetinfoRequest accepts any JSON object (unknown keys ignored).
func decodeGetinfoRequest(m *fluxkit.Message) (getinfoRequest, error) {
	var req getinfoRequest
	if err := decodeObject(m, nil); err != nil {
		return req, err
	}
	var loose struct {
		Hostname any `json:"hostname"`
		Topo     any `json:"topo"`
	}
	_ = json.Unmarshal(m.Payload, &loose)
	if s, ok := loose.Hostname.(string); ok {
		req.Hostname = s
	}
	if s, ok := loose.Topo.(string); ok {
		req.Topo = s
	}
	return req, nil
}

// instanceInfo is the answer of overlay.flub-getinfo after validation.
type instanceInfo struct {
	Rank   uint32
	Size   uint32
	Attrs  map[string]string
	Config json.RawMessage // nil when the server sent none (flux-core's shape)
}

// parseGetinfoResponse validates a getinfo response as a fluxkit joiner
// does before it touches anything: rank and size are integers with
// 0 < rank < size, attrs values are strings, config (optional: flux-core's
// server sends none) is an object, unknown keys are ignored.
func parseGetinfoResponse(payload []byte) (instanceInfo, error) {
	var raw struct {
		Rank   *int64                     `json:"rank"`
		Size   *int64                     `json:"size"`
		Attrs  map[string]json.RawMessage `json:"attrs"`
		Config json.RawMessage            `json:"config"`
	}
	var out instanceInfo
	if err := json.Unmarshal(payload, &raw); err != nil {
		return out, fluxkit.Errorf(fluxkit.EPROTO, "malformed getinfo response: %v", err)
	}
	if raw.Rank == nil || raw.Size == nil {
		return out, fluxkit.Errorf(fluxkit.EPROTO, "malformed getinfo response: rank and size are required")
	}
	rank, size := *raw.Rank, *raw.Size
	if size > MaxSize {
		return out, fluxkit.Errorf(fluxkit.EPROTO, "invalid size %d: the maximum instance size is %d", size, uint64(MaxSize))
	}
	if size < 1 || rank <= 0 || rank >= size {
		return out, fluxkit.Errorf(fluxkit.EPROTO, "invalid rank %d for size %d", rank, size)
	}
	out.Rank, out.Size = uint32(rank), uint32(size)
	out.Attrs = make(map[string]string, len(raw.Attrs))
	for k, v := range raw.Attrs {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return out, fluxkit.Errorf(fluxkit.EPROTO, "%s: attribute %s: value %s is not a string", textSetAttrs, k, v)
		}
		out.Attrs[k] = s
	}
	if c := bytes.TrimSpace(raw.Config); len(c) > 0 && !bytes.Equal(c, []byte("null")) {
		if c[0] != '{' {
			return out, fluxkit.Errorf(fluxkit.EPROTO, "malformed getinfo response: config is not an object")
		}
		out.Config = bytes.Clone(c)
	}
	return out, nil
}

// reclaimRequest is the payload of overlay.flub-reclaim: the rank a broker
// held until an ancestor was lost, its online descendants (an idset, kept
// for them as well), its hostname and who it is. The answer has getinfo's
// shape.
type reclaimRequest struct {
	Rank     uint32 `json:"rank"`
	Subtree  string `json:"subtree,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// Holder names the broker across its reclaims (its public key), so
	// that it may renew its own reclaim while it waits for its parent.
	Holder string `json:"holder,omitempty"`
}

// kexRequest is the payload of overlay.flub-kex.
type kexRequest struct {
	Name   string `json:"name"`
	Pubkey string `json:"pubkey"`
}

// decodeKexRequest requires both keys as strings (EPROTO otherwise).
func decodeKexRequest(m *fluxkit.Message) (kexRequest, error) {
	var raw struct {
		Name   *string `json:"name"`
		Pubkey *string `json:"pubkey"`
	}
	if err := decodeObject(m, &raw); err != nil {
		return kexRequest{}, err
	}
	if raw.Name == nil || raw.Pubkey == nil {
		return kexRequest{}, fluxkit.Errorf(fluxkit.EPROTO, "%s: name and pubkey are required", m.Topic)
	}
	return kexRequest{Name: *raw.Name, Pubkey: *raw.Pubkey}, nil
}

// kexResponse is the answer of overlay.flub-kex.
type kexResponse struct {
	Name   string `json:"name"`
	Pubkey string `json:"pubkey"`
	URI    string `json:"uri"`
}

// parseKexResponse validates a kex answer: pubkey must be a Z85 key and uri
// a tcp:// URI.
func parseKexResponse(payload []byte) (curve.Key, string, error) {
	var r kexResponse
	if err := json.Unmarshal(payload, &r); err != nil {
		return curve.Key{}, "", fluxkit.Errorf(fluxkit.EPROTO, "malformed kex response: %v", err)
	}
	k, err := curve.ParseKey(r.Pubkey)
	if err != nil {
		return curve.Key{}, "", fluxkit.Errorf(fluxkit.EPROTO, "kex response: pubkey: %v", err)
	}
	if len(r.URI) < len("tcp://") || r.URI[:6] != "tcp://" {
		return curve.Key{}, "", fluxkit.Errorf(fluxkit.EPROTO, "kex response: uri %q is not a tcp:// URI", r.URI)
	}
	return k, r.URI, nil
}

// rankName returns the rank a kex name binds to, or -1 when the name
// is not a canonical decimal rank.
func rankName(name string) int64 {
	r, err := strconv.ParseUint(name, 10, 32)
	if err != nil || strconv.FormatUint(r, 10) != name {
		return -1
	}
	return int64(r)
}
