package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

func TestDemo(t *testing.T) {
	leakcheck.Check(t)
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{`"name":"hostname"`, `"name":"false"`, `"name":"sleep"`, `"nodelist":"node0"`, "job_states:", "inactive:2", "sched:1", "total:3"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}
