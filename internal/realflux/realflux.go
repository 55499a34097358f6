// Package realflux finds and starts a real flux-core for tests.
//
// flux-core is the one test peer no package registry ships, so tests that
// need it look for it and skip, saying how to provide it, when it is absent:
// FLUX_CORE_PREFIX names an installation prefix (its bin/flux is used), or
// else flux is looked up on PATH. Everything else about the real instance
// (size, configuration, the initial program) is chosen by the test.
package realflux

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/testutil"
)

// Flux returns the path of the flux command, or "" when flux-core is not
// available.
func Flux() string {
	if p := os.Getenv("FLUX_CORE_PREFIX"); p != "" {
		f := filepath.Join(p, "bin", "flux")
		if _, err := os.Stat(f); err == nil {
			return f
		}
		return ""
	}
	f, err := exec.LookPath("flux")
	if err != nil {
		return ""
	}
	return f
}

// Require returns the flux command, or skips t with a message naming
// FLUX_CORE_PREFIX when flux-core is not available.
func Require(t testing.TB) string {
	t.Helper()
	f := Flux()
	if f == "" {
		if p := os.Getenv("FLUX_CORE_PREFIX"); p != "" {
			t.Skipf("needs a real flux-core: FLUX_CORE_PREFIX=%s has no bin/flux", p)
		}
		t.Skip("needs a real flux-core: set FLUX_CORE_PREFIX to its installation prefix, or put flux on PATH")
	}
	return f
}

// Instance is a running `flux start` whose initial program waits for the
// test: it reports each broker's local URI and holds the instance until
// Stop, which ends it cleanly.
type Instance struct {
	Flux string
	// URIs are the local:// URIs of the brokers, indexed by rank.
	URIs []string
	// Dir is a scratch directory that lives as long as the instance.
	Dir string

	cmd    *exec.Cmd
	stdin  io.WriteCloser
	output *testutil.Buffer
	waited chan struct{}
	err    error
	once   sync.Once
}

// Options adjust an instance.
type Options struct {
	// Size is the number of brokers (flux start -s). Default 1.
	Size int
	// Config is TOML written to a file passed as --config-path.
	Config string
	// Args are extra flux start arguments, such as "-Sbroker.rc1_path=...".
	Args []string
	// Env is added to the instance's environment.
	Env []string
}

// Start starts an instance and waits until every broker is up, failing t
// when it cannot. The instance is stopped when the test ends.
func Start(t testing.TB, o Options) *Instance {
	t.Helper()
	flux := Require(t)
	if o.Size <= 0 {
		o.Size = 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	in, err := start(ctx, flux, t.TempDir(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := in.Stop(); err != nil {
			t.Errorf("stopping flux instance: %v", err)
		}
	})
	return in
}

// The initial program prints "rank uri" for every broker, then a marker, and
// holds the instance until its stdin closes.
const hold = `flux exec -r all sh -c 'echo "$(flux getattr rank) $(flux getattr local-uri)"' && echo REALFLUX-READY && exec cat >/dev/null`

func start(ctx context.Context, flux, dir string, o Options) (*Instance, error) {
	args := []string{"start", "-s", strconv.Itoa(o.Size)}
	if o.Config != "" {
		cfg := filepath.Join(dir, "conf.d")
		if err := os.MkdirAll(cfg, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(cfg, "test.toml"), []byte(o.Config), 0o644); err != nil {
			return nil, err
		}
		args = append(args, "--config-path="+cfg)
	}
	args = append(args, o.Args...)
	args = append(args, "sh", "-c", hold)
	in := &Instance{Flux: flux, Dir: dir, output: &testutil.Buffer{}, waited: make(chan struct{})}
	in.cmd = exec.Command(flux, args...)
	in.cmd.Dir = dir
	in.cmd.Env = append(cleanEnv(), o.Env...)
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in.cmd.Stderr = in.output
	var err error
	if in.stdin, err = in.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := in.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := in.cmd.Start(); err != nil {
		return nil, fmt.Errorf("flux start: %w", err)
	}
	uris := make([]string, o.Size)
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		found := false
		for sc.Scan() {
			line := sc.Text()
			if line == "REALFLUX-READY" {
				found = true
				ready <- nil
				continue
			}
			if found {
				in.output.Write([]byte(line + "\n"))
				continue
			}
			f := strings.Fields(line)
			if len(f) == 2 {
				if r, err := strconv.Atoi(f[0]); err == nil && r >= 0 && r < len(uris) {
					uris[r] = f[1]
					continue
				}
			}
			in.output.Write([]byte(line + "\n"))
		}
		if !found {
			ready <- fmt.Errorf("flux start exited before the instance was ready")
		}
		// Wait only after reading all output, as exec.Cmd requires.
		in.err = in.cmd.Wait()
		close(in.waited)
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err == nil {
		for r, u := range uris {
			if u == "" {
				err = fmt.Errorf("no local-uri reported for rank %d", r)
			}
		}
	}
	if err != nil {
		in.kill()
		return nil, fmt.Errorf("flux start -s %d: %w\n%s", o.Size, err, in.output.String())
	}
	in.URIs = uris
	return in, nil
}

// cleanEnv is the test's environment without the variables that would
// attach the new instance to an enclosing one.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "FLUX_URI=") || strings.HasPrefix(kv, "FLUX_KVS_NAMESPACE=") || strings.HasPrefix(kv, "FLUX_JOB_ID=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// Run runs flux with args inside the instance (FLUX_URI set to rank 0) and
// returns its standard output; a failure includes its standard error.
func (in *Instance) Run(ctx context.Context, args ...string) (string, error) {
	return in.RunOn(ctx, 0, args...)
}

// RunOn runs flux with args against rank r's broker.
func (in *Instance) RunOn(ctx context.Context, r int, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, in.Flux, args...)
	cmd.Env = append(cleanEnv(), "FLUX_URI="+in.URIs[r])
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("flux %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Output is what the instance has written to its standard error (broker
// logs) and its initial program's stray output, for failure messages.
func (in *Instance) Output() string { return in.output.String() }

// Done is closed when the instance has exited.
func (in *Instance) Done() <-chan struct{} { return in.waited }

// Stop ends the instance cleanly (the initial program exits, rc3 runs) and
// waits; after 60 s it is killed.
func (in *Instance) Stop() error {
	var err error
	in.once.Do(func() {
		_ = in.stdin.Close()
		select {
		case <-in.waited:
			err = in.err
		case <-time.After(60 * time.Second):
			in.kill()
			err = fmt.Errorf("flux instance did not stop within 60 s; killed\n%s", in.output.String())
		}
	})
	return err
}

// Kill ends the instance abruptly, as a crash would, and waits for it.
func (in *Instance) Kill() {
	in.once.Do(in.kill)
}

func (in *Instance) kill() {
	if in.cmd.Process != nil {
		_ = syscall.Kill(-in.cmd.Process.Pid, syscall.SIGKILL)
	}
	_ = in.stdin.Close()
	<-in.waited
}
