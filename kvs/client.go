package kvs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/fluxkit/fluxkit"
)

// Primary is the instance's own namespace.
const Primary = "primary"

// Lookup reads the value at key in namespace ns ("" means [Primary]).
func Lookup(ctx context.Context, h fluxkit.Handle, ns, key string) ([]byte, error) {
	return lookupAs(ctx, h, ns, key, 0, Treeobj.Value)
}

// LookupJSON reads the value at key and unmarshals it into v.
func LookupJSON(ctx context.Context, h fluxkit.Handle, ns, key string, v any) error {
	b, err := Lookup(ctx, h, ns, key)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("kvs lookup %s: %w", key, err)
	}
	return nil
}

// LookupDir lists the directory at key: its entries' names and tree
// objects.
func LookupDir(ctx context.Context, h fluxkit.Handle, ns, key string) (map[string]Treeobj, error) {
	return lookupAs(ctx, h, ns, key, FlagReadDir, Treeobj.Entries)
}

// lookupAs looks key up with flags and reads the tree object with as.
func lookupAs[T any](ctx context.Context, h fluxkit.Handle, ns, key string, flags int, as func(Treeobj) (T, error)) (T, error) {
	var zero T
	t, err := LookupTreeobj(ctx, h, ns, key, flags)
	if err != nil {
		return zero, err
	}
	v, err := as(t)
	if err != nil {
		return zero, fmt.Errorf("kvs lookup %s: %w", key, err)
	}
	return v, nil
}

// LookupTreeobj sends kvs.lookup with flags and returns the tree object the
// KVS answers with.
func LookupTreeobj(ctx context.Context, h fluxkit.Handle, ns, key string, flags int) (Treeobj, error) {
	if ns == "" {
		ns = Primary
	}
	var out struct {
		Val Treeobj `json:"val"`
	}
	in := lookupRequest{Key: key, Namespace: ns, Flags: flags}
	if err := fluxkit.RPC(ctx, h, "kvs.lookup", fluxkit.NodeidAny, in, &out); err != nil {
		return Treeobj{}, fmt.Errorf("kvs lookup %s: %w", key, err)
	}
	if err := out.Val.Validate(); err != nil {
		return Treeobj{}, fmt.Errorf("kvs lookup %s: %w", key, err)
	}
	return out.Val, nil
}

type lookupRequest struct {
	Key       string `json:"key"`
	Namespace string `json:"namespace"`
	Flags     int    `json:"flags"`
}

// Op is one operation of a transaction: a dirent to put at Key (nil to
// unlink it), with FlagAppend to append a value.
type Op struct {
	Key    string   `json:"key"`
	Flags  int      `json:"flags"`
	Dirent *Treeobj `json:"dirent"`
}

// Txn is a KVS transaction: operations applied in order, all or none.
type Txn struct {
	Ops []Op
}

// Put stores b at key.
func (t *Txn) Put(key string, b []byte) {
	v := Val(b)
	t.Ops = append(t.Ops, Op{Key: key, Dirent: &v})
}

// PutJSON stores v, marshalled, at key.
func (t *Txn) PutJSON(key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("kvs put %s: %w", key, err)
	}
	t.Put(key, b)
	return nil
}

// Append appends b to the value at key, creating it if need be.
func (t *Txn) Append(key string, b []byte) {
	v := Val(b)
	t.Ops = append(t.Ops, Op{Key: key, Flags: FlagAppend, Dirent: &v})
}

// Mkdir makes an empty directory at key, replacing what was there.
func (t *Txn) Mkdir(key string) {
	d := EmptyDir()
	t.Ops = append(t.Ops, Op{Key: key, Dirent: &d})
}

// Symlink makes key a symlink to target.
func (t *Txn) Symlink(key, target string) {
	s := Symlink(target)
	t.Ops = append(t.Ops, Op{Key: key, Dirent: &s})
}

// Unlink removes key (a missing key is not an error).
func (t *Txn) Unlink(key string) {
	t.Ops = append(t.Ops, Op{Key: key})
}

// Commit applies txn to namespace ns ("" means [Primary]) and waits for the
// KVS to answer.
func Commit(ctx context.Context, h fluxkit.Handle, ns string, txn *Txn) error {
	if ns == "" {
		ns = Primary
	}
	ops := txn.Ops
	if ops == nil {
		ops = []Op{}
	}
	in := commitRequest{Namespace: ns, Ops: ops}
	if err := fluxkit.RPC(ctx, h, "kvs.commit", fluxkit.NodeidAny, in, nil); err != nil {
		return fmt.Errorf("kvs commit: %w", err)
	}
	return nil
}

type commitRequest struct {
	Namespace string `json:"namespace"`
	Flags     int    `json:"flags"`
	Ops       []Op   `json:"ops"`
}
