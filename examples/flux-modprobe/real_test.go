package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/realflux"
)

// invokeOn runs the command against the real instance at uri, as it runs
// inside an instance: FLUX_URI set, every other variable as the test has it.
func invokeOn(t *testing.T, uri string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	lookup := func(k string) (string, bool) {
		if k == "FLUX_URI" {
			return uri, true
		}
		return os.LookupEnv(k)
	}
	var out, errb bytes.Buffer
	code := run(ctx, args, &out, &errb, lookup)
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// Inside a real instance, the commands act on it and print what flux-core's
// flux modprobe prints; removing and loading the scheduler leaves an
// instance that still runs jobs.
func TestRealInstanceCommands(t *testing.T) {
	in := realflux.Start(t, realflux.Options{Size: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	uri := in.URIs[0]
	for _, args := range [][]string{
		{"list-dependencies", "sched"},
		{"list-dependencies", "-f", "kvs-watch"},
		{"show", "sched"},
		{"show", "feasibility"},
		{"show", "-S", "sched=sched-simple", "feasibility"},
	} {
		want, err := in.Run(ctx, append([]string{"modprobe"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		r := invokeOn(t, uri, args...)
		if r.code != 0 || r.stdout != want {
			t.Errorf("%v: exit %d, stderr %q\nfluxkit:\n%s\nflux-core:\n%s", args, r.code, r.stderr, r.stdout, want)
		}
	}

	// --show-deps: the same graph; fluxkit prints it sorted and without
	// the duplicates flux-core's lists can hold.
	want, err := in.Run(ctx, "modprobe", "rc1", "--show-deps")
	if err != nil {
		t.Fatal(err)
	}
	r := invokeOn(t, uri, "rc1", "--show-deps")
	if r.code != 0 || !sameGraph(t, want, r.stdout) {
		t.Errorf("rc1 --show-deps: exit %d, stderr %q\nfluxkit:\n%s\nflux-core:\n%s", r.code, r.stderr, r.stdout, want)
	}

	loaded := func() string {
		out, err := in.Run(ctx, "module", "list")
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if r := invokeOn(t, uri, "remove", "sched-simple"); r.code != 0 {
		t.Fatalf("remove sched-simple: %+v", r)
	}
	if strings.Contains(loaded(), "sched-simple") {
		t.Fatalf("sched-simple still loaded after remove:\n%s", loaded())
	}
	if r := invokeOn(t, uri, "load", "sched-simple"); r.code != 0 {
		t.Fatalf("load sched-simple: %+v", r)
	}
	if !strings.Contains(loaded(), "sched-simple") {
		t.Fatalf("sched-simple not loaded after load:\n%s", loaded())
	}
	out, err := in.Run(ctx, "run", "hostname")
	if err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("flux run hostname after the reload: %q %v", out, err)
	}
	if r := invokeOn(t, uri, "load", "sched-simple"); r.code != 0 || !strings.Contains(r.stderr, "INFO") {
		t.Errorf("loading a loaded module: %+v", r)
	}
}

// The in-process what-if instance is chosen explicitly: outside an
// instance without --offline the command says how to choose, and the flags
// that describe the in-process instance need --offline.
func TestInstanceIsChosenExplicitly(t *testing.T) {
	r := invoke(t, nil, "show", "kvs")
	if r.code != 1 || !strings.Contains(r.stderr, "FLUX_URI is not set") || !strings.Contains(r.stderr, "--offline") {
		t.Errorf("outside an instance: %+v", r)
	}
	r = invoke(t, map[string]string{"FLUX_URI": "local:///nonexistent/fluxkit/local"}, "show", "--size", "4", "kvs")
	if r.code != 2 || r.stderr != "flux-modprobe: --size describes the in-process instance: add --offline\n" {
		t.Errorf("--size without --offline: %+v", r)
	}
	r = invoke(t, map[string]string{"FLUX_URI": "local:///nonexistent/fluxkit/local", "FLUX_LOCAL_CONNECTOR_RETRY_COUNT": "0"}, "show", "kvs")
	if r.code != 1 || !strings.Contains(r.stderr, "broker socket /nonexistent/fluxkit/local was not found") {
		t.Errorf("an instance that is not there: %+v", r)
	}
	r = invoke(t, map[string]string{"FLUX_URI": "local:///nonexistent/fluxkit/local"}, "show", "--offline", "kvs")
	if r.code != 0 {
		t.Errorf("--offline inside an instance: %+v", r)
	}
}

// sameGraph compares two predecessor maps as sets.
func sameGraph(t *testing.T, a, b string) bool {
	t.Helper()
	norm := func(s string) map[string][]string {
		var m map[string][]string
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatalf("%v: %s", err, s)
		}
		for k, v := range m {
			slices.Sort(v)
			m[k] = slices.Compact(v)
		}
		return m
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
