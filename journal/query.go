package journal

import (
	"encoding/json"
	"strings"

	"github.com/fluxkit/fluxkit"
)

// Topics the consumer serves.
const (
	TopicList       = "job-list.list"
	TopicListID     = "job-list.list-id"
	TopicListAttrs  = "job-list.list-attrs"
	TopicJobStats   = "job-list.job-stats"
	TopicStatsGet   = "job-list.stats-get"
	TopicPause      = "job-list.job-state-pause"
	TopicUnpause    = "job-list.job-state-unpause"
	TopicListDiscon = "job-list.disconnect"
)

type waiter struct {
	id    fluxkit.JobID
	state State
	attrs attrSet
	w     fluxkit.Responder
}

type statsWatcher struct {
	sender string
	w      fluxkit.Responder
	gen    uint64 // statsGen of the last answer
}

var errNoData = fluxkit.Errorf(fluxkit.ENODATA, "")

// Request answers (or defers) a job-list request.
func (x *Index) Request(w fluxkit.Responder, req *fluxkit.Message) {
	switch req.Topic {
	case TopicJobStats:
		x.jobStats(w, req)
		return
	case TopicListDiscon:
		x.disconnect(req.Sender())
		return
	}
	if !x.initialized {
		x.deferred = append(x.deferred, deferredReq{w, req})
		return
	}
	switch req.Topic {
	case TopicList:
		x.list(w, req)
	case TopicListID:
		x.listID(w, req)
	case TopicListAttrs:
		b := []byte(`{"attrs":[`)
		for i, n := range AttrNames {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, n)
		}
		_ = w.Respond(append(b, "]}"...))
	case TopicStatsGet:
		_ = w.Respond(fmtAppend(nil, `{"jobs":{"pending":%d,"running":%d,"inactive":%d},"idsync":{"lookups":%d,"waits":%d},"stats_watchers":%d}`,
			x.pending.len(), x.running.len(), x.inactive.len(), x.lookups, x.nwaits, len(x.watchers)))
	case TopicPause:
		x.paused = true
		_ = w.Respond(nil)
	case TopicUnpause:
		buf := x.buffered
		x.buffered = nil
		x.paused = false
		for _, m := range buf {
			if x.done {
				break
			}
			msg, err := parseMessage(m, nil)
			if err == nil {
				err = x.process(&msg)
			}
			if err != nil {
				x.cfg.Logf("error processing events")
				_ = x.fail(err)
				break
			}
		}
		_ = w.Respond(nil)
	default:
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOSYS, "unknown topic %s", req.Topic))
	}
}

type listRequest struct {
	MaxEntries *json.RawMessage `json:"max_entries"`
	Attrs      *json.RawMessage `json:"attrs"`
	Since      *json.RawMessage `json:"since"`
	Constraint *json.RawMessage `json:"constraint"`
	Userid     *json.RawMessage `json:"userid"`
	States     *json.RawMessage `json:"states"`
	Results    *json.RawMessage `json:"results"`
	Name       *json.RawMessage `json:"name"`
	Queue      *json.RawMessage `json:"queue"`
}

func invalid(format string, args ...any) error {
	return fluxkit.Errorf(fluxkit.EPROTO, "invalid payload: "+format, args...)
}

func raw(p *json.RawMessage) []byte {
	if p == nil {
		return nil
	}
	return trim(*p)
}

// legacyConstraint converts the pre-RFC 43 list request into a constraint.
func legacyConstraint(r *listRequest) ([]byte, error) {
	uid, err := asInt(raw(r.Userid))
	if err != nil {
		return nil, invalid("userid must be an integer")
	}
	states, err := asInt(raw(r.States))
	if err != nil {
		return nil, invalid("states must be an integer")
	}
	results, err := asInt(raw(r.Results))
	if err != nil {
		return nil, invalid("results must be an integer")
	}
	var parts []string
	if uint32(uid) != fluxkit.UseridUnknown {
		parts = append(parts, fmtS(`{"userid":[%d]}`, uid))
	}
	for _, kv := range []struct {
		k string
		v *json.RawMessage
	}{{"name", r.Name}, {"queue", r.Queue}} {
		if kv.v == nil {
			continue
		}
		if kind(raw(kv.v)) != kindString {
			return nil, invalid("%s must be a string", kv.k)
		}
		parts = append(parts, fmtS(`{"%s":[%s]}`, kv.k, raw(kv.v)))
	}
	if states != 0 {
		parts = append(parts, fmtS(`{"states":[%d]}`, states))
	}
	if results != 0 {
		parts = append(parts, fmtS(`{"results":[%d]}`, results))
	}
	return []byte(`{"and":[` + strings.Join(parts, ",") + `]}`), nil
}

func (x *Index) list(w fluxkit.Responder, req *fluxkit.Message) {
	err := x.doList(w, req)
	if err != nil {
		_ = w.RespondError(err)
	}
}

func (x *Index) doList(w fluxkit.Responder, req *fluxkit.Message) error {
	var r listRequest
	if len(req.Payload) == 0 {
		return invalid("missing payload")
	}
	if err := json.Unmarshal(req.Payload, &r); err != nil {
		return invalid("%v", err)
	}
	if r.MaxEntries == nil {
		return invalid("max_entries missing")
	}
	if r.Attrs == nil {
		return invalid("attrs missing")
	}
	max, err := asInt(raw(r.MaxEntries))
	if err != nil {
		return invalid("max_entries must be an integer")
	}
	if max < 0 {
		return invalid("max_entries < 0 not allowed")
	}
	since := 0.0
	if r.Since != nil {
		if since, err = asFloat(raw(r.Since)); err != nil {
			return invalid("since must be a number")
		}
		if since < 0 {
			return invalid("since < 0.0 not allowed")
		}
	}
	attrs, err := parseAttrs(raw(r.Attrs))
	if err != nil {
		return err
	}
	cons := raw(r.Constraint)
	if r.Constraint == nil && r.Userid != nil && r.States != nil && r.Results != nil {
		if cons, err = legacyConstraint(&r); err != nil {
			return err
		}
	}
	c, err := ParseConstraint(cons)
	if err != nil {
		return invalid("%v", err)
	}
	possible := c.root.states()
	streaming := req.IsStreaming()
	var out []byte
	if !streaming {
		out = append(out, `{"jobs":[`...)
	}
	n := 0
	var serr error
	visit := func(j *job) bool {
		if !c.match(j) {
			return true
		}
		if attrs.err != nil {
			serr = attrs.err
			return false
		}
		if streaming {
			b := append([]byte(`{"jobs":[`), appendJob(nil, j, attrs.bits)...)
			if n == 0 {
				b = append(b, `],"version":1}`...)
			} else {
				b = append(b, "]}"...)
			}
			_ = w.Respond(b)
		} else {
			if n > 0 {
				out = append(out, ',')
			}
			out = appendJob(out, j, attrs.bits)
		}
		n++
		return max == 0 || int64(n) < max
	}
	cont := true
	if possible&StatePending != 0 {
		x.pending.each(func(j *job) bool { cont = visit(j); return cont })
	}
	if cont && serr == nil && possible&StateRunning != 0 {
		x.running.each(func(j *job) bool { cont = visit(j); return cont })
	}
	if cont && serr == nil && possible&StateInactive != 0 {
		x.inactive.each(func(j *job) bool {
			if since > 0 && j.tInactive <= since {
				return false
			}
			cont = visit(j)
			return cont
		})
	}
	if serr != nil {
		return serr
	}
	if streaming {
		return errNoData
	}
	_ = w.Respond(append(out, "]}"...))
	return nil
}

func (x *Index) listID(w fluxkit.Responder, req *fluxkit.Message) {
	var r struct {
		ID    *json.RawMessage `json:"id"`
		Attrs *json.RawMessage `json:"attrs"`
		State *json.RawMessage `json:"state"`
	}
	if len(req.Payload) == 0 {
		_ = w.RespondError(invalid("missing payload"))
		return
	}
	if err := json.Unmarshal(req.Payload, &r); err != nil || r.ID == nil || r.Attrs == nil {
		_ = w.RespondError(invalid("id and attrs required"))
		return
	}
	idv, err := asInt(raw(r.ID))
	if err != nil || idv < 0 {
		_ = w.RespondError(invalid("id must be an integer"))
		return
	}
	attrs, err := parseAttrs(raw(r.Attrs))
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	var st State
	if r.State != nil {
		v, err := asInt(raw(r.State))
		if err != nil || v <= 0 || State(v)&^(StateActive|StateInactive) != 0 {
			_ = w.RespondError(invalid("invalid state specified"))
			return
		}
		st = State(v)
	}
	wt := &waiter{id: fluxkit.JobID(idv), state: st, attrs: attrs, w: w}
	if j := x.jobs[wt.id]; j != nil {
		if !wt.ready(j) {
			x.addWaiter(wt)
			return
		}
		x.answer(wt, j)
		return
	}
	x.lookups++
	x.cfg.Lookup(wt.id, func(err error) {
		x.lookups--
		if j := x.jobs[wt.id]; j != nil {
			if wt.ready(j) {
				x.answer(wt, j)
			} else {
				x.addWaiter(wt)
			}
			return
		}
		if err != nil {
			_ = w.RespondError(err)
			return
		}
		x.addWaiter(wt)
	})
}

func (wt *waiter) ready(j *job) bool {
	if j.state == StateInactive {
		return true
	}
	if wt.state == 0 {
		return j.state != StateNew
	}
	return j.mask&wt.state != 0
}

func (x *Index) addWaiter(wt *waiter) {
	x.waiters[wt.id] = append(x.waiters[wt.id], wt)
	x.nwaits++
}

func (x *Index) answer(wt *waiter, j *job) {
	if wt.attrs.err != nil {
		_ = wt.w.RespondError(wt.attrs.err)
		return
	}
	b := append([]byte(`{"job":`), appendJob(nil, j, wt.attrs.bits)...)
	_ = wt.w.Respond(append(b, '}'))
}

func (x *Index) checkWaiters(j *job) {
	ws := x.waiters[j.id]
	if len(ws) == 0 {
		return
	}
	keep := ws[:0]
	for _, wt := range ws {
		if wt.ready(j) {
			x.nwaits--
			x.answer(wt, j)
		} else {
			keep = append(keep, wt)
		}
	}
	if len(keep) == 0 {
		delete(x.waiters, j.id)
	} else {
		x.waiters[j.id] = keep
	}
}

// answerGone answers ENOENT to the waiters of a purged or invalidated job
// (Flux leaves them waiting forever).
func (x *Index) answerGone(id fluxkit.JobID) {
	ws := x.waiters[id]
	delete(x.waiters, id)
	for _, wt := range ws {
		x.nwaits--
		_ = wt.w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "job %s was purged or invalidated", id))
	}
}

func (x *Index) jobStats(w fluxkit.Responder, req *fluxkit.Message) {
	_ = w.Respond(x.statsJSON())
	if req.IsStreaming() {
		x.watchers = append(x.watchers, &statsWatcher{sender: req.Sender(), w: w, gen: x.statsGen})
	}
}

// FlushStats re-answers streaming job-stats watchers if anything changed
// since the last flush; the driver calls it at most every 0.2 s.
func (x *Index) FlushStats() {
	var b []byte
	for _, wt := range x.watchers {
		if wt.gen == x.statsGen {
			continue
		}
		if b == nil {
			b = x.statsJSON()
		}
		wt.gen = x.statsGen
		_ = wt.w.Respond(b)
	}
}

func (x *Index) disconnect(sender string) {
	keep := x.watchers[:0]
	for _, wt := range x.watchers {
		if wt.sender != sender {
			keep = append(keep, wt)
		}
	}
	clear(x.watchers[len(keep):])
	x.watchers = keep
}

// Shutdown ends every outstanding request: waiters and deferred requests
// get ECANCELED, job-stats watchers ENODATA.
func (x *Index) Shutdown() {
	for id, ws := range x.waiters {
		for _, wt := range ws {
			_ = wt.w.RespondError(fluxkit.Errorf(fluxkit.ECANCELED, "job-list shutting down"))
		}
		delete(x.waiters, id)
	}
	x.nwaits = 0
	for _, wt := range x.watchers {
		_ = wt.w.RespondError(errNoData)
	}
	x.watchers = nil
	for _, d := range x.deferred {
		_ = d.w.RespondError(fluxkit.Errorf(fluxkit.ECANCELED, "job-list shutting down"))
	}
	x.deferred = nil
}

type deferredReq struct {
	w   fluxkit.Responder
	req *fluxkit.Message
}
