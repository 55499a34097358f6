package modprobe

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// doc is a decoded TOML file together with what go-toml's decoded maps
// lose and error messages need: the line where each key path first
// appears and the order in which a table's keys were written (flux-core
// applies top-level keys and broker [modules] entries in file order).
type doc struct {
	file  string
	nl    []int // offsets of newlines, for offset -> line
	data  map[string]any
	lines map[string]int
	order map[string][]string
}

// parseDoc decodes data; syntax errors name the file, line and column.
func parseDoc(file string, data []byte) (*doc, error) {
	d := &doc{file: file, lines: map[string]int{}, order: map[string][]string{}}
	if err := toml.Unmarshal(data, &d.data); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, col := de.Position()
			return nil, &ConfigError{File: file, Line: line, Col: col,
				Err: errors.New(strings.TrimPrefix(de.Error(), "toml: "))}
		}
		return nil, &ConfigError{File: file, Err: err}
	}
	if d.data == nil {
		d.data = map[string]any{}
	}
	d.index(data)
	return d, nil
}

// index walks the syntax tree to fill lines and order. The document was
// already decoded successfully, so the parser cannot fail here; if it did,
// positions are simply missing.
func (d *doc) index(data []byte) {
	for i, c := range data {
		if c == '\n' {
			d.nl = append(d.nl, i)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	arrays := map[string]int{} // array-of-tables path -> elements seen
	var prefix string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, line := d.keyParts(e.Key())
			path := ""
			for i, part := range parts {
				path = d.note(path, part, line)
				if i < len(parts)-1 {
					if n, ok := arrays[path]; ok { // [a.b] inside [[a]]
						path = fmt.Sprintf("%s[%d]", path, n-1)
					}
				}
			}
			if e.Kind == unstable.ArrayTable {
				n := arrays[path]
				arrays[path] = n + 1
				path = fmt.Sprintf("%s[%d]", path, n)
				d.lines[path] = line
			}
			prefix = path
		case unstable.KeyValue:
			d.keyValue(&p, prefix, e)
		}
	}
}

func (d *doc) keyValue(p *unstable.Parser, prefix string, e *unstable.Node) {
	parts, line := d.keyParts(e.Key())
	path := prefix
	for _, part := range parts {
		path = d.note(path, part, line)
	}
	d.value(p, path, e.Value())
}

func (d *doc) value(p *unstable.Parser, path string, v *unstable.Node) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if kv := it.Node(); kv.Kind == unstable.KeyValue {
				d.keyValue(p, path, kv)
			}
		}
	case unstable.Array:
		it := v.Children()
		for i := 0; it.Next(); i++ {
			el := it.Node()
			elPath := fmt.Sprintf("%s[%d]", path, i)
			if el.Kind == unstable.InlineTable {
				d.lines[elPath] = d.lineAt(el.Raw)
			}
			d.value(p, elPath, el)
		}
	}
}

// note records child key under parent and returns the child's path.
func (d *doc) note(parent, key string, line int) string {
	path := key
	if parent != "" {
		path = parent + "." + key
	}
	if _, seen := d.lines[path]; !seen {
		d.lines[path] = line
		d.order[parent] = append(d.order[parent], key)
	}
	return path
}

// lineAt is the 1-based line of a node. The parser's own Shape scans
// from the start of the document, which makes indexing quadratic.
func (d *doc) lineAt(r unstable.Range) int {
	n, _ := slices.BinarySearch(d.nl, int(r.Offset))
	return n + 1
}

func (d *doc) keyParts(it unstable.Iterator) ([]string, int) {
	var parts []string
	line := 0
	for it.Next() {
		k := it.Node()
		if line == 0 {
			line = d.lineAt(k.Raw)
		}
		parts = append(parts, string(k.Data))
	}
	return parts, line
}

// keys returns the keys of the table at path in file order, followed by
// any the index missed (sorted), so no key is ever skipped.
func (d *doc) keys(path string, table map[string]any) []string {
	out := make([]string, 0, len(table))
	seen := make(map[string]bool, len(table))
	for _, k := range d.order[path] {
		if _, ok := table[k]; ok && !seen[k] {
			out = append(out, k)
			seen[k] = true
		}
	}
	var rest []string
	for k := range table {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}

// line returns the line of path, or of its closest recorded ancestor.
func (d *doc) line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// eachTable calls fn with the key path and contents of each element of
// list: key[i], or key alone when single is set (a lone table standing
// for a list of one). An element that is not a table is an error, its text
// led by what.
func (d *doc) eachTable(key string, list []any, single bool, what string, fn func(path string, tbl map[string]any) error) error {
	for i, item := range list {
		path := fmt.Sprintf("%s[%d]", key, i)
		if single {
			path = key
		}
		tbl, ok := item.(map[string]any)
		if !ok {
			return d.errorf(path, fmt.Errorf("%sexpected a table, got %s", what, describe(item)))
		}
		if err := fn(path, tbl); err != nil {
			return err
		}
	}
	return nil
}

func (d *doc) errorf(path string, err error) error {
	return &ConfigError{File: d.file, Line: d.line(path), Key: path, Err: err}
}
