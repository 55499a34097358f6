package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

func TestDemo(t *testing.T) {
	leakcheck.Check(t)
	var out, errs bytes.Buffer
	if code := run(context.Background(), nil, &out, &errs); code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	text := out.String()
	for _, want := range []string{`"name":"hostname"`, `"name":"false"`, `"name":"sleep"`, `"nodelist":"node0"`, "job_states:", "inactive:2", "sched:1", "total:3"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
	if errs.Len() != 0 {
		t.Errorf("stderr: %s", errs.String())
	}
}

// The command line convention: help on stdout with exit 0, a usage error
// as one line on stderr with exit 2, a failure as one line with exit 1.
func TestCommandLine(t *testing.T) {
	leakcheck.Check(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range []struct {
		ctx       context.Context
		args      []string
		code      int
		out, errs string // prefixes; errs is exactly one line
	}{
		{context.Background(), []string{"--help"}, 0, "Usage: journal-demo", ""},
		{context.Background(), []string{"-h"}, 0, "Usage: journal-demo", ""},
		{context.Background(), []string{"-help"}, 0, "Usage: journal-demo", ""},
		{context.Background(), []string{"--size", "3"}, 2, "", "journal-demo: flag provided but not defined: -size\n"},
		{context.Background(), []string{"extra"}, 2, "", "journal-demo: unexpected argument \"extra\"\n"},
		{cancelled, nil, 1, "", "journal-demo: "},
	} {
		var out, errs bytes.Buffer
		code := run(c.ctx, c.args, &out, &errs)
		if code != c.code {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.args, code, c.code, errs.String())
		}
		if !strings.HasPrefix(out.String(), c.out) || (c.out == "" && out.Len() != 0) {
			t.Errorf("%q: stdout %q", c.args, out.String())
		}
		e := errs.String()
		if !strings.HasPrefix(e, c.errs) || (c.errs == "" && e != "") || (e != "" && strings.Count(e, "\n") != 1) || (e != "" && !strings.HasSuffix(e, "\n")) {
			t.Errorf("%q: stderr %q", c.args, e)
		}
	}
}
