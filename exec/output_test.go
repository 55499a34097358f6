package exec

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fluxkit/fluxkit"
)

// outputOf concatenates the bytes the exec eventlog's log events carry, by
// "<rank>/<stream>", and checks that pieces follow one another by offset:
// every byte once, in order.
func outputOf(t *testing.T, evs []Event) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, e := range evs {
		if e.Name != "log" {
			continue
		}
		k := e.Context["rank"].(string) + "/" + e.Context["stream"].(string)
		data, err := logBytes(e.Context)
		if err != nil {
			t.Fatalf("log event %v: %v", e.Context, err)
		}
		if off := int(e.Context["offset"].(float64)); off != len(out[k]) {
			t.Fatalf("%s: piece at offset %d after %d bytes", k, off, len(out[k]))
		}
		out[k] = append(out[k], data...)
	}
	return out
}

// Output is bytes: invalid UTF-8 is stored base64-encoded and comes back
// byte for byte, and a character split across two writes is kept whole as
// text.
func TestOutputBytesExact(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 1})
	id := fluxkit.JobID(33001)
	dir := t.TempDir()
	cmd := fmt.Sprintf(`printf 'a\377\376b\n'; printf 'price \342\202'; while [ ! -e %s/go ]; do sleep 0.01; done; printf '\254 each\n'; printf '\0\001\377' >&2`, dir)
	s := in.jm.start(id, in.b.OwnerID(), shellJobspec(cmd, ""), makeR("0", "n0", 0), false)
	waitFor(t, "the first write", func() bool {
		in.coord.Sync(context.Background())
		evs, _ := loadEventlog(context.Background(), in.jm.h, id)
		return len(outputOf(t, evs)["0/stdout"]) > 0
	})
	touch(t, dir+"/go")
	s.wait(t)
	evs := in.eventlog(id)
	out := outputOf(t, evs)
	if want := []byte("a\377\376b\nprice €" + " each\n"); !bytes.Equal(out["0/stdout"], want) {
		t.Fatalf("stdout %q, want %q", out["0/stdout"], want)
	}
	if want := []byte("\x00\x01\xff"); !bytes.Equal(out["0/stderr"], want) {
		t.Fatalf("stderr %q, want %q", out["0/stderr"], want)
	}
	text := false
	for _, e := range evs {
		if d, ok := e.Context["data"].(string); ok && e.Context["encoding"] == nil && strings.Contains(d, "€") {
			text = utf8.ValidString(d)
		}
	}
	if !text {
		t.Fatal("the character split across writes was not kept whole in a text event")
	}
}

// Offsets count the bytes the shell wrote, so that after a coordinator
// restart the next piece joins exactly where the stored ones end, whatever
// they contained.
func TestOutputOffsetsAcrossRestart(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2})
	id := fluxkit.JobID(33101)
	dir := t.TempDir()
	cmd := fmt.Sprintf(`head -c 1000 /dev/zero | tr '\0' '\377'; echo ünïcödé; while [ ! -e %s/go ]; do sleep 0.01; done; echo after`, dir)
	spec, R := shellJobspec(cmd, ""), makeR("0-1", "n[0-1]", 0)
	s := in.jm.start(id, in.b.OwnerID(), spec, R, false)
	want := append(bytes.Repeat([]byte{0xff}, 1000), "ünïcödé\n"...)
	waitFor(t, "output stored", func() bool {
		in.coord.Sync(context.Background())
		evs, _ := loadEventlog(context.Background(), in.jm.h, id)
		o := outputOf(t, evs)
		return slices.Contains(s.types(), "start") && bytes.Equal(o["0/stdout"], want) && bytes.Equal(o["1/stdout"], want)
	})
	in.coord.Sync(context.Background())
	in.stopCoordinator()
	in.startCoordinator(nil)
	s = in.jm.start(id, in.b.OwnerID(), spec, R, true)
	waitFor(t, "reattached", func() bool { return slices.Contains(s.types(), "reattached") })
	touch(t, dir+"/go")
	s.wait(t)
	out := outputOf(t, in.eventlog(id))
	want = append(want, "after\n"...)
	for _, k := range []string{"0/stdout", "1/stdout"} {
		if !bytes.Equal(out[k], want) {
			t.Fatalf("%s: %d bytes %q..., want %d", k, len(out[k]), out[k][max(0, len(out[k])-20):], len(want))
		}
	}
}

// Output the coordinator acknowledged before a crash is not lost when the
// job manager re-sends start without reattach: the new exec eventlog gets
// it again from the agents, who keep every byte until the job is over.
func TestOutputKeptWhenStartResent(t *testing.T) {
	checkLeaks(t)
	in := newInstance(t, instOpts{size: 2})
	id := fluxkit.JobID(33201)
	dir := t.TempDir()
	cmd := fmt.Sprintf(`echo first; while [ ! -e %s/go ]; do sleep 0.01; done; echo second`, dir)
	spec, R := shellJobspec(cmd, ""), makeR("0-1", "n[0-1]", 0)
	s := in.jm.start(id, in.b.OwnerID(), spec, R, false)
	waitFor(t, "first stored", func() bool {
		in.coord.Sync(context.Background())
		evs, _ := loadEventlog(context.Background(), in.jm.h, id)
		o := outputOf(t, evs)
		return slices.Contains(s.types(), "start") && string(o["0/stdout"]) == "first\n" && string(o["1/stdout"]) == "first\n"
	})
	in.stopCoordinator()
	in.startCoordinator(nil)
	s = in.jm.start(id, in.b.OwnerID(), spec, R, false) // the job manager never saw start
	waitFor(t, "start", func() bool { return slices.Contains(s.types(), "start") })
	touch(t, dir+"/go")
	s.wait(t)
	out := outputOf(t, in.eventlog(id))
	for _, k := range []string{"0/stdout", "1/stdout"} {
		if string(out[k]) != "first\nsecond\n" {
			t.Fatalf("%s: %q", k, out[k])
		}
	}
	for r := uint32(0); r < 2; r++ {
		if n := in.spawnCount(id, r); n != 1 {
			t.Fatalf("rank %d spawned %d shells", r, n)
		}
	}
}

func TestCompleteRunes(t *testing.T) {
	for in, want := range map[string]string{
		"abc": "abc", "a\xe2\x82": "a", "a\xe2\x82\xac": "a\xe2\x82\xac", "\xe2": "", "a\xff": "a\xff",
		"\xf0\x9f\x98": "", "x\xf0\x9f\x98\x80": "x\xf0\x9f\x98\x80", "\xff\xfe\xfd\xfc": "\xff\xfe\xfd\xfc",
	} {
		if got := string(completeRunes([]byte(in))); got != want {
			t.Errorf("completeRunes(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzLogData(f *testing.F) {
	for _, s := range []string{"", "text\n", "\xff\xfe", "€", "\xe2\x82", "\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ctx := map[string]any{}
		logData(ctx, b)
		got, err := logBytes(jsonRoundTrip(t, ctx))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%q -> %v -> %q, %v", b, ctx, got, err)
		}
	})
}
