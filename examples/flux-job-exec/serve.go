package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/exec"
	"github.com/fluxkit/fluxkit/idset"
)

// Config is what Serve needs besides the broker.
type Config struct {
	// RuntimeDir is where the agent keeps its shell records. Default
	// <broker attribute rundir>/fluxkit-exec.
	RuntimeDir string
	// JobShell is the job shell for jobs that name none when [exec]
	// job-shell does not either. Default: the broker's built-in shell_path
	// (broker.conf-builtin), as job-exec uses; a broker that has none
	// (fluxkit's in-process one) runs jobs' commands without a shell.
	JobShell string
	// AgentWait bounds rank 0's wait for the other ranks' agents before its
	// hello.
	AgentWait time.Duration
	// Keeper is the command that starts the rank's keeper, which forks
	// the shells and records their exit statuses (exec.AgentConfig.Keeper).
	Keeper []string
	// Environ is the environment the shells start from, before the
	// broker's own variables (brokerEnviron) are put in.
	Environ []string
	// Logger receives the service's diagnostics.
	Logger *slog.Logger
	// Ready gets the line that says the copy serves.
	Ready io.Writer
}

// agentService is the agents' service name, the exec package's default.
const agentService = "exec-agent"

// Serve runs this rank's part of the exec service on h until ctx ends or
// the broker goes away (then it returns nil): the agent of h's rank, and on
// rank 0 the coordinator as well, sharing the connection, so that both
// serve the rank's job-exec service (the coordinator its RFC 32 methods,
// the agent the shells' shell-barrier).
func Serve(ctx context.Context, h fluxkit.Handle, cfg Config) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Ready == nil {
		cfg.Ready = io.Discard
	}
	dir := cfg.RuntimeDir
	if dir == "" {
		rundir, err := attr(ctx, h, "rundir")
		if err != nil {
			return fmt.Errorf("runtime directory: broker attribute rundir: %w", err)
		}
		dir = filepath.Join(rundir, "fluxkit-exec")
	}
	agent, err := exec.NewAgent(exec.AgentConfig{Handle: h, Service: agentService, RuntimeDir: dir, ShellService: "job-exec",
		Keeper: cfg.Keeper, Environ: brokerEnviron(ctx, h, cfg.Environ, cfg.Logger), Logger: cfg.Logger})
	if err != nil {
		return explain(err)
	}
	defer agent.Close()
	if h.Rank() != 0 {
		var wg sync.WaitGroup
		defer wg.Wait()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		for _, m := range forwarded {
			un, err := h.Register("job-exec."+m, fluxkit.RoleUser, forwarder(ctx, h, &wg))
			if err != nil {
				return explain(err)
			}
			defer un()
		}
		fmt.Fprintf(cfg.Ready, "%s: rank %d ready\n", prog, h.Rank())
		return serveUntilDone(ctx, h)
	}
	shell := cfg.JobShell
	if shell == "" {
		shell = builtinShell(ctx, h, cfg.Logger)
	}
	waitAgents(ctx, h, cfg.AgentWait, cfg.Logger)
	coord, err := exec.New(ctx, exec.Config{Handle: h, JobShell: shell, Logger: cfg.Logger})
	if err != nil {
		return explain(err)
	}
	defer coord.Close()
	fmt.Fprintf(cfg.Ready, "%s: ready\n", prog)
	return serveUntilDone(ctx, h)
}

// forwarded are the job-exec methods that clients on any rank send to the
// nearest job-exec service (flux-core's is on rank 0 only): a subinstance's
// broker sets its critical ranks, flux job-exec-override drives testexec
// jobs. On ranks other than 0 the nearest job-exec is the agent's, which
// serves shell-barrier, so they are forwarded to the coordinator.
var forwarded = []string{"critical-ranks", "override"}

// forwarder sends a request on to rank 0's job-exec, with its sender's
// credentials (the broker honours them from the instance owner), and
// answers with what comes back.
func forwarder(ctx context.Context, h fluxkit.Handle, wg *sync.WaitGroup) fluxkit.HandlerFunc {
	return func(_ context.Context, w fluxkit.Responder, req *fluxkit.Message) {
		fwd := fluxkit.NewRequest(req.Topic, 0, req.Payload)
		fwd.Userid, fwd.Rolemask = req.Userid, req.Rolemask
		wg.Add(1)
		go func() {
			defer wg.Done()
			call, err := h.Request(ctx, fwd)
			if err != nil {
				_ = w.RespondError(err)
				return
			}
			defer call.Close()
			resp, err := call.Recv(ctx)
			if err != nil {
				_ = w.RespondError(err)
				return
			}
			_ = w.Respond(resp.Payload)
		}()
	}
}

// serveUntilDone waits until ctx ends or, for a handle that says so
// (connect's), the broker goes away.
func serveUntilDone(ctx context.Context, h fluxkit.Handle) error {
	var gone <-chan struct{}
	if d, ok := h.(interface{ Done() <-chan struct{} }); ok {
		gone = d.Done()
	}
	select {
	case <-ctx.Done():
	case <-gone:
	}
	return nil
}

// explain adds what to do to the error of a service already taken.
func explain(err error) error {
	if errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("%w (is flux-core's job-exec module loaded? flux module remove job-exec; or another flux-job-exec running on this rank?)", err)
	}
	return err
}

// attr reads a broker attribute of h's rank.
func attr(ctx context.Context, h fluxkit.Handle, name string) (string, error) {
	var out struct {
		Value string `json:"value"`
	}
	if err := fluxkit.RPC(ctx, h, "attr.get", h.Rank(), map[string]string{"name": name}, &out); err != nil {
		return "", err
	}
	return out.Value, nil
}

// brokerVars are the variables the flux command sets up for the programs
// it runs, the broker among them: job-exec's shells get the broker's.
var brokerVars = []string{"LUA_PATH", "LUA_CPATH", "PYTHONPATH", "MANPATH", "FLUX_EXEC_PATH", "FLUX_CONNECTOR_PATH",
	"FLUX_MODULE_PATH", "FLUX_RC_EXTRA", "FLUX_SHELL_RC_PATH", "PATH"}

// brokerEnviron is the environment shells start from: base, with the
// broker's values of brokerVars (broker.getenv) and FLUX_URI naming the
// rank's broker (its local-uri), so that a shell gets what job-exec's do
// however this program was started.
func brokerEnviron(ctx context.Context, h fluxkit.Handle, base []string, log *slog.Logger) []string {
	set := map[string]string{}
	var out struct {
		Env map[string]string `json:"env"`
	}
	if err := fluxkit.RPC(ctx, h, "broker.getenv", h.Rank(), map[string]any{"names": brokerVars}, &out); err != nil {
		log.Warn("shells start from this program's environment: broker.getenv", "err", err)
	}
	for k, v := range out.Env {
		set[k] = v
	}
	if uri, err := attr(ctx, h, "local-uri"); err == nil && uri != "" {
		set["FLUX_URI"] = uri
	}
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		if name, _, _ := strings.Cut(kv, "="); set[name] == "" {
			env = append(env, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if set[k] != "" {
			env = append(env, k+"="+set[k])
		}
	}
	return env
}

// builtinShell is the broker's built-in job shell, or "" when it has none.
func builtinShell(ctx context.Context, h fluxkit.Handle, log *slog.Logger) string {
	var out struct {
		Values map[string]string `json:"values"`
	}
	err := fluxkit.RPC(ctx, h, "broker.conf-builtin", h.Rank(), map[string]any{"keys": []string{"shell_path"}}, &out)
	if err != nil {
		log.Warn("no built-in job shell: jobs that name none run their commands without one", "err", err)
		return ""
	}
	return out.Values["shell_path"]
}

// agentPoll is how often rank 0 asks for an agent that has not answered.
const agentPoll = 100 * time.Millisecond

// waitAgents waits, up to wait, until the agent of every other rank online
// answers, so that the first jobs do not fail towards a rank whose copy is
// still starting. Ranks that do not answer in time are logged.
func waitAgents(ctx context.Context, h fluxkit.Handle, wait time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	ranks := onlineRanks(ctx, h)
	var wg sync.WaitGroup
	for _, r := range ranks {
		if r == h.Rank() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if fluxkit.RPC(ctx, h, agentService+".stats-get", r, nil, nil) == nil {
					return
				}
				select {
				case <-ctx.Done():
					log.Warn("the agent of a rank did not answer; jobs on it fail until it runs", "rank", r)
					return
				case <-time.After(agentPoll):
				}
			}
		}()
	}
	wg.Wait()
}

// onlineRanks are the ranks in the broker.online group, or every rank when
// the broker does not say.
func onlineRanks(ctx context.Context, h fluxkit.Handle) []uint32 {
	all := func() []uint32 {
		out := make([]uint32, h.Size())
		for i := range out {
			out[i] = uint32(i)
		}
		return out
	}
	call, err := fluxkit.Stream(ctx, h, "groups.get", 0, map[string]string{"name": "broker.online"})
	if err != nil {
		return all()
	}
	defer call.Close()
	m, err := call.Recv(ctx)
	if err != nil {
		return all()
	}
	var in struct {
		Members string `json:"members"`
	}
	if json.Unmarshal(m.Payload, &in) != nil {
		return all()
	}
	set, err := idset.Parse(in.Members)
	if err != nil {
		return all()
	}
	return slices.Collect(set.All())
}
