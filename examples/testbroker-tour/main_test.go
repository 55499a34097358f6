package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fluxkit/fluxkit/internal/leakcheck"
)

func TestTour(t *testing.T) {
	leakcheck.Check(t)
	var out bytes.Buffer
	if err := run(&out, 8, 2); err != nil {
		t.Fatal(err)
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
	if err := run(&out, 2, 2); err == nil {
		t.Error("size 2 accepted")
	}
}
