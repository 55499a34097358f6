package journal

import (
	"strings"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/idset"
	"github.com/fluxkit/fluxkit/idset/hostlist"
	"github.com/fluxkit/fluxkit/internal/jsonscan"
)

// service is flux-core's job-list service name.
const service = "job-list"

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
	id         fluxkit.JobID
	state      State
	attrs      attrSet
	w          fluxkit.Responder
	owner      uint32 // the guest's userid, when restricted
	restricted bool
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
			b = jsonscan.AppendString(b, n)
		}
		_ = w.Respond(append(b, "]}"...))
	case TopicStatsGet:
		if x.restricted(req) {
			_ = w.RespondError(errnoError(fluxkit.EPERM))
			return
		}
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

func invalid(format string, args ...any) error {
	return fluxkit.Errorf(fluxkit.EPROTO, "invalid payload: "+format, args...)
}

// field is one key of a request payload as flux-core unpacks it with
// jansson's formats: 'i' an integer, 'F' a number, 's' a string, 'o' any
// value. val receives the raw value, nil when an optional key is absent.
type field struct {
	key      string
	format   byte
	optional bool
	val      *[]byte
}

// jsonTypes are jansson's names of the kinds of value.
var jsonTypes = [...]string{jsonscan.Object: "object", jsonscan.Array: "array", jsonscan.String: "string",
	jsonscan.Integer: "integer", jsonscan.Real: "real", jsonscan.Null: "null"}

func jsonType(v []byte) string {
	if jsonscan.KindOf(v) == jsonscan.Boolean {
		if v[0] == 't' {
			return "true"
		}
		return "false"
	}
	return jsonTypes[jsonscan.KindOf(v)]
}

// unpack checks a request payload as flux_request_unpack does, key by key
// in order, and words a failure as flux-core's job-list does: "invalid
// payload: " and what libflux and jansson say.
func unpack(payload []byte, fields ...field) error {
	if len(payload) == 0 {
		return invalid("message does not have a string payload")
	}
	b := jsonscan.Trim(payload)
	if err := jsonscan.Check(b); err != nil {
		return invalid("%v", err)
	}
	if jsonscan.KindOf(b) != jsonscan.Object {
		return invalid("payload is not a JSON object")
	}
	for _, f := range fields {
		v, err := jsonscan.Member(b, f.key)
		if err != nil {
			return invalid("%v", err)
		}
		*f.val = v
		if v == nil {
			if !f.optional {
				return invalid("Object item not found: %s", f.key)
			}
			continue
		}
		k := jsonscan.KindOf(v)
		switch {
		case f.format == 'i' && k != jsonscan.Integer:
			return invalid("Expected integer, got %s", jsonType(v))
		case f.format == 'F' && k != jsonscan.Integer && k != jsonscan.Real:
			return invalid("Expected real or integer, got %s", jsonType(v))
		case f.format == 's' && k != jsonscan.String:
			return invalid("Expected string, got %s", jsonType(v))
		}
	}
	return nil
}

// legacyConstraint converts the pre-RFC 43 list request into a
// constraint; ok is false when the payload is not one (flux-core then
// lists without a constraint).
func legacyConstraint(payload []byte) (c []byte, ok bool) {
	var maxEntries, attrs, userid, states, results, since, name, queue []byte
	if unpack(payload, field{"max_entries", 'i', false, &maxEntries}, field{"attrs", 'o', false, &attrs},
		field{"userid", 'i', false, &userid}, field{"states", 'i', false, &states}, field{"results", 'i', false, &results},
		field{"since", 'F', true, &since}, field{"name", 's', true, &name}, field{"queue", 's', true, &queue}) != nil {
		return nil, false
	}
	uid, _ := jsonscan.Int(userid)
	st, _ := jsonscan.Int(states)
	res, _ := jsonscan.Int(results)
	var parts []string
	if uint32(uid) != fluxkit.UseridUnknown {
		parts = append(parts, fmtS(`{"userid":[%d]}`, uid))
	}
	for _, kv := range []struct {
		k string
		v []byte
	}{{"name", name}, {"queue", queue}} {
		if kv.v != nil {
			parts = append(parts, fmtS(`{"%s":[%s]}`, kv.k, kv.v))
		}
	}
	if st != 0 {
		parts = append(parts, fmtS(`{"states":[%d]}`, st))
	}
	if res != 0 {
		parts = append(parts, fmtS(`{"results":[%d]}`, res))
	}
	return []byte(`{"and":[` + strings.Join(parts, ",") + `]}`), true
}

func (x *Index) list(w fluxkit.Responder, req *fluxkit.Message) {
	payloads, err := x.doList(req)
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	var end error
	if req.IsStreaming() {
		end = errNoData
	}
	x.cfg.Send(w, payloads, end)
}

// doList answers job-list.list (list_cb): the payloads to send, in order.
func (x *Index) doList(req *fluxkit.Message) ([][]byte, error) {
	var maxv, attrsv, sincev, cons []byte
	if err := unpack(req.Payload, field{"max_entries", 'i', false, &maxv}, field{"attrs", 'o', false, &attrsv},
		field{"since", 'F', true, &sincev}, field{"constraint", 'o', true, &cons}); err != nil {
		return nil, err
	}
	if cons == nil {
		cons, _ = legacyConstraint(req.Payload)
	}
	max, err := jsonscan.Int(maxv)
	if err != nil {
		return nil, invalid("max_entries %s out of range", maxv)
	}
	if max < 0 {
		return nil, invalid("max_entries < 0 not allowed")
	}
	since := 0.0
	if sincev != nil {
		if since, err = jsonscan.Float(sincev); err != nil {
			return nil, invalid("since %s out of range", sincev)
		}
		if since < 0 {
			return nil, invalid("since < 0.0 not allowed")
		}
	}
	attrs, err := parseAttrs(attrsv)
	if err != nil {
		return nil, err
	}
	// In private mode a guest sees only its own jobs.
	if x.restricted(req) {
		own := fmtS(`{"userid":[%d]}`, req.Userid)
		if cons != nil {
			cons = []byte(`{"and":[` + string(cons) + `,` + own + `]}`)
		} else {
			cons = []byte(own)
		}
	}
	c, err := parseConstraint(cons, x.cfg.MaxHosts)
	if err != nil {
		return nil, invalid("%v", err)
	}
	m := x.matcher(c)
	streaming := req.IsStreaming()
	var buf []byte
	var ends []int
	n := 0
	var serr error
	visit := func(j *jobRec) bool {
		ok, err := m.match(j)
		if err != nil {
			serr = fluxkit.Errorf(fluxkit.EINVAL, "%v", err)
			return false
		}
		if !ok {
			return true
		}
		if attrs.err != nil {
			serr = attrs.err
			return false
		}
		if streaming {
			buf = append(buf, `{"jobs":[`...)
			buf = appendJob(buf, j, attrs.order)
			if n == 0 {
				buf = append(buf, `],"version":1}`...)
			} else {
				buf = append(buf, "]}"...)
			}
			ends = append(ends, len(buf))
		} else {
			if n == 0 {
				buf = append(buf, `{"jobs":[`...)
			} else {
				buf = append(buf, ',')
			}
			buf = appendJob(buf, j, attrs.order)
		}
		n++
		return max == 0 || int64(n) < max
	}
	cont := true
	if c.mayMatch(StatePending) {
		x.pending.each(func(j *jobRec) bool { cont = visit(j); return cont })
	}
	if cont && serr == nil && c.mayMatch(StateRunning) {
		x.running.each(func(j *jobRec) bool { cont = visit(j); return cont })
	}
	if cont && serr == nil && c.mayMatch(StateInactive) {
		x.inactive.each(func(j *jobRec) bool {
			if since > 0 && j.tInactive <= since {
				return false
			}
			cont = visit(j)
			return cont
		})
	}
	if serr != nil {
		return nil, serr
	}
	if !streaming {
		if n == 0 {
			buf = append(buf, `{"jobs":[`...)
		}
		return [][]byte{append(buf, "]}"...)}, nil
	}
	out := make([][]byte, len(ends))
	start := 0
	for i, e := range ends {
		out[i] = buf[start:e:e]
		start = e
	}
	return out, nil
}

// matcher returns a matcher of c over this index's jobs.
func (x *Index) matcher(c *Constraint) *matcher {
	return &matcher{c: c, max: *x.cfg.MaxComparisons, hosts: x.jobHosts, ranks: x.jobRanks}
}

// jobHosts is j's nodelist as a hostlist, remembered per nodelist.
func (x *Index) jobHosts(j *jobRec) (hostlist.Hostlist, bool) {
	if !j.r.hasNodelist {
		return hostlist.Hostlist{}, false
	}
	return remembered(x.hostsMemo, j.r.nodelist, hostlist.Parse)
}

// jobRanks is j's ranks as an idset, remembered per ranks string.
func (x *Index) jobRanks(j *jobRec) (idset.Set, bool) {
	if !j.r.ok {
		return idset.Set{}, false
	}
	return remembered(x.ranksMemo, j.r.ranks, idset.Parse)
}

// remembered is parse(s), kept in memo (bounded) for the next job with
// the same string.
func remembered[T any](memo map[string]T, s string, parse func(string) (T, error)) (T, bool) {
	if v, ok := memo[s]; ok {
		return v, true
	}
	v, err := parse(s)
	if err != nil {
		return v, false
	}
	if len(memo) < maxMemo {
		memo[s] = v
	}
	return v, true
}

// restricted tells whether req comes from a guest limited to its own jobs
// (private mode; owner and admin are exempt).
func (x *Index) restricted(req *fluxkit.Message) bool {
	return x.cfg.PrivateMode && req.Rolemask&(fluxkit.RoleOwner|fluxkit.RoleAdmin) == 0
}

func (x *Index) listID(w fluxkit.Responder, req *fluxkit.Message) {
	var idv, attrsv, statev []byte
	if err := unpack(req.Payload, field{"id", 'i', false, &idv}, field{"attrs", 'o', false, &attrsv},
		field{"state", 'i', true, &statev}); err != nil {
		_ = w.RespondError(err)
		return
	}
	// flux-core takes the id as a signed integer and uses its bits.
	id, err := jsonscan.Int(idv)
	if err != nil {
		_ = w.RespondError(invalid("id %s out of range", idv))
		return
	}
	attrs, err := parseAttrs(attrsv)
	if err != nil {
		_ = w.RespondError(err)
		return
	}
	// The state is a C int; 0 is none.
	v, _ := jsonscan.Int(statev)
	st := State(int32(v))
	if st&^(StateActive|StateInactive) != 0 {
		_ = w.RespondError(invalid("invalid state specified"))
		return
	}
	wt := &waiter{id: fluxkit.JobID(id), state: st, attrs: attrs, w: w}
	if x.restricted(req) {
		wt.owner, wt.restricted = req.Userid, true
	}
	if j := x.jobs[wt.id]; j != nil {
		if !wt.visible(j) {
			_ = w.RespondError(errNoEnt)
			return
		}
		if !wt.ready(j) {
			x.addWaiter(wt)
			return
		}
		x.answer(wt, j)
		return
	}
	if _, ok := x.gone[wt.id]; ok {
		_ = w.RespondError(errNoEnt)
		return
	}
	x.lookups++
	x.cfg.Lookup(wt.id, func(err error) {
		x.lookups--
		if j := x.jobs[wt.id]; j != nil {
			if !wt.visible(j) {
				_ = w.RespondError(errNoEnt)
				return
			}
			if wt.ready(j) {
				x.answer(wt, j)
			} else {
				x.addWaiter(wt)
			}
			return
		}
		if _, ok := x.gone[wt.id]; ok && err == nil {
			// Purged or invalidated while the lookup was under way.
			err = errNoEnt
		}
		if err != nil {
			// As flux-core: the lookup's errno, in strerror's words.
			_ = w.RespondError(errnoError(err))
			return
		}
		x.addWaiter(wt)
	})
}

// errNoEnt is flux-core's answer for a job that does not exist.
var errNoEnt = errnoError(fluxkit.ENOENT)

// errnoError is err's errno alone, worded as strerror(3) words it, as
// flux-core answers with an errno and no text.
func errnoError(err error) error {
	e := fluxkit.Errno(err)
	return fluxkit.Errorf(e, "%s", fluxkit.Strerror(e))
}

// visible tells whether the waiter may see j: in private mode a guest
// sees only its own jobs, and another's is as if it did not exist.
func (wt *waiter) visible(j *jobRec) bool { return !wt.restricted || j.userid == wt.owner }

func (wt *waiter) ready(j *jobRec) bool {
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

func (x *Index) answer(wt *waiter, j *jobRec) {
	if !wt.visible(j) {
		_ = wt.w.RespondError(errNoEnt)
		return
	}
	if wt.attrs.err != nil {
		_ = wt.w.RespondError(wt.attrs.err)
		return
	}
	b := append([]byte(`{"job":`), appendJob(nil, j, wt.attrs.order)...)
	_ = wt.w.Respond(append(b, '}'))
}

func (x *Index) checkWaiters(j *jobRec) {
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
		_ = wt.w.RespondError(errNoEnt)
	}
}

func (x *Index) jobStats(w fluxkit.Responder, req *fluxkit.Message) {
	if x.restricted(req) {
		_ = w.RespondError(errnoError(fluxkit.EPERM))
		return
	}
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
