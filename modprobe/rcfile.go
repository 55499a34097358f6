package modprobe

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fluxkit/fluxkit"
)

// action is what a declarative task does, when its when-* conditions hold
// at run time: a built-in action, or in this order setenv, setopt, print,
// rpc, run, rc-scripts, fail.
type action struct {
	stepKeys
	builtin   string
	rpc       string
	payload   map[string]any
	nodeid    uint32
	run       string
	rcScripts int
	fail      string
}

var taskActionKeys = []string{"print", "run", "rpc", "payload", "nodeid", "setopt", "setopt-overwrite", "setenv", "rc-scripts", "fail", "builtin", "when-attrs", "when-config", "when-env"}

var setupKeys = []string{"when-attrs", "when-config", "when-env", "alternatives-from-attrs", "alternatives", "load", "enable", "disable", "setopt", "setopt-overwrite", "setenv", "print"}

// setupStep is one [[setup]] table: conditions and what to do when they
// hold.
type setupStep struct {
	stepKeys
	altFromAttrs          [][2]string
	alternatives          [][2]string
	load, enable, disable []string
}

// stepKeys are the keys a setup step and a task have in common: when-*
// conditions, checked as it runs; the environment variables and module
// options it sets; a line it prints.
type stepKeys struct {
	when  conditions
	edits edits
	print string
}

// conditions are the when-attrs, when-config and when-env lists.
type conditions struct {
	attrs, config, env []string
}

// edits are the environment variables (setenv) and module options (setopt,
// which setopt-overwrite makes replace a module's default arguments) set,
// in that order.
type edits struct {
	setenv    [][2]string
	setopt    [][2]string
	overwrite bool
}

// set parses one of the common keys; it reports false for any other key.
func (sk *stepKeys) set(key string, v any) (bool, error) {
	var err error
	switch key {
	case "when-attrs":
		sk.when.attrs, err = asStrings(key, v)
	case "when-config":
		sk.when.config, err = asStrings(key, v)
	case "when-env":
		sk.when.env, err = asStrings(key, v)
	case "setenv":
		sk.edits.setenv, err = stringTable(key, v)
	case "setopt":
		sk.edits.setopt, err = stringTable(key, v)
	case "setopt-overwrite":
		sk.edits.overwrite, err = asBool(key, v)
	case "print":
		sk.print, err = asString(key, v)
	default:
		return false, nil
	}
	return true, err
}

// errPythonRC is what a flux-core Python rc file gets.
var errPythonRC = errors.New("rc files are TOML here; this is a flux-core Python rc file: write its setup() as [[setup]] tables and its @task functions as [[tasks]] tables (see the modprobe package documentation)")

// pythonLine returns the first line (1-based) of data that only Python
// would start with, or 0.
func pythonLine(data []byte) int {
	for i, line := range strings.Split(string(data), "\n") {
		for _, p := range []string{"import ", "from ", "def ", "class ", "@task"} {
			if strings.HasPrefix(line, p) {
				return i + 1
			}
		}
	}
	return 0
}

// parseRCFile parses a declarative rc file: [[setup]] steps and [[tasks]].
// A flux-core Python rc file (named *.py, or failing to parse and reading
// like Python) is refused in those words rather than with a TOML error.
func parseRCFile(file string, data []byte) (*rcUnit, error) {
	if strings.HasSuffix(file, ".py") {
		return nil, &ConfigError{File: file, Line: pythonLine(data), Err: errPythonRC}
	}
	doc, err := parseDoc(file, data)
	if err != nil {
		if line := pythonLine(data); line > 0 {
			return nil, &ConfigError{File: file, Line: line, Err: errPythonRC}
		}
		return nil, err
	}
	u := &rcUnit{name: file}
	var steps []*setupStep
	for _, key := range doc.keys("", doc.data) {
		switch key {
		case "tasks":
			list, ok := doc.data[key].([]any)
			if !ok {
				return nil, doc.errorf(key, fmt.Errorf("tasks must be an array of tables, got %s", describe(doc.data[key])))
			}
			err := doc.eachTable(key, list, false, "", func(path string, tbl map[string]any) error {
				e, err := parseRCTask(doc, path, tbl)
				if err != nil {
					return err
				}
				e.origin = file
				u.tasks = append(u.tasks, e)
				return nil
			})
			if err != nil {
				return nil, err
			}
		case "setup":
			var list []any
			single := false
			switch v := doc.data[key].(type) {
			case []any:
				list = v
			case map[string]any:
				list, single = []any{v}, true
			default:
				return nil, doc.errorf(key, fmt.Errorf("setup must be a table or an array of tables, got %s", describe(v)))
			}
			err := doc.eachTable(key, list, single, "", func(path string, tbl map[string]any) error {
				st, err := parseSetupStep(doc, path, tbl)
				steps = append(steps, st)
				return err
			})
			if err != nil {
				return nil, err
			}
		default:
			return nil, doc.errorf(key, fmt.Errorf("unknown key %s in rc file (expected setup or tasks)", key))
		}
	}
	if len(steps) > 0 {
		u.setup = func(ctx context.Context, c *Context) error {
			for _, st := range steps {
				if err := st.apply(ctx, c); err != nil {
					return fmt.Errorf("%s: setup: %w", file, err)
				}
			}
			return nil
		}
	}
	return u, nil
}

func parseRCTask(doc *doc, path string, tbl map[string]any) (*entry, error) {
	keys := doc.keys(path, tbl)
	nameVal, ok := tbl["name"]
	if !ok {
		return nil, doc.errorf(path, errors.New(`task missing required name argument: @task("name")`))
	}
	name, err := asString("name", nameVal)
	if err == nil && name == "" {
		err = errors.New(`task missing required name argument: @task("name")`)
	}
	if err == nil {
		err = checkName(name)
	}
	if err != nil {
		return nil, doc.errorf(path+".name", err)
	}
	e := &entry{name: name, kind: kindTask, priority: DefaultPriority}
	act := &action{nodeid: fluxkit.NodeidAny}
	nodeidSet := false
	for _, k := range keys {
		kp := path + "." + k
		v := tbl[k]
		common, err := act.set(k, v)
		switch {
		case common:
		case k == "name":
		case k == "module", k == "args", k == "exec":
			err = fmt.Errorf("%s: unknown task argument %s (modules belong in modprobe.toml)", name, k)
		case k == "run":
			act.run, err = asString(k, v)
		case k == "fail":
			act.fail, err = asString(k, v)
		case k == "builtin":
			if act.builtin, err = asString(k, v); err == nil {
				err = checkBuiltin(act.builtin)
			}
		case k == "rpc":
			act.rpc, err = asString(k, v)
		case k == "payload":
			m, ok := v.(map[string]any)
			if !ok {
				err = &typeError{key: k, want: "a table", got: v}
			}
			act.payload = m
		case k == "nodeid":
			var n int
			if n, err = asInt(k, v); err == nil {
				if n < 0 || int64(n) > int64(^uint32(0)>>1) {
					err = fmt.Errorf("key nodeid: %d is not a rank", n)
				}
				act.nodeid = uint32(n)
				nodeidSet = true
			}
		case k == "rc-scripts":
			var n int
			if n, err = asInt(k, v); err == nil && n != 1 && n != 3 {
				err = fmt.Errorf("key rc-scripts: must be 1 or 3, got %d", n)
			}
			act.rcScripts = n
		default:
			if slices.Contains(taskKeys, k) {
				err = e.setField(k, v)
			} else {
				hint := didYouMean(k, append(slices.Clone(taskKeys), taskActionKeys...))
				msg := fmt.Sprintf("%s: unknown task argument %s", name, k)
				if hint != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", hint)
				}
				err = errors.New(msg)
			}
		}
		if err != nil {
			return nil, doc.errorf(kp, err)
		}
	}
	if act.payload != nil && act.rpc == "" {
		return nil, doc.errorf(path+".payload", fmt.Errorf("%s: payload without rpc", name))
	}
	if nodeidSet && act.rpc == "" {
		return nil, doc.errorf(path+".nodeid", fmt.Errorf("%s: nodeid without rpc", name))
	}
	if act.builtin != "" {
		for _, k := range keys {
			if slices.Contains(taskActionKeys, k) && k != "builtin" && !strings.HasPrefix(k, "when-") {
				return nil, doc.errorf(path+"."+k, fmt.Errorf("%s: %s cannot be combined with builtin", name, k))
			}
		}
	}
	if err := e.checkStar(); err != nil {
		return nil, doc.errorf(path, err)
	}
	e.action = act
	return e, nil
}

func stringTable(key string, v any) ([][2]string, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &typeError{key: key, want: "a table of strings", got: v}
	}
	out := make([][2]string, 0, len(m))
	for k, val := range m {
		s, ok := val.(string)
		if !ok {
			return nil, &typeError{key: key + "." + k, want: "a string", got: val}
		}
		out = append(out, [2]string{k, s})
	}
	slices.SortFunc(out, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return out, nil
}

func parseSetupStep(doc *doc, path string, tbl map[string]any) (*setupStep, error) {
	st := &setupStep{}
	for _, k := range doc.keys(path, tbl) {
		v := tbl[k]
		common, err := st.set(k, v)
		switch {
		case common:
		case k == "alternatives-from-attrs":
			st.altFromAttrs, err = stringTable(k, v)
		case k == "alternatives":
			st.alternatives, err = stringTable(k, v)
		case k == "load":
			st.load, err = asStrings(k, v)
		case k == "enable":
			st.enable, err = asStrings(k, v)
		case k == "disable":
			st.disable, err = asStrings(k, v)
		default:
			err = newUnknownKey(k, setupKeys)
		}
		if err != nil {
			return nil, doc.errorf(path+"."+k, err)
		}
	}
	return st, nil
}
