package exec

import (
	"fmt"
	"time"

	"github.com/fluxkit/fluxkit"
)

// Wire formats between the coordinator and the agents. They are internal to
// the package, so both ends always agree.

// launchReq is exec-agent.launch: it starts (or, with reattach, only
// rediscovers) the shells of job on every rank of Ranks, fanned out over a
// k-ary tree of those ranks.
type launchReq struct {
	ID       fluxkit.JobID     `json:"id"`
	Userid   uint32            `json:"userid"`
	Ranks    string            `json:"ranks"`
	Fanout   int               `json:"fanout"`
	Method   string            `json:"method"`
	Argv     []string          `json:"argv,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	Epilog   []string          `json:"epilog,omitempty"`
	Test     *testWire         `json:"test,omitempty"`
	Reattach bool              `json:"reattach,omitempty"`
	// Resume re-establishes a stream that broke (an agent or a leader
	// restarting): it is not a new start, so shells found running are not
	// "adopted".
	Resume   bool   `json:"resume,omitempty"`
	Service  string `json:"service"`            // coordinator service, for output
	Coord    uint32 `json:"coord"`              // coordinator rank
	Barriers bool   `json:"barriers,omitempty"` // the shells pass two barriers
	// BarrierTimeout bounds the first barrier, from the moment every shell
	// has started; 0 disables.
	BarrierTimeout time.Duration `json:"barrier_timeout,omitempty"`
	// Shell: Argv runs a job shell ("[<imp> exec] <shell> <jobid>"), which
	// gets flux-core's job shell environment rather than the jobspec's.
	Shell bool `json:"shell,omitempty"`
	// Multiuser: the job is a guest's, run under the IMP.
	Multiuser bool `json:"multiuser,omitempty"`
}

// validate checks what the coordinator's Settings.Validate guarantees, for
// a launch that may come from anywhere.
func (lr *launchReq) validate() error {
	switch {
	case lr.Fanout < 1 || lr.Fanout > maxFanout:
		return fmt.Errorf("fanout %d: an integer 1..%d is required", lr.Fanout, maxFanout)
	case lr.BarrierTimeout < 0:
		return fmt.Errorf("barrier_timeout %v is negative", lr.BarrierTimeout)
	case !realMethod(lr.Method) && lr.Method != MethodTestExec:
		return fmt.Errorf("unknown method %q", lr.Method)
	case lr.Test != nil && lr.Test.RunDuration < 0:
		return fmt.Errorf("test run_duration %v is negative", lr.Test.RunDuration)
	}
	return nil
}

type testWire struct {
	RunDuration time.Duration `json:"run_duration"`
	WaitStatus  int           `json:"wait_status"`
}

type failWire struct {
	Rank  uint32 `json:"rank"`
	Errno int    `json:"errno"`
	Msg   string `json:"msg"`
}

type exitWire struct {
	Ranks  string `json:"ranks"`
	Status int    `json:"status"`
}

// report is one response on an exec-agent.launch stream: what changed in
// the sender's subtree since its previous report on that stream.
type report struct {
	Started      string     `json:"started,omitempty"`
	Adopted      string     `json:"adopted,omitempty"` // started by an earlier launch of the same job
	Failed       []failWire `json:"failed,omitempty"`
	Exited       []exitWire `json:"exited,omitempty"`
	Released     string     `json:"released,omitempty"`
	EpilogFailed []failWire `json:"epilog_failed,omitempty"`
	Lost         string     `json:"lost,omitempty"`
	// Barrier is the highest barrier the whole subtree has entered;
	// BarrierFail says a shell exited while a barrier was pending.
	Barrier     int  `json:"barrier,omitempty"`
	BarrierFail bool `json:"barrier_fail,omitempty"`
	// Barriers is how many barriers completed (from the leader).
	Barriers int `json:"barriers,omitempty"`
	// BarrierQueried answers a barrier-query: BarrierPending lists the
	// subtree's ranks whose shells have not entered the first barrier.
	BarrierQueried bool   `json:"barrier_queried,omitempty"`
	BarrierPending string `json:"barrier_pending,omitempty"`
	// BarrierTimeout, from the leader, says the first barrier timed out
	// waiting for BarrierPending.
	BarrierTimeout bool `json:"barrier_timeout,omitempty"`
	// Unentered are ranks among Exited whose shells exited before the
	// first barrier completed without having entered it.
	Unentered string `json:"unentered,omitempty"`
}

func (r *report) empty() bool {
	return r.Started == "" && r.Adopted == "" && len(r.Failed) == 0 && len(r.Exited) == 0 &&
		r.Released == "" && len(r.EpilogFailed) == 0 && r.Lost == "" && r.Barrier == 0 && !r.BarrierFail && r.Barriers == 0 &&
		!r.BarrierQueried && !r.BarrierTimeout && r.Unentered == ""
}

// barrierReq is exec-agent.barrier-enter, from a shell to its own rank's
// agent, and exec-agent.barrier-release, from a tree parent to its children.
type barrierReq struct {
	ID   fluxkit.JobID `json:"id"`
	Rank uint32        `json:"rank"`
	Seq  int           `json:"seq,omitempty"`
	OK   bool          `json:"ok,omitempty"`
}

// killReq is exec-agent.kill, an RPC forwarded down the job's tree; each
// agent answers for its subtree with a killResp.
type killReq struct {
	ID     fluxkit.JobID `json:"id"`
	Signal int           `json:"signal"`          // 0: only Cancel
	Tasks  bool          `json:"tasks,omitempty"` // the shells' tasks, not the shells
	Cancel bool          `json:"cancel,omitempty"`
	Ranks  string        `json:"ranks"` // the job's ranks, to rebuild the tree
	Fanout int           `json:"fanout"`
	Only   string        `json:"only,omitempty"` // for the receiving rank only: not forwarded
	// Budget is how long the receiver has to answer for its whole subtree.
	Budget time.Duration `json:"budget,omitempty"`
}

// killResp answers a killReq rank by rank: Held ranks still ran a shell of
// the job (and got the signal), Empty ranks had none, and the kill did not
// reach Unreached ranks (an agent missing, restarting or too slow).
type killResp struct {
	Held      string `json:"held,omitempty"`
	Empty     string `json:"empty,omitempty"`
	Unreached string `json:"unreached,omitempty"`
}

// forgetReq is exec-agent.forget: the job reached release final.
type forgetReq struct {
	ID     fluxkit.JobID `json:"id"`
	Ranks  string        `json:"ranks"`
	Fanout int           `json:"fanout"`
}

// outputReq is <service>.output from an agent to the coordinator.
type outputReq struct {
	ID     fluxkit.JobID `json:"id"`
	Rank   uint32        `json:"rank"`
	Stream int           `json:"stream"`
	Offset int64         `json:"offset"`
	Data   []byte        `json:"data"`
	Argv0  string        `json:"argv0,omitempty"`
}

type outputResp struct {
	Offset int64 `json:"offset"` // everything before is stored
}

// treeChildren returns the positions of the children of position pos in a
// k-ary tree over n positions.
func treeChildren(pos, n, k int) []int {
	var c []int
	for i := k*pos + 1; i <= k*pos+k && i < n; i++ {
		c = append(c, i)
	}
	return c
}

// subtree returns the positions in the subtree rooted at pos.
func subtree(pos, n, k int) []int {
	out := []int{pos}
	for i := 0; i < len(out); i++ {
		out = append(out, treeChildren(out[i], n, k)...)
	}
	return out
}
