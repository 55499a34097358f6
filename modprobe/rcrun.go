package modprobe

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// hold evaluates the conditions: attributes as the broker has them (any
// error counts as unset), config keys in the broker config, variables in
// the local environment with this run's changes.
func (cd conditions) hold(ctx context.Context, c *Context) bool {
	attr := func(n string) (string, bool) {
		v, err := c.AttrGet(ctx, n)
		return v, err == nil
	}
	conf := func(n string) (string, bool) {
		v, ok, err := c.ConfGet(ctx, n)
		if err != nil || !ok {
			return "", false
		}
		if s, isStr := v.(string); isStr {
			return s, true
		}
		return fmt.Sprint(v), true
	}
	return condition(cd.attrs, attr) && condition(cd.config, conf) && condition(cd.env, c.lookupLocal)
}

// condition evaluates "x", "!x", "x=value" and "!x=value" against lookup.
func condition(specs []string, lookup func(string) (string, bool)) bool {
	for _, s := range specs {
		neg := strings.HasPrefix(s, "!")
		if neg {
			s = s[1:]
		}
		name, want, cmp := strings.Cut(s, "=")
		v, ok := lookup(name)
		hold := ok && (!cmp || v == want)
		if hold == neg {
			return false
		}
	}
	return true
}

func (st *setupStep) apply(ctx context.Context, c *Context) error {
	if !st.when.hold(ctx, c) {
		return nil
	}
	for _, kv := range st.altFromAttrs {
		if v, err := c.AttrGet(ctx, kv[1]); err == nil {
			if err := c.SetAlternative(kv[0], v); err != nil {
				return err
			}
		}
	}
	for _, kv := range st.alternatives {
		if err := c.SetAlternative(kv[0], kv[1]); err != nil {
			return err
		}
	}
	if err := st.edits.apply(ctx, c); err != nil {
		return err
	}
	if len(st.load) > 0 {
		if err := c.LoadModules(st.load...); err != nil {
			return err
		}
	}
	for _, n := range st.enable {
		if err := c.Enable(n); err != nil {
			return err
		}
	}
	for _, n := range st.disable {
		if err := c.Disable(n); err != nil {
			return err
		}
	}
	return printLine(c, st.print)
}

// apply sets the environment variables, then the module options.
func (e *edits) apply(ctx context.Context, c *Context) error {
	for _, kv := range e.setenv {
		if err := c.Setenv(ctx, kv[0], kv[1]); err != nil {
			return err
		}
	}
	for _, kv := range e.setopt {
		c.Setopt(kv[0], kv[1], e.overwrite)
	}
	return nil
}

// printLine prints line, if any, on the run's stdout.
func printLine(c *Context, line string) error {
	if line == "" {
		return nil
	}
	_, err := fmt.Fprintln(c.Stdout(), line)
	return err
}

// runAction performs a declarative task.
func (a *action) runAction(ctx context.Context, c *Context) error {
	if !a.when.hold(ctx, c) {
		return nil
	}
	if a.builtin != "" {
		return runBuiltin(ctx, c, a.builtin)
	}
	if err := a.edits.apply(ctx, c); err != nil {
		return err
	}
	if err := printLine(c, a.print); err != nil {
		return err
	}
	if a.rpc != "" {
		// As flux-core's context.rpc(topic, payload): to the local
		// broker's service (FLUX_NODEID_ANY), no payload unless given.
		var in any
		if a.payload != nil {
			in = a.payload
		}
		if err := c.RPC(ctx, a.rpc, a.nodeid, in, nil); err != nil {
			return fmt.Errorf("%s: %w", a.rpc, err)
		}
	}
	if a.run != "" {
		if err := c.Bash(ctx, a.run); err != nil {
			return err
		}
	}
	if a.rcScripts != 0 {
		if err := c.RunRCScripts(ctx, a.rcScripts); err != nil {
			return err
		}
	}
	if a.fail != "" {
		return errors.New(a.fail)
	}
	return nil
}
