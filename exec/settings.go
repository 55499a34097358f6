package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"syscall"
	"time"
)

// Method names. MethodBulkExec is flux-core's default and fluxkit's real
// mechanism: every agent forks the shells of its own rank. MethodBgExec is
// flux-core's other configurable method (background shells that survive a
// restart of the exec service); fluxkit's agents give every real job that
// property, so it runs the same mechanism under its own name. Only these
// two may be exec.method: testexec is chosen by a jobspec's test block and
// bypass by its bypass flag.
const (
	MethodBulkExec = "bulk-exec"
	MethodBgExec   = "bgexec"
	MethodTestExec = "testexec"
	MethodBypass   = "bypass"
)

// realMethod reports whether jobs of method m run real shells through the
// agents.
func realMethod(m string) bool { return m == MethodBulkExec || m == MethodBgExec }

// Settings is the [exec] table of the broker configuration, with
// flux-core's key names. The zero value is not usable; start from
// DefaultSettings or ParseSettings. Validate states what a usable value is;
// ParseSettings, New and config-reload all apply it.
type Settings struct {
	Method               string         // exec.method, default "bulk-exec"; "bgexec" also
	Service              string         // exec.service, "rexec" (default) or "sdexec"
	IMP                  string         // exec.imp, unset by default
	JobShell             string         // exec.job-shell; "" runs the jobspec's command itself
	KillTimeout          time.Duration  // exec.kill-timeout, default 5s
	TermSignal           syscall.Signal // exec.term-signal, default SIGTERM
	KillSignal           syscall.Signal // exec.kill-signal, default SIGKILL
	MaxKillCount         int            // exec.max-kill-count, default 8
	MaxKillTimeout       time.Duration  // exec.max-kill-timeout, 0 = unset
	BarrierTimeout       time.Duration  // exec.barrier-timeout, default 30m, 0 disables
	ShellExitTimeout     time.Duration  // exec.shell-exit-timeout, default 30s, 0 ("none") disables
	MaxStartDelayPercent float64        // exec.max-start-delay-percent, default 25
	// AllowGuests holds exec.<method>.allow-guests for every method that
	// set it.
	AllowGuests map[string]bool
	// Epilog is exec.epilog (fluxkit): a per-rank command run by the agent
	// after a rank's shell has exited, before the rank is released.
	Epilog []string
	// Fanout is exec.fanout (fluxkit): k of the k-ary launch tree, default
	// 8, at most maxFanout.
	Fanout int
	// Adopt is exec.adopt-on-restart (fluxkit), default true: a start
	// request without reattach for a job whose shells already run adopts
	// them; false kills them and fails the job with an exec exception.
	Adopt bool
}

// DefaultSettings returns flux-core's defaults.
func DefaultSettings() Settings {
	return Settings{
		Method:               MethodBulkExec,
		Service:              "rexec",
		KillTimeout:          5 * time.Second,
		TermSignal:           syscall.SIGTERM,
		KillSignal:           syscall.SIGKILL,
		MaxKillCount:         8,
		BarrierTimeout:       30 * time.Minute,
		ShellExitTimeout:     30 * time.Second,
		MaxStartDelayPercent: 25,
		AllowGuests:          map[string]bool{},
		Fanout:               8,
		Adopt:                true,
	}
}

// maxShellKillInterval caps the doubling interval between direct shell
// kills, as flux-core does.
const maxShellKillInterval = 300 * time.Second

// Bounds Validate enforces. They keep every derived time (the kill
// schedule, the drain) finite and every tree shallow enough to be useful.
const (
	maxFanout         = 1024
	maxKillTimeout    = 24 * time.Hour
	maxMaxKillTimeout = 365 * 24 * time.Hour
	maxMaxKillCount   = 1_000_000
	maxSignal         = 64
)

// Validate reports the first field of s that flux-core (or, for fluxkit's
// own keys, fluxkit) would refuse, as a *ConfigError naming its key.
func (s Settings) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &ConfigError{Key: key, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case !realMethod(s.Method):
		return bad("method", "unknown exec.method '%s'", s.Method)
	case s.Service != "rexec" && s.Service != "sdexec":
		return bad("service", "unsupported exec.service value '%s'", s.Service)
	case s.KillTimeout <= 0 || s.KillTimeout > maxKillTimeout:
		return bad("kill-timeout", "invalid kill-timeout: %s (must be > 0 and at most %s)", formatFSD(s.KillTimeout), formatFSD(maxKillTimeout))
	case s.TermSignal <= 0 || s.TermSignal > maxSignal:
		return bad("term-signal", "invalid term-signal: %d", int(s.TermSignal))
	case s.KillSignal <= 0 || s.KillSignal > maxSignal:
		return bad("kill-signal", "invalid kill-signal: %d", int(s.KillSignal))
	case s.MaxKillCount <= 0 || s.MaxKillCount > maxMaxKillCount:
		return bad("max-kill-count", "invalid max-kill-count: %d (a positive integer is required)", s.MaxKillCount)
	case s.MaxKillTimeout < 0 || s.MaxKillTimeout > maxMaxKillTimeout:
		return bad("max-kill-timeout", "invalid max-kill-timeout: %s (must be > 0 and at most a year; 0 leaves it unset)", formatFSD(s.MaxKillTimeout))
	case s.BarrierTimeout < 0:
		return bad("barrier-timeout", "invalid duration '%s' specified for exec.barrier-timeout", formatFSD(s.BarrierTimeout))
	case s.ShellExitTimeout < 0:
		return bad("shell-exit-timeout", "invalid shell-exit-timeout: %s", formatFSD(s.ShellExitTimeout))
	case s.MaxStartDelayPercent < 0 || math.IsNaN(s.MaxStartDelayPercent) || math.IsInf(s.MaxStartDelayPercent, 0):
		return bad("max-start-delay-percent", "invalid max-start-delay-percent: %v", s.MaxStartDelayPercent)
	case len(s.Epilog) > 0 && s.Epilog[0] == "":
		return bad("epilog", "the command is empty")
	case s.Fanout < 1 || s.Fanout > maxFanout:
		return bad("fanout", "invalid fanout: %d (an integer 1..%d is required)", s.Fanout, maxFanout)
	}
	for m := range s.AllowGuests {
		if !slices.Contains(allowGuestMethods, m) {
			return bad(m, "allow-guests: unknown exec method %q", m)
		}
	}
	return nil
}

// allowGuestMethods are the tables exec.<method>.allow-guests may appear in.
var allowGuestMethods = []string{MethodBulkExec, MethodBgExec, MethodTestExec, MethodBypass}

// ConfigError is a bad [exec] configuration: Key is the full key at fault.
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string {
	if e.Key == "" {
		return "exec: " + e.Err.Error()
	}
	return "exec." + e.Key + ": " + e.Err.Error()
}
func (e *ConfigError) Unwrap() error { return e.Err }

// ErrBadConfig is matched by every *ConfigError via errors.Is.
var ErrBadConfig = errors.New("bad exec configuration")

// Is makes errors.Is(err, ErrBadConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrBadConfig }

// ParseSettings reads the "exec" table of a broker configuration object (as
// config.get returns it). A missing table gives the defaults. Every key is
// checked before anything is returned, so a caller that swaps the result in
// gets an atomic reload.
func ParseSettings(config json.RawMessage) (Settings, error) {
	s := DefaultSettings()
	if len(config) == 0 {
		return s, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(config, &top); err != nil {
		return s, &ConfigError{Key: "", Err: fmt.Errorf("config is not an object: %w", err)}
	}
	raw, ok := top["exec"]
	if !ok {
		return s, nil
	}
	var tbl map[string]any
	if err := json.Unmarshal(raw, &tbl); err != nil {
		return s, &ConfigError{Key: "", Err: fmt.Errorf("[exec] is not a table: %w", err)}
	}
	keys := make([]string, 0, len(tbl))
	for k := range tbl {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic: the first bad key in name order is reported
	for _, k := range keys {
		if err := s.set(k, tbl[k]); err != nil {
			return DefaultSettings(), &ConfigError{Key: k, Err: err}
		}
	}
	if err := s.Validate(); err != nil {
		return DefaultSettings(), err
	}
	return s, nil
}

func asString(v any) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	return "", fmt.Errorf("expected a string, got %s", jsonType(v))
}

func jsonType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

// asDuration accepts an FSD string or a number of seconds.
func asDuration(v any) (time.Duration, error) {
	switch x := v.(type) {
	case float64:
		if x < 0 || math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, fmt.Errorf("invalid duration %v", x)
		}
		return time.Duration(x * float64(time.Second)), nil
	case string:
		return parseFSD(x)
	}
	return 0, fmt.Errorf("expected a duration string, got %s", jsonType(v))
}

// asInt accepts a number without a fractional part that fits an int32.
func asInt(v any) (int, error) {
	n, ok := v.(float64)
	if !ok || n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
		return 0, fmt.Errorf("expected an integer, got %v", v)
	}
	return int(n), nil
}

func asSignal(v any) (syscall.Signal, error) {
	switch x := v.(type) {
	case float64:
		return parseSignal(fmt.Sprint(x))
	case string:
		return parseSignal(x)
	}
	return 0, fmt.Errorf("expected a signal name or number, got %s", jsonType(v))
}

// set converts one key's value; the ranges are Validate's.
func (s *Settings) set(k string, v any) error {
	var err error
	switch k {
	case "method":
		s.Method, err = asString(v)
	case "service":
		s.Service, err = asString(v)
	case "imp":
		s.IMP, err = asString(v)
	case "job-shell":
		s.JobShell, err = asString(v)
	case "kill-timeout":
		if s.KillTimeout, err = asDuration(v); err != nil {
			return fmt.Errorf("invalid kill-timeout: %v", v)
		}
	case "term-signal":
		s.TermSignal, err = asSignal(v)
	case "kill-signal":
		s.KillSignal, err = asSignal(v)
	case "max-kill-count":
		s.MaxKillCount, err = asInt(v)
		if err != nil {
			return fmt.Errorf("invalid max-kill-count: %v (a positive integer is required)", v)
		}
	case "max-kill-timeout":
		if s.MaxKillTimeout, err = asDuration(v); err != nil {
			return fmt.Errorf("invalid max-kill-timeout: %v", v)
		}
		if s.MaxKillTimeout == 0 {
			// 0 would mean "unset" here; flux-core refuses it.
			return fmt.Errorf("invalid max-kill-timeout: %v (must be > 0)", v)
		}
	case "barrier-timeout":
		if s.BarrierTimeout, err = asDuration(v); err != nil {
			return fmt.Errorf("invalid duration '%v' specified for exec.barrier-timeout", v)
		}
	case "shell-exit-timeout":
		if str, ok := v.(string); ok && str == "none" {
			s.ShellExitTimeout = 0
			return nil
		}
		if s.ShellExitTimeout, err = asDuration(v); err != nil {
			return fmt.Errorf("invalid shell-exit-timeout: %v", v)
		}
	case "max-start-delay-percent":
		n, ok := v.(float64)
		if !ok {
			return fmt.Errorf("invalid max-start-delay-percent: %v", v)
		}
		s.MaxStartDelayPercent = n
	case "epilog":
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			return fmt.Errorf("expected a non-empty array of strings, got %s", jsonType(v))
		}
		cmd := make([]string, len(arr))
		for i, a := range arr {
			if cmd[i], err = asString(a); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		s.Epilog = cmd
	case "fanout":
		if s.Fanout, err = asInt(v); err != nil {
			return fmt.Errorf("invalid fanout: %v (an integer 1..%d is required)", v, maxFanout)
		}
	case "adopt-on-restart":
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("expected a boolean, got %s", jsonType(v))
		}
		s.Adopt = b
	case "sdexec-properties":
		// fluxkit has no systemd mechanism; the keys are checked as
		// flux-core checks them, so that a configuration fluxkit accepts
		// stays valid for flux-core.
		tbl, ok := v.(map[string]any)
		if !ok {
			return errors.New("exec.sdexec-properties is not a table")
		}
		for p, pv := range tbl {
			if _, ok := pv.(string); !ok {
				return fmt.Errorf("exec.sdexec-properties.%s is not a string", p)
			}
		}
	case "sdexec-stop-timer-sec", "sdexec-stop-timer-signal":
		if _, err := asInt(v); err != nil {
			return fmt.Errorf("expected an integer, got %v", v)
		}
	case "sdexec-constrain-resources":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("expected a boolean, got %s", jsonType(v))
		}
	default:
		tbl, ok := v.(map[string]any)
		if !ok || !slices.Contains(allowGuestMethods, k) {
			return errors.New("unknown key")
		}
		for sub, sv := range tbl {
			if sub != "allow-guests" {
				return fmt.Errorf("unknown key %q", sub)
			}
			b, ok := sv.(bool)
			if !ok {
				return fmt.Errorf("allow-guests: expected a boolean, got %s", jsonType(sv))
			}
			s.AllowGuests = copyAllow(s.AllowGuests)
			s.AllowGuests[k] = b
		}
	}
	return err
}

func copyAllow(m map[string]bool) map[string]bool {
	c := make(map[string]bool, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	return c
}

// sigName renders a signal as flux-core config shows it.
func sigName(sig syscall.Signal) string {
	for n, s := range signalNames {
		if s == sig {
			return "SIG" + n
		}
	}
	return fmt.Sprint(int(sig))
}
