package exec

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fluxkit/fluxkit"
)

// Hand-written JSON for the messages every job sends: reflection-driven
// encoding/json was the largest cost per job (nearly half of the CPU of
// BenchmarkThroughputTestexec before this file). Encoders produce exactly
// the bytes json.Marshal would; decoders take a fast path over the simple,
// compact form the encoders write and hand anything else (escapes,
// non-ASCII, null, duplicate or unknown keys, odd numbers) to
// encoding/json, so that every input decodes as json.Unmarshal decodes it.
// FuzzCodec* pin both properties.

// ---- encoding ----

// appendStr appends s as json.Marshal encodes it (with HTML escaping).
func appendStr(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendFloat appends f as json.Marshal does, for the values it prints
// without an exponent; ok is false for the others (and NaN, Inf).
func appendFloat(b []byte, f float64) ([]byte, bool) {
	a := math.Abs(f)
	if math.IsNaN(f) || math.IsInf(f, 0) || (a != 0 && (a < 1e-6 || a >= 1e21)) {
		return b, false
	}
	return strconv.AppendFloat(b, f, 'f', -1, 64), true
}

// appendAny appends v as json.Marshal would, falling back to it for types
// the hot paths do not use.
func appendAny(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendStr(b, x), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case int:
		return strconv.AppendInt(b, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(b, x, 10), nil
	case uint32:
		return strconv.AppendUint(b, uint64(x), 10), nil
	case float64:
		if out, ok := appendFloat(b, x); ok {
			return out, nil
		}
	case map[string]any:
		return appendMap(b, x)
	}
	q, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, q...), nil
}

// appendMap appends m with its keys sorted, as json.Marshal does.
func appendMap(b []byte, m map[string]any) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	var arr [8]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStr(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendAny(b, m[k]); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendJobID(b []byte, id fluxkit.JobID) []byte {
	if id == fluxkit.JobIDAny {
		return append(b, "-1"...)
	}
	return strconv.AppendUint(b, uint64(id), 10)
}

// field appends ,"name": (without the comma for the first field).
func field(b []byte, name string) []byte {
	if b[len(b)-1] != '{' {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, name...)
	return append(b, '"', ':')
}

// encodeResponse is json.Marshal(r).
func encodeResponse(r *Response) ([]byte, error) {
	b := make([]byte, 0, 96)
	b = append(b, `{"id":`...)
	b = appendJobID(b, r.ID)
	b = append(b, `,"type":`...)
	b = appendStr(b, r.Type)
	b = append(b, `,"data":`...)
	b, err := appendMap(b, r.Data)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendEvents appends json.Marshal(evs).
func appendEvents(b []byte, evs []Event) ([]byte, error) {
	if evs == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '[')
	for i := range evs {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendEventErr(b, &evs[i]); err != nil {
			return b, err
		}
	}
	return append(b, ']'), nil
}

// appendEvent appends json.Marshal(e). The events the coordinator posts
// always encode; should a context ever hold a value encoding/json refuses,
// the event is stored without it rather than corrupting the eventlog.
func appendEvent(b []byte, e *Event) []byte {
	out, err := appendEventErr(b, e)
	if err == nil {
		return out
	}
	bare := Event{Timestamp: e.Timestamp, Name: e.Name}
	if math.IsNaN(bare.Timestamp) || math.IsInf(bare.Timestamp, 0) {
		bare.Timestamp = 0
	}
	out, _ = appendEventErr(b, &bare)
	return out
}

func appendEventErr(b []byte, e *Event) ([]byte, error) {
	b = append(b, `{"timestamp":`...)
	var ok bool
	if b, ok = appendFloat(b, e.Timestamp); !ok {
		q, err := json.Marshal(e.Timestamp)
		if err != nil {
			return b, err
		}
		b = append(b, q...)
	}
	b = append(b, `,"name":`...)
	b = appendStr(b, e.Name)
	if len(e.Context) > 0 {
		b = append(b, `,"context":`...)
		var err error
		if b, err = appendMap(b, e.Context); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendFails(b []byte, fs []failWire) []byte {
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"rank":`...)
		b = strconv.AppendUint(b, uint64(f.Rank), 10)
		b = append(b, `,"errno":`...)
		b = strconv.AppendInt(b, int64(f.Errno), 10)
		b = append(b, `,"msg":`...)
		b = appendStr(b, f.Msg)
		b = append(b, '}')
	}
	return append(b, ']')
}

// encodeReport is json.Marshal(r).
func encodeReport(r *report) []byte {
	b := make([]byte, 0, 64)
	b = append(b, '{')
	str := func(name, v string) {
		if v != "" {
			b = appendStr(field(b, name), v)
		}
	}
	num := func(name string, v int) {
		if v != 0 {
			b = strconv.AppendInt(field(b, name), int64(v), 10)
		}
	}
	flag := func(name string, v bool) {
		if v {
			b = append(field(b, name), "true"...)
		}
	}
	str("started", r.Started)
	str("adopted", r.Adopted)
	if len(r.Failed) > 0 {
		b = appendFails(field(b, "failed"), r.Failed)
	}
	if len(r.Exited) > 0 {
		b = append(field(b, "exited"), '[')
		for i, e := range r.Exited {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"ranks":`...)
			b = appendStr(b, e.Ranks)
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(e.Status), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	str("released", r.Released)
	if len(r.EpilogFailed) > 0 {
		b = appendFails(field(b, "epilog_failed"), r.EpilogFailed)
	}
	str("lost", r.Lost)
	num("barrier", r.Barrier)
	flag("barrier_fail", r.BarrierFail)
	num("barriers", r.Barriers)
	flag("barrier_queried", r.BarrierQueried)
	str("barrier_pending", r.BarrierPending)
	flag("barrier_timeout", r.BarrierTimeout)
	str("unentered", r.Unentered)
	return append(b, '}')
}

func appendStrs(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendStr(b, s)
	}
	return append(b, ']')
}

// encodeLaunch is json.Marshal(lr).
func encodeLaunch(lr *launchReq) []byte {
	b := make([]byte, 0, 160)
	b = append(b, `{"id":`...)
	b = appendJobID(b, lr.ID)
	b = append(b, `,"userid":`...)
	b = strconv.AppendUint(b, uint64(lr.Userid), 10)
	b = append(b, `,"ranks":`...)
	b = appendStr(b, lr.Ranks)
	b = append(b, `,"fanout":`...)
	b = strconv.AppendInt(b, int64(lr.Fanout), 10)
	b = append(b, `,"method":`...)
	b = appendStr(b, lr.Method)
	if len(lr.Argv) > 0 {
		b = appendStrs(append(b, `,"argv":`...), lr.Argv)
	}
	if len(lr.Env) > 0 {
		keys := make([]string, 0, len(lr.Env))
		for k := range lr.Env {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, `,"env":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStr(b, k)
			b = append(b, ':')
			b = appendStr(b, lr.Env[k])
		}
		b = append(b, '}')
	}
	if len(lr.Epilog) > 0 {
		b = appendStrs(append(b, `,"epilog":`...), lr.Epilog)
	}
	if lr.Test != nil {
		b = append(b, `,"test":{"run_duration":`...)
		b = strconv.AppendInt(b, int64(lr.Test.RunDuration), 10)
		b = append(b, `,"wait_status":`...)
		b = strconv.AppendInt(b, int64(lr.Test.WaitStatus), 10)
		b = append(b, '}')
	}
	if lr.Reattach {
		b = append(b, `,"reattach":true`...)
	}
	if lr.Resume {
		b = append(b, `,"resume":true`...)
	}
	b = append(b, `,"service":`...)
	b = appendStr(b, lr.Service)
	b = append(b, `,"coord":`...)
	b = strconv.AppendUint(b, uint64(lr.Coord), 10)
	if lr.Barriers {
		b = append(b, `,"barriers":true`...)
	}
	if lr.BarrierTimeout != 0 {
		b = append(b, `,"barrier_timeout":`...)
		b = strconv.AppendInt(b, int64(lr.BarrierTimeout), 10)
	}
	if lr.Shell {
		b = append(b, `,"shell":true`...)
	}
	if lr.Multiuser {
		b = append(b, `,"multiuser":true`...)
	}
	return append(b, '}')
}

// encodeForget is json.Marshal(fr).
func encodeForget(fr *forgetReq) []byte {
	b := make([]byte, 0, 64)
	b = append(b, `{"id":`...)
	b = appendJobID(b, fr.ID)
	b = append(b, `,"ranks":`...)
	b = appendStr(b, fr.Ranks)
	b = append(b, `,"fanout":`...)
	b = strconv.AppendInt(b, int64(fr.Fanout), 10)
	return append(b, '}')
}

// ---- decoding ----

// lexer reads the simple JSON the encoders above write. Any call that
// meets something outside that subset returns false, and the caller
// decodes the whole payload with encoding/json instead.
type lexer struct {
	b []byte
	i int
}

func (l *lexer) ws() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

// tok consumes c (after whitespace).
func (l *lexer) tok(c byte) bool {
	l.ws()
	if l.i < len(l.b) && l.b[l.i] == c {
		l.i++
		return true
	}
	return false
}

// peek reports whether the next byte (after whitespace) is c, without
// consuming it.
func (l *lexer) peek(c byte) bool {
	l.ws()
	return l.i < len(l.b) && l.b[l.i] == c
}

// str reads a string of printable ASCII without escapes.
func (l *lexer) str() (string, bool) {
	b, ok := l.strBytes()
	return string(b), ok
}

// strBytes is str without the copy: the bytes alias the input.
func (l *lexer) strBytes() ([]byte, bool) {
	if !l.tok('"') {
		return nil, false
	}
	start := l.i
	for l.i < len(l.b) {
		c := l.b[l.i]
		switch {
		case c == '"':
			s := l.b[start:l.i]
			l.i++
			return s, true
		case c < 0x20 || c >= utf8.RuneSelf || c == '\\':
			return nil, false
		}
		l.i++
	}
	return nil, false
}

// digits reads -?(0|[1-9][0-9]*) of at most 18 digits (so that it fits any
// Go integer it is meant for), with no fraction or exponent.
func (l *lexer) digits() ([]byte, bool) {
	l.ws()
	start := l.i
	if l.i < len(l.b) && l.b[l.i] == '-' {
		l.i++
	}
	d := l.i
	for l.i < len(l.b) && l.b[l.i] >= '0' && l.b[l.i] <= '9' {
		l.i++
	}
	n := l.i - d
	if n == 0 || n > 18 || (n > 1 && l.b[d] == '0') {
		return nil, false
	}
	if l.i < len(l.b) {
		switch l.b[l.i] {
		case '.', 'e', 'E':
			return nil, false
		}
	}
	return l.b[start:l.i], true
}

// value is the integer digits reads (at most 18 digits, so no overflow).
func value(t []byte) int64 {
	neg := t[0] == '-'
	if neg {
		t = t[1:]
	}
	var v int64
	for _, c := range t {
		v = v*10 + int64(c-'0')
	}
	if neg {
		return -v
	}
	return v
}

func (l *lexer) int() (int, bool) {
	t, ok := l.digits()
	if !ok {
		return 0, false
	}
	return int(value(t)), true
}

func (l *lexer) uint32() (uint32, bool) {
	t, ok := l.digits()
	if !ok || t[0] == '-' {
		return 0, false
	}
	v := value(t)
	return uint32(v), v <= math.MaxUint32
}

func (l *lexer) jobID() (fluxkit.JobID, bool) {
	t, ok := l.digits()
	if !ok || t[0] == '-' {
		return 0, false
	}
	var id fluxkit.JobID
	if id.UnmarshalJSON(t) != nil {
		return 0, false
	}
	return id, true
}

func (l *lexer) boolean() (bool, bool) {
	l.ws()
	switch {
	case len(l.b)-l.i >= 4 && string(l.b[l.i:l.i+4]) == "true":
		l.i += 4
		return true, true
	case len(l.b)-l.i >= 5 && string(l.b[l.i:l.i+5]) == "false":
		l.i += 5
		return false, true
	}
	return false, false
}

// object reads {"k":v,...}, calling val for each key to read its value.
// Keys must be among names, each at most once (encoding/json would merge
// repeated maps and pointers, and matches keys case-insensitively).
func (l *lexer) object(names []string, val func(idx int) bool) bool {
	return l.objectSkip(names, false, 0, val)
}

// objectSkip is object that, when skip is set, also validates and skips
// keys that no name matches even case-insensitively, as encoding/json
// ignores them.
func (l *lexer) objectSkip(names []string, skip bool, depth int, val func(idx int) bool) bool {
	if !l.tok('{') {
		return false
	}
	if l.tok('}') {
		return true
	}
	var seen uint64
	for {
		k, ok := l.strBytes()
		if !ok || !l.tok(':') {
			return false
		}
		idx := -1
		for i, n := range names {
			if n == string(k) { // compared without a copy
				idx = i
				break
			}
		}
		switch {
		case idx < 0:
			if !skip || slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, string(k)) }) || !l.skip(depth+1) {
				return false
			}
		case seen&(1<<idx) != 0:
			return false
		default:
			seen |= 1 << idx
			if !val(idx) {
				return false
			}
		}
		if l.tok('}') {
			return true
		}
		if !l.tok(',') {
			return false
		}
	}
}

// array reads [v,...], calling elem for each element; an empty array still
// calls nothing, and the caller makes a non-nil empty slice as
// encoding/json does.
func (l *lexer) array(elem func() bool) bool {
	if !l.tok('[') {
		return false
	}
	if l.tok(']') {
		return true
	}
	for {
		if !elem() {
			return false
		}
		if l.tok(']') {
			return true
		}
		if !l.tok(',') {
			return false
		}
	}
}

// number reads a JSON number (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?).
func (l *lexer) number() ([]byte, bool) {
	l.ws()
	start := l.i
	run := func() int {
		s := l.i
		for l.i < len(l.b) && l.b[l.i] >= '0' && l.b[l.i] <= '9' {
			l.i++
		}
		return l.i - s
	}
	if l.i < len(l.b) && l.b[l.i] == '-' {
		l.i++
	}
	d := l.i
	if n := run(); n == 0 || (n > 1 && l.b[d] == '0') {
		return nil, false
	}
	if l.i < len(l.b) && l.b[l.i] == '.' {
		l.i++
		if run() == 0 {
			return nil, false
		}
	}
	if l.i < len(l.b) && (l.b[l.i] == 'e' || l.b[l.i] == 'E') {
		l.i++
		if l.i < len(l.b) && (l.b[l.i] == '+' || l.b[l.i] == '-') {
			l.i++
		}
		if run() == 0 {
			return nil, false
		}
	}
	return l.b[start:l.i], true
}

func (l *lexer) float() (float64, bool) {
	t, ok := l.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(t), 64)
	return f, err == nil
}

// skip validates and skips one value of the subset the lexer reads.
func (l *lexer) skip(depth int) bool {
	if depth > 32 {
		return false
	}
	l.ws()
	if l.i >= len(l.b) {
		return false
	}
	switch c := l.b[l.i]; {
	case c == '{':
		return l.objectSkip(nil, true, depth+1, nil)
	case c == '[':
		return l.array(func() bool { return l.skip(depth + 1) })
	case c == '"':
		_, ok := l.strBytes()
		return ok
	case c == 't' || c == 'f':
		_, ok := l.boolean()
		return ok
	case c == 'n':
		if len(l.b)-l.i >= 4 && string(l.b[l.i:l.i+4]) == "null" {
			l.i += 4
			return true
		}
		return false
	default:
		// Numbers out of float64's range are left to encoding/json, which
		// refuses them where it converts them (into any).
		_, ok := l.float()
		return ok
	}
}

// end reports whether only whitespace is left.
func (l *lexer) end() bool {
	l.ws()
	return l.i == len(l.b)
}

func (l *lexer) strs() ([]string, bool) {
	out := []string{}
	ok := l.array(func() bool {
		s, ok := l.str()
		out = append(out, s)
		return ok
	})
	return out, ok
}

var failNames = []string{"rank", "errno", "msg"}

func (l *lexer) fails() ([]failWire, bool) {
	out := []failWire{}
	ok := l.array(func() bool {
		var f failWire
		ok := l.object(failNames, func(i int) bool {
			var ok bool
			switch i {
			case 0:
				f.Rank, ok = l.uint32()
			case 1:
				f.Errno, ok = l.int()
			default:
				f.Msg, ok = l.str()
			}
			return ok
		})
		out = append(out, f)
		return ok
	})
	return out, ok
}

var (
	reportNames = []string{"started", "adopted", "failed", "exited", "released", "epilog_failed", "lost",
		"barrier", "barrier_fail", "barriers", "barrier_queried", "barrier_pending", "barrier_timeout", "unentered"}
	exitNames = []string{"ranks", "status"}
)

func fastReport(b []byte, r *report) bool {
	l := lexer{b: b}
	ok := l.object(reportNames, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			r.Started, ok = l.str()
		case 1:
			r.Adopted, ok = l.str()
		case 2:
			r.Failed, ok = l.fails()
		case 3:
			r.Exited = []exitWire{}
			ok = l.array(func() bool {
				var e exitWire
				ok := l.object(exitNames, func(i int) bool {
					var ok bool
					if i == 0 {
						e.Ranks, ok = l.str()
					} else {
						e.Status, ok = l.int()
					}
					return ok
				})
				r.Exited = append(r.Exited, e)
				return ok
			})
		case 4:
			r.Released, ok = l.str()
		case 5:
			r.EpilogFailed, ok = l.fails()
		case 6:
			r.Lost, ok = l.str()
		case 7:
			r.Barrier, ok = l.int()
		case 8:
			r.BarrierFail, ok = l.boolean()
		case 9:
			r.Barriers, ok = l.int()
		case 10:
			r.BarrierQueried, ok = l.boolean()
		case 11:
			r.BarrierPending, ok = l.str()
		case 12:
			r.BarrierTimeout, ok = l.boolean()
		default:
			r.Unentered, ok = l.str()
		}
		return ok
	})
	return ok && l.end()
}

// decodeReport is json.Unmarshal(b, r) into a zero r.
func decodeReport(b []byte, r *report) error {
	if fastReport(b, r) {
		return nil
	}
	*r = report{}
	return json.Unmarshal(b, r)
}

var (
	launchNames = []string{"id", "userid", "ranks", "fanout", "method", "argv", "env", "epilog", "test",
		"reattach", "service", "coord", "barriers", "barrier_timeout", "resume", "shell", "multiuser"}
	testNames = []string{"run_duration", "wait_status"}
)

func fastLaunch(b []byte, lr *launchReq) bool {
	l := lexer{b: b}
	ok := l.object(launchNames, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			lr.ID, ok = l.jobID()
		case 1:
			lr.Userid, ok = l.uint32()
		case 2:
			lr.Ranks, ok = l.str()
		case 3:
			lr.Fanout, ok = l.int()
		case 4:
			lr.Method, ok = l.str()
		case 5:
			lr.Argv, ok = l.strs()
		case 6:
			if !l.peek('{') {
				return false
			}
			lr.Env = map[string]string{}
			ok = l.tok('{')
			if ok && !l.tok('}') {
				for {
					k, ok1 := l.str()
					if !ok1 || !l.tok(':') {
						return false
					}
					if _, dup := lr.Env[k]; dup {
						return false
					}
					v, ok2 := l.str()
					if !ok2 {
						return false
					}
					lr.Env[k] = v
					if l.tok('}') {
						break
					}
					if !l.tok(',') {
						return false
					}
				}
			}
		case 7:
			lr.Epilog, ok = l.strs()
		case 8:
			t := &testWire{}
			lr.Test = t
			ok = l.object(testNames, func(i int) bool {
				v, ok := l.int()
				if i == 0 {
					t.RunDuration = time.Duration(v)
				} else {
					t.WaitStatus = v
				}
				return ok
			})
		case 9:
			lr.Reattach, ok = l.boolean()
		case 10:
			lr.Service, ok = l.str()
		case 11:
			lr.Coord, ok = l.uint32()
		case 12:
			lr.Barriers, ok = l.boolean()
		case 13:
			var v int
			v, ok = l.int()
			lr.BarrierTimeout = time.Duration(v)
		case 14:
			lr.Resume, ok = l.boolean()
		case 15:
			lr.Shell, ok = l.boolean()
		default:
			lr.Multiuser, ok = l.boolean()
		}
		return ok
	})
	return ok && l.end()
}

// decodeLaunch is fluxkit.DecodePayload(req, lr) into a zero lr.
func decodeLaunch(req *fluxkit.Message, lr *launchReq) error {
	if fastLaunch(req.Payload, lr) {
		return nil
	}
	*lr = launchReq{}
	return fluxkit.DecodePayload(req, lr)
}

var (
	rNames    = []string{"version", "execution"}
	execNames = []string{"R_lite", "nodelist", "starttime", "expiration"}
	rankNames = []string{"rank"}
)

// decodeR is json.Unmarshal(b, r) into a zero r.
func decodeR(b []byte, r *rJSON) error {
	l := lexer{b: b}
	ok := l.objectSkip(rNames, true, 0, func(i int) bool {
		if i == 0 {
			var ok bool
			r.Version, ok = l.int()
			return ok
		}
		x := &r.Execution
		return l.objectSkip(execNames, true, 1, func(i int) bool {
			var ok bool
			switch i {
			case 0:
				x.RLite = []struct {
					Rank string `json:"rank"`
				}{}
				ok = l.array(func() bool {
					var e struct {
						Rank string `json:"rank"`
					}
					ok := l.objectSkip(rankNames, true, 2, func(int) bool {
						var ok bool
						e.Rank, ok = l.str()
						return ok
					})
					x.RLite = append(x.RLite, e)
					return ok
				})
			case 1:
				x.Nodelist, ok = l.strs()
			case 2:
				x.Starttime, ok = l.float()
			default:
				x.Expiration, ok = l.float()
			}
			return ok
		})
	})
	if ok && l.end() {
		return nil
	}
	*r = rJSON{}
	return json.Unmarshal(b, r)
}

var forgetNames = []string{"id", "ranks", "fanout"}

// decodeForget is fluxkit.DecodePayload(req, fr) into a zero fr.
func decodeForget(req *fluxkit.Message, fr *forgetReq) error {
	l := lexer{b: req.Payload}
	ok := l.object(forgetNames, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			fr.ID, ok = l.jobID()
		case 1:
			fr.Ranks, ok = l.str()
		default:
			fr.Fanout, ok = l.int()
		}
		return ok
	})
	if ok && l.end() {
		return nil
	}
	*fr = forgetReq{}
	return fluxkit.DecodePayload(req, fr)
}

var (
	jobspecNames = []string{"tasks", "attributes"}
	taskNames    = []string{"command"}
	attrNames    = []string{"system"}
	systemNames  = []string{"duration", "environment", "exec"}
)

// strMap reads an object of strings into a new map; a repeated key is
// left to encoding/json.
func (l *lexer) strMap() (map[string]string, bool) {
	if !l.tok('{') {
		return nil, false
	}
	m := map[string]string{}
	if l.tok('}') {
		return m, true
	}
	for {
		k, ok := l.str()
		if !ok || !l.tok(':') {
			return nil, false
		}
		if _, dup := m[k]; dup {
			return nil, false
		}
		v, ok := l.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		if l.tok('}') {
			return m, true
		}
		if !l.tok(',') {
			return nil, false
		}
	}
}

// decodeJobspec is json.Unmarshal(b, js) into a zero js.
func decodeJobspec(b []byte, js *jobspecJSON) error {
	l := lexer{b: b}
	ok := l.objectSkip(jobspecNames, true, 0, func(i int) bool {
		if i == 0 {
			js.Tasks = []taskJSON{}
			return l.array(func() bool {
				var t taskJSON
				ok := l.objectSkip(taskNames, true, 2, func(int) bool {
					var ok bool
					t.Command, ok = l.strs()
					return ok
				})
				js.Tasks = append(js.Tasks, t)
				return ok
			})
		}
		sys := &js.Attributes.System
		return l.objectSkip(attrNames, true, 1, func(int) bool {
			return l.objectSkip(systemNames, true, 2, func(i int) bool {
				var ok bool
				switch i {
				case 0:
					l.ws()
					if l.i >= len(l.b) {
						return false
					}
					switch l.b[l.i] {
					case '"':
						sys.Duration, ok = l.str()
					case 't', 'f':
						sys.Duration, ok = l.boolean()
					default:
						sys.Duration, ok = l.float()
					}
				case 1:
					sys.Environment, ok = l.strMap()
				default:
					if !l.tok('{') {
						return false
					}
					sys.Exec = map[string]json.RawMessage{}
					if l.tok('}') {
						return true
					}
					for {
						k, ok := l.str()
						if !ok || !l.tok(':') {
							return false
						}
						if _, dup := sys.Exec[k]; dup {
							return false
						}
						l.ws()
						start := l.i
						if l.i >= len(l.b) || l.b[l.i] == 'n' || !l.skip(3) {
							return false
						}
						sys.Exec[k] = append(json.RawMessage(nil), l.b[start:l.i]...)
						if l.tok('}') {
							return true
						}
						if !l.tok(',') {
							return false
						}
					}
				}
				return ok
			})
		})
	})
	if ok && l.end() {
		return nil
	}
	*js = jobspecJSON{}
	return json.Unmarshal(b, js)
}

var testConfNames = []string{"run_duration", "wait_status", "override", "reattach_finish", "mock_exception"}

// fastTestConf is parseTestConf for a block of simple values that it
// accepts; anything else (and every error) is left to parseTestConf.
func fastTestConf(raw []byte, jobDuration time.Duration) (*testConf, bool) {
	tc := &testConf{runDuration: jobDuration}
	if jobDuration == 0 {
		tc.runDuration = defaultTestDuration
	}
	l := lexer{b: raw}
	ok := l.objectSkip(testConfNames, true, 0, func(i int) bool {
		switch i {
		case 0:
			s, ok := l.str()
			if !ok {
				return false
			}
			if d, err := parseFSD(s); err == nil {
				tc.runDuration = d
			}
			return true
		case 4:
			var ok bool
			tc.mockException, ok = l.str()
			return ok
		}
		n, ok := l.float()
		if !ok || n != math.Trunc(n) || math.Abs(n) > math.MaxInt32 {
			return false
		}
		switch i {
		case 1:
			tc.waitStatus = int(n)
		case 2:
			tc.override = n != 0
		default:
			tc.reattachFinish = n != 0
		}
		return true
	})
	return tc, ok && l.end()
}

var startNames = []string{"id", "userid", "jobspec", "R", "reattach"}

// rawObject reads an object value of the lexer's subset and returns a
// copy of its bytes, as a json.RawMessage field receives them.
func (l *lexer) rawObject() (json.RawMessage, bool) {
	if !l.peek('{') {
		return nil, false
	}
	start := l.i
	if !l.skip(1) {
		return nil, false
	}
	return append(json.RawMessage(nil), l.b[start:l.i]...), true
}

// decodeStart is fluxkit.DecodePayload(req, sr) into a zero sr.
func decodeStart(req *fluxkit.Message, sr *startReq) error {
	l := lexer{b: req.Payload}
	ok := l.object(startNames, func(i int) bool {
		var ok bool
		switch i {
		case 0:
			sr.ID, ok = l.jobID()
		case 1:
			var u uint32
			u, ok = l.uint32()
			sr.Userid = &u
		case 2:
			sr.Jobspec, ok = l.rawObject()
		case 3:
			sr.R, ok = l.rawObject()
		default:
			sr.Reattach, ok = l.boolean()
		}
		return ok
	})
	if ok && l.end() {
		return nil
	}
	*sr = startReq{}
	return fluxkit.DecodePayload(req, sr)
}
