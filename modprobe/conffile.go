package modprobe

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// applyModulesFile applies one modprobe TOML file: [[modules]] entries,
// an alternatives table and <name>.<key> updates, in file order.
func (d *db) applyModulesFile(file string, data []byte) error {
	doc, err := parseDoc(file, data)
	if err != nil {
		return err
	}
	for _, key := range doc.keys("", doc.data) {
		val := doc.data[key]
		switch key {
		case "modules":
			if err := d.applyModuleEntries(doc, val); err != nil {
				return err
			}
		case "alternatives":
			if err := d.applyAlternatives(doc, key, val); err != nil {
				return err
			}
		default:
			tbl, ok := val.(map[string]any)
			if !ok {
				return doc.errorf(key, fmt.Errorf("expected a table of updates for %s, got %s", key, describe(val)))
			}
			if err := d.applyUpdate(doc, key, tbl); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *db) applyModuleEntries(doc *doc, val any) error {
	list, ok := val.([]any)
	if !ok {
		// go-toml decodes [[modules]] as []any of map[string]any;
		// anything else is a plain key named modules.
		return doc.errorf("modules", fmt.Errorf("modules must be an array of tables, got %s", describe(val)))
	}
	return doc.eachTable("modules", list, false, "invalid modules entry: ", func(path string, tbl map[string]any) error {
		return d.applyModuleEntry(doc, path, tbl)
	})
}

func (d *db) applyModuleEntry(doc *doc, path string, tbl map[string]any) error {
	bad := func(key string, err error) error {
		p := path
		if key != "" {
			p = path + "." + key
		}
		return &ConfigError{File: doc.file, Line: doc.line(p), Key: path, Err: fmt.Errorf("invalid modules entry: %w", err)}
	}
	keys := doc.keys(path, tbl)
	for _, k := range keys {
		if !slices.Contains(moduleKeys, k) {
			return bad(k, newUnknownKey(k, moduleKeys))
		}
	}
	nameVal, ok := tbl["name"]
	if !ok {
		//lint:ignore ST1005 flux-core's exact text
		return bad("", errors.New("Missing required config key 'name'"))
	}
	name, err := asString("name", nameVal)
	if err == nil && name == "" {
		err = errors.New("key name: must not be empty")
	}
	if err == nil {
		err = checkName(name)
	}
	if err != nil {
		return bad("name", err)
	}
	if d.known(name) {
		// A re-declared entry is merged key by key into the existing one
		// (flux-core behaviour that deployed configs rely on).
		target, _ := d.get(name)
		old := target.provides
		if k, err := target.setFields(keys, tbl, nil); err != nil {
			return bad(k, err)
		}
		d.reprovide(target, old)
		return nil
	}
	e := &entry{name: name, kind: kindModule, module: name, priority: DefaultPriority, origin: doc.file}
	if k, err := e.setFields(keys, tbl, nil); err != nil {
		return bad(k, err)
	}
	d.add(e)
	return nil
}

func (d *db) applyAlternatives(doc *doc, path string, val any) error {
	tbl, ok := val.(map[string]any)
	if !ok {
		return doc.errorf(path, fmt.Errorf("alternatives must be a table of service = module, got %s", describe(val)))
	}
	for _, svc := range doc.keys(path, tbl) {
		p := path + "." + svc
		mod, err := asString(p, tbl[svc])
		if err != nil {
			return doc.errorf(p, err)
		}
		if err := d.setAlternative(svc, mod); err != nil {
			return doc.errorf(p, err)
		}
	}
	return nil
}

// applyUpdate applies <name>.<key> = value updates to get(name).
func (d *db) applyUpdate(doc *doc, name string, tbl map[string]any) error {
	target, err := d.get(name)
	if err != nil {
		return doc.errorf(name, err)
	}
	old := target.provides
	k, err := target.setFields(doc.keys(name, tbl), tbl, errors.New("invalid config key name (a module cannot be renamed)"))
	if err != nil {
		path := name
		if k != "" {
			path += "." + k
		}
		return doc.errorf(path, err)
	}
	d.reprovide(target, old)
	return nil
}

// applyBrokerModules applies the broker config's [modules] table, given as
// the JSON of config.get, walking its keys in the order the JSON lists
// them: "alternatives" sets alternatives, any other key updates a module.
func (d *db) applyBrokerModules(configJSON []byte) error {
	const file = "broker config"
	var top map[string]json.RawMessage
	if len(bytes.TrimSpace(configJSON)) == 0 {
		return nil
	}
	if err := json.Unmarshal(configJSON, &top); err != nil {
		return &ConfigError{File: file, Err: fmt.Errorf("malformed config object: %w", err)}
	}
	raw, ok := top["modules"]
	if !ok {
		return nil
	}
	keys, vals, err := orderedObject(raw)
	if err != nil {
		return &ConfigError{File: file, Key: "modules", Err: err}
	}
	doc := &doc{file: file, lines: map[string]int{}, order: map[string][]string{}}
	for i, k := range keys {
		var v any
		if err := json.Unmarshal(vals[i], &v); err != nil {
			return &ConfigError{File: file, Key: "modules." + k, Err: err}
		}
		sub, _, err := orderedObject(vals[i])
		if err != nil {
			return &ConfigError{File: file, Key: "modules." + k, Err: fmt.Errorf("expected a table, got %s", describe(v))}
		}
		doc.order["modules."+k] = sub
		tbl := v.(map[string]any)
		if k == "alternatives" {
			if err := d.applyAlternatives(doc, "modules.alternatives", tbl); err != nil {
				return err
			}
			continue
		}
		// Reuse the file update path with the key order of the JSON.
		doc.order[k] = sub
		if err := d.applyUpdate(doc, k, tbl); err != nil {
			var ce *ConfigError
			if errors.As(err, &ce) {
				ce.Key = "modules." + ce.Key
			}
			return err
		}
	}
	return nil
}

// orderedObject decodes a JSON object's keys in order.
func orderedObject(raw json.RawMessage) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if delim, ok := tok.(json.Delim); !ok || delim != '{' {
		return nil, nil, errors.New("expected a JSON object")
	}
	var keys []string
	var vals []json.RawMessage
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return nil, nil, err
	}
	return keys, vals, nil
}

// splitPath splits a FLUX_MODPROBE_PATH style value: ':'-separated,
// blank entries dropped.
func splitPath(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ":") {
		if strings.TrimSpace(p) != "" {
			out = append(out, p)
		}
	}
	return out
}

// searchPath computes the modprobe search path: FLUX_MODPROBE_PATH (or
// the defaults) then FLUX_MODPROBE_PATH_APPEND, duplicates removed keeping
// the first.
func searchPath(defaults []string, lookup func(string) (string, bool)) []string {
	var path []string
	if v, ok := lookup("FLUX_MODPROBE_PATH"); ok {
		path = splitPath(v)
	} else {
		path = slices.Clone(defaults)
	}
	if v, ok := lookup("FLUX_MODPROBE_PATH_APPEND"); ok {
		path = append(path, splitPath(v)...)
	}
	seen := map[string]bool{}
	out := path[:0]
	for _, p := range path {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// confFiles lists the *.toml files of sub, a directory of fsys that is
// named root in messages, sorted. A missing directory is empty; a directory
// that cannot be read, or an entry that is neither a file nor a symbolic
// link, is an error naming it, so that no site setting vanishes unnoticed.
// With python set, a *.py file (a flux-core rc file) is an error too.
func confFiles(fsys fs.FS, root, sub string, python bool) ([]string, error) {
	ents, err := fs.ReadDir(fsys, sub)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &ConfigError{File: path.Join(root, sub), Err: fmt.Errorf("cannot read directory: %w", pathCause(err))}
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		switch {
		case python && strings.HasSuffix(name, ".py"):
			return nil, &ConfigError{File: path.Join(root, sub, name), Err: errPythonRC}
		case !strings.HasSuffix(name, ".toml") || e.IsDir():
			continue
		case !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0:
			return nil, &ConfigError{File: path.Join(root, sub, name), Err: errors.New("not a regular file")}
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// pathCause drops the *fs.PathError around err: messages name the path
// themselves.
func pathCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
