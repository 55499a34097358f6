package modprobe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fluxkit/fluxkit"
)

// Built-in actions hold the logic of flux-core's rc1.py and rc3.py tasks
// that a declarative task cannot express (a KVS checkpoint lookup, values
// shared between tasks, file system work, a background remote process).
// A [[tasks]] table runs one with builtin = "NAME"; its name, ranks,
// ordering and conditions stay in TOML.

// builtinNames lists the built-in actions, for messages.
var builtinNames = []string{"check-restore", "content-dump", "fake-resources", "fsck", "restore", "slurm-expiration-sync"}

func builtinFunc(name string) func(context.Context, *Context) error {
	switch name {
	case "check-restore":
		return checkRestore
	case "restore":
		return restoreDump
	case "fsck":
		return fsck
	case "slurm-expiration-sync":
		return slurmExpirationSync
	case "fake-resources":
		return fakeResources
	case "content-dump":
		return contentDump
	}
	return nil
}

// checkBuiltin refuses an unknown built-in action name.
func checkBuiltin(name string) error {
	if builtinFunc(name) != nil {
		return nil
	}
	if hint := didYouMean(name, builtinNames); hint != "" {
		return fmt.Errorf("unknown builtin %q (did you mean %q?)", name, hint)
	}
	return fmt.Errorf("unknown builtin %q (known: %s)", name, strings.Join(builtinNames, ", "))
}

func runBuiltin(ctx context.Context, c *Context, name string) error {
	f := builtinFunc(name)
	if f == nil {
		return checkBuiltin(name)
	}
	return f(ctx, c)
}

// attrLookup is flux-core's context.attr_get: a missing attribute is not
// an error, any other failure is.
func (c *Context) attrLookup(ctx context.Context, name string) (string, bool, error) {
	v, err := c.AttrGet(ctx, name)
	switch {
	case errors.Is(err, fluxkit.ENOENT):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("attr.get %s: %w", name, err)
	}
	return v, true, nil
}

// attrRemove removes a broker attribute (attr.rm, as handle.attr_remove).
func (c *Context) attrRemove(ctx context.Context, name string) error {
	if err := c.RPC(ctx, "attr.rm", fluxkit.NodeidAny, map[string]string{"name": name}, nil); err != nil {
		return fmt.Errorf("attr.rm %s: %w", name, err)
	}
	return nil
}

// sharedString returns a shared string value, "" when unset.
func (c *Context) sharedString(key string) (string, error) {
	switch v := c.Get(key, nil).(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	default:
		return "", fmt.Errorf("shared value %s is a %T, not a path", key, v)
	}
}

func (c *Context) printf(format string, args ...any) error {
	_, err := fmt.Fprintf(c.Stdout(), format, args...)
	return err
}

// fsck checks the content store when the instance may not have shut down
// cleanly: a KVS checkpoint exists (none means a first start) and no dump
// was restored. When the check fails, content.dump is removed so that rc3
// does not dump damaged content.
func fsck(ctx context.Context, c *Context) error {
	var out struct {
		Value json.RawMessage `json:"value"`
	}
	err := c.RPC(ctx, "content.checkpoint-get", fluxkit.NodeidAny, nil, &out)
	switch {
	case errors.Is(err, fluxkit.ENOENT):
		return nil
	case err != nil:
		return fmt.Errorf("content.checkpoint-get: %w", err)
	case len(out.Value) == 0:
		return errors.New("content.checkpoint-get: response has no value")
	}
	if restored, _ := c.Get(sharedDumpRestored, false).(bool); restored {
		return nil
	}
	err = c.Bash(ctx, "flux fsck --repair --job-aware --quiet")
	var ee *ExitError
	if errors.As(err, &ee) {
		if rmErr := c.attrRemove(ctx, "content.dump"); rmErr != nil {
			return fmt.Errorf("%w; %w", err, rmErr)
		}
	}
	return err
}
