package kvs

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

// Tree objects from the wire never panic the decoder, and a value survives
// encoding whatever its bytes.
func FuzzTreeobj(f *testing.F) {
	for _, s := range []string{
		`{"ver":1,"type":"val","data":"aGVsbG8="}`,
		`{"ver":1,"type":"dir","data":{"a":{"ver":1,"type":"val","data":""}}}`,
		`{"ver":1,"type":"valref","data":["sha1-0000000000000000000000000000000000000000"]}`,
		`{"ver":1,"type":"symlink","data":{"target":"a.b"}}`,
		`{"ver":2,"type":"val","data":"x"}`,
		`{"ver":1,"type":"dir","data":{"a":{"ver":1,"type":"dir","data":[]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var o Treeobj
		if json.Unmarshal(b, &o) == nil && o.Validate() == nil {
			_, _ = o.Value()
			_, _ = o.Entries()
			if n, err := fromTreeobj(&o); err == nil {
				_ = n.treeobj()
			}
		}
		v, err := Val(b).Value()
		require.NoError(t, err)
		require.Equal(t, string(b), string(v), "a value comes back as it went in")
	})
}

// Commits built from any JSON never panic the store, and a commit that
// fails leaves the store as it was.
func FuzzStoreCommit(f *testing.F) {
	f.Add([]byte(`{"namespace":"primary","flags":0,"ops":[{"key":"a.b","flags":0,"dirent":{"ver":1,"type":"val","data":"eA=="}}]}`))
	f.Add([]byte(`{"namespace":"primary","ops":[{"key":"a","flags":32,"dirent":{"ver":1,"type":"val","data":"eA=="}},{"key":"a.b","flags":0,"dirent":null}]}`))
	f.Add([]byte(`{"ops":[{"key":"s","dirent":{"ver":1,"type":"symlink","data":{"target":"s"}}},{"key":"s.x","dirent":{"ver":1,"type":"dir","data":{}}}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var in commitRequest
		if json.Unmarshal(b, &in) != nil {
			return
		}
		s := NewStore()
		var pre Txn
		pre.Put("keep.me", []byte("1"))
		pre.Symlink("loop", "loop")
		_, err := s.Commit(Primary, pre.Ops)
		require.NoError(t, err)
		before := s.Keys(Primary)
		if _, err := s.Commit(in.Namespace, in.Ops); err != nil {
			require.Equal(t, before, s.Keys(Primary), "a failed commit changed the store")
		}
		for _, k := range s.Keys(Primary) {
			_, _ = s.Lookup(Primary, k, 0)
			_, _ = s.Lookup(Primary, k, FlagReadDir)
		}
	})
}
