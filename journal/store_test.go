package journal

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/job"
)

func TestStoreTransitions(t *testing.T) {
	p := newPipe(t)
	p.submit(1, 1, jobspecFor("a", "", 0, 1, 1, false, 0))
	bad := []struct {
		name, ctx string
		want      error
	}{
		{"alloc", "", ErrTransition},
		{"clean", "", ErrTransition},
		{"depend", "", ErrTransition},
		{"priority", `{"priority":1}`, ErrTransition},
		{"submit", `{"userid":1,"urgency":1,"flags":0}`, ErrTransition},
		{"exception", `{"type":"cancel","severity":0,"note":""}`, ErrTransition},
		{"exception", `{"type":"cancel","severity":8,"note":""}`, ErrContext},
		{"exception", `{"type":"cancel","severity":1}`, ErrContext},
		{"urgency", `{"urgency":32,"userid":1}`, ErrContext},
		{"urgency", `{"urgency":3}`, ErrContext},
		{"resource-update", `{"expiration":1}`, ErrTransition},
		{"jobspec-update", `{}`, ErrContext},
		{"annotations", `{"annotations":5}`, ErrContext},
		{"dependency-add", `{}`, ErrContext},
		{"", "", job.ErrEvent},
		{"x", `[]`, job.ErrEvent},
		{"x", `{`, job.ErrEvent},
	}
	for _, b := range bad {
		var c []byte
		if b.ctx != "" {
			c = []byte(b.ctx)
		}
		if err := p.s.Post(1, 2, b.name, c); !errors.Is(err, b.want) {
			t.Errorf("%s %s in NEW: %v, want %v", b.name, b.ctx, err, b.want)
		}
	}
	if err := p.s.Post(1, -1, "validate", nil); !errors.Is(err, job.ErrEvent) {
		t.Errorf("negative timestamp: %v", err)
	}
	if err := p.s.Post(99, 1, "validate", nil); !errors.Is(err, ErrUnknownJob) {
		t.Errorf("unknown job: %v", err)
	}
	p.post(1, 0, "validate", "") // timestamp 0 means now
	log, _ := p.s.EventlogArray(1)
	if !strings.Contains(string(log), `"timestamp":1000.0,"name":"validate"`) {
		t.Errorf("timestamp 0 not now: %s", log)
	}
	p.post(1, 3, "depend", "")
	p.post(1, 4, "priority", `{"priority":1}`)
	p.post(1, 5, "priority", `{"priority":2}`)
	p.post(1, 6, "flux-restart", "")
	if st, _ := p.s.JobState(1); st != StatePriority {
		t.Errorf("flux-restart: %v", st)
	}
	p.post(1, 7, "priority", `{"priority":2}`)
	p.must(p.s.SetR(1, rFor("0", "0", "n", 0)))
	p.post(1, 8, "alloc", "")
	p.post(1, 9, "finish", `{"status":0}`)
	if err := p.s.Post(1, 10, "finish", []byte(`{"status":0}`)); !errors.Is(err, ErrTransition) {
		t.Errorf("second finish: %v", err)
	}
	p.post(1, 10, "clean", "")
	if err := p.s.Post(1, 11, "memo", []byte(`{"a":1}`)); !errors.Is(err, ErrTransition) {
		t.Errorf("event after INACTIVE: %v", err)
	}
	if _, err := p.s.Submit(Submission{ID: 1}); !errors.Is(err, ErrTransition) {
		t.Errorf("duplicate submit: %v", err)
	}
	if _, err := p.s.Submit(Submission{ID: 2, Urgency: 40}); !errors.Is(err, ErrContext) {
		t.Errorf("urgency 40: %v", err)
	}
	if _, err := p.s.Submit(Submission{ID: 3, Jobspec: []byte(`[1]`)}); err == nil {
		t.Error("array jobspec accepted")
	}
}

func TestStoreAssignsIDs(t *testing.T) {
	now := time.Unix(5000, 0)
	s, err := NewStore(StoreConfig{Now: func() time.Time { return now }, Epoch: time.Unix(4000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Submit(Submission{Jobspec: jobspecFor("a", "", 0, 1, 1, false, 0)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := s.Submit(Submission{})
	if a.Timestamp() != 1000_000 || b <= a || b.Sequence() != a.Sequence()+1 {
		t.Errorf("ids %v %v", a, b)
	}
	if s.Stats().MaxJobID != b {
		t.Errorf("max id %v", s.Stats().MaxJobID)
	}
	if _, err := NewStore(StoreConfig{MaxQueue: -1}); err == nil {
		t.Error("negative MaxQueue accepted")
	}
}

func TestRestoreErrors(t *testing.T) {
	good := submitOK + "\n" + `{"timestamp":2,"name":"validate"}` + "\n"
	cases := []struct {
		log, want string
	}{
		{`{"timestamp":1,"name":"validate"}` + "\n", "first event is not submit"},
		{submitOK + "\n", "still in NEW"},
		{good + `{"timestamp":3,"name":"clean"}` + "\n", "line 3"},
		{good + "{bad\n", "line 3"},
		{submitOK, "no newline"},
		{strings.Replace(submitOK, `"version":1`, `"version":2`, 1) + "\n", "version must be 1"},
	}
	for _, c := range cases {
		s, _ := NewStore(StoreConfig{})
		err := s.Restore([]SavedJob{{ID: 7, Eventlog: strings.NewReader(c.log)}})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), fluxkit.JobID(7).String()) {
			t.Errorf("%q: %v, want %q", c.log, err, c.want)
		}
	}
	s, _ := NewStore(StoreConfig{})
	if err := s.Restore([]SavedJob{{ID: 7, Eventlog: strings.NewReader(good + "ignored tail")}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.JobState(7); st != StateDepend {
		t.Errorf("state %v", st)
	}
}

func TestStateNames(t *testing.T) {
	for _, s := range []string{"NEW", "n", "PD", "pending", "RU", "a", "INACTIVE", "i"} {
		if _, err := ParseState(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	if _, err := ParseState("Pending"); err == nil {
		t.Error("mixed case accepted")
	}
	if st, _ := ParseState("pd"); st != StatePending || st.String() != "PENDING" {
		t.Errorf("pd = %v", st)
	}
	if r, _ := ParseResult("to"); r != ResultTimeout {
		t.Errorf("to = %v", r)
	}
}
