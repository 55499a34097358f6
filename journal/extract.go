package journal

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// jobspecInfo is what job-list derives from an RFC 14/25 jobspec.
type jobspecInfo struct {
	name, cwd, queue, project, bank string
	duration                        float64 // -1 unset
	nnodes, ntasks, ncores          int32   // -1 unset
	perCore                         int32   // >0: ntasks = cores in R × perCore
}

func countOf(v []byte) (int64, error) {
	switch jsonscan.KindOf(v) {
	case jsonscan.Integer:
		return jsonscan.Int(v)
	case jsonscan.Object:
		m := jsonscan.FastMember(v, "min")
		if m == nil {
			return 0, errors.New("count object without min")
		}
		return jsonscan.Int(m)
	}
	return 0, errors.New("count must be an integer or object")
}

type jjCounts struct {
	nnodes, nslots, slotSize, gpus int64
	exclusive                      bool
}

func (c *jjCounts) walk(vs []byte, depth int) error {
	if depth > 16 {
		return errors.New("resources nested too deeply")
	}
	return jsonscan.FastElems(vs, func(v []byte) error {
		var typ string
		var count int64 = -1
		var with []byte
		excl := false
		err := jsonscan.FastMembers(v, func(k string, val []byte) error {
			var err error
			switch k {
			case "type":
				typ, err = jsonscan.View(val)
			case "count":
				count, err = countOf(val)
			case "with":
				with = val
			case "exclusive":
				excl, err = jsonscan.Bool(val)
			}
			if err != nil {
				return fmt.Errorf("resource %s: %w", k, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if count <= 0 {
			return fmt.Errorf("resource %q: count must be > 0", typ)
		}
		switch typ {
		case "node":
			c.nnodes = count
			if excl {
				c.exclusive = true
			}
		case "slot":
			c.nslots = count
			if excl {
				c.exclusive = true
			}
		case "core":
			c.slotSize = count
		case "gpu":
			c.gpus = count
		default:
			return fmt.Errorf("unknown resource type %q", typ)
		}
		if with != nil {
			return c.walk(with, depth+1)
		}
		return nil
	})
}

// parseJobspec extracts job-list's fields from a jobspec; errors are
// reported to the caller, which logs them (non-fatal) and leaves fields
// unset.
func parseJobspec(js []byte) (jobspecInfo, error) { return parseJobspecIn(js, nil) }

// interner shares the strings many jobs repeat (queue, cwd, name, nodelist)
// instead of allocating a copy per job, and remembers parsed idsets (R's
// rank and core strings repeat just as much). Bounded: past maxInterned
// distinct values it just decodes. A nil *interner decodes every time.
type interner struct {
	strs map[string]string
	sets map[string]setMemo
}

// setMemo is a parsed idset string: the set, or the parse error.
type setMemo struct {
	set idset.Set
	err error
	enc string // Ranges|Brackets encoding, filled on first use
	has bool   // enc is filled
}

func newInterner() *interner {
	return &interner{strs: map[string]string{}, sets: map[string]setMemo{}}
}

const maxInterned = 4096

func (in *interner) str(v []byte) (string, error) {
	if in == nil || len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		return jsonscan.Unquote(v)
	}
	if s, ok := in.strs[string(v[1:len(v)-1])]; ok {
		return s, nil
	}
	s, err := jsonscan.Unquote(v)
	if err == nil && len(in.strs) < maxInterned {
		in.strs[s] = s
	}
	return s, err
}

func (in *interner) of(s string) string {
	if in == nil {
		return s
	}
	if t, ok := in.strs[s]; ok {
		return t
	}
	if len(in.strs) < maxInterned {
		in.strs[s] = s
	}
	return s
}

// set parses the idset in raw JSON string v. errNotString reports a value
// that is not a string; other errors are idset's.
func (in *interner) set(v []byte) (idset.Set, error) {
	m, _, err := in.setMemo(v)
	return m.set, err
}

var errNotString = errors.New("not a string")

// setMemo returns the memo of v and, when it is remembered, its key (the
// string's bytes, for filling enc).
func (in *interner) setMemo(v []byte) (setMemo, []byte, error) {
	plain := in != nil && len(v) >= 2 && v[0] == '"' && bytes.IndexByte(v, '\\') < 0
	if plain {
		if m, ok := in.sets[string(v[1:len(v)-1])]; ok {
			return m, v[1 : len(v)-1], m.err
		}
	}
	s, err := jsonscan.Unquote(v)
	if err != nil {
		return setMemo{}, nil, errNotString
	}
	set, err := idset.Parse(s)
	m := setMemo{set: set, err: err}
	if plain && len(in.sets) < maxInterned {
		in.sets[s] = m
		return m, v[1 : len(v)-1], err
	}
	return m, nil, err
}

// ranksOf is set.Encode(Ranges|Brackets), remembered for a set parsed from
// the remembered string key.
func (in *interner) ranksOf(set idset.Set, key []byte) string {
	if in != nil && key != nil {
		if m, ok := in.sets[string(key)]; ok {
			if !m.has {
				m.enc, _ = set.Encode(idset.Ranges | idset.Brackets)
				m.enc = in.of(m.enc)
				m.has = true
				in.sets[string(key)] = m
			}
			return m.enc
		}
	}
	enc, _ := set.Encode(idset.Ranges | idset.Brackets)
	return in.of(enc)
}

func parseJobspecIn(js []byte, in *interner) (jobspecInfo, error) {
	info := jobspecInfo{duration: -1, nnodes: -1, ntasks: -1, ncores: -1}
	var resources, tasks, attrs []byte
	version := int64(-1)
	err := jsonscan.FastMembers(js, func(k string, v []byte) error {
		switch k {
		case "version":
			n, err := jsonscan.Int(v)
			if err != nil {
				return errors.New("version must be an integer")
			}
			version = n
		case "resources":
			resources = v
		case "tasks":
			tasks = v
		case "attributes":
			attrs = v
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("jobspec: %w", err)
	}
	var perType string
	perCount := int64(1)
	var command0 string
	totalTasks := int64(-1)
	if attrs != nil {
		if jsonscan.KindOf(attrs) != jsonscan.Object {
			return info, errors.New("jobspec: attributes is not an object")
		}
		if sys := jsonscan.FastMember(attrs, "system"); sys != nil {
			err := jsonscan.FastMembers(sys, func(k string, v []byte) error {
				var err error
				switch k {
				case "cwd":
					info.cwd, err = in.str(v)
				case "queue":
					info.queue, err = in.str(v)
				case "project":
					info.project, err = in.str(v)
				case "bank":
					info.bank, err = in.str(v)
				case "duration":
					info.duration, err = jsonscan.Float(v)
				case "job":
					if n := jsonscan.FastMember(v, "name"); n != nil {
						info.name, err = in.str(n)
					}
				case "shell":
					opts := jsonscan.FastMember(v, "options")
					if opts != nil && jsonscan.KindOf(opts) == jsonscan.Object {
						pr := jsonscan.FastMember(opts, "per-resource")
						if pr != nil && jsonscan.KindOf(pr) == jsonscan.Object {
							t := jsonscan.FastMember(pr, "type")
							if perType, err = jsonscan.Unquote(t); err != nil {
								return fmt.Errorf("per-resource type: %w", err)
							}
							if c := jsonscan.FastMember(pr, "count"); c != nil {
								if perCount, err = jsonscan.Int(c); err != nil {
									return fmt.Errorf("per-resource count: %w", err)
								}
							}
						}
					}
				}
				if err != nil {
					return fmt.Errorf("attributes.system.%s: %w", k, err)
				}
				return nil
			})
			if err != nil {
				return info, fmt.Errorf("jobspec: %w", err)
			}
		}
	}
	if tasks != nil && jsonscan.KindOf(tasks) == jsonscan.Array {
		first := true
		_ = jsonscan.FastElems(tasks, func(t []byte) error {
			if !first || jsonscan.KindOf(t) != jsonscan.Object {
				return nil
			}
			first = false
			// One walk for both keys; the last of a repeated key counts, as
			// with fastMember.
			var cmd, cnt []byte
			_ = jsonscan.FastMembers(t, func(k string, v []byte) error {
				switch k {
				case "command":
					cmd = v
				case "count":
					cnt = v
				}
				return nil
			})
			if jsonscan.KindOf(cmd) == jsonscan.Array {
				c0 := true
				_ = jsonscan.FastElems(cmd, func(c []byte) error {
					if c0 {
						command0, _ = in.str(c)
						c0 = false
					}
					return nil
				})
			}
			if jsonscan.KindOf(cnt) == jsonscan.Object {
				if tot := jsonscan.FastMember(cnt, "total"); tot != nil {
					if n, err := jsonscan.Int(tot); err == nil {
						totalTasks = n
					}
				}
			}
			return nil
		})
	}
	if info.name == "" && command0 != "" {
		info.name = command0
		if i := strings.LastIndexByte(command0, '/'); i >= 0 && i < len(command0)-1 {
			info.name = in.of(command0[i+1:])
		}
	}
	if version != 1 {
		return info, fmt.Errorf("jobspec: version %d is not 1", version)
	}
	if info.duration < 0 && attrs != nil {
		return info, errors.New("jobspec: attributes.system.duration missing")
	}
	if resources == nil {
		return info, errors.New("jobspec: resources missing")
	}
	var c jjCounts
	if err := c.walk(resources, 0); err != nil {
		return info, fmt.Errorf("jobspec: %w", err)
	}
	if c.nslots <= 0 {
		return info, errors.New("jobspec: slot count missing")
	}
	if c.slotSize <= 0 {
		return info, errors.New("jobspec: core count missing")
	}
	if c.nnodes > 0 {
		c.nslots *= c.nnodes
		info.nnodes = int32(c.nnodes)
	}
	switch {
	case perType == "node" && c.nnodes > 0:
		info.ntasks = int32(c.nnodes * perCount)
	case perType == "core":
		if c.nnodes <= 0 {
			info.ntasks = int32(c.nslots * c.slotSize * perCount)
		} else {
			info.perCore = int32(perCount)
		}
	case totalTasks >= 0:
		info.ntasks = int32(totalTasks)
	default:
		info.ntasks = int32(c.nslots)
	}
	if !(c.nnodes > 0 && c.exclusive) {
		info.ncores = int32(c.nslots * c.slotSize)
	}
	return info, nil
}

// rInfo is what job-list derives from an RFC 20 R.
type rInfo struct {
	expiration float64
	nnodes     int32
	ncores     int32
	ranks      string
	nodelist   string
}

func parseR(r []byte) (rInfo, error) { return parseRIn(r, nil) }

func parseRIn(r []byte, in *interner) (rInfo, error) {
	var info rInfo
	if jsonscan.KindOf(r) != jsonscan.Object {
		return info, errors.New("R: not an object")
	}
	exec := jsonscan.FastMember(r, "execution")
	if exec == nil || jsonscan.KindOf(exec) != jsonscan.Object {
		return info, errors.New("R: execution missing")
	}
	var b idset.Builder
	var first idset.Set
	var firstKey []byte
	nsets := 0
	var ncores int64
	// The usual R has one nodelist entry: it is kept without a slice.
	var node0 string
	var nodes []string
	nnodes := 0
	err := jsonscan.FastMembers(exec, func(k string, v []byte) error {
		switch k {
		case "expiration":
			f, err := jsonscan.Float(v)
			if err != nil {
				return errors.New("expiration must be a number")
			}
			if f > 0 {
				info.expiration = f
			}
		case "R_lite":
			return jsonscan.FastElems(v, func(e []byte) error {
				rv := jsonscan.FastMember(e, "rank")
				m, key, err := in.setMemo(rv)
				if errors.Is(err, errNotString) {
					return errors.New("rank of an R_lite entry must be a string")
				}
				if err != nil {
					return fmt.Errorf("rank of an R_lite entry: %w", err)
				}
				set := m.set
				if nsets == 0 {
					first, firstKey = set, key
				} else {
					if nsets == 1 {
						b.AddSet(first)
					}
					b.AddSet(set)
				}
				nsets++
				ch := jsonscan.FastMember(e, "children")
				if ch == nil {
					return errors.New("children of an R_lite entry missing")
				}
				cv := jsonscan.FastMember(ch, "core")
				if cv != nil {
					cores, err := in.set(cv)
					if errors.Is(err, errNotString) {
						return errors.New("core of an R_lite entry must be a string")
					}
					if err != nil {
						return fmt.Errorf("core of an R_lite entry: %w", err)
					}
					ncores += int64(set.Len()) * int64(cores.Len())
				}
				return nil
			})
		case "nodelist":
			return jsonscan.FastElems(v, func(e []byte) error {
				s, err := in.str(e)
				if err != nil {
					return errors.New("nodelist entries must be strings")
				}
				switch nnodes {
				case 0:
					node0 = s
				case 1:
					nodes = append(nodes, node0, s)
				default:
					nodes = append(nodes, s)
				}
				nnodes++
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("R: %w", err)
	}
	ranks := first
	if nsets > 1 {
		ranks = b.Set()
		firstKey = nil
	}
	info.nnodes = int32(ranks.Len())
	info.ncores = int32(ncores)
	info.ranks = in.ranksOf(ranks, firstKey)
	if nnodes == 1 && strings.IndexByte(node0, ',') < 0 {
		// The usual single bracketed range is already in RFC 29 form.
		info.nodelist = node0
	} else if nnodes > 0 {
		if nnodes == 1 {
			nodes = []string{node0}
		}
		var hb hostlist.Builder
		for _, n := range nodes {
			h, err := hostlist.Parse(n)
			if err != nil {
				return info, fmt.Errorf("R: nodelist: %w", err)
			}
			hb.AppendList(h)
		}
		info.nodelist = in.of(hb.Hostlist().String())
	}
	return info, nil
}
