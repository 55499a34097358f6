package modprobe

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/kvs"
)

// Built-in actions hold the logic of flux-core's rc1.py and rc3.py tasks
// that a declarative task cannot express (a KVS checkpoint lookup, values
// shared between tasks, file system work, a background remote process).
// A [[tasks]] table runs one with builtin = "NAME"; its name, ranks,
// ordering and conditions stay in TOML.

// builtinNames lists the built-in actions, for messages.
var builtinNames = []string{"check-restore", "content-dump", "fake-resources", "fsck", "restore", "slurm-expiration-sync"}

// Shared values (Context.Set) of the dump and restore actions, named as in
// flux-core's rc1.py.
const (
	sharedDumpfile     = "dumpfile"      // string: dump to restore, "" for none
	sharedDumplink     = "dumplink"      // string: the "auto" RESTORE link, "" for none
	sharedDumpRestored = "dump_restored" // bool: restore loaded a dump
)

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

// dumpStatedir is the directory under which "auto" dumps live: the
// statedir when the broker keeps it (statedir-cleanup is "0"), else the
// current directory.
func (c *Context) dumpStatedir(ctx context.Context) (string, error) {
	cleanup, ok, err := c.attrLookup(ctx, "statedir-cleanup")
	if err != nil || !ok || cleanup != "0" {
		return ".", err
	}
	dir, ok, err := c.attrLookup(ctx, "statedir")
	if err != nil || !ok {
		// rank 0 always has a statedir; flux-core would use "None".
		return ".", err
	}
	return dir, nil
}

// checkRestore chooses the dump to restore: the content.restore attribute,
// or for "auto" the file the statedir's dump/RESTORE link points to (none
// when there is no link). When there is one, the content backing module
// loads with "truncate".
func checkRestore(ctx context.Context, c *Context) error {
	dumpfile, _, err := c.attrLookup(ctx, "content.restore")
	if err != nil {
		return err
	}
	dumplink := ""
	if dumpfile == "auto" {
		statedir, err := c.dumpStatedir(ctx)
		if err != nil {
			return err
		}
		dumplink = pathlibString(statedir + "/dump/RESTORE")
		isLink, err := isSymlink(dumplink)
		switch {
		case err != nil:
			return err
		case isLink:
			if dumpfile, err = realpath(dumplink); err != nil {
				return err
			}
		default:
			dumpfile, dumplink = "", ""
		}
	}
	if dumpfile != "" {
		dumpfile = pathlibString(dumpfile)
		c.Setopt("content-backing", "truncate", false)
	}
	c.Set(sharedDumpfile, dumpfile)
	c.Set(sharedDumplink, dumplink)
	return nil
}

// restoreDump restores the dump check-restore chose, if the file exists,
// then removes the "auto" RESTORE link so that the next start does not
// restore it again.
func restoreDump(ctx context.Context, c *Context) error {
	dumpfile, err := c.sharedString(sharedDumpfile)
	if err != nil || dumpfile == "" {
		return err
	}
	dumplink, err := c.sharedString(sharedDumplink)
	if err != nil {
		return err
	}
	if err := c.printf("restoring content from %s\n", dumpfile); err != nil {
		return err
	}
	exists, err := pathExists(dumpfile)
	if err != nil {
		return err
	}
	if exists {
		if err := c.Bash(ctx, "flux restore --sd-notify --quiet --checkpoint --size-limit=100M "+shellQuote(dumpfile)); err != nil {
			return err
		}
		c.Set(sharedDumpRestored, true)
	}
	if dumplink != "" {
		exists, err := pathExists(dumplink)
		if err != nil {
			return err
		}
		if exists {
			return os.Remove(dumplink)
		}
	}
	return nil
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

// slurmExpirationSync starts "flux slurm-expiration-sync --jobid=ID" in
// the background through the broker's rexec service, with YOGRT_BACKEND
// set to flux. An invalid SLURM_JOB_ID is reported and skipped.
func slurmExpirationSync(ctx context.Context, c *Context) error {
	v, ok := c.Getenv(ctx, "SLURM_JOB_ID")
	if !ok {
		return errors.New("SLURM_JOB_ID is not set")
	}
	jobid, ok := pyInt(v)
	if !ok {
		_, err := fmt.Fprintln(c.s.m.stderr, "invalid SLURM_JOB_ID. Skipping expiration sync")
		return err
	}
	if err := c.Setenv(ctx, "YOGRT_BACKEND", "flux"); err != nil {
		return err
	}
	return c.rexecBackground(ctx, []string{"flux", "slurm-expiration-sync", "--jobid=" + jobid}, "slurm-sync")
}

// pyInt parses s as Python's int(s) does (surrounding white space, a sign,
// "_" between digits; ASCII digits only) and returns it in canonical
// decimal form.
func pyInt(s string) (string, bool) {
	s = strings.TrimFunc(s, unicode.IsSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	digits := make([]byte, 0, len(s))
	afterDigit := false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch >= '0' && ch <= '9':
			digits = append(digits, ch)
			afterDigit = true
		case ch == '_' && afterDigit:
			afterDigit = false
		default:
			return "", false
		}
	}
	if !afterDigit {
		return "", false // empty, or a trailing "_"
	}
	d := strings.TrimLeft(string(digits), "0")
	switch {
	case d == "":
		return "0", true
	case neg:
		return "-" + d, true
	}
	return d, true
}

// rexecBackground starts cmdline in the background through the local
// broker's rexec service, as flux.subprocess.rexec_bg does: the run's
// environment and current directory, stdin at end of file, output to the
// broker log. It waits for the service to report the process started.
func (c *Context) rexecBackground(ctx context.Context, cmdline []string, label string) error {
	// rexec_bg signs the request when the instance owner is someone else,
	// which takes flux-security.
	if owner, ok, err := c.attrLookup(ctx, "security.owner"); err == nil && ok {
		if uid, perr := strconv.Atoi(strings.TrimSpace(owner)); perr == nil && uid != os.Getuid() {
			return fmt.Errorf("rexec %s: the instance owner is user %d, so the request must be signed, which needs flux-security", cmdline[0], uid)
		}
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	env := map[string]string{}
	for _, kv := range c.environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	payload := map[string]any{
		"cmd": map[string]any{
			"cmdline":  cmdline,
			"label":    label,
			"cwd":      cwd,
			"env":      env,
			"opts":     map[string]string{},
			"channels": []string{},
		},
		"flags": 0,
	}
	if err := c.RPC(ctx, "rexec.exec", fluxkit.NodeidAny, payload, nil); err != nil {
		return fmt.Errorf("rexec %s: %w", strings.Join(cmdline, " "), err)
	}
	return nil
}

// fakeShape is a [fake-resources] table.
type fakeShape struct {
	nodes, cores, gpus int
	prefix, xml, amend string
}

// parseFakeShape reads the [fake-resources] table with flux-core's
// defaults (64 cores and no GPU per node, hosts fake0...).
func parseFakeShape(v any) (fakeShape, error) {
	tbl, ok := v.(map[string]any)
	if !ok {
		return fakeShape{}, fmt.Errorf("[fake-resources] must be a table, got %s", describe(v))
	}
	if _, ok := tbl["nnodes"]; !ok {
		return fakeShape{}, errors.New("[fake-resources] table requires the 'nnodes' key")
	}
	f := fakeShape{cores: 64, prefix: "fake"}
	for _, k := range []struct {
		key string
		min int
		dst *int
	}{{"nnodes", 1, &f.nodes}, {"cores-per-node", 1, &f.cores}, {"gpus-per-node", 0, &f.gpus}} {
		v, ok := tbl[k.key]
		if !ok {
			continue
		}
		n, err := asInt(k.key, v)
		if err == nil && n < k.min {
			err = fmt.Errorf("key %s: must be at least %d, got %d", k.key, k.min, n)
		}
		if err != nil {
			return fakeShape{}, fmt.Errorf("[fake-resources] %w", err)
		}
		*k.dst = n
	}
	for _, k := range []struct {
		key string
		dst *string
	}{{"host-prefix", &f.prefix}, {"hwloc-xml-path", &f.xml}, {"amend-r", &f.amend}} {
		if v, ok := tbl[k.key]; ok {
			s, err := asString(k.key, v)
			if err != nil {
				return fakeShape{}, fmt.Errorf("[fake-resources] %w", err)
			}
			*k.dst = s
		}
	}
	return f, nil
}

// idRange is the RFC 22 idset 0..n-1.
func idRange(n int) string {
	if n == 1 {
		return "0"
	}
	return fmt.Sprintf("0-%d", n-1)
}

// encodeArgs is the flux R encode command line for the shape: from the
// counts, or replicating the hwloc XML's machine on every node.
func (f fakeShape) encodeArgs() []string {
	hosts := fmt.Sprintf("%s[0-%d]", f.prefix, f.nodes-1)
	if f.xml != "" {
		if f.nodes == 1 {
			hosts = f.prefix + "0"
		}
		return []string{"flux", "R", "encode", "--xml=" + f.xml, "-r", idRange(f.nodes), "-H", hosts}
	}
	args := []string{"flux", "R", "encode", "-r" + idRange(f.nodes), "-H" + hosts, "-c", idRange(f.cores)}
	if f.gpus > 0 {
		args = append(args, "-g", idRange(f.gpus))
	}
	return args
}

// amendProgram runs a [fake-resources] amend-r amender (flux-core's
// load_amender forms) over R read from stdin: argv is SPEC [XMLFILE].
const amendProgram = `import json, sys
from flux.testing.fake_resources import load_amender
try:
    amend = load_amender(sys.argv[1])
except RuntimeError as exc:
    sys.exit(str(exc))
xml = None
if len(sys.argv) > 2:
    with open(sys.argv[2]) as f:
        xml = f.read()
json.dump(amend(json.load(sys.stdin), hwloc_xml=xml), sys.stdout)
`

// fakeResources writes synthetic R, described by the [fake-resources]
// config table, to resource.R, and has the resource module trust it
// (noverify, monitor-force-up) instead of the host's topology.
func fakeResources(ctx context.Context, c *Context) error {
	v, ok, err := c.ConfGet(ctx, "fake-resources")
	if err != nil {
		return err
	}
	if !ok {
		v = map[string]any{}
	}
	f, err := parseFakeShape(v)
	if err != nil {
		return err
	}
	if f.xml == "" {
		if err := c.printf("Encoding fake R: %d nodes, %d cores/node, %d GPUs/node\n", f.nodes, f.cores, f.gpus); err != nil {
			return err
		}
	}
	args := f.encodeArgs()
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	cmd := strings.Join(args, " ")
	if f.amend != "" {
		cmd = "set -o pipefail; " + cmd + " | flux python -c " + shellQuote(amendProgram) + " " + shellQuote(f.amend)
		if f.xml != "" {
			cmd += " " + shellQuote(f.xml)
		}
	}
	var out bytes.Buffer
	if err := c.s.m.shell.Run(ctx, cmd, c.environ(), &out, c.s.m.stderr); err != nil {
		return fmt.Errorf("encoding R: %w", err)
	}
	var r bytes.Buffer
	if err := json.Compact(&r, out.Bytes()); err != nil || !bytes.HasPrefix(r.Bytes(), []byte("{")) {
		return fmt.Errorf("encoding R: the output is not a JSON object: %q", truncate(out.String(), 80))
	}
	var txn kvs.Txn
	txn.Put("resource.R", r.Bytes())
	if err := kvs.Commit(ctx, c.Handle(), "", &txn); err != nil {
		return fmt.Errorf("resource.R: %w", err)
	}
	if err := c.printf("Fake resources injected.\n"); err != nil {
		return err
	}
	c.Setopt("resource", "monitor-force-up noverify", true)
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// contentDump dumps the content store to the content.dump attribute's
// file, or for "auto" to a timestamped file under the statedir's dump
// directory, then points dump/RESTORE at it for content.restore=auto.
func contentDump(ctx context.Context, c *Context) error {
	dumpfile, ok, err := c.attrLookup(ctx, "content.dump")
	if err != nil || !ok {
		return err // not set any more: nothing to dump to
	}
	dumplink := ""
	if dumpfile == "auto" {
		statedir, err := c.dumpStatedir(ctx)
		if err != nil {
			return err
		}
		dir := pathlibString(statedir + "/dump")
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return err
		}
		dumpfile = pathlibString(dir + "/" + time.Now().Format("20060102_150405") + ".tgz")
		dumplink = pathlibString(dir + "/RESTORE")
	}
	if err := c.printf("dumping content to %s\n", dumpfile); err != nil {
		return err
	}
	if err := c.Bash(ctx, "flux dump --sd-notify --quiet --ignore-failed-read --no-cache --maxreqs=128 --checkpoint "+shellQuote(dumpfile)); err != nil {
		return err
	}
	if dumplink != "" {
		return os.Symlink(filepath.Base(dumpfile), dumplink)
	}
	return nil
}

// pathlibString is str(pathlib.PurePosixPath(p)): empty and "."
// components and trailing slashes dropped, ".." kept, "" becomes ".".
func pathlibString(p string) string {
	lead := ""
	switch {
	case strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///"):
		lead = "//" // POSIX leaves the meaning of exactly two to the system
	case strings.HasPrefix(p, "/"):
		lead = "/"
	}
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	if out := lead + strings.Join(parts, "/"); out != "" {
		return out
	}
	return "."
}

// ignorableStat reports the errors pathlib's exists() and is_symlink()
// take for "no".
func ignorableStat(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EBADF)
}

// pathExists is pathlib's exists(): symbolic links followed.
func pathExists(p string) (bool, error) {
	_, err := os.Stat(p)
	switch {
	case err == nil:
		return true, nil
	case ignorableStat(err):
		return false, nil
	}
	return false, err
}

func isSymlink(p string) (bool, error) {
	fi, err := os.Lstat(p)
	switch {
	case err == nil:
		return fi.Mode()&fs.ModeSymlink != 0, nil
	case ignorableStat(err):
		return false, nil
	}
	return false, err
}

// realpath is pathlib's resolve(): an absolute path with every symbolic
// link that exists resolved; components that do not exist are kept.
func realpath(p string) (string, error) {
	if !filepath.IsAbs(p) {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		p = wd + "/" + p
	}
	resolved := "/"
	rest := strings.Split(p, "/")
	for links := 0; len(rest) > 0; {
		part := rest[0]
		rest = rest[1:]
		switch part {
		case "", ".":
			continue
		case "..":
			resolved = filepath.Dir(resolved)
			continue
		}
		next := filepath.Join(resolved, part)
		target, err := os.Readlink(next)
		if err != nil {
			resolved = next // not a link, or missing
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("%s: %w", p, syscall.ELOOP)
		}
		if filepath.IsAbs(target) {
			resolved = "/"
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return resolved, nil
}
