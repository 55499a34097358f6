package modprobe

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

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

// Shared values (Context.Set) of the dump and restore actions, named as in
// flux-core's rc1.py.
const (
	sharedDumpfile     = "dumpfile"      // string: dump to restore, "" for none
	sharedDumplink     = "dumplink"      // string: the "auto" RESTORE link, "" for none
	sharedDumpRestored = "dump_restored" // bool: restore loaded a dump
)
