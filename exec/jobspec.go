package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/fluxkit/fluxkit/idset/hostlist"
)

// resourceSet is the part of an RFC 20 R the launcher needs.
type resourceSet struct {
	ranks      []uint32          // sorted execution targets
	hosts      map[uint32]string // broker rank -> hostname, when nodelist is usable
	starttime  float64
	expiration float64
}

type rJSON struct {
	Version   int `json:"version"`
	Execution struct {
		RLite []struct {
			Rank string `json:"rank"`
		} `json:"R_lite"`
		Nodelist   []string `json:"nodelist"`
		Starttime  float64  `json:"starttime"`
		Expiration float64  `json:"expiration"`
	} `json:"execution"`
}

// parseR decodes an RFC 20 resource set.
func parseR(raw json.RawMessage) (*resourceSet, error) {
	var r rJSON
	if len(raw) == 0 {
		return nil, errors.New("parsing R: missing")
	}
	if err := decodeR(raw, &r); err != nil {
		return nil, fmt.Errorf("parsing R: %w", err)
	}
	if r.Version != 1 {
		return nil, fmt.Errorf("parsing R: unsupported version %d", r.Version)
	}
	if len(r.Execution.RLite) == 0 {
		return nil, errors.New("parsing R: execution.R_lite is empty")
	}
	rs := &resourceSet{starttime: r.Execution.Starttime, expiration: r.Execution.Expiration}
	var order []uint32 // ranks in R_lite order, which is nodelist order
	seen := map[uint32]bool{}
	for i, e := range r.Execution.RLite {
		ids, err := parseRanks(e.Rank)
		if err != nil || len(ids) == 0 {
			return nil, fmt.Errorf("parsing R: R_lite[%d].rank %q is not a valid idset", i, e.Rank)
		}
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				order = append(order, id)
			}
		}
		if len(order) > maxRanks {
			return nil, fmt.Errorf("parsing R: more than %d ranks", maxRanks)
		}
	}
	if math.IsNaN(rs.expiration) || math.IsInf(rs.expiration, 0) {
		return nil, errors.New("parsing R: invalid expiration")
	}
	rs.ranks = append([]uint32(nil), order...)
	sortRanks(rs.ranks)
	var hosts []string
	for _, h := range r.Execution.Nodelist {
		exp, err := expandHosts(h)
		if err != nil {
			return nil, fmt.Errorf("parsing R: nodelist: %w", err)
		}
		hosts = append(hosts, exp...)
		if len(hosts) > maxRanks {
			return nil, errors.New("parsing R: nodelist too long")
		}
	}
	if len(hosts) == len(order) {
		rs.hosts = make(map[uint32]string, len(order))
		for i, id := range order {
			rs.hosts[id] = hosts[i]
		}
	}
	return rs, nil
}

func (rs *resourceSet) host(rank uint32) string {
	if h, ok := rs.hosts[rank]; ok {
		return h
	}
	return "rank" + strconv.FormatUint(uint64(rank), 10)
}

// expandHosts expands an RFC 29 hostlist such as "node[0-3,7],login1" into
// its hosts, in order.
func expandHosts(s string) ([]string, error) {
	hl, err := hostlist.Parse(s)
	if err != nil {
		return nil, err
	}
	if hl.Len() > maxRanks {
		return nil, fmt.Errorf("hostlist %q: more than %d hosts", s, maxRanks)
	}
	out := make([]string, 0, hl.Len())
	for h := range hl.All() {
		out = append(out, h)
	}
	return out, nil
}

// jobSpec is the part of an RFC 14 jobspec the launcher needs.
type jobSpec struct {
	command  []string
	env      map[string]string
	duration time.Duration
	method   string // attributes.system.exec.method, or testexec when the test block is present
	jobShell string
	test     *testConf
	raw      json.RawMessage
	// attributes.system.exec.bulkexec (flux-core's test and tuning keys)
	bulkMock           string
	bulkBarrierTimeout *time.Duration
}

// bulkexecError is a bad attributes.system.exec.bulkexec (or .bgexec)
// block; the note names the job, so the coordinator formats it.
type bulkexecError struct{ key, detail string }

func (e *bulkexecError) Error() string { return "jobspec: " + e.key + ": " + e.detail }

type testConf struct {
	runDuration    time.Duration // 0 = unlimited
	waitStatus     int
	mockException  string // "", "init", "run"
	override       bool
	reattachFinish bool
}

// defaultTestDuration is testexec's run time without any duration, as in
// flux-core.
const defaultTestDuration = 10 * time.Microsecond

// errTestConf is the note flux-core's testexec gives for a bad test block.
const errTestConf = "failed to initialize testconf"

// jobspecJSON is what parseJobspec reads of a jobspec.
type jobspecJSON struct {
	Tasks      []taskJSON `json:"tasks"`
	Attributes struct {
		System struct {
			Duration    any               `json:"duration"`
			Environment map[string]string `json:"environment"`
			Exec        map[string]json.RawMessage
		} `json:"system"`
	} `json:"attributes"`
}

type taskJSON struct {
	Command []string `json:"command"`
}

func parseJobspec(raw json.RawMessage) (*jobSpec, error) {
	var js jobspecJSON
	if len(raw) == 0 {
		return nil, errors.New("jobspec: missing")
	}
	if err := decodeJobspec(raw, &js); err != nil {
		return nil, fmt.Errorf("jobspec: %w", err)
	}
	spec := &jobSpec{env: js.Attributes.System.Environment, raw: raw}
	if len(js.Tasks) > 0 {
		spec.command = js.Tasks[0].Command
	}
	if d, ok := js.Attributes.System.Duration.(float64); ok && d > 0 && d < 1e9 {
		spec.duration = time.Duration(d * float64(time.Second))
	}
	ex := js.Attributes.System.Exec
	if m, ok := ex["method"]; ok {
		if err := json.Unmarshal(m, &spec.method); err != nil {
			return nil, fmt.Errorf("jobspec: attributes.system.exec.method: %w", err)
		}
	}
	if b, ok := ex["bypass"]; ok {
		var on bool
		if err := json.Unmarshal(b, &on); err != nil {
			return nil, fmt.Errorf("jobspec: attributes.system.exec.bypass: %w", err)
		}
		if on {
			spec.method = MethodBypass
		}
	}
	if s, ok := ex["job_shell"]; ok {
		if err := json.Unmarshal(s, &spec.jobShell); err != nil {
			return nil, fmt.Errorf("jobspec: attributes.system.exec.job_shell: %w", err)
		}
	}
	for _, key := range []string{"bulkexec", "bgexec"} {
		if b, ok := ex[key]; ok {
			if err := parseBulkexec(key, b, spec); err != nil {
				return spec, err
			}
		}
	}
	if t, ok := ex["test"]; ok {
		if spec.method == "" {
			spec.method = MethodTestExec
		}
		tc, err := parseTestConf(t, spec.duration)
		spec.test = tc
		if err != nil {
			return spec, err
		}
	}
	return spec, nil
}

// parseTestConf decodes attributes.system.exec.test. Its error is reported as
// the job exception errTestConf, not as a protocol error.
func parseTestConf(raw json.RawMessage, jobDuration time.Duration) (*testConf, error) {
	if tc, ok := fastTestConf(raw, jobDuration); ok {
		return tc, nil
	}
	return slowTestConf(raw, jobDuration)
}

func slowTestConf(raw json.RawMessage, jobDuration time.Duration) (*testConf, error) {
	var t map[string]any
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("%s: test block is not an object", errTestConf)
	}
	tc := &testConf{runDuration: jobDuration}
	if jobDuration == 0 {
		tc.runDuration = defaultTestDuration
	}
	for k, v := range t {
		switch k {
		case "run_duration":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s: run_duration must be a string", errTestConf)
			}
			// An unparsable string is only logged by flux-core; the job keeps
			// its default duration.
			if d, err := parseFSD(s); err == nil {
				tc.runDuration = d
			}
		case "wait_status", "override", "reattach_finish":
			n, ok := v.(float64)
			if !ok || n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
				return nil, fmt.Errorf("%s: %s must be an integer", errTestConf, k)
			}
			switch k {
			case "wait_status":
				tc.waitStatus = int(n)
			case "override":
				tc.override = n != 0
			default:
				tc.reattachFinish = n != 0
			}
		case "mock_exception":
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s: mock_exception must be a string", errTestConf)
			}
			tc.mockException = s
		}
	}
	return tc, nil
}

// parseBulkexec decodes attributes.system.exec.<key> (bulkexec or bgexec)
// strictly, as flux-core does: an unknown key fails the job.
func parseBulkexec(key string, raw json.RawMessage, spec *jobSpec) error {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return &bulkexecError{key: key, detail: "not an object"}
	}
	for k, v := range m {
		switch k {
		case "mock_exception":
			s, ok := v.(string)
			if !ok {
				return &bulkexecError{key: key, detail: "mock_exception: expected a string"}
			}
			spec.bulkMock = s
		case "barrier-timeout":
			f, ok := v.(float64)
			if !ok || f < 0 || f > 1e9 {
				return &bulkexecError{key: key, detail: "barrier-timeout: expected a non-negative number"}
			}
			d := time.Duration(f * float64(time.Second))
			spec.bulkBarrierTimeout = &d
		case "sdexec-test-expected-cpus":
			// accepted for compatibility; fluxkit has no sdexec mechanism
		default:
			return &bulkexecError{key: key, detail: fmt.Sprintf("unknown key %q", k)}
		}
	}
	return nil
}
