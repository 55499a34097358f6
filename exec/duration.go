package exec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// parseFSD parses an RFC 23 Flux Standard Duration: a non-negative number
// with an optional unit suffix ms, s, m, h or d ("0.2", "500ms", "5s",
// "1.5m"). "inf" and "infinity" give math.MaxInt64.
func parseFSD(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if t == "inf" || t == "infinity" || t == "INF" {
		return time.Duration(math.MaxInt64), nil
	}
	mult := 1.0
	if n := len(t); n > 2 && strings.HasSuffix(t, "ms") {
		mult, t = 0.001, t[:n-2]
	} else if n > 0 {
		switch t[n-1] {
		case 's':
			t = t[:n-1]
		case 'm':
			mult, t = 60, t[:n-1]
		case 'h':
			mult, t = 3600, t[:n-1]
		case 'd':
			mult, t = 86400, t[:n-1]
		}
	}
	// ParseFloat accepts "inf", "nan" and hex forms that are not FSDs.
	if t == "" || strings.ContainsAny(t, "xXpPnNiI_") {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	sec := v * mult
	if sec*float64(time.Second) >= float64(math.MaxInt64) {
		return time.Duration(math.MaxInt64), nil
	}
	return time.Duration(sec * float64(time.Second)), nil
}

// formatFSD renders d the way flux-core's fsd_format_duration does for the
// values the launcher prints: seconds with up to 6 decimals.
func formatFSD(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT,
	"ILL": syscall.SIGILL, "TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT,
	"BUS": syscall.SIGBUS, "FPE": syscall.SIGFPE, "KILL": syscall.SIGKILL,
	"USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV, "USR2": syscall.SIGUSR2,
	"PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM,
	"CHLD": syscall.SIGCHLD, "CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP,
	"TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN, "TTOU": syscall.SIGTTOU,
	"URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ,
	"VTALRM": syscall.SIGVTALRM, "PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH,
	"IO": syscall.SIGIO, "PWR": syscall.SIGPWR, "SYS": syscall.SIGSYS, "STKFLT": syscall.SIGSTKFLT,
}

// parseSignal accepts "SIGTERM", "TERM" or "15", as flux-core's sigutil does.
func parseSignal(s string) (syscall.Signal, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.Atoi(t); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return syscall.Signal(n), nil
	}
	t = strings.TrimPrefix(strings.ToUpper(t), "SIG")
	if sig, ok := signalNames[t]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("invalid signal %q", s)
}
