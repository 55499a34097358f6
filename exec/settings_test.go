package exec

import (
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flux-core's [exec] keys, defaults and error texts (t2403).
func TestParseSettings(t *testing.T) {
	d, err := ParseSettings(nil)
	if err != nil {
		t.Fatal(err)
	}
	if d.Method != "bulk-exec" || d.Service != "rexec" || d.KillTimeout != 5*time.Second || d.TermSignal != syscall.SIGTERM ||
		d.KillSignal != syscall.SIGKILL || d.MaxKillCount != 8 || d.MaxKillTimeout != 0 || d.BarrierTimeout != 30*time.Minute ||
		d.ShellExitTimeout != 30*time.Second || d.MaxStartDelayPercent != 25 || d.AllowGuests[MethodTestExec] {
		t.Fatalf("defaults %+v", d)
	}
	s, err := ParseSettings(json.RawMessage(`{"exec":{"method":"testexec","kill-timeout":"0.2","term-signal":"SIGUSR1",
		"kill-signal":15,"max-kill-count":2,"max-kill-timeout":"1m","barrier-timeout":"0","shell-exit-timeout":"none",
		"testexec":{"allow-guests":true},"epilog":["/bin/true"],"fanout":4,"adopt-on-restart":false,"imp":"/usr/libexec/flux/flux-imp"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != MethodTestExec || s.KillTimeout != 200*time.Millisecond || s.TermSignal != syscall.SIGUSR1 ||
		s.KillSignal != syscall.SIGTERM || s.MaxKillCount != 2 || s.MaxKillTimeout != time.Minute || s.BarrierTimeout != 0 ||
		s.ShellExitTimeout != 0 || !s.AllowGuests[MethodTestExec] || s.Fanout != 4 || s.Adopt || s.IMP == "" {
		t.Fatalf("parsed %+v", s)
	}
	for _, c := range []struct{ conf, want string }{
		{`{"exec":{"kill-timeout":"0"}}`, "exec.kill-timeout: invalid kill-timeout: 0"},
		{`{"exec":{"kill-timeout":"fast"}}`, "exec.kill-timeout: invalid kill-timeout: fast"},
		{`{"exec":{"method":"bgexec"}}`, "exec.method: unknown exec.method 'bgexec'"},
		{`{"exec":{"service":"ssh"}}`, "exec.service: unsupported exec.service value 'ssh'"},
		{`{"exec":{"max-kill-count":0}}`, "exec.max-kill-count: invalid max-kill-count: 0"},
		{`{"exec":{"term-signal":"SIGFOO"}}`, `exec.term-signal: invalid signal "SIGFOO"`},
		{`{"exec":{"testexec":{"allow-guests":"yes"}}}`, "exec.testexec: allow-guests: expected a boolean, got string"},
		{`{"exec":{"colour":"blue"}}`, "exec.colour: unknown key"},
		{`{"exec":[]}`, "exec: [exec] is not a table"},
	} {
		_, err := ParseSettings(json.RawMessage(c.conf))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want %q", c.conf, err, c.want)
		}
	}
}

func TestParsers(t *testing.T) {
	for in, want := range map[string]time.Duration{"5s": 5 * time.Second, "0.2": 200 * time.Millisecond, "1.5m": 90 * time.Second, "2h": 2 * time.Hour, "1d": 24 * time.Hour, "0": 0} {
		if got, err := parseFSD(in); err != nil || got != want {
			t.Errorf("parseFSD(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1", "x", "1x", "nan", "0x10", ""} {
		if _, err := parseFSD(bad); err == nil {
			t.Errorf("parseFSD(%q) accepted", bad)
		}
	}
	for in, want := range map[string]syscall.Signal{"SIGTERM": 15, "term": 15, "9": 9, "USR1": syscall.SIGUSR1} {
		if got, err := parseSignal(in); err != nil || got != want {
			t.Errorf("parseSignal(%q) = %v, %v", in, got, err)
		}
	}
	hosts, err := expandHosts("node[01-03,7],login")
	if err != nil || strings.Join(hosts, " ") != "node01 node02 node03 node7 login" {
		t.Fatalf("expandHosts: %v %v", hosts, err)
	}
	ids, err := parseRanks(" [2-3,5,7] ")
	if err != nil || formatRanks(ids) != "2-3,5,7" || len(ids) != 4 {
		t.Fatalf("parseRanks: %v %v", ids, err)
	}
	if formatRanks([]uint32{7, 3, 2, 5, 3}) != "2-3,5,7" {
		t.Fatal("formatRanks must sort and drop duplicates")
	}
	for _, bad := range []string{"3-1", "7,2-3", "0-2097152", "x"} {
		if _, err := parseRanks(bad); err == nil {
			t.Fatalf("parseRanks(%q) accepted", bad)
		}
	}
}
