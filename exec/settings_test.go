package exec

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
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
	s, err := ParseSettings(json.RawMessage(`{"exec":{"method":"bgexec","kill-timeout":"0.2","term-signal":"SIGUSR1",
		"kill-signal":15,"max-kill-count":2,"max-kill-timeout":"1m","barrier-timeout":"0","shell-exit-timeout":"none",
		"testexec":{"allow-guests":true},"epilog":["/bin/true"],"fanout":4,"adopt-on-restart":false,"imp":"/usr/libexec/flux/flux-imp"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if s.Method != MethodBgExec || s.KillTimeout != 200*time.Millisecond || s.TermSignal != syscall.SIGUSR1 ||
		s.KillSignal != syscall.SIGTERM || s.MaxKillCount != 2 || s.MaxKillTimeout != time.Minute || s.BarrierTimeout != 0 ||
		s.ShellExitTimeout != 0 || !s.AllowGuests[MethodTestExec] || s.Fanout != 4 || s.Adopt || s.IMP == "" {
		t.Fatalf("parsed %+v", s)
	}
	for _, c := range []struct{ conf, want string }{
		{`{"exec":{"kill-timeout":"0"}}`, "exec.kill-timeout: invalid kill-timeout: 0"},
		{`{"exec":{"kill-timeout":"fast"}}`, "exec.kill-timeout: invalid kill-timeout: fast"},
		{`{"exec":{"method":"testexec"}}`, "exec.method: unknown exec.method 'testexec'"},
		{`{"exec":{"fanout":0}}`, "exec.fanout: invalid fanout: 0"},
		{`{"exec":{"fanout":-3}}`, "exec.fanout: invalid fanout: -3"},
		{`{"exec":{"shell-exit-timeout":-1}}`, "exec.shell-exit-timeout: invalid shell-exit-timeout: -1"},
		{`{"exec":{"barrier-timeout":"-1s"}}`, "exec.barrier-timeout: invalid duration '-1s'"},
		{`{"exec":{"max-kill-timeout":"0"}}`, "exec.max-kill-timeout: invalid max-kill-timeout: 0"},
		{`{"exec":{"bgexec":{"allow-guests":1}}}`, "exec.bgexec: allow-guests: expected a boolean"},
		{`{"exec":{"sdexec-properties":{"MemoryMax":90}}}`, "exec.sdexec-properties: exec.sdexec-properties.MemoryMax is not a string"},
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

// Settings that ParseSettings refuses are refused by Validate, by New and
// (for what travels to the agents) by every agent: configuration is checked
// in one place whichever way it arrives.
func TestSettingsValidatedEverywhere(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*Settings)
		key  string
	}{
		{"negative fanout", func(s *Settings) { s.Fanout = -1 }, "fanout"},
		{"zero fanout", func(s *Settings) { s.Fanout = 0 }, "fanout"},
		{"huge fanout", func(s *Settings) { s.Fanout = maxFanout + 1 }, "fanout"},
		{"negative kill-timeout", func(s *Settings) { s.KillTimeout = -time.Second }, "kill-timeout"},
		{"zero kill-timeout", func(s *Settings) { s.KillTimeout = 0 }, "kill-timeout"},
		{"negative max-kill-timeout", func(s *Settings) { s.MaxKillTimeout = -time.Second }, "max-kill-timeout"},
		{"negative barrier-timeout", func(s *Settings) { s.BarrierTimeout = -time.Second }, "barrier-timeout"},
		{"negative shell-exit-timeout", func(s *Settings) { s.ShellExitTimeout = -time.Second }, "shell-exit-timeout"},
		{"zero max-kill-count", func(s *Settings) { s.MaxKillCount = 0 }, "max-kill-count"},
		{"no signal", func(s *Settings) { s.TermSignal = 0 }, "term-signal"},
		{"testexec as the method", func(s *Settings) { s.Method = MethodTestExec }, "method"},
		{"empty method", func(s *Settings) { s.Method = "" }, "method"},
		{"bad service", func(s *Settings) { s.Service = "ssh" }, "service"},
		{"negative start delay", func(s *Settings) { s.MaxStartDelayPercent = -1 }, "max-start-delay-percent"},
		{"empty epilog command", func(s *Settings) { s.Epilog = []string{""} }, "epilog"},
		{"allow-guests for an unknown method", func(s *Settings) { s.AllowGuests = map[string]bool{"fork": true} }, "fork"},
	}
	in := newInstance(t, instOpts{size: 1})
	hellos := len(in.jm.hellos)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			set := DefaultSettings()
			c.mod(&set)
			err := set.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != c.key || !errors.Is(err, ErrBadConfig) {
				t.Fatalf("Validate: %v, want a ConfigError for exec.%s", err, c.key)
			}
			h := in.b.Owner(0)
			defer h.Close()
			if _, err := New(context.Background(), Config{Handle: h, Settings: &set}); !errors.Is(err, ErrBadConfig) ||
				!strings.Contains(err.Error(), "exec."+c.key) {
				t.Fatalf("New accepted settings that ParseSettings refuses: %v", err)
			}
		})
	}
	in.jm.mu.Lock()
	defer in.jm.mu.Unlock()
	if len(in.jm.hellos) != hellos {
		t.Fatalf("a coordinator with bad settings said hello: %v", in.jm.hellos)
	}
	if d := DefaultSettings(); d.Validate() != nil || d.Fanout != 8 {
		t.Fatalf("defaults: %+v: %v", d, d.Validate())
	}
}

// An agent refuses a launch whose tree it cannot build as asked, instead of
// quietly using another fanout.
func TestAgentRefusesBadLaunch(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 3})
	good := launchReq{ID: 1, Userid: in.b.OwnerID(), Ranks: "0-2", Fanout: 2, Method: MethodTestExec,
		Test: &testWire{RunDuration: time.Millisecond}, Service: "job-exec"}
	for _, c := range []struct {
		mod  func(*launchReq)
		want string
	}{
		{func(lr *launchReq) { lr.Fanout = 0 }, "fanout 0"},
		{func(lr *launchReq) { lr.Fanout = -2 }, "fanout -2"},
		{func(lr *launchReq) { lr.BarrierTimeout = -time.Second }, "barrier_timeout"},
		{func(lr *launchReq) { lr.Method = "fork" }, `unknown method "fork"`},
	} {
		lr := good
		c.mod(&lr)
		call, err := fluxkit.Stream(context.Background(), in.jm.h, "exec-agent.launch", 0, encodeLaunch(&lr))
		if err != nil {
			t.Fatal(err)
		}
		_, err = call.Recv(context.Background())
		call.Close()
		if !errors.Is(err, fluxkit.EPROTO) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("launch %+v: %v, want EPROTO naming %q", lr, err, c.want)
		}
	}
	for r := uint32(0); r < 3; r++ {
		if n := in.spawnCount(1, r); n != 0 {
			t.Fatalf("rank %d started a shell for a refused launch", r)
		}
	}
}

// Every configuration flux-core documents in flux-config-exec(5) loads, and
// a guest cannot reach testexec through the configuration.
func TestFluxCoreConfigsLoad(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	for _, conf := range []string{
		"[exec]\nmethod = \"bgexec\"\n",
		"[exec]\nmethod = \"bulk-exec\"\nkill-timeout = \"500ms\"\nmax-kill-timeout = \"30m\"\n",
		"[exec]\nimp = \"/usr/libexec/flux/flux-imp\"\njob-shell = \"/usr/libexec/flux/flux-shell-special\"\n",
		"[exec]\nservice = \"sdexec\"\nsdexec-constrain-resources = true\n[exec.sdexec-properties]\nMemoryMax = \"90%\"\n",
		"[exec]\nservice = \"sdexec\"\nmax-kill-timeout = \"15m\"\nsdexec-stop-timer-sec = 1800\nsdexec-stop-timer-signal = 10\n",
		"[exec]\nterm-signal = \"SIGUSR1\"\nkill-signal = \"STKFLT\"\nmax-kill-count = 4\nmax-start-delay-percent = 50\n",
		"[exec]\nbarrier-timeout = \"0\"\nshell-exit-timeout = \"none\"\n",
		"[exec.testexec]\nallow-guests = true\n",
	} {
		if err := in.b.Rank(0).SetConfig(conf); err != nil {
			t.Fatal(err)
		}
		if err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.config-reload", 0, map[string]any{}, nil); err != nil {
			t.Fatalf("%s: %v", conf, err)
		}
	}
	if got := in.coord.Settings(); !got.AllowGuests[MethodTestExec] || got.Method != MethodBulkExec {
		t.Fatalf("last config not applied: %+v", got)
	}
	// exec.method cannot make testexec the method, so no guest gets it that
	// way; the jobspec's test block is the only route and allow-guests
	// guards it.
	if err := in.b.Rank(0).SetConfig("[exec]\nmethod = \"testexec\"\n"); err != nil {
		t.Fatal(err)
	}
	if err := fluxkit.RPC(context.Background(), in.jm.h, "job-exec.config-reload", 0, map[string]any{}, nil); err == nil ||
		!strings.Contains(err.Error(), "unknown exec.method 'testexec'") {
		t.Fatalf("method testexec: %v", err)
	}
	set := DefaultSettings()
	set.AllowGuests = map[string]bool{MethodBgExec: true}
	for m, want := range map[string]bool{MethodBulkExec: true, MethodBgExec: true, MethodTestExec: false, MethodBypass: false} {
		if got := guestMay(set, m); got != want {
			t.Errorf("guestMay(%s) = %v", m, got)
		}
	}
}
