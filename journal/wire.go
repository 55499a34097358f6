package journal

import (
	"errors"
	"fmt"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
	"github.com/fluxkit/fluxkit/job"
)

// The wire side of the consumer: journal responses and purge events,
// validated and decoded in one walk, off the index's lock.

// message is a decoded journal response.
type message struct {
	id       fluxkit.JobID
	sentinel bool
	events   []byte
	jobspec  []byte
	r        []byte
	// entries are the events decoded in the validating walk, up to the
	// first malformed one (entryErr, at position entryAt), which is
	// reported when processing reaches it, as a second walk would.
	entries  []job.Event
	entryAt  int
	entryErr error
}

// parseMessage validates the whole payload in one walk and decodes the
// events' entries on the way, into buf's storage (reused across messages:
// the walk over the events is most of a backlog's parsing).
func parseMessage(b []byte, buf []job.Event) (message, error) {
	m := message{entries: buf[:0], entryAt: -1}
	b = jsonscan.Trim(b)
	if jsonscan.KindOf(b) != jsonscan.Object {
		return m, &ProtocolError{Index: -1, Err: errors.New("response is not a JSON object")}
	}
	err := m.members(b)
	if err != nil {
		return m, &ProtocolError{Job: m.id, Index: -1, Err: err}
	}
	if !m.sentinel && jsonscan.KindOf(m.events) != jsonscan.Array {
		return m, &ProtocolError{Job: m.id, Index: -1, Err: errors.New("events is not an array")}
	}
	return m, nil
}

// members is jsonscan.Members over the response object with its checks, the
// events array walked by scanEvents.
func (m *message) members(b []byte) error {
	haveID := false
	i := jsonscan.SkipWS(b, 1)
	if i < len(b) && b[i] == '}' {
		if i+1 != len(b) {
			return jsonscan.ErrSyntax
		}
		return errors.New("response has no id")
	}
	for {
		k, next, err := jsonscan.MemberKey(b, i)
		if err != nil {
			return err
		}
		i = next
		var ve int
		if k == "events" && i < len(b) && b[i] == '[' {
			ve, err = m.scanEvents(b, i)
		} else {
			ve, err = jsonscan.ValueEnd(b, i)
		}
		if err != nil {
			return err
		}
		v := b[i:ve]
		switch k {
		case "id":
			n, err := jsonscan.Int(v)
			switch {
			case err == nil && n == -1:
				m.sentinel = true
			case err == nil && n >= 0:
				m.id = fluxkit.JobID(n)
			default:
				return fmt.Errorf("id %s is not a job id", v)
			}
			haveID = true
		case "events":
			if v[0] != '[' {
				// A later "events" replaces an earlier one.
				m.entries, m.entryAt, m.entryErr = m.entries[:0], -1, nil
			}
			m.events = v
		case "jobspec":
			if jsonscan.KindOf(v) != jsonscan.Object {
				return errors.New("jobspec is not an object")
			}
			m.jobspec = v
		case "R":
			if jsonscan.KindOf(v) != jsonscan.Object {
				return errors.New("R is not an object")
			}
			m.r = v
		}
		i = jsonscan.SkipWS(b, ve)
		if i >= len(b) {
			return jsonscan.ErrSyntax
		}
		if b[i] == '}' {
			if i+1 != len(b) {
				return jsonscan.ErrSyntax
			}
			break
		}
		if b[i] != ',' {
			return jsonscan.ErrSyntax
		}
		i = jsonscan.SkipWS(b, i+1)
	}
	if !haveID {
		return errors.New("response has no id")
	}
	return nil
}

// scanEvents validates the array at b[i] as jsonscan.ValueEnd does (same
// errors, same depth accounting) and decodes its entries as
// [job.ParseEvent] does, in the same pass, stopping decoding (not
// validating) at the first bad entry.
func (m *message) scanEvents(b []byte, i int) (int, error) {
	m.entries, m.entryAt, m.entryErr = m.entries[:0], -1, nil
	i = jsonscan.SkipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		var e int
		var err error
		if m.entryErr == nil {
			var en job.Event
			var bad error
			// One pass checks the entry's JSON and decodes it.
			if e, en, bad, err = job.ScanEvent(b, i, 1); err != nil {
				return 0, err
			}
			if bad != nil {
				m.entryAt, m.entryErr = n, bad
			} else {
				m.entries = append(m.entries, en)
			}
		} else if e, err = jsonscan.ValueEndDepth(b, i, 1); err != nil {
			return 0, err
		}
		i = jsonscan.SkipWS(b, e)
		if i >= len(b) {
			return 0, jsonscan.ErrSyntax
		}
		if b[i] == ']' {
			return i + 1, nil
		}
		if b[i] != ',' {
			return 0, jsonscan.ErrSyntax
		}
		i = jsonscan.SkipWS(b, i+1)
	}
}

// ParsePurge decodes a job-purge-inactive payload.
func ParsePurge(b []byte) ([]fluxkit.JobID, error) {
	jobs, err := jsonscan.Member(jsonscan.Trim(b), "jobs")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EventPurge, err)
	}
	var ids []fluxkit.JobID
	err = jsonscan.Elems(jobs, func(v []byte) error {
		n, err := jsonscan.Int(v)
		if err != nil || n < 0 {
			return fmt.Errorf("job id %s is not an integer", v)
		}
		ids = append(ids, fluxkit.JobID(n))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EventPurge, err)
	}
	return ids, nil
}
