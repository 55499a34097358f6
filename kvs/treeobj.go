package kvs

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"syscall"

	"github.com/fluxkit/fluxkit"
)

// Lookup and commit flags, flux-core's FLUX_KVS_* values.
const (
	FlagReadDir    = 1
	FlagReadLink   = 2
	FlagWatch      = 4
	FlagWaitCreate = 8
	FlagTreeobj    = 16
	FlagAppend     = 32
)

// Tree object types of RFC 11.
const (
	TypeVal     = "val"
	TypeValref  = "valref"
	TypeDir     = "dir"
	TypeDirref  = "dirref"
	TypeSymlink = "symlink"
)

// Treeobj is an RFC 11 tree object. Data is the type's data as JSON: a
// base64 string for "val", an array of blobrefs for "valref" and "dirref",
// an object of entries for "dir", {"target": ...} for "symlink".
type Treeobj struct {
	Ver  int             `json:"ver"`
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Val returns a "val" tree object holding b.
func Val(b []byte) Treeobj {
	d, _ := json.Marshal(b) // base64 string
	return Treeobj{Ver: 1, Type: TypeVal, Data: d}
}

// EmptyDir returns an empty "dir" tree object.
func EmptyDir() Treeobj {
	return Treeobj{Ver: 1, Type: TypeDir, Data: json.RawMessage(`{}`)}
}

// Symlink returns a "symlink" tree object pointing at target.
func Symlink(target string) Treeobj {
	d, _ := json.Marshal(map[string]string{"target": target})
	return Treeobj{Ver: 1, Type: TypeSymlink, Data: d}
}

// Validate checks the version, the type and the shape of the data.
func (t Treeobj) Validate() error {
	if t.Ver != 1 {
		return fluxkit.Errorf(fluxkit.EPROTO, "treeobj: version %d, want 1", t.Ver)
	}
	switch t.Type {
	case TypeVal:
		_, err := t.Value()
		return err
	case TypeValref, TypeDirref:
		var refs []string
		if err := json.Unmarshal(t.Data, &refs); err != nil || len(refs) == 0 {
			return fluxkit.Errorf(fluxkit.EPROTO, "treeobj %s: data is not a non-empty array of blobrefs", t.Type)
		}
	case TypeDir:
		_, err := t.Entries()
		return err
	case TypeSymlink:
		var s struct {
			Target string `json:"target"`
		}
		if err := json.Unmarshal(t.Data, &s); err != nil || s.Target == "" {
			return fluxkit.Errorf(fluxkit.EPROTO, "treeobj symlink: no target")
		}
	default:
		return fluxkit.Errorf(fluxkit.EPROTO, "treeobj: unknown type %q", t.Type)
	}
	return nil
}

// Value decodes the data of a "val" object.
func (t Treeobj) Value() ([]byte, error) {
	switch t.Type {
	case TypeVal:
	case TypeDir, TypeDirref:
		return nil, &fluxkit.Error{Errnum: syscall.EISDIR}
	default:
		return nil, fluxkit.Errorf(fluxkit.EPROTO, "treeobj %s is not a value", t.Type)
	}
	var s string
	if err := json.Unmarshal(t.Data, &s); err != nil {
		return nil, fluxkit.Errorf(fluxkit.EPROTO, "treeobj val: data is not a string")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fluxkit.Errorf(fluxkit.EPROTO, "treeobj val: %v", err)
	}
	return b, nil
}

// Entries decodes the entries of a "dir" object.
func (t Treeobj) Entries() (map[string]Treeobj, error) {
	if t.Type != TypeDir {
		return nil, &fluxkit.Error{Errnum: syscall.ENOTDIR}
	}
	var m map[string]Treeobj
	if err := json.Unmarshal(t.Data, &m); err != nil || m == nil {
		return nil, fluxkit.Errorf(fluxkit.EPROTO, "treeobj dir: data is not an object of tree objects")
	}
	for name, e := range m {
		if err := e.Validate(); err != nil {
			return nil, fmt.Errorf("treeobj dir entry %q: %w", name, err)
		}
	}
	return m, nil
}
