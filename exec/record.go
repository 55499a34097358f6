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
//
// The facts are lines appended to one file, "record", so that keeping the
// record costs a few small appends per job: "launch <json>" before the
// fork, "pid <pid> <start>" after it, "status <raw>" when the shell is
// reaped (by the agent, or by the keeper that forked it, which appends it
// itself), "released" after its epilog, "barriers <n>" as they pass. The
// last line of a kind wins, and a line cut short by a crash is not read.
// Lines are short single writes to a file opened for appending, so the
// keeper's and the agent's never mix.
type record struct {
	dir string
	rec recordFile
}

// recordFile is what the record says.
type recordFile struct {
	Launch   launchReq
	Rank     uint32
	Pid      int    // 0: the fork may or may not have happened
	Start    uint64 // the process's start time, /proc/<pid>/stat field 22
	Barriers int
	Status   *int // raw wait status, once reaped
	Released bool
}

// recordName is the record's file in its directory.
const recordName = "record"

// recordDir is where the record of (id, rank) lives under dir.
func recordDir(dir string, id fluxkit.JobID, rank uint32) string {
	return filepath.Join(dir, id.Dec()+"."+strconv.FormatUint(uint64(rank), 10))
}

// createRecord makes the record of a shell about to be started, with its
// (empty) output files, and writes it before the fork: a record without a
// pid tells a restarted agent that a shell may exist that it cannot find,
// so that it never starts a second one. spare, when not "", is an empty
// record made ahead of need (makeSpare), renamed into place: one metadata
// operation on the launch's path instead of four.
func createRecord(dir string, lr *launchReq, rank uint32, spare string) (*record, error) {
	r := &record{dir: recordDir(dir, lr.ID, rank), rec: recordFile{Launch: *lr, Rank: rank}}
	if spare != "" {
		if err := os.Rename(spare, r.dir); err != nil {
			_ = os.RemoveAll(spare)
			return nil, fmt.Errorf("record: %w", err)
		}
	} else if err := makeEmpty(r.dir); err != nil {
		return nil, err
	}
	if err := r.append("launch", string(encodeLaunch(lr))); err != nil {
		r.remove()
		return nil, err
	}
	return r, nil
}

// makeEmpty creates a record directory with its empty files.
func makeEmpty(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	for _, name := range []string{streamNames[0], streamNames[1], recordName} {
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			_ = os.RemoveAll(dir)
			return fmt.Errorf("record: %w", err)
		}
		f.Close()
	}
	return nil
}

// spareName is the name of rank's n'th spare record: a dot file, which
// loadRecords never takes for a record.
func spareName(dir string, rank uint32, n int64) string {
	return filepath.Join(dir, fmt.Sprintf(".spare-%d-%d", rank, n))
}

// removeSpares removes rank's spare records under dir.
func removeSpares(dir string, rank uint32) {
	old, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf(".spare-%d-*", rank)))
	for _, d := range old {
		_ = os.RemoveAll(d)
	}
}

// append adds one line to the record.
func (r *record) append(kind, value string) error {
	f, err := os.OpenFile(filepath.Join(r.dir, recordName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	line := kind
	if value != "" {
		line += " " + value
	}
	_, err = f.Write([]byte(line + "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// output is the path of a stream's file.
func (r *record) output(stream int) string { return filepath.Join(r.dir, streamNames[stream]) }

func (r *record) setPid(pid int, start uint64) error {
	r.rec.Pid, r.rec.Start = pid, start
	return r.append("pid", strconv.Itoa(pid)+" "+strconv.FormatUint(start, 10))
}

func (r *record) setStatus(raw int) error {
	r.rec.Status = &raw
	return r.append("status", strconv.Itoa(raw))
}

func (r *record) setReleased() error {
	r.rec.Released = true
	return r.append("released", "")
}

func (r *record) setBarriers(n int) error {
	r.rec.Barriers = n
	return r.append("barriers", strconv.Itoa(n))
}

func (r *record) remove() { _ = os.RemoveAll(r.dir) }

// errNoLaunch: the record has no complete launch line. The agent writes it
// before the fork, so nothing was started for it.
var errNoLaunch = errors.New("no launch")

// read fills r.rec from the record's lines.
func (r *record) read(rank uint32) error {
	b, err := os.ReadFile(filepath.Join(r.dir, recordName))
	if errors.Is(err, os.ErrNotExist) {
		return errNoLaunch
	}
	if err != nil {
		return err
	}
	r.rec = recordFile{Rank: rank}
	launched := false
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if !strings.HasSuffix(line, "\n") {
			break // cut short
		}
		kind, value, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		bad := func() error { return fmt.Errorf("%s line %q", kind, value) }
		switch kind {
		case "launch":
			if err := json.Unmarshal([]byte(value), &r.rec.Launch); err != nil {
				return fmt.Errorf("launch line: %w", err)
			}
			launched = true
		case "pid":
			f := strings.Fields(value)
			if len(f) != 2 {
				return bad()
			}
			pid, perr := strconv.Atoi(f[0])
			start, serr := strconv.ParseUint(f[1], 10, 64)
			if perr != nil || serr != nil || pid <= 0 {
				return bad()
			}
			r.rec.Pid, r.rec.Start = pid, start
		case "status":
			st, err := strconv.Atoi(value)
			if err != nil {
				return bad()
			}
			r.rec.Status = &st
		case "released":
			r.rec.Released = true
		case "barriers":
			n, err := strconv.Atoi(value)
			if err != nil {
				return bad()
			}
			r.rec.Barriers = n
		default:
			return bad()
		}
	}
	if !launched {
		return errNoLaunch
	}
	return nil
}

// loadRecords reads the records of rank under dir. A record without its
// launch line is removed: nothing was started for it. Records it cannot
// read otherwise are returned as errors naming them, and left in place: a
// launch for their job then finds the directory taken and starts nothing.
func loadRecords(dir string, rank uint32) ([]*record, []error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, []error{fmt.Errorf("runtime directory: %w", err)}
	}
	suffix := "." + strconv.FormatUint(uint64(rank), 10)
	var out []*record
	var errs []error
	for _, e := range ents {
		if !e.IsDir() || !strings.HasSuffix(e.Name(), suffix) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		r := &record{dir: filepath.Join(dir, e.Name())}
		err := r.read(rank)
		if errors.Is(err, errNoLaunch) {
			r.remove()
			continue
		}
		if err == nil && recordDir(dir, r.rec.Launch.ID, rank) != r.dir {
			err = errors.New("does not match its directory")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("record %s: %w", r.dir, err))
			continue
		}
		out = append(out, r)
	}
	return out, errs
}
