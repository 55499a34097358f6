package journal

import (
	"errors"
	"strings"

	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/job"
)

// deriver derives job-list's fields from jobspecs and Rs (flux-core's
// job_data.c) with one job.Decoder, so that the strings and sets a
// backlog repeats are kept once, and the encodings job-list shows (ranks
// with brackets, the nodelist in RFC 29 form) are computed once per
// distinct value.
type deriver struct {
	dec       job.Decoder
	js        job.Jobspec // scratch, reused
	r         job.R       // scratch, reused
	ranks     map[[2]uint32]string
	nodelists map[string]string
}

// newDeriver returns a deriver for jobspecs and Rs known to be well-formed
// JSON: those of journal responses, which are checked whole as they are
// read, and those the consumer re-encodes after an update.
func newDeriver() *deriver {
	return &deriver{dec: job.Decoder{Trusted: true}, ranks: map[[2]uint32]string{}, nodelists: map[string]string{}}
}

// applyJobspec is job-list's parse_jobspec on j's jobspec fields: they
// are set in flux-core's order, and a step that fails leaves the fields
// after it as they were. A jobspec job.Decoder refuses changes nothing.
// The error is for the log (non-fatal, as in flux-core).
func (d *deriver) applyJobspec(rec *jobRec, raw []byte) error {
	j := &rec.js
	if raw == nil {
		return errors.New("no jobspec")
	}
	js := &d.js
	if err := d.dec.Jobspec(raw, js); err != nil {
		return err
	}
	sys := &js.Attributes.System
	// attributes.system.job: a name given there, else (without the key)
	// none; with the key but no name the previous name stands.
	if _, ok := sys.Other["job"]; !ok {
		j.name = ""
	}
	if sys.JobName != "" {
		j.name = sys.JobName
	}
	if j.name == "" {
		if len(js.Tasks) == 0 || len(js.Tasks[0].Command) == 0 {
			return errors.New("jobspec: tasks[0].command[0] missing: no job name")
		}
		j.name = baseName(js.Tasks[0].Command[0])
	}
	j.cwd, j.queue, j.duration = sys.Cwd, sys.Queue, sys.Duration
	if sys.Project != "" {
		j.project = sys.Project
	}
	if sys.Bank != "" {
		j.bank = sys.Bank
	}
	c, err := js.Counts()
	if err != nil {
		return err
	}
	j.nnodes = int32(c.Nodes)
	if c.Nodes == 0 {
		j.nnodes = -1
	}
	j.ntasks = -1
	switch pr := sys.PerResource; {
	case pr != nil && pr.Type == "node":
		if c.Nodes > 0 {
			j.ntasks = int32(c.Nodes * pr.Count)
		} else {
			j.perNode = int32(pr.Count)
		}
	case pr != nil && pr.Type == "core":
		if c.Nodes == 0 {
			j.ntasks = int32(c.Slots * c.SlotSize * pr.Count)
		} else {
			j.perCore = int32(pr.Count)
		}
	case len(js.Tasks) > 0 && js.Tasks[0].Count.Total > 0:
		j.ntasks = int32(js.Tasks[0].Count.Total)
	default:
		j.ntasks = int32(c.Slots)
	}
	if c.Nodes > 0 && c.Exclusive {
		j.ncores = -1
	} else {
		j.ncores = int32(c.Slots * c.SlotSize)
	}
	return nil
}

// baseName is job-list's job name from a command: the part after the
// last slash, or the whole path when it ends in one.
func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 && i < len(p)-1 {
		return p[i+1:]
	}
	return p
}

// applyR is job-list's parse_R on j's R fields: an R librlist cannot
// read changes nothing; one without a nodelist sets the expiration and
// ranks but not the nodelist or cores.
func (d *deriver) applyR(rec *jobRec, raw []byte) error {
	j := &rec.r
	if raw == nil {
		return errors.New("no R")
	}
	r := &d.r
	if err := d.dec.R(raw, r); err != nil {
		return err
	}
	j.expiration = 0
	if e := r.Execution.Expiration; e > 0 {
		j.expiration = e
	}
	ranks := r.Ranks()
	j.nnodes = int32(ranks.Len())
	j.ranks, j.ok = d.ranksOf(ranks), true
	hosts, err := d.dec.Hosts(r)
	if err != nil {
		return err
	}
	if nl := r.Execution.Nodelist; len(nl) == 1 {
		enc, ok := d.nodelists[nl[0]]
		if !ok {
			enc = hosts.String()
			if len(d.nodelists) < maxMemo {
				d.nodelists[nl[0]] = enc
			}
		}
		j.nodelist = enc
	} else {
		j.nodelist = hosts.String()
	}
	j.hasNodelist = true
	j.ncores = int32(r.Count("core"))
	return nil
}

// maxMemo bounds the deriver's tables.
const maxMemo = 4096

// ranksOf is the idset with brackets around ranges ("0", "[0-3]"), as
// job-list shows ranks; a single range's encoding is remembered.
func (d *deriver) ranksOf(s idset.Set) string {
	var key [2]uint32
	n := 0
	for lo, hi := range s.Ranges() {
		key = [2]uint32{lo, hi}
		n++
		if n > 1 {
			break
		}
	}
	if n == 1 {
		if enc, ok := d.ranks[key]; ok {
			return enc
		}
	}
	enc, _ := s.Encode(idset.Ranges | idset.Brackets)
	if n == 1 && len(d.ranks) < maxMemo {
		d.ranks[key] = enc
	}
	return enc
}
