package job_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/fluxkit/fluxkit/job"
)

// shallow bounds the nesting a fuzz input may have: the scanner refuses
// JSON deeper than encoding/json does.
func shallow(b []byte) bool { return bytes.Count(b, []byte("{"))+bytes.Count(b, []byte("[")) <= 200 }

// agree checks one input against the encoding/json reference: both
// accept it or neither does, and they read the same value (keys are read
// raw, where encoding/json replaces bytes that are not UTF-8); decoding
// again into reused storage reads the same value too.
func agree[T any](t *testing.T, b []byte, parse, ref, reused func([]byte) (*T, error)) *T {
	t.Helper()
	got, err := parse(b)
	want, rerr := ref(b)
	if (err == nil) != (rerr == nil) {
		t.Fatalf("%q: scanner error %v, encoding/json error %v", b, err, rerr)
	}
	if err != nil {
		return nil
	}
	if utf8.Valid(b) && !same(got, want) {
		t.Fatalf("%q: scanner %+v, encoding/json %+v", b, got, want)
	}
	if again, err := reused(b); err != nil || !same(again, got) {
		t.Fatalf("%q: decoded again %+v %v, first %+v", b, again, err, got)
	}
	return got
}

// FuzzParseJobspec: the scanner and the encoding/json reference accept the
// same documents and read the same values; a trusted decoder (input known
// to be valid JSON) and a decoder reused across documents read what a
// fresh checking one reads.
func FuzzParseJobspec(f *testing.F) {
	for _, s := range []string{realJobspec,
		jobspecWith(`{"duration":60,"cwd":"/a","queue":"batch","project":"p","bank":"b","environment":{"A":"1"},"job":{"name":"x"},"shell":{"options":{"per-resource":{"type":"node","count":2}}}}`,
			`[{"type":"node","count":2,"exclusive":true,"with":[{"type":"slot","count":1,"label":"task","with":[{"type":"core","count":4}]}]}]`,
			`[{"command":["a","b"],"slot":"task","count":{"total":5,"per_slot":1}}]`),
		`{"version":1,"resources":[],"attributes":{"system":{"duration":1.5},"user":{}}}`,
		`{"version":1,"resources":[{"type":"slot","count":1.0}],"attributes":{"system":{"duration":0}}}`,
		`{"version":1,"version":"x","resources":[],"attributes":{"system":{"duration":0}}}`,
		`{"Version":1,"resources":[],"attributes":{"system":{"duration":0}}}`,
		`{"version":1,"resources":[],"attributes":{"system":{"duration":0,"cwd":null}}}`,
	} {
		f.Add([]byte(s))
	}
	var reused job.Jobspec
	rd := job.Decoder{}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !shallow(b) {
			return
		}
		js := agree(t, b, job.ParseJobspec, refJobspec, func(b []byte) (*job.Jobspec, error) {
			return &reused, rd.Jobspec(b, &reused)
		})
		if js == nil {
			return
		}
		trusted := job.Decoder{Trusted: true}
		var tj job.Jobspec
		if err := trusted.Jobspec(b, &tj); err != nil || !same(&tj, js) {
			t.Fatalf("%q: trusted decoder %+v %v, checking one %+v", b, tj, err, js)
		}
		_, _ = js.Counts()
	})
}

// FuzzParseR is FuzzParseJobspec for R.
func FuzzParseR(f *testing.F) {
	for _, s := range []string{realR,
		`{"version":1,"execution":{"R_lite":[{"rank":"0-3","children":{"core":"0-3","gpu":"0"}}],"nodelist":["node[1-4]"],"properties":{"big":"0"},"starttime":1,"expiration":2,"nslots":4},"scheduling":{"x":1}}`,
		`{"version":1,"execution":{"R_lite":[{"rank":"0","children":{"core":"0"}},{"rank":"0","children":{"core":"1"}}],"nodelist":["a","b"]}}`,
		`{"version":2,"execution":{"R_lite":[]}}`,
		`{"version":1,"execution":{"R_lite":[{"rank":"[0-1]","children":{}}],"nodelist":["a,b"]}}`,
	} {
		f.Add([]byte(s))
	}
	var reused job.R
	rd := job.Decoder{}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !shallow(b) {
			return
		}
		r := agree(t, b, job.ParseR, refR, func(b []byte) (*job.R, error) {
			return &reused, rd.R(b, &reused)
		})
		if r == nil {
			return
		}
		_ = r.Count("core")
		_, _ = r.Hosts()
	})
}

// FuzzParseEvent: the scanner agrees with encoding/json on what an entry
// is, and an entry it accepts survives encoding.
func FuzzParseEvent(f *testing.F) {
	for _, s := range []string{`{"timestamp":1796403402.262248,"name":"submit","context":{"userid":0,"urgency":16,"flags":0,"version":1}}`,
		`{"timestamp":1,"name":"clean"}`, `{"timestamp":"1","name":"x"}`, `{"name":"x"}`, `{"timestamp":1,"name":"x","context":[]}`,
		`{"timestamp":1e3,"name":"a\u00e9","context":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !shallow(b) {
			return
		}
		e, err := job.ParseEvent(b)
		var ref struct {
			Timestamp *float64
			Name      *string
			Context   json.RawMessage
		}
		o, rerr := refObj(b)
		if rerr == nil {
			switch {
			case o["timestamp"] == nil || o["name"] == nil:
				rerr = errMissing
			default:
				var ts float64
				var name string
				if ts, rerr = refNum(o["timestamp"]); rerr == nil {
					if name, rerr = refStr(o["name"]); rerr == nil {
						ref.Timestamp, ref.Name = &ts, &name
						if c := o["context"]; c != nil {
							if _, rerr = refObj(c); rerr == nil {
								ref.Context = c
							}
						}
					}
				}
			}
		}
		if (err == nil) != (rerr == nil) {
			t.Fatalf("%q: ParseEvent error %v, encoding/json error %v", b, err, rerr)
		}
		if err != nil {
			return
		}
		if e.Timestamp != *ref.Timestamp || e.Name != *ref.Name || (e.Context == nil) != (ref.Context == nil) {
			t.Fatalf("%q: ParseEvent %+v, encoding/json %v %v %s", b, e, *ref.Timestamp, *ref.Name, ref.Context)
		}
		again, err := job.ParseEvent(e.AppendJSON(nil))
		if err != nil || again.Timestamp != e.Timestamp || again.Name != e.Name {
			t.Fatalf("%q: re-encoded %s: %+v %v", b, e.AppendJSON(nil), again, err)
		}
	})
}

const realSubmit = `{"timestamp":1796403402.262248,"name":"submit","context":{"userid":0,"urgency":16,"flags":0,"version":1}}`

// FuzzDecodeEventlog: an eventlog that decodes survives encoding.
func FuzzDecodeEventlog(f *testing.F) {
	f.Add([]byte(realSubmit + "\n" + `{"timestamp":2,"name":"validate"}` + "\n"))
	f.Add([]byte(realSubmit + "\ntrailing"))
	f.Add([]byte(realSubmit))
	f.Add([]byte("\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := job.DecodeEventlog(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := job.EncodeEventlog(&buf, es); err != nil {
			t.Fatal(err)
		}
		es2, err := job.DecodeEventlog(&buf)
		if err != nil || len(es2) != len(es) {
			t.Fatalf("round trip: %v %d/%d", err, len(es2), len(es))
		}
		for i := range es {
			if es[i].Name != es2[i].Name || es[i].Timestamp != es2[i].Timestamp || !bytes.Equal(es[i].Context, es2[i].Context) {
				t.Fatalf("entry %d: %+v vs %+v", i, es[i], es2[i])
			}
		}
	})
}

var errMissing = jsonErr("missing")

type jsonErr string

func (e jsonErr) Error() string { return string(e) }
