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
// mechanism: every agent forks the shells of its own rank.
const (
	MethodBulkExec = "bulk-exec"
	MethodTestExec = "testexec"
	MethodBypass   = "bypass"
)

// Settings is the [exec] table of the broker configuration, with
// flux-core's key names. The zero value is not usable; start from
// DefaultSettings or ParseSettings.
type Settings struct {
	Method               string         // exec.method, default "bulk-exec"
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
	// Fanout is exec.fanout (fluxkit): k of the k-ary launch tree, default 8.
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

// KillSchedule returns the offsets, from the first fatal exception, at which
// the termination algorithm signals: task kills every kill-timeout until the
// first shell kill at 5·kto, then shell kills whose spacing doubles from kto,
// capped at 300 s. Drain is the offset at which still-active ranks are
// drained and forced complete: max-kill-timeout when set, otherwise one
// interval after the max-kill-count'th shell kill, so that the last kill
// gets the same grace period as the others.
func (s Settings) KillSchedule() (tasks, shells []time.Duration, drain time.Duration) {
	kto := s.KillTimeout
	first := 5 * kto
	for t := kto; t < first; t += kto {
		tasks = append(tasks, t)
	}
	limit := s.MaxKillCount
	t, iv := first, kto
	for i := 0; ; i++ {
		if s.MaxKillTimeout > 0 {
			if t >= s.MaxKillTimeout {
				return tasks, shells, s.MaxKillTimeout
			}
		} else if i == limit {
			return tasks, shells, t
		}
		if i > 100000 { // a year at the 300 s cap; bounds the listing only
			return tasks, shells, s.MaxKillTimeout
		}
		shells = append(shells, t)
		t += iv
		iv = min(2*iv, maxShellKillInterval)
	}
}

// EffectiveMaxKillTimeout is the estimate shown in stats: the drain offset of
// KillSchedule.
func (s Settings) EffectiveMaxKillTimeout() time.Duration {
	_, _, d := s.KillSchedule()
	return d
}

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

func asSignal(v any) (syscall.Signal, error) {
	switch x := v.(type) {
	case float64:
		return parseSignal(fmt.Sprint(x))
	case string:
		return parseSignal(x)
	}
	return 0, fmt.Errorf("expected a signal name or number, got %s", jsonType(v))
}

func (s *Settings) set(k string, v any) error {
	var err error
	switch k {
	case "method":
		var m string
		if m, err = asString(v); err == nil {
			if m != MethodBulkExec && m != MethodTestExec {
				return fmt.Errorf("unknown exec.method '%s'", m)
			}
			s.Method = m
		}
	case "service":
		var m string
		if m, err = asString(v); err == nil {
			if m != "rexec" && m != "sdexec" {
				return fmt.Errorf("unsupported exec.service value '%s'", m)
			}
			s.Service = m
		}
	case "imp":
		s.IMP, err = asString(v)
	case "job-shell":
		s.JobShell, err = asString(v)
	case "kill-timeout":
		var d time.Duration
		if d, err = asDuration(v); err == nil && d <= 0 {
			return fmt.Errorf("invalid kill-timeout: %v", v)
		}
		if err != nil || d > 24*time.Hour {
			return fmt.Errorf("invalid kill-timeout: %v", v)
		}
		s.KillTimeout = d
	case "term-signal":
		s.TermSignal, err = asSignal(v)
	case "kill-signal":
		s.KillSignal, err = asSignal(v)
	case "max-kill-count":
		n, ok := v.(float64)
		if !ok || n != math.Trunc(n) || n <= 0 || n > 1e6 {
			return fmt.Errorf("invalid max-kill-count: %v (a positive integer is required)", v)
		}
		s.MaxKillCount = int(n)
	case "max-kill-timeout":
		var d time.Duration
		if d, err = asDuration(v); err == nil && (d <= 0 || d > 365*24*time.Hour) {
			return fmt.Errorf("invalid max-kill-timeout: %v (must be > 0 and at most a year)", v)
		}
		s.MaxKillTimeout = d
	case "barrier-timeout":
		s.BarrierTimeout, err = asDuration(v)
	case "shell-exit-timeout":
		if str, ok := v.(string); ok && str == "none" {
			s.ShellExitTimeout = 0
			return nil
		}
		s.ShellExitTimeout, err = asDuration(v)
	case "max-start-delay-percent":
		n, ok := v.(float64)
		if !ok || n < 0 {
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
		n, ok := v.(float64)
		if !ok || n != math.Trunc(n) || n < 1 || n > 1024 {
			return fmt.Errorf("invalid fanout: %v (an integer 1..1024 is required)", v)
		}
		s.Fanout = int(n)
	case "adopt-on-restart":
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("expected a boolean, got %s", jsonType(v))
		}
		s.Adopt = b
	case "sdexec-properties", "sdexec-stop-timer-sec", "sdexec-stop-timer-signal", "sdexec-constrain-resources":
		// Accepted for compatibility with flux-core configurations; fluxkit
		// has no systemd mechanism yet.
	default:
		tbl, ok := v.(map[string]any)
		if !ok || !slices.Contains([]string{MethodBulkExec, MethodTestExec, MethodBypass, "bgexec"}, k) {
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

// stripSig renders a signal as flux-core config shows it.
func sigName(sig syscall.Signal) string {
	for n, s := range signalNames {
		if s == sig {
			return "SIG" + n
		}
	}
	return fmt.Sprint(int(sig))
}
