package modprobe

import (
	"io"
	"io/fs"
	"log/slog"
	"os"
)

// Config configures a Modprobe. The zero value of every field is its
// documented default, so the zero Config runs flux-core's embedded
// configuration against the broker New is given.
type Config struct {
	// Modules loads and removes modules. Default: HandleModules on the
	// Handle given to New.
	Modules Modules
	// LookupEnv reads the local environment (FLUX_MODPROBE_PATH,
	// FLUX_MODPROBE_DISABLE, needs-env, ...). Default: os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Environ is the environment commands start from. Default:
	// os.Environ.
	Environ func() []string
	// Builtin holds the built-in modprobe.toml, rc1.toml and rc3.toml
	// (flux-core's datadir and libexecdir). Default: Defaults().
	Builtin fs.FS
	// BuiltinDir names Builtin in the search path and in traces; a
	// search path entry equal to it reads Builtin. Default: EmbeddedDir.
	BuiltinDir string
	// ConfDir is flux-core's confdir: DIR/modprobe is on the default
	// search path and DIR/rcN.d holds legacy rc scripts. Default
	// "/etc/flux".
	ConfDir string
	// RC1 and RC3 are Go units registered after the rc files of rc1 and
	// rc3, in order.
	RC1, RC3 []RC
	// DryRun prints what would run ("load NAME ARGS", "remove NAME",
	// "run TASK") without doing it, in a deterministic order.
	DryRun bool
	// Verbose traces files, modules and tasks on Stderr.
	Verbose bool
	// Stdout and Stderr default to os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// Exec tunes the executor.
	Exec ExecConfig
	// Shell runs commands. Default: Bash.
	Shell Shell
	// Logger receives debug records. Default: discard.
	Logger *slog.Logger
}

// DefaultConfDir is flux-core's default confdir, the default of
// Config.ConfDir.
const DefaultConfDir = "/etc/flux"

// Validate reports the first field that is out of range, naming it. It
// does not change c; New calls it.
func (c *Config) Validate() error {
	return c.Exec.validate("Config.Exec.")
}

// withDefaults fills in every default but Modules, which needs the Handle.
func (c Config) withDefaults() Config {
	if c.LookupEnv == nil {
		c.LookupEnv = os.LookupEnv
	}
	if c.Environ == nil {
		c.Environ = os.Environ
	}
	if c.Builtin == nil {
		c.Builtin = Defaults()
	}
	if c.BuiltinDir == "" {
		c.BuiltinDir = EmbeddedDir
	}
	if c.ConfDir == "" {
		c.ConfDir = DefaultConfDir
	}
	if c.Stdout == nil {
		c.Stdout = os.Stdout
	}
	if c.Stderr == nil {
		c.Stderr = os.Stderr
	}
	if c.Shell == nil {
		c.Shell = Bash{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Exec.Logger == nil {
		c.Exec.Logger = c.Logger
	}
	return c
}
