package exec

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit"
)

// The hand-written codecs must be indistinguishable from encoding/json:
// encoders byte for byte, decoders in result and in failing exactly when
// it fails.

func FuzzCodecReport(f *testing.F) {
	seeds := []string{
		`{}`, `{"started":"0"}`, `{"exited":[{"ranks":"0-3","status":0}],"released":"0-3"}`,
		`{"failed":[{"rank":3,"errno":2,"msg":"no such file"}],"lost":"4"}`,
		`{"barrier":1,"barrier_fail":true,"barriers":2,"barrier_queried":true,"barrier_pending":"1,3","barrier_timeout":true}`,
		`{"exited":[{"ranks":"2,7","status":256}],"unentered":"7"}`,
		`{"epilog_failed":[{"rank":1,"errno":0,"msg":"epilog on rank 1: wait status 256"}]}`,
		` { "started" : "0" , "adopted":"1" } `, `{"started":"0","started":"1"}`, `{"Started":"0"}`,
		`{"started":null}`, `{"started":"\u0030"}`, `{"started":"ƒ"}`, `{"barrier":1.0}`, `{"barrier":1e2}`,
		`{"barrier":-0}`, `{"barrier":01}`, `{"barrier":99999999999999999999}`, `{"exited":[]}`, `{"failed":null}`,
		`{"failed":[{"rank":-1}]}`, `{"failed":[{"rank":4294967296}]}`, `{"x":1}`, `{"started":"0"} x`, `[]`, ``,
		`{"exited":[{"ranks":"0","status":1,"status":2}]}`, `{"barrier_fail":True}`, "{\"lost\":\"a\x01\"}",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, std report
		ferr := decodeReport(b, &fast)
		serr := json.Unmarshal(b, &std)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("%q: decodeReport error %v, json.Unmarshal error %v", b, ferr, serr)
		}
		if serr != nil {
			return
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: decodeReport %+v, json.Unmarshal %+v", b, fast, std)
		}
		want, _ := json.Marshal(&std)
		if got := encodeReport(&std); !bytes.Equal(got, want) {
			t.Fatalf("encodeReport %s, json.Marshal %s", got, want)
		}
	})
}

func FuzzCodecLaunch(f *testing.F) {
	full := encodeLaunch(&launchReq{ID: 1 << 40, Userid: 1000, Ranks: "0-1023", Fanout: 8, Method: MethodBulkExec,
		Argv: []string{"/bin/sh", "-c", "echo <&>"}, Env: map[string]string{"B": "2", "A": "é"}, Epilog: []string{"ep"},
		Test: &testWire{RunDuration: time.Second, WaitStatus: 256}, Reattach: true, Resume: true, Service: "job-exec", Coord: 0,
		Barriers: true, BarrierTimeout: time.Minute, Shell: true, Multiuser: true})
	seeds := []string{
		string(full),
		`{"id":1,"userid":0,"ranks":"0","fanout":2,"method":"testexec","test":{"run_duration":10000,"wait_status":0},"service":"job-exec","coord":0}`,
		`{"id":-1,"ranks":"0"}`, `{"id":"ƒ2","ranks":"0"}`, `{"id":18446744073709551616}`, `{"env":{"a":"1","a":"2"}}`,
		`{"env":{}}`, `{"argv":[]}`, `{"argv":null}`, `{"test":{}}`, `{"test":null}`, `{"test":{"run_duration":1.5}}`,
		`{"fanout":-3}`, `{"userid":-1}`, `{"coord":4294967295}`, `{"reattach":false,"barriers":true}`, `{"ID":1}`,
		`{"barrier_timeout":100000000000000000}`, `{"env":{"k":1}}`, `{"argv":["a",1]}`, `{`, `null`,
		`{"shell":true,"multiuser":false}`, `{"multiuser":1}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &fluxkit.Message{Topic: "exec-agent.launch", Payload: b}
		var fast, std launchReq
		ferr := decodeLaunch(req, &fast)
		serr := fluxkit.DecodePayload(req, &std)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("%q: decodeLaunch error %v, DecodePayload error %v", b, ferr, serr)
		}
		if serr != nil {
			return
		}
		if !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: decodeLaunch %+v, DecodePayload %+v", b, fast, std)
		}
		want, _ := json.Marshal(&std)
		if got := encodeLaunch(&std); !bytes.Equal(got, want) {
			t.Fatalf("encodeLaunch %s, json.Marshal %s", got, want)
		}
	})
}

func FuzzCodecEvents(f *testing.F) {
	f.Add(1.7e9+0.123456, "log", "data", "hello\n", 3, 0.5, true, uint32(7))
	f.Add(0.0, "", "", "", 0, 0.0, false, uint32(0))
	f.Add(1e21, "<x>", "k&", "\xff\u2028", -1, 1e-7, true, uint32(1<<31))
	f.Add(math.NaN(), "n", "a", "b", 1, math.Inf(1), false, uint32(1))
	f.Add(123.0, "complete", "status", "ƒ", 256, -2.5e-6, false, uint32(9))
	f.Fuzz(func(t *testing.T, stamp float64, name, key, sval string, n int, fl float64, flag bool, u uint32) {
		ctx := map[string]any{key: sval, "n": n, "f": fl, "flag": flag, "u": u, "nil": nil, "i64": int64(n),
			"nested": map[string]any{"s": sval, "f": fl}, "list": []any{sval, fl}, "ranks": []uint32{u}}
		evs := []Event{{Timestamp: stamp, Name: name, Context: ctx}, {Timestamp: fl, Name: sval}, {Timestamp: stamp, Name: key, Context: map[string]any{}}}
		got, gerr := appendEvents(nil, evs)
		want, werr := json.Marshal(evs)
		if (gerr == nil) != (werr == nil) || (werr == nil && !bytes.Equal(got, want)) {
			t.Fatalf("appendEvents %s (%v), json.Marshal %s (%v)", got, gerr, want, werr)
		}
		if got, _ := appendEvents(nil, nil); string(got) != "null" {
			t.Fatalf("appendEvents(nil) = %s", got)
		}
		r := Response{ID: fluxkit.JobID(u), Type: name, Data: ctx}
		got, gerr = encodeResponse(&r)
		want, werr = json.Marshal(r)
		if (gerr == nil) != (werr == nil) || (werr == nil && !bytes.Equal(got, want)) {
			t.Fatalf("encodeResponse %s (%v), json.Marshal %s (%v)", got, gerr, want, werr)
		}
		for _, r := range []Response{{ID: fluxkit.JobIDAny, Type: "x"}, {ID: 5, Type: sval, Data: map[string]any{}}} {
			got, _ := encodeResponse(&r)
			if want, _ := json.Marshal(r); !bytes.Equal(got, want) {
				t.Fatalf("encodeResponse %s, json.Marshal %s", got, want)
			}
		}
		fr := forgetReq{ID: fluxkit.JobID(n), Ranks: sval, Fanout: n}
		if want, _ := json.Marshal(fr); !bytes.Equal(encodeForget(&fr), want) {
			t.Fatalf("encodeForget %s, json.Marshal %s", encodeForget(&fr), want)
		}
	})
}

func FuzzCodecR(f *testing.F) {
	for _, s := range []string{
		makeR("0", "n0", 0), makeR("0-1023", "n[0-1023]", 3600.5), makeR("1,3", "a,b", -1),
		`{"version":1,"execution":{"R_lite":[{"rank":"0","children":{"core":"0-3","gpu":[0,1.5e3,-2,true,null,"x"]}}],"properties":{"a":"0"}}}`,
		`{"version":1,"execution":{"R_lite":[]},"extra":[[[]]]}`, `{"VERSION":1}`, `{"version":1,"execution":{"r_lite":[]}}`,
		`{"version":1,"execution":{"expiration":1e999}}`, `{"version":1,"execution":{"expiration":"x"}}`,
		`{"version":1,"execution":{"starttime":01}}`, `{"version":1,"execution":{"nodelist":null}}`,
		`{"version":1,"execution":null}`, `{"version":1,"version":2}`, `{"version":1.0}`, `{"x":{"y":-}}`,
		`{"x":"\u00e9"}`, `{"version":1,"execution":{"R_lite":[{"rank":"0","rank":"1"}]}}`, `{} {}`, `[`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, std rJSON
		ferr := decodeR(b, &fast)
		serr := json.Unmarshal(b, &std)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("%q: decodeR error %v, json.Unmarshal error %v", b, ferr, serr)
		}
		if serr == nil && !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: decodeR %+v, json.Unmarshal %+v", b, fast, std)
		}
	})
}

func FuzzCodecForget(f *testing.F) {
	for _, s := range []string{`{"id":1,"ranks":"0-3","fanout":2}`, `{"id":"ƒ2"}`, `{"id":1,"id":2}`, `{"Ranks":"0"}`,
		`{"fanout":1.5}`, `{"ranks":null}`, ``, `{"id":18446744073709551615}`, `{"id":-1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &fluxkit.Message{Topic: "exec-agent.forget", Payload: b}
		var fast, std forgetReq
		ferr := decodeForget(req, &fast)
		serr := fluxkit.DecodePayload(req, &std)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("%q: decodeForget error %v, DecodePayload error %v", b, ferr, serr)
		}
		if serr == nil && fast != std {
			t.Fatalf("%q: decodeForget %+v, DecodePayload %+v", b, fast, std)
		}
	})
}

func FuzzCodecJobspec(f *testing.F) {
	for _, s := range []string{
		testJobspec(`{"run_duration":"0.00001s"}`), testJobspec(`{"run_duration":"1m","wait_status":256,"override":1,"mock_exception":"run"}`),
		`{"version":1,"resources":[{"type":"node","count":1,"with":[{"type":"slot","count":1,"label":"task"}]}],"tasks":[{"command":["/bin/true"],"slot":"task","count":{"per_slot":1}}],"attributes":{"system":{"duration":0,"environment":{"A":"1"},"exec":{"job_shell":"/bin/sh","bulkexec":{"barrier-timeout":5}}}}}`,
		`{"attributes":{"system":{"duration":"5m"}}}`, `{"attributes":{"system":{"duration":true}}}`, `{"attributes":{"system":{"duration":null}}}`,
		`{"attributes":{"system":{"Exec":{"test":{}}}}}`, `{"attributes":{"system":{"exec":{"test":null}}}}`, `{"attributes":{"system":{"exec":{"a":1,"a":2}}}}`,
		`{"attributes":{"system":{"environment":{"A":"1","A":"2"}}}}`, `{"tasks":[{"command":["a"],"Command":["b"]}]}`, `{"tasks":null}`, `{"tasks":[]}`,
		`{"attributes":{"system":{"exec":{"test":{"run_duration":"\u0031s"}}}}}`, `{"attributes":{"system":{"duration":1e999}}}`, `{"attributes":[]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast, std jobspecJSON
		ferr := decodeJobspec(b, &fast)
		serr := json.Unmarshal(b, &std)
		if (ferr == nil) != (serr == nil) {
			t.Fatalf("%q: decodeJobspec error %v, json.Unmarshal error %v", b, ferr, serr)
		}
		if serr == nil && !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: decodeJobspec %+v, json.Unmarshal %+v", b, fast, std)
		}
		// The test block alone, as parseTestConf reads it.
		if ftc, ok := fastTestConf(b, time.Second); ok {
			stc, err := slowTestConf(b, time.Second)
			if err != nil || *ftc != *stc {
				t.Fatalf("%q: fastTestConf %+v, slowTestConf %+v (%v)", b, *ftc, stc, err)
			}
		}
	})
}

func FuzzCodecStart(f *testing.F) {
	for _, s := range []string{
		`{"R":` + makeR("0", "n0", 0) + `,"id":1000,"jobspec":` + testJobspec(`{"run_duration":"0.00001s"}`) + `,"reattach":false,"userid":1000}`,
		`{"id":1,"userid":0,"jobspec":{},"R":{},"reattach":true}`, `{"id":"ƒ2","userid":1}`, `{"id":1,"userid":-1}`,
		`{"jobspec":null}`, `{"jobspec":[1]}`, `{"jobspec":"x"}`, `{"R":{"a":"\u00e9"}}`, `{"r":{}}`, `{"id":1,"id":2}`,
		`{"jobspec":{"a":{"b":{"c":{}}}}}`, `{"userid":4294967296}`, `{"reattach":1}`, ``, `{`, `{"jobspec":{} }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := &fluxkit.Message{Topic: "job-exec.start", Payload: b}
		var fast, std startReq
		ferr := decodeStart(req, &fast)
		serr := fluxkit.DecodePayload(req, &std)
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("%q: decodeStart error %v, DecodePayload error %v", b, ferr, serr)
		}
		if serr == nil && !reflect.DeepEqual(fast, std) {
			t.Fatalf("%q: decodeStart %+v, DecodePayload %+v", b, fast, std)
		}
	})
}
