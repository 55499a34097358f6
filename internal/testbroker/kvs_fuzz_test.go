package testbroker

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// commitOps must decode exactly what encoding/json decodes, whenever it
// decodes at all.
func FuzzCommitOps(f *testing.F) {
	for _, s := range []string{
		`{"ops":[{"key":"a.b","value":[{"timestamp":1.5,"name":"init"}]},{"key":"a.count","value":1}]}`,
		`{"ops":[]}`, ` { "ops" : [ { "key" : "k" , "value" : "s\"}" } ] } `, `{"ops":[{"key":"k","value":true}]}`,
		`{"ops":[{"key":"k","value":null}]}`, `{"ops":[{"value":1,"key":"k"}]}`, `{"OPS":[]}`, `{"ops":[{"key":"\u006b","value":1}]}`,
		`{"ops":[{"key":"k","value":{"a":[1,{"b":"]"}]}}],"x":1}`, `{"ops":[{"key":"k","value":-1.5e3}]}`, `{"ops":null}`, ``, `[]`,
		`{"ops":[{"key":"k","value":1}]} x`, `{"ops":[{"key":"k","value":1},]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		ops, ok := commitOps(p)
		if !ok {
			return
		}
		var in struct {
			Ops []kvsOp `json:"ops"`
		}
		require.NoError(t, json.Unmarshal(p, &in), "%q: commitOps accepted what encoding/json refuses", p)
		require.Equal(t, in.Ops == nil, ops == nil, "%q: commitOps %q, encoding/json %q", p, ops, in.Ops)
		require.Len(t, ops, len(in.Ops), "%q: commitOps %q, encoding/json %q", p, ops, in.Ops)
		for i := range ops {
			require.Equal(t, in.Ops[i].Key, ops[i].Key, "%q: op %d", p, i)
			require.Equal(t, string(in.Ops[i].Value), string(ops[i].Value), "%q: op %d", p, i)
		}
	})
}
