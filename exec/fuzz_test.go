package exec

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func FuzzParseRanks(f *testing.F) {
	for _, s := range []string{"", "0", "2-3,5,7", "[0-3]", "3,1,2", "1-0", "x", "0-4294967295", "7,7,7", "1,,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := parseRanks(s)
		if err != nil {
			if !strings.Contains(err.Error(), "idset") {
				t.Fatalf("error does not name the idset: %v", err)
			}
			return
		}
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Fatalf("%q: not sorted and unique: %v", s, ids)
		}
		again, err := parseRanks(formatRanks(ids))
		if err != nil || !slices.Equal(again, ids) {
			t.Fatalf("%q: round trip %v -> %q -> %v (%v)", s, ids, formatRanks(ids), again, err)
		}
	})
}

func FuzzParseFSD(f *testing.F) {
	for _, s := range []string{"5s", "0.2", "1.5m", "2h", "1d", "inf", "-1", "1e308d", "nan", "0x10", "s", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseFSD(s)
		if err == nil && d < 0 {
			t.Fatalf("%q: negative duration %v", s, d)
		}
		if err != nil && !strings.Contains(err.Error(), "duration") {
			t.Fatalf("error does not say what is wrong: %v", err)
		}
	})
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{"SIGTERM", "TERM", "15", "0", "65", "sigkill", "FOO", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := parseSignal(s)
		if err == nil && (sig <= 0 || sig > 64) {
			t.Fatalf("%q: signal %d out of range", s, sig)
		}
	})
}

func FuzzParseSettings(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"exec":{}}`, `{"exec":{"kill-timeout":"0"}}`, `{"exec":{"method":"bgexec"}}`,
		`{"exec":{"max-kill-count":2,"max-kill-timeout":"3s","shell-exit-timeout":"none"}}`,
		`{"exec":{"testexec":{"allow-guests":true}}}`, `{"exec":{"epilog":["a",1]}}`, `{"exec":[]}`, `[1]`,
		`{"exec":{"term-signal":"SIGUSR1","kill-signal":9,"barrier-timeout":"30m","fanout":8}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseSettings(json.RawMessage(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "exec.") && !strings.HasPrefix(err.Error(), "exec: ") {
				t.Fatalf("error does not name the key: %v", err)
			}
			return
		}
		if set.KillTimeout <= 0 || set.MaxKillCount <= 0 || set.Fanout < 1 {
			t.Fatalf("%s: accepted invalid settings %+v", s, set)
		}
		// The schedule must terminate and stay ordered.
		tasks, shells, drain := set.KillSchedule()
		if !slices.IsSorted(tasks) || !slices.IsSorted(shells) || (len(shells) > 0 && drain < shells[len(shells)-1]) {
			t.Fatalf("%s: bad schedule %v %v %v", s, tasks, shells, drain)
		}
	})
}

func FuzzParseR(f *testing.F) {
	for _, s := range []string{
		makeR("2-3,5,7", "node[2-3,5,7]", 0), makeR("0", "n0", 12.5), `{"version":1,"execution":{"R_lite":[]}}`,
		`{"version":2}`, `{`, makeR("0-3", "a,b,c,d", -1), makeR("0-1", "n[01-02]", 0), makeR("0-4294967295", "x", 0),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := parseR(json.RawMessage(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "parsing R:") {
				t.Fatalf("error does not name R: %v", err)
			}
			return
		}
		if len(rs.ranks) == 0 || !slices.IsSorted(rs.ranks) {
			t.Fatalf("bad ranks %v", rs.ranks)
		}
		for _, r := range rs.ranks {
			_ = rs.host(r)
		}
	})
}

func FuzzExpandHosts(f *testing.F) {
	for _, s := range []string{"node[0-3,7]", "a,b", "n[01-16]", "x[", "x]", "[1-2]", "a[1-2]b", "a[2-1]", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hosts, err := expandHosts(s)
		if err == nil && len(hosts) > maxRanks+1 {
			t.Fatalf("too many hosts: %d", len(hosts))
		}
	})
}

func FuzzParseJobspec(f *testing.F) {
	for _, s := range []string{
		testJobspec(`{"run_duration":"1s","wait_status":3,"override":1}`), testJobspec(`{"run_duration":1}`),
		testJobspec(`{"mock_exception":"init"}`), testJobspec(`[]`), shellJobspec("true", `{"duration":5}`),
		`{"attributes":{"system":{"exec":{"bypass":"yes"}}}}`, `{"tasks":[{"command":"x"}]}`, `null`, `{`,
		`{"attributes":{"system":{"exec":{"bulkexec":{"mock_exception":"init","barrier-timeout":1.5,"x":1}}}}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := parseJobspec(json.RawMessage(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "jobspec") && !strings.HasPrefix(err.Error(), errTestConf) {
				t.Fatalf("error does not say where: %v", err)
			}
			return
		}
		if spec.test != nil && spec.test.runDuration < 0 {
			t.Fatalf("negative run_duration")
		}
	})
}

// FuzzAgentReport feeds arbitrary reports to an agent's merge and flush:
// nothing may panic and the subtree state stays within the job's ranks.
func FuzzAgentReport(f *testing.F) {
	f.Add(`{"started":"0-3","exited":[{"ranks":"1","status":256}],"released":"1","lost":"9"}`)
	f.Add(`{"failed":[{"rank":2,"errno":2,"msg":"x"}],"epilog_failed":[{"rank":3,"msg":"y"}]}`)
	f.Add(`{"started":"x-y"}`)
	f.Fuzz(func(t *testing.T, s string) {
		var rep report
		if json.Unmarshal([]byte(s), &rep) != nil {
			return
		}
		a := &Agent{log: discardLogger()}
		j := &agentJob{st: map[uint32]*rstat{}, rep: map[uint32]rstat{}, sub: []uint32{0, 1, 2, 3}, upEnded: true,
			barEntered: map[uint32]int{}, under: map[uint32]uint32{0: 0, 1: 1, 2: 1, 3: 1}}
		for _, r := range j.sub {
			j.st[r] = &rstat{}
		}
		a.mergeLocked(j, 0, &rep)
		if len(j.st) != 4 {
			t.Fatalf("state grew to %d ranks", len(j.st))
		}
	})
}

// An RFC 18 eventlog is parsed entry by entry: whatever parses writes back
// as lines that parse to the same entries, and a bad line is an error
// naming it, never a panic.
func FuzzParseEventlog(f *testing.F) {
	for _, s := range []string{
		"", "{\"timestamp\":1.5,\"name\":\"init\"}\n",
		"{\"timestamp\":1,\"name\":\"log\",\"context\":{\"data\":\"a\\nb\",\"rank\":\"0\"}}\n{\"timestamp\":2,\"name\":\"done\"}\n",
		"{\"timestamp\":1,\"name\":\"x\"}", "{\"name\":\"x\"}\n", "{\"timestamp\":1}\n", "{\"timestamp\":\"1\",\"name\":\"x\"}\n",
		"{\"timestamp\":1,\"name\":\"x\",\"context\":[]}\n", "{\"timestamp\":1,\"name\":\"x\",\"context\":null}\n", "\n", "[]\n",
		"{\"timestamp\":1,\"name\":\"\"}\n", "{\"timestamp\":1e400,\"name\":\"x\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := parseEventlog(b)
		if err != nil {
			if !strings.Contains(err.Error(), "eventlog line") {
				t.Fatalf("error does not name the line: %v", err)
			}
			return
		}
		var out []byte
		for i := range evs {
			out = appendLine(out, &evs[i])
		}
		again, err := parseEventlog(out)
		if err != nil {
			t.Fatalf("%q: rewritten as %q: %v", b, out, err)
		}
		want, _ := json.Marshal(evs)
		got, _ := json.Marshal(again)
		if string(want) != string(got) {
			t.Fatalf("%q: round trip %s -> %s", b, want, got)
		}
	})
}
