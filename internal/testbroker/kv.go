package testbroker

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/kvs"
)

// commit answers kvs.commit: flux-core's protocol (a payload naming its
// namespace) goes to the KVS store; the older compact form
// ({"ops":[{"key","value"}]}) to the legacy map, until every component
// speaks the real protocol.
func (b *Broker) commit(ctx context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	if bytes.Contains(req.Payload, []byte(`"namespace"`)) {
		b.kvstore.ServeCommit(ctx, w, req)
		return
	}
	if !req.Cred().IsOwner() {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.EPERM, fluxkit.TextOwnerRequired))
		return
	}
	b.rank0kv.commit(ctx, w, req)
}

// KVS is rank 0's key-value store, which serves flux-core's kvs.lookup and
// kvs.commit.
func (b *Broker) KVS() *kvs.Store { return b.kvstore }

// kvs is rank 0's legacy key-value map (kvs.get, kvs.put and the compact
// kvs.commit), kept while components move to flux-core's protocol.
type legacyKV struct {
	mu sync.Mutex
	m  map[string]json.RawMessage
}

func newLegacyKV() *legacyKV { return &legacyKV{m: map[string]json.RawMessage{}} }

// KVSGet returns a value stored in rank 0's KVS (the primary namespace,
// or else the legacy map).
func (b *Broker) KVSGet(key string) (json.RawMessage, bool) {
	if t, err := b.kvstore.Lookup(kvs.Primary, key, 0); err == nil {
		v, err := t.Value()
		return v, err == nil
	}
	b.rank0kv.mu.Lock()
	defer b.rank0kv.mu.Unlock()
	v, ok := b.rank0kv.m[key]
	return v, ok
}

func (k *legacyKV) get(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var in struct {
		Key string `json:"key"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	k.mu.Lock()
	v, ok := k.m[in.Key]
	k.mu.Unlock()
	if !ok {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "kvs key %s not found", in.Key))
		return
	}
	_ = fluxkit.Respond(w, map[string]json.RawMessage{"value": v})
}

type kvsOp struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

func (k *legacyKV) put(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	var op kvsOp
	if !fluxkit.DecodeRequest(w, req, &op) {
		return
	}
	k.apply(w, []kvsOp{op})
}

func (k *legacyKV) commit(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
	if ops, ok := commitOps(req.Payload); ok {
		k.apply(w, ops)
		return
	}
	var in struct {
		Ops []kvsOp `json:"ops"`
	}
	if !fluxkit.DecodeRequest(w, req, &in) {
		return
	}
	k.apply(w, in.Ops)
}

// commitOps decodes a kvs.commit payload in the compact form clients
// write ({"ops":[{"key":"k","value":v},...]} with plain ASCII keys and
// non-null values) without reflection: commits carry every job's exec
// eventlog, and decoding them was the broker's largest cost per job. It
// reports false for anything else, which DecodePayload then decodes (or
// refuses) as before. Values alias p; apply copies them.
func commitOps(p []byte) ([]kvsOp, bool) {
	if !json.Valid(p) {
		return nil, false
	}
	i := 0
	ws := func() {
		for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
			i++
		}
	}
	lit := func(s string) bool {
		ws()
		if len(p)-i >= len(s) && string(p[i:i+len(s)]) == s {
			i += len(s)
			return true
		}
		return false
	}
	if !lit("{") || !lit(`"ops"`) || !lit(":") || !lit("[") {
		return nil, false
	}
	ops := []kvsOp{}
	for !lit("]") {
		if !lit("{") || !lit(`"key"`) || !lit(":") || !lit(`"`) {
			return nil, false
		}
		start := i
		for i < len(p) && p[i] != '"' {
			if c := p[i]; c == '\\' || c < 0x20 || c >= 0x80 {
				return nil, false
			}
			i++
		}
		key := string(p[start:i])
		i++ // the closing quote: p is valid JSON
		if !lit(",") || !lit(`"value"`) || !lit(":") {
			return nil, false
		}
		ws()
		if i >= len(p) || p[i] == 'n' {
			return nil, false
		}
		start = i
		i = valueEnd(p, i)
		ops = append(ops, kvsOp{Key: key, Value: p[start:i]})
		if !lit("}") {
			return nil, false
		}
		if !lit(",") {
			if !lit("]") {
				return nil, false
			}
			break
		}
	}
	if !lit("}") {
		return nil, false
	}
	ws()
	return ops, i == len(p)
}

// valueEnd returns the end of the JSON value starting at p[i], which must
// be valid.
func valueEnd(p []byte, i int) int {
	depth, inStr := 0, false
	for ; i < len(p); i++ {
		c := p[i]
		switch {
		case inStr:
			switch c {
			case '\\':
				i++
			case '"':
				inStr = false
				if depth == 0 {
					return i + 1
				}
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return i // the end of a bare value inside the enclosing object
			}
			depth--
			if depth == 0 {
				return i + 1
			}
		case depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return i
		}
	}
	return i
}

func (k *legacyKV) apply(w fluxkit.Responder, ops []kvsOp) {
	for _, op := range ops {
		if op.Key == "" || len(op.Value) == 0 {
			_ = w.RespondError(fluxkit.Errorf(fluxkit.EINVAL, "kvs: each op needs a key and a value"))
			return
		}
	}
	k.mu.Lock()
	for _, op := range ops {
		if string(op.Value) == "null" {
			delete(k.m, op.Key)
			continue
		}
		k.m[op.Key] = append(json.RawMessage(nil), op.Value...)
	}
	k.mu.Unlock()
	_ = w.Respond(nil)
}
