package modprobe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/fluxkit/fluxkit"
)

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
