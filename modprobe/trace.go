package modprobe

import (
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"time"
)

// traceEvent is one Chrome trace-event ("X" complete event or "M"
// metadata), the format chrome://tracing and Perfetto load.
type traceEvent struct {
	Name string         `json:"name"`
	Cat  string         `json:"cat,omitempty"`
	Ph   string         `json:"ph"`
	Ts   float64        `json:"ts"`
	Dur  float64        `json:"dur,omitempty"`
	Pid  int            `json:"pid"`
	Tid  int            `json:"tid"`
	Args map[string]any `json:"args,omitempty"`
}

// WriteTrace writes the tasks that ran as a Chrome trace-event JSON
// document: one complete event per task on the first free lane, times in
// microseconds from the start of the run, pid = rank.
func (r *Report) WriteTrace(w io.Writer, rank uint32) error {
	type span struct {
		i          int
		start, end time.Duration
	}
	var spans []span
	for i, t := range r.Tasks {
		if t.Started {
			spans = append(spans, span{i, t.Start.Sub(r.Start), t.End.Sub(r.Start)})
		}
	}
	slices.SortStableFunc(spans, func(a, b span) int {
		if a.start != b.start {
			return int(a.start - b.start)
		}
		return a.i - b.i
	})
	var laneEnd []time.Duration
	events := []traceEvent{{Name: "process_name", Ph: "M", Pid: int(rank), Args: map[string]any{"name": "flux-modprobe rank " + strconv.FormatUint(uint64(rank), 10)}}}
	for _, s := range spans {
		lane := -1
		for l, end := range laneEnd {
			if end <= s.start {
				lane = l
				break
			}
		}
		if lane < 0 {
			lane = len(laneEnd)
			laneEnd = append(laneEnd, 0)
		}
		laneEnd[lane] = s.end
		t := r.Tasks[s.i]
		ev := traceEvent{Name: t.Name, Cat: "modprobe", Ph: "X", Ts: us(s.start), Dur: us(s.end - s.start), Pid: int(rank), Tid: lane}
		if t.Err != nil {
			ev.Args = map[string]any{"error": t.Err.Error()}
		}
		events = append(events, ev)
	}
	doc := map[string]any{
		"traceEvents":     events,
		"displayTimeUnit": "ms",
		"otherData": map[string]any{
			"makespan_us":      us(r.Makespan()),
			"critical_path_us": us(r.CriticalPath()),
			"skipped":          r.Skipped,
		},
	}
	enc := json.NewEncoder(w)
	return enc.Encode(doc)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
