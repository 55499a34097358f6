package journal

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
	"github.com/fluxkit/fluxkit/job"
)

// The reference decoder: the two-pass parse parseMessage replaced (validate
// the whole response with jsonscan.Members, then walk the events again and
// decode each entry). The single pass must agree with it on every input:
// same members, same entries up to the first bad one, same errors.

type refMessage struct {
	id       fluxkit.JobID
	sentinel bool
	events   []byte
	jobspec  []byte
	r        []byte
}

func refParseMessage(b []byte) (refMessage, error) {
	var m refMessage
	b = jsonscan.Trim(b)
	if jsonscan.KindOf(b) != jsonscan.Object {
		return m, &ProtocolError{Index: -1, Err: errors.New("response is not a JSON object")}
	}
	haveID := false
	err := jsonscan.Members(b, func(k string, v []byte) error {
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
		return nil
	})
	if err == nil && !haveID {
		err = errors.New("response has no id")
	}
	if err != nil {
		return m, &ProtocolError{Job: m.id, Index: -1, Err: err}
	}
	if !m.sentinel && jsonscan.KindOf(m.events) != jsonscan.Array {
		return m, &ProtocolError{Job: m.id, Index: -1, Err: errors.New("events is not an array")}
	}
	return m, nil
}

// checkAgainstReference fails t when parseMessage and the reference differ
// on msg.
func checkAgainstReference(t *testing.T, msg []byte) {
	t.Helper()
	got, gerr := parseMessage(msg, nil)
	want, werr := refParseMessage(msg)
	if (gerr == nil) != (werr == nil) || gerr != nil && gerr.Error() != werr.Error() {
		t.Fatalf("%q: error %v, reference %v", msg, gerr, werr)
	}
	if gerr != nil {
		return
	}
	if got.id != want.id || got.sentinel != want.sentinel || string(got.events) != string(want.events) ||
		string(got.jobspec) != string(want.jobspec) || string(got.r) != string(want.r) {
		t.Fatalf("%q: members differ from the reference", msg)
	}
	if want.sentinel && jsonscan.KindOf(want.events) != jsonscan.Array {
		return
	}
	var entries []job.Event
	at, eerr := -1, error(nil)
	i := -1
	_ = jsonscan.FastElems(want.events, func(raw []byte) error {
		i++
		e, err := job.ParseEvent(raw)
		if err != nil {
			at, eerr = i, err
			return err
		}
		entries = append(entries, e)
		return nil
	})
	if len(entries) == 0 {
		entries = nil
	}
	gotEntries := got.entries
	if len(gotEntries) == 0 {
		gotEntries = nil
	}
	if !reflect.DeepEqual(gotEntries, entries) {
		t.Fatalf("%q: entries %+v, reference %+v", msg, gotEntries, entries)
	}
	if got.entryAt != at || (got.entryErr == nil) != (eerr == nil) || eerr != nil && got.entryErr.Error() != eerr.Error() {
		t.Fatalf("%q: bad entry %d %v, reference %d %v", msg, got.entryAt, got.entryErr, at, eerr)
	}
}

// FuzzMessage checks the single-pass response decoder against the
// two-pass reference.
func FuzzMessage(f *testing.F) {
	for _, s := range []string{
		`{"id":5,"events":[` + submitOK + `,{"timestamp":2,"name":"validate"}],"jobspec":` + string(jobspecFor("a", "q", 2, 1, 2, true, 5)) + `}`,
		`{"id":5,"events":[` + submitOK + `,{"timestamp":2,"name":"alloc"}],"R":` + string(rFor("0-3", "0-1", "n[1-4]", 3)) + `}`,
		`{"id":-1,"events":[]}`, `{"id":-1}`, `{"id":-1,"events":{}}`, `{"events":[]}`, `{"id":"5","events":[]}`,
		`{"id":5,"events":[1,{"timestamp":1,"name":"x"}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x"},{"name":"y"},{"timestamp":"z"}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x"},{"timestamp":2}],"R":[1]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x","context":[]}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":2}]}`, `{"id":5,"events":[{"timestamp":1}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x"},{}],"jobspec":{"a":}}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x"}],"events":[{"timestamp":2,"name":"y"}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x"}],"events":5}`,
		`{"id":5,"ev\u0065nts":[{"tim\u0065stamp":1,"n\u0061me":"x\u00e9"}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x","timestamp":"bad","timestamp":2}]}`,
		`{"id":5,"events":[{"timestamp":1e400,"name":"x"}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x","context":{"a":[[[[[[]]]]]]}}]}`,
		`{"id":5,"events":[{"timestamp":1,"name":"x"} , {"timestamp":1,"name":"y"}, ]}`,
		` {"id":5,"events":[ ]} `, `{"id":5,"events":[{"timestamp":1,"name":"x"}]`, `[]`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"id":5,"events":[{"timestamp":1,"name":"x","context":` + deepJSON(300) + `}]}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		checkAgainstReference(t, msg)
	})
}

func deepJSON(n int) string {
	b := make([]byte, 0, 2*n)
	for range n {
		b = append(b, '[')
	}
	for range n {
		b = append(b, ']')
	}
	return string(b)
}
