package modprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// accessX is access(2)'s X_OK, which package syscall does not name.
const accessX = 1

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Shell runs shell commands for tasks.
type Shell interface {
	// Run runs command with env, returning an *ExitError when it exits
	// non-zero or dies by a signal.
	Run(ctx context.Context, command string, env []string, stdout, stderr io.Writer) error
}

// ExitError is flux-core's "bash: exited with exit status N" or
// "bash: died by signal N".
type ExitError struct {
	Code   int // exit status, or -1 when killed by a signal
	Signal int
}

func (e *ExitError) Error() string {
	if e.Code < 0 {
		return fmt.Sprintf("bash: died by signal %d", e.Signal)
	}
	return fmt.Sprintf("bash: exited with exit status %d", e.Code)
}

// Bash is the default Shell: "bash -c COMMAND". The command is killed when
// ctx ends.
type Bash struct{}

// Run implements Shell.
func (Bash) Run(ctx context.Context, command string, env []string, stdout, stderr io.Writer) error {
	cmd := exec.CommandContext(ctx, "bash", "-c", command)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = 2 * time.Second // do not hang on inherited pipes
	err := cmd.Run()
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Code: -1, Signal: int(ws.Signal())}
		}
		return &ExitError{Code: ee.ExitCode()}
	}
	return fmt.Errorf("bash: %w", err)
}
