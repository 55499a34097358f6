package journal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// Entry is one RFC 18 eventlog entry. Context is the raw JSON object, or
// nil when the entry has none.
type Entry struct {
	Timestamp float64
	Name      string
	Context   []byte
}

// ErrEntry is matched (errors.Is) by every entry validation failure.
var ErrEntry = errors.New("invalid eventlog entry")

func entryErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrEntry, fmt.Sprintf(format, args...))
}

// ParseEntry decodes one entry object with the checks Flux applies to every
// entry it reads: timestamp a JSON number, name a string, context (if
// present) an object; extra keys are allowed. Context aliases b.
func ParseEntry(b []byte) (Entry, error) {
	var e Entry
	b = jsonscan.Trim(b)
	haveTS, haveName := false, false
	err := jsonscan.Members(b, func(k string, v []byte) error {
		switch k {
		case "timestamp":
			f, err := jsonscan.Float(v)
			if err != nil {
				return entryErr("timestamp is not a number")
			}
			e.Timestamp, haveTS = f, true
		case "name":
			if jsonscan.KindOf(v) != jsonscan.String {
				return entryErr("name is not a string")
			}
			e.Name, haveName = internName(v), true
		case "context":
			if jsonscan.KindOf(v) != jsonscan.Object {
				return entryErr("context is not an object")
			}
			e.Context = v
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrEntry) {
			return Entry{}, err
		}
		return Entry{}, entryErr("%v", err)
	}
	if !haveTS {
		return Entry{}, entryErr("timestamp missing")
	}
	if !haveName {
		return Entry{}, entryErr("name missing")
	}
	return e, nil
}

// internName returns the event name of raw JSON string v without
// allocating for the names Flux posts.
func internName(v []byte) string {
	raw := v[1 : len(v)-1]
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

// AppendEntry encodes an entry as Flux does: timestamp, name, and context
// when present. The caller guarantees a valid entry (see [NewEntry]).
func AppendEntry(b []byte, e Entry) []byte {
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

// NewEntry builds an entry with the checks Flux applies when creating one:
// a negative timestamp, an empty name or a context that is not a JSON
// object is rejected. A zero timestamp means now, which the caller passes.
func NewEntry(timestamp float64, name string, context []byte, now float64) (Entry, error) {
	if timestamp < 0 || math.IsNaN(timestamp) || math.IsInf(timestamp, 0) {
		return Entry{}, entryErr("timestamp %v is negative or not finite", timestamp)
	}
	if timestamp == 0 {
		timestamp = now
	}
	if name == "" {
		return Entry{}, entryErr("empty name")
	}
	if context != nil {
		context = jsonscan.Trim(context)
		if err := jsonscan.Check(context); err != nil {
			return Entry{}, entryErr("event %s: context: %v", name, err)
		}
		if jsonscan.KindOf(context) != jsonscan.Object {
			return Entry{}, entryErr("event %s: context is not an object", name)
		}
	}
	return Entry{Timestamp: timestamp, Name: name, Context: context}, nil
}

// DecodeEventlog decodes RFC 18 eventlog text: non-empty input must hold at
// least one newline; every line must be a non-empty JSON object passing
// [ParseEntry]; text after the last newline is ignored, as Flux does. Errors
// name the line. Entry contexts are copies, independent of r's buffers.
func DecodeEventlog(r io.Reader) ([]Entry, error) {
	br := bufio.NewReader(r)
	var out []Entry
	sawNewline := false
	for line := 1; ; line++ {
		l, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(l) > 0 && !sawNewline {
				return nil, entryErr("line %d: eventlog has no newline", line)
			}
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("eventlog line %d: %w", line, err)
		}
		sawNewline = true
		l = l[:len(l)-1]
		if len(l) == 0 {
			return nil, entryErr("line %d: empty line", line)
		}
		if err := jsonscan.Check(l); err != nil {
			return nil, entryErr("line %d: %v", line, err)
		}
		e, err := ParseEntry(l)
		if err != nil {
			return nil, fmt.Errorf("eventlog line %d: %w", line, err)
		}
		if e.Context != nil {
			e.Context = bytes.Clone(e.Context)
		}
		out = append(out, e)
	}
}

// EncodeEventlog writes entries as RFC 18 text, one line each.
func EncodeEventlog(w io.Writer, entries []Entry) error {
	var b []byte
	for _, e := range entries {
		b = AppendEntry(b, e)
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}
