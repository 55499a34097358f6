package modprobe

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// deniedFS is a file system in which one directory cannot be read.
type deniedFS struct {
	fs.FS
	deny string
}

func (d deniedFS) Open(name string) (fs.File, error) {
	if name == d.deny {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return d.FS.Open(name)
}

func TestUnreadableDirectoryIsAnError(t *testing.T) {
	site := fstest.MapFS{
		"modprobe.toml":      &fstest.MapFile{Data: []byte("[[modules]]\nname = \"kvs\"\n")},
		"modprobe.d/x.toml":  &fstest.MapFile{Data: []byte("kvs.ranks = \"0\"\n")},
		"rc1.d/x.toml":       &fstest.MapFile{Data: []byte("[[tasks]]\nname = \"t\"\n")},
		"modprobe.d/y.toml~": &fstest.MapFile{Data: []byte("not read")},
	}
	for _, dir := range []string{"modprobe.d", "rc1.d"} {
		h := newHarness(t, testbroker.Config{})
		h.env["FLUX_MODPROBE_PATH"] = "/site"
		m := h.mp(0, func(c *Config) { c.Builtin, c.BuiltinDir = deniedFS{site, dir}, "/site" })
		_, err := m.PrepareRC1(testutil.Context(t))
		require.Error(t, err, dir)
		assert.EqualError(t, err, "/site/"+dir+": cannot read directory: permission denied")
		assert.ErrorIs(t, err, fs.ErrPermission)
		assert.ErrorIs(t, err, ErrConfig)
	}

	// On a real file system: a modprobe.d that is not a directory, and a
	// FIFO among the files.
	h := newHarness(t, testbroker.Config{})
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("modprobe.d", "kvs.ranks = \"0\"\n")
	_, err := h.mp(0).Show(testutil.Context(t), "kvs", Selection{})
	assert.EqualError(t, err, filepath.Join(h.dir, "modprobe.d")+": cannot read directory: "+syscall.ENOTDIR.Error())
	require.NoError(t, os.Remove(filepath.Join(h.dir, "modprobe.d")))
	h.write("modprobe.d/a.toml", "kvs.ranks = \"0\"\n")
	require.NoError(t, syscall.Mkfifo(filepath.Join(h.dir, "modprobe.d", "b.toml"), 0o644))
	_, err = h.mp(0).Show(testutil.Context(t), "kvs", Selection{})
	assert.EqualError(t, err, filepath.Join(h.dir, "modprobe.d", "b.toml")+": not a regular file")

	// Permissions bind everyone but root.
	if os.Geteuid() != 0 {
		h := newHarness(t, testbroker.Config{})
		h.env["FLUX_MODPROBE_PATH"] = h.dir
		h.write("modprobe.d/a.toml", "kvs.ranks = \"0\"\n")
		require.NoError(t, os.Chmod(filepath.Join(h.dir, "modprobe.d"), 0))
		t.Cleanup(func() { _ = os.Chmod(filepath.Join(h.dir, "modprobe.d"), 0o755) })
		_, err := h.mp(0).Show(testutil.Context(t), "kvs", Selection{})
		assert.ErrorIs(t, err, fs.ErrPermission)
		assert.ErrorContains(t, err, filepath.Join(h.dir, "modprobe.d")+": cannot read directory")
	}
}

func TestUnreadableRCScriptDirectoryIsAnError(t *testing.T) {
	// flux-core reports a directory it cannot read and runs the other
	// scripts before failing; a file in place of the directory is
	// reported the same way here (flux-core skips it).
	h := newHarness(t, testbroker.Config{})
	confdir := filepath.Join(h.dir, "etc")
	h.write("etc/rc1.d", "a file, not a directory")
	extra := h.write("extra/rc1.d/10-ok", "#!/bin/sh\necho ok\n")
	require.NoError(t, os.Chmod(extra, 0o755))
	h.env["FLUX_RC_EXTRA"] = filepath.Join(h.dir, "extra")
	m := h.mp(0, func(c *Config) { c.ConfDir = confdir })
	_, err := m.Run(testutil.Context(t), RC{Tasks: []Task{{Name: "scripts", Run: func(ctx context.Context, c *Context) error { return c.RunRCScripts(ctx, 1) }}}})
	assert.ErrorContains(t, err, "one or more rc1.d scripts failed")
	assert.Contains(t, h.stderr.String(), "Cannot access directory "+filepath.Join(confdir, "rc1.d")+": "+syscall.ENOTDIR.Error()+"\n")
	assert.Equal(t, "running "+extra+"\nok\n", h.stdout.String())
}

const pythonRC = `##############################################################
# Copyright 2025 Lawrence Livermore National Security, LLC
##############################################################

import errno

from flux.modprobe import task


def setup(context):
    context.load_modules(["content"])


@task("post-start-event", ranks="0", after=["kvs"])
def post_start_event(context):
    context.bash("flux startlog --post-start-event")
`

func TestPythonRCFile(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	for _, name := range []string{"rc1.py", "rc1-copy.toml"} {
		f := h.write(name, pythonRC)
		_, err := h.mp(0).PrepareRunFile(testutil.Context(t), f)
		require.Error(t, err, name)
		assert.True(t, strings.HasPrefix(err.Error(), f+":5: rc files are TOML here; this is a flux-core Python rc file"), "%s: %v", name, err)
		assert.ErrorIs(t, err, ErrConfig)
	}
	// A site's rc1.d/*.py would never run: it is refused, not skipped.
	h.env["FLUX_MODPROBE_PATH"] = h.dir
	h.write("rc1.d/site.py", pythonRC)
	_, err := h.mp(0).PrepareRC1(testutil.Context(t))
	assert.ErrorContains(t, err, filepath.Join(h.dir, "rc1.d", "site.py")+": rc files are TOML here")
	// A TOML syntax error in a file that is not Python stays a TOML error.
	f := h.write("bad.toml", "[[tasks]\nname = \"x\"\n")
	_, err = h.mp(0).PrepareRunFile(testutil.Context(t), f)
	assert.ErrorContains(t, err, f+":1:")
	assert.NotContains(t, err.Error(), "rc files are TOML here")
}

func TestSelfReferenceIsACycle(t *testing.T) {
	for _, key := range []string{"after", "before", "requires"} {
		d := newDB()
		err := d.applyModulesFile("x.toml", []byte("[[modules]]\nname = \"a\"\n"+key+" = [\"b\", \"a\"]\n"))
		assert.EqualError(t, err, "x.toml:3: modules[0]: invalid modules entry: "+key+" names a itself: ('nodes are in a cycle', ['a', 'a'])")
		assert.ErrorIs(t, err, ErrCycle)
		assert.ErrorIs(t, err, ErrConfig)

		// The same through an update, the broker config and an rc task.
		d = newDB()
		require.NoError(t, d.applyModulesFile("x.toml", []byte("[[modules]]\nname = \"a\"\n")))
		err = d.applyModulesFile("y.toml", []byte("a."+key+" = [\"a\"]\n"))
		assert.ErrorIs(t, err, ErrCycle)
		assert.ErrorContains(t, err, "y.toml:1: a."+key+": ")
		err = d.applyBrokerModules([]byte(`{"modules":{"a":{"` + key + `":["a"]}}}`))
		assert.ErrorIs(t, err, ErrCycle)
		assert.ErrorContains(t, err, "broker config: modules.a."+key+": ")
		_, err = parseRCFile("rc.toml", []byte("[[tasks]]\nname = \"t\"\n"+key+" = [\"t\"]\n"))
		assert.ErrorIs(t, err, ErrCycle)
		assert.ErrorContains(t, err, "rc.toml:3: tasks[0]."+key+": ")
	}
	h := newHarness(t, testbroker.Config{})
	_, err := h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{{Name: "t", After: []string{"t"}}}})
	assert.EqualError(t, err, "t: after names t itself: ('nodes are in a cycle', ['t', 't'])")

	// Through a service the module provides: a cycle when planned.
	_, err = h.mp(0).Run(testutil.Context(t), RC{Tasks: []Task{{Name: "t", Provides: []string{"svc"}, After: []string{"svc"}, Run: func(context.Context, *Context) error { return nil }}}})
	assert.EqualError(t, err, "('nodes are in a cycle', ['t', 't'])")
	assert.ErrorIs(t, err, ErrCycle)
}

func TestNamesAreChecked(t *testing.T) {
	for _, bad := range []string{"a,b", "a*", "*", "tab\there", "bell\a", "del\x7f", "nl\nx", "c1\u0085"} {
		d := newDB()
		err := d.applyModulesFile("x.toml", []byte("[[modules]]\nname = "+tomlQuote(bad)+"\n"))
		assert.ErrorContains(t, err, "x.toml:2: modules[0]: invalid modules entry: invalid name ", bad)
		assert.ErrorContains(t, err, `names must not contain commas, "*" or control characters`)
		err = d.applyModulesFile("y.toml", []byte("[[modules]]\nname = \"ok\"\nprovides = ["+tomlQuote(bad)+"]\n"))
		assert.ErrorContains(t, err, "y.toml:3: modules[0]: invalid modules entry: invalid name ", bad)
		_, err = parseRCFile("rc.toml", []byte("[[tasks]]\nname = "+tomlQuote(bad)+"\n"))
		assert.ErrorContains(t, err, "rc.toml:2: tasks[0].name: invalid name ", bad)
		_, err = newTaskEntry(Task{Name: bad})
		assert.ErrorContains(t, err, "invalid name ", bad)
		_, err = newTaskEntry(Task{Name: "ok", Provides: []string{bad}})
		assert.ErrorContains(t, err, "ok: provides: invalid name ", bad)
	}
	d := newDB()
	require.NoError(t, d.applyModulesFile("x.toml", []byte("[[modules]]\nname = \"größe-1.x_y\"\n")), "other names are fine")
}

func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteString(`\u00` + "0123456789abcdef"[r>>4:r>>4+1] + "0123456789abcdef"[r&15:r&15+1])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// brokenWriter fails every write, as a full disk does.
type brokenWriter struct{}

func (brokenWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

func TestWriteErrorsFailTasks(t *testing.T) {
	h := newHarness(t, testbroker.Config{})
	m := h.mp(0, dryRun, func(c *Config) { c.Stdout = brokenWriter{} })
	_, err := m.Run(testutil.Context(t), RC{Tasks: []Task{{Name: "t", Run: func(context.Context, *Context) error { return nil }}}})
	var re *RunError
	require.ErrorAs(t, err, &re)
	assert.ErrorIs(t, err, syscall.ENOSPC, "a dry run that cannot print fails")

	f := h.write("p.toml", "[[setup]]\nprint = \"hello\"\n")
	_, err = h.mp(0, func(c *Config) { c.Stdout = brokenWriter{} }).PrepareRunFile(testutil.Context(t), f)
	assert.ErrorIs(t, err, syscall.ENOSPC, "a setup print that fails")
	f = h.write("q.toml", "[[tasks]]\nname = \"t\"\nprint = \"hello\"\n")
	s, err := h.mp(0, func(c *Config) { c.Stdout = brokenWriter{} }).PrepareRunFile(testutil.Context(t), f)
	require.NoError(t, err)
	_, err = s.Execute(testutil.Context(t))
	assert.ErrorIs(t, err, syscall.ENOSPC, "a task print that fails")
	assert.True(t, errors.As(err, &re))
}
