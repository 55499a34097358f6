package job

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Event is one RFC 18 eventlog entry.
type Event struct {
	// Timestamp is in seconds since the epoch.
	Timestamp float64
	Name      string
	// Context is the raw JSON object, nil when the entry has none.
	Context json.RawMessage
}

// ErrEvent is matched (errors.Is) by every entry validation failure.
var ErrEvent = errors.New("invalid eventlog entry")

func eventErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrEvent, fmt.Sprintf(format, args...))
}

// ParseEvent decodes one entry object with the checks flux-core applies to
// every entry it reads: timestamp a JSON number, name a string, context
// (if present) an object; extra keys are allowed, and a key given twice
// counts with its last value, as in jansson. Context aliases b.
func ParseEvent(b []byte) (Event, error) {
	b = jsonscan.Trim(b)
	end, e, bad, err := ScanEvent(b, 0, 0)
	switch {
	case err != nil:
		return Event{}, eventErr("%v", err)
	case end != len(b):
		return Event{}, eventErr("%v", jsonscan.ErrSyntax)
	case bad != nil:
		return Event{}, bad
	}
	return e, nil
}

// ScanEvent decodes the entry that starts at b[i] inside a larger JSON
// document being walked (depth is how deep in it the entry is), in the one
// pass that checks the entry's JSON as jsonscan's walkers check it: end is
// the index just past the entry. err is a syntax error of the document;
// bad is an entry that is JSON but not a valid entry ([ParseEvent]'s
// checks), with end set so that the walk can go on. Context aliases b.
func ScanEvent(b []byte, i, depth int) (end int, e Event, bad, err error) {
	if i >= len(b) || b[i] != '{' {
		if end, err = jsonscan.ValueEndDepth(b, i, depth); err != nil {
			return 0, e, nil, err
		}
		return end, e, eventErr("%v", jsonscan.ErrNotObject), nil
	}
	if depth >= jsonscan.MaxDepth {
		return 0, e, nil, jsonscan.ErrTooDeep
	}
	var ts, name, ctx []byte
	i = jsonscan.SkipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, e, eventErr("timestamp missing"), nil
	}
	for {
		k, next, err := jsonscan.MemberKey(b, i)
		if err != nil {
			return 0, e, nil, err
		}
		i = next
		ve, err := jsonscan.ValueEndDepth(b, i, depth+1)
		if err != nil {
			return 0, e, nil, err
		}
		switch k {
		case "timestamp":
			ts = b[i:ve]
		case "name":
			name = b[i:ve]
		case "context":
			ctx = b[i:ve]
		}
		i = jsonscan.SkipWS(b, ve)
		if i >= len(b) {
			return 0, e, nil, jsonscan.ErrSyntax
		}
		if b[i] == '}' {
			end = i + 1
			break
		}
		if b[i] != ',' {
			return 0, e, nil, jsonscan.ErrSyntax
		}
		i = jsonscan.SkipWS(b, i+1)
	}
	e, bad = checkEvent(ts, name, ctx)
	return end, e, bad, nil
}

// parseCheckedEvent is ParseEvent for input known to be one well-formed
// JSON value. A key given twice counts with its last value, as in jansson.
func parseCheckedEvent(b []byte) (Event, error) {
	var ts, name, ctx []byte
	err := jsonscan.FastMembers(b, func(k string, v []byte) error {
		switch k {
		case "timestamp":
			ts = v
		case "name":
			name = v
		case "context":
			ctx = v
		}
		return nil
	})
	if err != nil {
		return Event{}, eventErr("%v", err)
	}
	return checkEvent(ts, name, ctx)
}

// checkEvent makes an entry of its members' raw values (nil: absent).
func checkEvent(ts, name, ctx []byte) (Event, error) {
	var e Event
	switch {
	case ts == nil:
		return Event{}, eventErr("timestamp missing")
	case name == nil:
		return Event{}, eventErr("name missing")
	}
	var err error
	if e.Timestamp, err = jsonscan.Float(ts); err != nil {
		return Event{}, eventErr("timestamp is not a number")
	}
	if jsonscan.KindOf(name) != jsonscan.String {
		return Event{}, eventErr("name is not a string")
	}
	e.Name = EventName(name)
	if ctx != nil {
		if jsonscan.KindOf(ctx) != jsonscan.Object {
			return Event{}, eventErr("context is not an object")
		}
		e.Context = ctx
	}
	return e, nil
}

// UnmarshalJSON is ParseEvent with a copy of the context.
func (e *Event) UnmarshalJSON(b []byte) error {
	ev, err := ParseEvent(b)
	if err != nil {
		return err
	}
	if ev.Context != nil {
		ev.Context = bytes.Clone(ev.Context)
	}
	*e = ev
	return nil
}

// MarshalJSON encodes e as [Event.AppendJSON] does.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(nil), nil }

// EventName returns the event name in the raw JSON string v (a checked
// string) without allocating for the names flux-core's job manager posts.
func EventName(v []byte) string {
	raw := v[1 : len(v)-1]
	// A switch on the bytes compiles to length and byte comparisons, with
	// no hashing: this runs for every entry of a backlog.
	switch string(raw) {
	case "submit":
		return "submit"
	case "validate":
		return "validate"
	case "invalidate":
		return "invalidate"
	case "depend":
		return "depend"
	case "priority":
		return "priority"
	case "alloc":
		return "alloc"
	case "start":
		return "start"
	case "finish":
		return "finish"
	case "release":
		return "release"
	case "free":
		return "free"
	case "clean":
		return "clean"
	case "exception":
		return "exception"
	case "urgency":
		return "urgency"
	case "memo":
		return "memo"
	case "annotations":
		return "annotations"
	case "flux-restart":
		return "flux-restart"
	case "jobspec-update":
		return "jobspec-update"
	case "resource-update":
		return "resource-update"
	case "dependency-add":
		return "dependency-add"
	case "dependency-remove":
		return "dependency-remove"
	case "set-flags":
		return "set-flags"
	case "prolog-start":
		return "prolog-start"
	case "prolog-finish":
		return "prolog-finish"
	case "epilog-start":
		return "epilog-start"
	case "epilog-finish":
		return "epilog-finish"
	}
	s, err := jsonscan.Unquote(v)
	if err != nil {
		return string(raw) // unreachable for a checked string
	}
	return s
}

// AppendJSON appends e encoded as flux-core encodes an entry: timestamp,
// name, and context when present. e must be valid (see [NewEvent]).
func (e Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"timestamp":`...)
	b = jsonscan.AppendFloat(b, e.Timestamp)
	b = append(b, `,"name":`...)
	b = jsonscan.AppendString(b, e.Name)
	if e.Context != nil {
		b = append(b, `,"context":`...)
		b = append(b, e.Context...)
	}
	return append(b, '}')
}

// NewEvent builds an entry with the checks flux-core applies when creating
// one: a negative timestamp, an empty name or a context that is not a JSON
// object is rejected. A zero timestamp means now.
func NewEvent(timestamp float64, name string, context []byte) (Event, error) {
	if timestamp < 0 || math.IsNaN(timestamp) || math.IsInf(timestamp, 0) {
		return Event{}, eventErr("timestamp %v is negative or not finite", timestamp)
	}
	if timestamp == 0 {
		timestamp = float64(time.Now().UnixNano()) / 1e9
	}
	if name == "" {
		return Event{}, eventErr("empty name")
	}
	if context != nil {
		context = jsonscan.Trim(context)
		if err := jsonscan.Check(context); err != nil {
			return Event{}, eventErr("event %s: context: %v", name, err)
		}
		if jsonscan.KindOf(context) != jsonscan.Object {
			return Event{}, eventErr("event %s: context is not an object", name)
		}
	}
	return Event{Timestamp: timestamp, Name: name, Context: context}, nil
}

// DecodeEventlog decodes RFC 18 eventlog text: non-empty input must hold at
// least one newline; every line must be a non-empty JSON object passing
// [ParseEvent]; text after the last newline is ignored, as flux-core does.
// Errors name the line. Contexts are copies, independent of r's buffers.
func DecodeEventlog(r io.Reader) ([]Event, error) {
	br := bufio.NewReader(r)
	var out []Event
	sawNewline := false
	for line := 1; ; line++ {
		l, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(l) > 0 && !sawNewline {
				return nil, eventErr("line %d: eventlog has no newline", line)
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("eventlog line %d: %w", line, err)
		}
		sawNewline = true
		l = l[:len(l)-1]
		if len(l) == 0 {
			return nil, eventErr("line %d: empty line", line)
		}
		e, err := ParseEvent(l)
		if err != nil {
			return nil, fmt.Errorf("eventlog line %d: %w", line, err)
		}
		if e.Context != nil {
			e.Context = bytes.Clone(e.Context)
		}
		out = append(out, e)
	}
}

// EncodeEventlog writes events as RFC 18 text, one line each.
func EncodeEventlog(w io.Writer, events []Event) error {
	var b []byte
	for _, e := range events {
		b = e.AppendJSON(b)
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}
