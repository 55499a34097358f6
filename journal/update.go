package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Updates are rare, so they go through encoding/json's generic decoding;
// numbers stay json.Number so integers are not turned into reals.

func decodeGeneric(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, jsonscan.ErrNotObject
	}
	return m, nil
}

// updatePaths sets each "a.b.c" key of ctx in obj (creating objects on the
// way) and returns the re-encoded object. With jobspecKeys, only keys under
// resources, tasks or attributes are applied; the others are returned in
// skipped.
func updatePaths(obj, ctx []byte, jobspecKeys bool) ([]byte, error) {
	out, _, err := updatePathsSkipped(obj, ctx, jobspecKeys)
	return out, err
}

func updatePathsSkipped(obj, ctx []byte, jobspecKeys bool) ([]byte, []string, error) {
	m, err := decodeGeneric(obj)
	if err != nil {
		return nil, nil, err
	}
	upd, err := decodeGeneric(ctx)
	if err != nil {
		return nil, nil, err
	}
	var skipped []string
	for key, val := range upd {
		if jobspecKeys && !(key == "resources" || key == "tasks" || key == "attributes" ||
			strings.HasPrefix(key, "resources.") || strings.HasPrefix(key, "tasks.") ||
			strings.HasPrefix(key, "attributes.")) {
			skipped = append(skipped, key)
			continue
		}
		if err := setPath(m, strings.Split(key, "."), val); err != nil {
			return nil, nil, fmt.Errorf("key %q: %w", key, err)
		}
	}
	b, err := json.Marshal(m)
	return b, skipped, err
}

func setPath(m map[string]any, path []string, val any) error {
	for _, p := range path[:len(path)-1] {
		if p == "" {
			return errors.New("empty path component")
		}
		next, ok := m[p].(map[string]any)
		if !ok {
			if m[p] != nil {
				return fmt.Errorf("%s is not an object", p)
			}
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = val
	return nil
}

// setExpiration sets execution.expiration of R to the raw number v.
func setExpiration(r, v []byte) ([]byte, error) {
	if r == nil {
		return nil, errors.New("no R")
	}
	m, err := decodeGeneric(r)
	if err != nil {
		return nil, err
	}
	if err := setPath(m, []string{"execution", "expiration"}, json.Number(string(v))); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}
