package exec

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/fluxkit/fluxkit"
)

// A record is what an agent keeps on disk about the shell it started for
// one (job, rank), in a directory of its runtime directory named
// "<jobid>.<rank>": the launch request, the shell's pid and start time,
// the barriers passed, the exit status once reaped, whether the rank was
// released, and the shell's stdout and stderr, which the shell writes
// there itself. A restarted agent finds the shells its predecessor started
// through these records, checked against the live processes, and the
// output files let it deliver every byte again from any offset.
type record struct {
	dir string
	rec recordFile
}

// recordFile is record.json.
type recordFile struct {
	Launch   launchReq `json:"launch"`
	Rank     uint32    `json:"rank"`
	Pid      int       `json:"pid,omitempty"`   // 0: the fork may or may not have happened
	Start    uint64    `json:"start,omitempty"` // the process's start time, /proc/<pid>/stat field 22
	Barriers int       `json:"barriers,omitempty"`
	Status   *int      `json:"status,omitempty"` // raw wait status, once reaped
	Released bool      `json:"released,omitempty"`
}

const recordName = "record.json"

// recordDir is where the record of (id, rank) lives under dir.
func recordDir(dir string, id fluxkit.JobID, rank uint32) string {
	return filepath.Join(dir, id.Dec()+"."+strconv.FormatUint(uint64(rank), 10))
}

// createRecord makes the record of a shell about to be started, with its
// (empty) output files, and writes it before the fork: a record without a
// pid tells a restarted agent that a shell may exist that it cannot find,
// so that it never starts a second one.
func createRecord(dir string, lr *launchReq, rank uint32) (*record, error) {
	r := &record{dir: recordDir(dir, lr.ID, rank), rec: recordFile{Launch: *lr, Rank: rank}}
	if err := os.Mkdir(r.dir, 0o700); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	for _, s := range streamNames {
		f, err := os.OpenFile(filepath.Join(r.dir, s), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			r.remove()
			return nil, fmt.Errorf("record: %w", err)
		}
		f.Close()
	}
	if err := r.save(); err != nil {
		r.remove()
		return nil, err
	}
	return r, nil
}

// output is the path of a stream's file.
func (r *record) output(stream int) string { return filepath.Join(r.dir, streamNames[stream]) }

// save writes record.json atomically.
func (r *record) save() error {
	b, err := json.Marshal(&r.rec)
	if err != nil {
		return fmt.Errorf("record %s: %w", r.dir, err)
	}
	tmp := filepath.Join(r.dir, recordName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(r.dir, recordName)); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

func (r *record) remove() { _ = os.RemoveAll(r.dir) }

// loadRecords reads the records of rank under dir. Records it cannot read
// are returned as errors naming them, and left in place.
func loadRecords(dir string, rank uint32) ([]*record, []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("runtime directory: %w", err)}
	}
	suffix := "." + strconv.FormatUint(uint64(rank), 10)
	var out []*record
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(filepath.Join(p, recordName))
		if errors.Is(err, os.ErrNotExist) {
			continue // not a record: createRecord writes it before anything runs
		}
		r := &record{dir: p}
		if err == nil {
			err = json.Unmarshal(b, &r.rec)
		}
		if err == nil && (r.rec.Rank != rank || recordDir(dir, r.rec.Launch.ID, rank) != p) {
			err = errors.New("does not match its directory")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("record %s: %w", p, err))
			continue
		}
		out = append(out, r)
	}
	return out, errs
}
