package testbroker

import (
	"encoding/json"

	"github.com/fluxkit/fluxkit/kvs"
)

// KVS is rank 0's key-value store, which serves flux-core's kvs.lookup and
// kvs.commit.
func (b *Broker) KVS() *kvs.Store { return b.kvstore }

// KVSGet returns a value stored in rank 0's primary namespace.
func (b *Broker) KVSGet(key string) (json.RawMessage, bool) {
	t, err := b.kvstore.Lookup(kvs.Primary, key, 0)
	if err != nil {
		return nil, false
	}
	v, err := t.Value()
	return v, err == nil
}
