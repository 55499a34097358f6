package main

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

func TestTour(t *testing.T) {
	leakcheck.Check(t)
	var out, errb bytes.Buffer
	if code := run([]string{"--size", "8"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
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
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

// The instance costs what the tour uses, whatever its size.
func TestTourOfTheLargestInstance(t *testing.T) {
	leakcheck.Check(t)
	var out, errb bytes.Buffer
	if code := run([]string{"--size", "16777216", "--fanout", "16"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, want := range []string{
		"instance of 16777216 ranks, kary:16",
		"rank 15 -> parent 0",
		"... and 16777200 more ranks, created when first used",
		"attr.get size from rank 16777215 via rank 0: 16777216",
		"broker.online = 0,2-16777215",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
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
		code := run(c.args, &out, &errb)
		if code != 2 || errb.String() != "testbroker-tour: "+c.want+"\n" || out.Len() != 0 {
			t.Errorf("%q: want exit 2 and the one line %q, got %d %q %q", c.args, c.want, code, errb.String(), out.String())
		}
	}
	for _, help := range []string{"-h", "--help"} {
		var out, errb bytes.Buffer
		code := run([]string{help}, &out, &errb)
		if code != 0 || errb.Len() != 0 || !strings.HasPrefix(out.String(), "usage: testbroker-tour [OPTIONS]") || !strings.Contains(out.String(), "-fanout") {
			t.Errorf("%s: %d %q %q", help, code, out.String(), errb.String())
		}
	}
}

func TestWriteErrorFails(t *testing.T) {
	leakcheck.Check(t)
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("this test writes to /dev/full: %v", err)
	}
	defer full.Close()
	var errb bytes.Buffer
	code := run(nil, full, &errb)
	if code != 1 || errb.String() != "testbroker-tour: write /dev/full: "+syscall.ENOSPC.Error()+"\n" {
		t.Fatalf("exit %d: %q", code, errb.String())
	}
}
