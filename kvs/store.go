package kvs

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/fluxkit/fluxkit"
)

// Store is an in-memory KVS serving flux-core's protocol: what the
// in-process test broker and fluxkit's own brokers offer as "kvs". It keeps
// values as bytes in a tree of directories per namespace, applies each
// commit atomically, and follows symlinks within a namespace. It has no
// content store, so it never hands out valref or dirref objects.
//
// Access follows flux-core's rule in a simplified form: the instance owner
// may use every namespace; a guest may not use the primary namespace.
type Store struct {
	mu  sync.Mutex
	ns  map[string]*node
	seq int
}

// node is a directory (dir != nil), a value, or a symlink (link != "").
type node struct {
	dir  map[string]*node
	val  []byte
	link string
}

func (n *node) isDir() bool { return n.dir != nil }

// NewStore returns a store with an empty primary namespace.
func NewStore() *Store {
	return &Store{ns: map[string]*node{Primary: {dir: map[string]*node{}}}}
}

// maxLinks bounds symlink resolution, as a filesystem's ELOOP does.
const maxLinks = 8

// splitKey normalizes a key as flux-core does: empty components (runs of
// dots, leading and trailing dots) are dropped, so "." is the root.
func splitKey(key string) []string {
	return slices.DeleteFunc(strings.Split(key, "."), func(s string) bool { return s == "" })
}

// CreateNamespace adds an empty namespace; it is EEXIST when it exists.
func (s *Store) CreateNamespace(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ns[name]; ok {
		return fluxkit.Errorf(fluxkit.EEXIST, "namespace %s already exists", name)
	}
	s.ns[name] = &node{dir: map[string]*node{}}
	return nil
}

// RemoveNamespace drops a namespace; the primary namespace stays.
func (s *Store) RemoveNamespace(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == Primary {
		return fluxkit.Errorf(fluxkit.EINVAL, "cannot remove the primary namespace")
	}
	if _, ok := s.ns[name]; !ok {
		return fluxkit.Errorf(syscall.ENOTSUP, "namespace %s does not exist", name)
	}
	delete(s.ns, name)
	return nil
}

func (s *Store) root(ns string) (*node, error) {
	if ns == "" {
		ns = Primary
	}
	r, ok := s.ns[ns]
	if !ok {
		return nil, fluxkit.Errorf(syscall.ENOTSUP, "namespace %s does not exist", ns)
	}
	return r, nil
}

// resolve walks path from root, following symlinks in intermediate
// components (and in the last one when follow is set).
func resolve(root *node, path []string, follow bool, depth int) (*node, error) {
	n := root
	for i, c := range path {
		if !n.isDir() {
			return nil, &fluxkit.Error{Errnum: syscall.ENOTDIR}
		}
		next, ok := n.dir[c]
		if !ok {
			return nil, &fluxkit.Error{Errnum: syscall.ENOENT}
		}
		if next.link != "" && (follow || i < len(path)-1) {
			if depth >= maxLinks {
				return nil, &fluxkit.Error{Errnum: syscall.ELOOP}
			}
			target := append(splitKey(next.link), path[i+1:]...)
			return resolve(root, target, follow, depth+1)
		}
		n = next
	}
	return n, nil
}

// Lookup returns the tree object at key, as kvs.lookup answers it: a value
// unless flags has FlagReadDir (a directory), or FlagReadLink (a symlink
// itself), or FlagTreeobj (whatever is there).
func (s *Store) Lookup(ns, key string, flags int) (Treeobj, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := s.root(ns)
	if err != nil {
		return Treeobj{}, err
	}
	n, err := resolve(root, splitKey(key), flags&(FlagReadLink|FlagTreeobj) == 0, 0)
	if err != nil {
		return Treeobj{}, err
	}
	switch {
	case flags&FlagTreeobj != 0:
	case n.link != "" && flags&FlagReadLink == 0:
		return Treeobj{}, &fluxkit.Error{Errnum: syscall.EINVAL}
	case n.link == "" && flags&FlagReadLink != 0:
		return Treeobj{}, &fluxkit.Error{Errnum: syscall.EINVAL}
	case n.isDir() && flags&FlagReadDir == 0:
		return Treeobj{}, &fluxkit.Error{Errnum: syscall.EISDIR}
	case !n.isDir() && n.link == "" && flags&FlagReadDir != 0:
		return Treeobj{}, &fluxkit.Error{Errnum: syscall.ENOTDIR}
	}
	return n.treeobj(), nil
}

func (n *node) treeobj() Treeobj {
	switch {
	case n.link != "":
		return Symlink(n.link)
	case n.isDir():
		entries := make(map[string]Treeobj, len(n.dir))
		for name, e := range n.dir {
			entries[name] = e.treeobj()
		}
		d, _ := json.Marshal(entries)
		return Treeobj{Ver: 1, Type: TypeDir, Data: d}
	}
	return Val(n.val)
}

func fromTreeobj(t *Treeobj) (*node, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	switch t.Type {
	case TypeVal:
		v, _ := t.Value()
		return &node{val: v}, nil
	case TypeDir:
		entries, _ := t.Entries()
		n := &node{dir: make(map[string]*node, len(entries))}
		for name, e := range entries {
			c, err := fromTreeobj(&e)
			if err != nil {
				return nil, err
			}
			n.dir[name] = c
		}
		return n, nil
	case TypeSymlink:
		var s struct {
			Target string `json:"target"`
		}
		_ = json.Unmarshal(t.Data, &s)
		return &node{link: s.Target}, nil
	}
	return nil, fluxkit.Errorf(fluxkit.EPROTO, "this KVS has no content store for %s objects", t.Type)
}

// undo restores one directory entry.
type undo struct {
	dir  *node
	name string
	old  *node // nil: the entry did not exist
}

// Commit applies ops to namespace ns in order, all or none, and returns
// the store's new sequence number.
func (s *Store) Commit(ns string, ops []Op) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := s.root(ns)
	if err != nil {
		return 0, err
	}
	var log []undo
	for i := range ops {
		if err := apply(root, &ops[i], &log); err != nil {
			for j := len(log) - 1; j >= 0; j-- {
				u := log[j]
				if u.old == nil {
					delete(u.dir.dir, u.name)
				} else {
					u.dir.dir[u.name] = u.old
				}
			}
			return 0, fmt.Errorf("%s: %w", ops[i].Key, err)
		}
	}
	s.seq++
	return s.seq, nil
}

func apply(root *node, op *Op, log *[]undo) error {
	path := splitKey(op.Key)
	if len(path) == 0 {
		return fluxkit.Errorf(fluxkit.EINVAL, "cannot replace the root directory")
	}
	var repl *node
	if op.Dirent != nil {
		var err error
		if repl, err = fromTreeobj(op.Dirent); err != nil {
			return err
		}
		if op.Flags&FlagAppend != 0 && repl.val == nil && (repl.isDir() || repl.link != "") {
			return fluxkit.Errorf(fluxkit.EINVAL, "only values can be appended")
		}
	}
	// Walk to the parent, making directories (and replacing values) on the
	// way, as flux-core's commit does.
	dir := root
	for _, c := range path[:len(path)-1] {
		next, ok := dir.dir[c]
		if ok && next.link != "" {
			target, err := resolve(root, splitKey(next.link), true, 1)
			if err == nil && target.isDir() {
				dir = target
				continue
			}
		}
		if !ok || !next.isDir() {
			if repl == nil {
				return nil // unlinking below a missing directory
			}
			*log = append(*log, undo{dir: dir, name: c, old: next})
			next = &node{dir: map[string]*node{}}
			dir.dir[c] = next
		}
		dir = next
	}
	name := path[len(path)-1]
	old := dir.dir[name]
	switch {
	case repl == nil:
		if old == nil {
			return nil
		}
		delete(dir.dir, name)
	case op.Flags&FlagAppend != 0 && old != nil:
		if old.isDir() {
			return &fluxkit.Error{Errnum: syscall.EISDIR}
		}
		if old.link != "" {
			return fluxkit.Errorf(fluxkit.EINVAL, "cannot append to a symlink")
		}
		dir.dir[name] = &node{val: append(slices.Clip(old.val), repl.val...)}
	default:
		dir.dir[name] = repl
	}
	*log = append(*log, undo{dir: dir, name: name, old: old})
	return nil
}

// Keys returns every value key of namespace ns, sorted, for tests and
// debugging.
func (s *Store) Keys(ns string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	root, err := s.root(ns)
	if err != nil {
		return nil
	}
	var out []string
	var walk func(prefix string, n *node)
	walk = func(prefix string, n *node) {
		for _, name := range slices.Sorted(maps.Keys(n.dir)) {
			c := n.dir[name]
			if c.isDir() {
				walk(prefix+name+".", c)
			} else {
				out = append(out, prefix+name)
			}
		}
	}
	walk("", root)
	return out
}
