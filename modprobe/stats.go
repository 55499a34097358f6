package modprobe

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/fluxkit/fluxkit/kvs"
)

// Stat is one entry of the modprobe.stats timing array.
type Stat struct {
	Name      string  `json:"name"`
	StartTime float64 `json:"starttime"`
	Duration  float64 `json:"duration"`
}

// Stats is the modprobe.stats array for a report: the planning phases,
// then every task that started, by start time, relative to the creation
// of the Modprobe.
func (s *Session) Stats(rep *Report) []Stat {
	out := slices.Clone(s.stats)
	var tasks []Stat
	for _, t := range rep.Tasks {
		if t.Started {
			tasks = append(tasks, Stat{Name: t.Name, StartTime: t.Start.Sub(s.t0).Seconds(), Duration: t.Duration().Seconds()})
		}
	}
	slices.SortStableFunc(tasks, func(a, b Stat) int { return cmp.Compare(a.StartTime, b.StartTime) })
	return append(out, tasks...)
}

// WriteStats stores the timing array under the KVS key modprobe.stats
// (rank 0 only; other ranks do nothing) and commits it, as flux-core's
// flux modprobe rc1 --timing does.
func (s *Session) WriteStats(ctx context.Context, rep *Report) error {
	if s.m.rank != 0 {
		return nil
	}
	var txn kvs.Txn
	if err := txn.PutJSON("modprobe.stats", s.Stats(rep)); err != nil {
		return err
	}
	if err := kvs.Commit(ctx, s.m.h, "", &txn); err != nil {
		return fmt.Errorf("modprobe.stats: %w", err)
	}
	return nil
}
