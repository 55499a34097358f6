package modprobe

// taskState is where a task is in a run.
type taskState uint8

const (
	stWaiting taskState = iota
	stReady
	stRunning
	stDone
	stFailed
)

// scheduler is the executor's pure state machine: it says which task may
// start and learns which finished. The driver owns goroutines and time.
type scheduler struct {
	succ    [][]int32
	waiting []int32 // unfinished predecessors
	state   []taskState
	ready   []int32 // FIFO
	running int
	limit   int
	aborted bool
}

func newScheduler(preds [][]int32, limit int) *scheduler {
	n := len(preds)
	s := &scheduler{succ: make([][]int32, n), waiting: make([]int32, n), state: make([]taskState, n), limit: limit}
	for i, ps := range preds {
		s.waiting[i] = int32(len(ps))
		for _, q := range ps {
			s.succ[q] = append(s.succ[q], int32(i))
		}
	}
	for i := range s.waiting {
		if s.waiting[i] == 0 {
			s.state[i] = stReady
			s.ready = append(s.ready, int32(i))
		}
	}
	return s
}

// next returns a task to start now, if any.
func (s *scheduler) next() (int32, bool) {
	if s.aborted || len(s.ready) == 0 || (s.limit > 0 && s.running >= s.limit) {
		return 0, false
	}
	i := s.ready[0]
	s.ready = s.ready[1:]
	s.state[i] = stRunning
	s.running++
	return i, true
}

// finish records the end of task i. A failure aborts the run: nothing
// else starts, and the tasks left are skipped.
func (s *scheduler) finish(i int32, failed bool) {
	s.running--
	if failed {
		s.state[i] = stFailed
		s.aborted = true
		return
	}
	s.state[i] = stDone
	for _, j := range s.succ[i] {
		if s.waiting[j]--; s.waiting[j] == 0 {
			s.state[j] = stReady
			s.ready = append(s.ready, j)
		}
	}
}

func (s *scheduler) abort() { s.aborted = true }

// over reports whether the driver can stop: nothing runs and nothing more
// can start.
func (s *scheduler) over() bool {
	return s.running == 0 && (s.aborted || len(s.ready) == 0)
}
