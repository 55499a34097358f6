package modprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sync"
	"time"

	"github.com/fluxkit/fluxkit"
)

// EmbeddedDir is the name under which the built-in configuration appears
// in the search path and in verbose traces.
const EmbeddedDir = "(embedded)"

// ErrAllLoaded is returned by Load when every module asked for and every
// dependency is already loaded; flux-modprobe reports it as INFO and
// succeeds.
//
//lint:ignore ST1005 flux-core's exact text
var ErrAllLoaded = errors.New("All modules and dependencies are already loaded")

// Modprobe plans and runs module loading, removal and tasks on one rank.
//
// A Modprobe owns no goroutines between calls: each run starts its tasks
// and waits for them before it returns, so there is nothing to Close.
type Modprobe struct {
	h         fluxkit.Handle
	cfg       Config // with defaults
	rank      uint32
	created   time.Time
	stdout    io.Writer
	stderr    io.Writer
	lookupEnv func(string) (string, bool)
	environ   func() []string
	shell     Shell
	modules   Modules
	log       *slog.Logger
}

// New returns a Modprobe that works through h, the connection to the local
// broker. It calls cfg.Validate and refuses what it refuses.
func New(h fluxkit.Handle, cfg Config) (*Modprobe, error) {
	if h == nil {
		return nil, errors.New("modprobe: New needs a Handle")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m := &Modprobe{
		h:         h,
		cfg:       cfg,
		rank:      h.Rank(),
		created:   time.Now(),
		stdout:    &lockedWriter{w: cfg.Stdout},
		stderr:    &lockedWriter{w: cfg.Stderr},
		lookupEnv: cfg.LookupEnv,
		environ:   cfg.Environ,
		shell:     cfg.Shell,
		modules:   cfg.Modules,
		log:       cfg.Logger,
	}
	if m.modules == nil {
		m.modules = HandleModules(h)
	}
	return m, nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (m *Modprobe) trace(format string, args ...any) {
	if m.cfg.Verbose {
		fmt.Fprintf(m.stderr, format+"\n", args...)
	}
}

// SearchPath is the modprobe search path: FLUX_MODPROBE_PATH or the
// default [BuiltinDir, ConfDir/modprobe], then FLUX_MODPROBE_PATH_APPEND,
// blank entries and duplicates dropped.
func (m *Modprobe) SearchPath() []string {
	return searchPath([]string{m.cfg.BuiltinDir, path.Join(m.cfg.ConfDir, "modprobe")}, m.lookupEnv)
}

func (m *Modprobe) dirFS(dir string) fs.FS {
	if dir == m.cfg.BuiltinDir {
		return m.cfg.Builtin
	}
	return os.DirFS(dir)
}

// loaded lists loaded modules without builtins.
func (m *Modprobe) loaded(ctx context.Context) ([]LoadedModule, error) {
	mods, err := m.modules.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("module.list: %w", err)
	}
	out := mods[:0:0]
	for _, l := range mods {
		if l.Path != "builtin" {
			out = append(out, l)
		}
	}
	return out, nil
}
