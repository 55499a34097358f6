package main

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTour(t *testing.T) {
	leakcheck.Check(t)
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"--size", "8"}, &out, &errb), errb.String())
	text := out.String()
	for _, want := range []string{
		"instance of 8 ranks, kary:2",
		"rank 7 -> parent 3",
		"attr.get size from rank 7 via rank 0: 8",
		"streamed 100000 responses from rank 1",
		"guest module.load: Request requires owner credentials",
		`event tour.hello seq 1 payload {"from":1}`,
		"broker.online = 0,2-7",
		"rank 1 restarted: ping -> <nil>; broker.online = 0-7",
	} {
		assert.Contains(t, text, want)
	}
}

// The instance costs what the tour uses, whatever its size.
func TestTourOfTheLargestInstance(t *testing.T) {
	leakcheck.Check(t)
	var out, errb bytes.Buffer
	require.Equal(t, 0, run([]string{"--size", "16777216", "--fanout", "16"}, &out, &errb), errb.String())
	for _, want := range []string{
		"instance of 16777216 ranks, kary:16",
		"rank 15 -> parent 0",
		"... and 16777200 more ranks, created when first used",
		"attr.get size from rank 16777215 via rank 0: 16777216",
		"broker.online = 0,2-16777215",
	} {
		assert.Contains(t, out.String(), want)
	}
}

func TestCommandLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--fanout", "0"}, "--fanout 0: want at least 1"},
		{[]string{"--fanout", "-3"}, "--fanout -3: want at least 1"},
		{[]string{"--size", "2"}, "--size 2: want 3 to 16777216 ranks"},
		{[]string{"--size", "16777217"}, "--size 16777217: want 3 to 16777216 ranks"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		var out, errb bytes.Buffer
		assert.Equal(t, 2, run(c.args, &out, &errb), "%q", c.args)
		assert.Equal(t, "testbroker-tour: "+c.want+"\n", errb.String(), "%q: one line", c.args)
		assert.Empty(t, out.String(), "%q", c.args)
	}
	for _, help := range []string{"-h", "--help"} {
		var out, errb bytes.Buffer
		assert.Equal(t, 0, run([]string{help}, &out, &errb), help)
		assert.Empty(t, errb.String(), help)
		assert.True(t, strings.HasPrefix(out.String(), "usage: testbroker-tour [OPTIONS]"), "%s: %s", help, out.String())
		assert.Contains(t, out.String(), "-fanout", help)
	}
}

func TestWriteErrorFails(t *testing.T) {
	leakcheck.Check(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	require.NoError(t, err, "this test writes to /dev/full")
	defer full.Close()
	var errb bytes.Buffer
	assert.Equal(t, 1, run(nil, full, &errb))
	assert.Equal(t, "testbroker-tour: write /dev/full: "+syscall.ENOSPC.Error()+"\n", errb.String())
}
