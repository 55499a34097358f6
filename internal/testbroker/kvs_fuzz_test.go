package testbroker

import (
	"bytes"
	"encoding/json"
	"testing"
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
		if err := json.Unmarshal(p, &in); err != nil {
			t.Fatalf("%q: commitOps accepted what encoding/json refuses: %v", p, err)
		}
		if len(ops) != len(in.Ops) || (in.Ops == nil) != (ops == nil) {
			t.Fatalf("%q: commitOps %q, encoding/json %q", p, ops, in.Ops)
		}
		for i := range ops {
			if ops[i].Key != in.Ops[i].Key || !bytes.Equal(ops[i].Value, in.Ops[i].Value) {
				t.Fatalf("%q: op %d: commitOps %q=%s, encoding/json %q=%s", p, i, ops[i].Key, ops[i].Value, in.Ops[i].Key, in.Ops[i].Value)
			}
		}
	})
}
