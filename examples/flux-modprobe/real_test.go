package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxkit/fluxkit/internal/realflux"
	"github.com/fluxkit/fluxkit/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// invokeOn runs the command against the real instance at uri, as it runs
// inside an instance: FLUX_URI set, every other variable as the test has it.
func invokeOn(t *testing.T, uri string, args ...string) result {
	t.Helper()
	ctx := testutil.ContextTimeout(t, time.Minute)
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
	ctx := testutil.ContextTimeout(t, 2*time.Minute)
	uri := in.URIs[0]
	for _, args := range [][]string{
		{"list-dependencies", "sched"},
		{"list-dependencies", "-f", "kvs-watch"},
		{"show", "sched"},
		{"show", "feasibility"},
		{"show", "-S", "sched=sched-simple", "feasibility"},
	} {
		want, err := in.Run(ctx, append([]string{"modprobe"}, args...)...)
		require.NoError(t, err)
		assert.Equal(t, result{stdout: want}, invokeOn(t, uri, args...), "%v: flux-core's output", args)
	}

	// --show-deps: the same graph; fluxkit prints it sorted and without
	// the duplicates flux-core's lists can hold.
	want, err := in.Run(ctx, "modprobe", "rc1", "--show-deps")
	require.NoError(t, err)
	r := invokeOn(t, uri, "rc1", "--show-deps")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Equal(t, graph(t, want), graph(t, r.stdout), "rc1 --show-deps: flux-core's graph")

	loaded := func() string {
		out, err := in.Run(ctx, "module", "list")
		require.NoError(t, err)
		return out
	}
	r = invokeOn(t, uri, "remove", "sched-simple")
	require.Equal(t, 0, r.code, "remove sched-simple: %s", r.stderr)
	require.NotContains(t, loaded(), "sched-simple", "after remove")
	r = invokeOn(t, uri, "load", "sched-simple")
	require.Equal(t, 0, r.code, "load sched-simple: %s", r.stderr)
	require.Contains(t, loaded(), "sched-simple", "after load")
	out, err := in.Run(ctx, "run", "hostname")
	require.NoError(t, err, "flux run hostname after the reload")
	require.NotEmpty(t, strings.TrimSpace(out), "flux run hostname after the reload")
	r = invokeOn(t, uri, "load", "sched-simple")
	assert.Equal(t, 0, r.code, "loading a loaded module")
	assert.Contains(t, r.stderr, "INFO", "loading a loaded module")
}

// The in-process what-if instance is chosen explicitly: outside an
// instance without --offline the command says how to choose, and the flags
// that describe the in-process instance need --offline.
func TestInstanceIsChosenExplicitly(t *testing.T) {
	r := invoke(t, nil, "show", "kvs")
	assert.Equal(t, 1, r.code, "outside an instance")
	assert.Contains(t, r.stderr, "FLUX_URI is not set")
	assert.Contains(t, r.stderr, "--offline")
	r = invoke(t, map[string]string{"FLUX_URI": "local:///nonexistent/fluxkit/local"}, "show", "--size", "4", "kvs")
	assert.Equal(t, result{code: 2, stderr: "flux-modprobe: --size describes the in-process instance: add --offline\n"}, r)
	r = invoke(t, map[string]string{"FLUX_URI": "local:///nonexistent/fluxkit/local", "FLUX_LOCAL_CONNECTOR_RETRY_COUNT": "0"}, "show", "kvs")
	assert.Equal(t, 1, r.code, "an instance that is not there")
	assert.Contains(t, r.stderr, "broker socket /nonexistent/fluxkit/local was not found")
	r = invoke(t, map[string]string{"FLUX_URI": "local:///nonexistent/fluxkit/local"}, "show", "--offline", "kvs")
	assert.Equal(t, 0, r.code, "--offline inside an instance: %s", r.stderr)
}

// graph decodes a predecessor map with each list as a sorted set, so that
// two maps compare as graphs.
func graph(t *testing.T, s string) map[string][]string {
	t.Helper()
	var m map[string][]string
	require.NoError(t, json.Unmarshal([]byte(s), &m), s)
	for k, v := range m {
		slices.Sort(v)
		m[k] = slices.Compact(v)
	}
	return m
}
