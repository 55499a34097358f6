package exec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// drainOut consumes a stream the way an agent does, acknowledging each chunk,
// and records the buffer's peak size.
func drainOut(b *outBuf, chunk int) (data []byte, peak int) {
	var off int64
	for {
		b.waitData(off, nil)
		d, eof := b.peek(off, chunk)
		_, end, _ := b.state()
		acked, _, _ := b.state()
		peak = max(peak, int(end-acked))
		data = append(data, d...)
		off += int64(len(d))
		b.ack(off)
		if eof {
			return data, peak
		}
	}
}

func waitDone(t *testing.T, p proc) {
	t.Helper()
	select {
	case <-p.done():
	case <-time.After(20 * time.Second):
		t.Fatal("process not reaped")
	}
}

func groupGone(t *testing.T, pgid int) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process group %d still has members", pgid)
}

func TestForkOutputAndStatus(t *testing.T) {
	p, err := forkSpawn(spawnSpec{argv: []string{"/bin/sh", "-c", `printf out; echo err >&2; echo "$FOO"; exit 3`},
		env: []string{"FOO=bar"}, outLimit: 4096})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan []byte, 1)
	go func() { d, _ := drainOut(p.output(streamStderr), 7); errc <- d }()
	out, _ := drainOut(p.output(streamStdout), 7)
	waitDone(t, p)
	if string(out) != "outbar\n" || string(<-errc) != "err\n" {
		t.Fatalf("stdout %q", out)
	}
	if p.status() != 3<<8 {
		t.Fatalf("status %d", p.status())
	}
	groupGone(t, p.pgid)
}

// A shell printing far more than the buffer holds is slowed, not dropped,
// and memory stays bounded (I6, back-pressure).
func TestForkBackPressure(t *testing.T) {
	const total = 2 << 20
	const limit = 64 << 10
	p, err := forkSpawn(spawnSpec{argv: []string{"/bin/sh", "-c", "head -c 2097152 /dev/urandom | tee /dev/stderr"}, outLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		d    []byte
		peak int
	}
	errc := make(chan res, 1)
	go func() { d, pk := drainOut(p.output(streamStderr), 5000); errc <- res{d, pk} }()
	out, peak := drainOut(p.output(streamStdout), 5000)
	e := <-errc
	waitDone(t, p)
	if len(out) != total || !bytes.Equal(out, e.d) {
		t.Fatalf("stdout %d bytes, stderr %d bytes, equal %v", len(out), len(e.d), bytes.Equal(out, e.d))
	}
	if peak > limit || e.peak > limit {
		t.Fatalf("buffer peaked at %d/%d bytes, limit %d", peak, e.peak, limit)
	}
}

func TestForkKillGroup(t *testing.T) {
	p, err := forkSpawn(spawnSpec{argv: []string{"/bin/sh", "-c", "trap '' TERM; sleep 100 & sleep 100; wait"}, outLimit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	go drainOut(p.output(streamStdout), 1024)
	go drainOut(p.output(streamStderr), 1024)
	time.Sleep(50 * time.Millisecond)
	if err := p.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if ws := syscall.WaitStatus(p.status()); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("status %#x", p.status())
	}
	groupGone(t, p.pgid)
	if err := p.signal(syscall.SIGTERM); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("signal after reap: %v", err)
	}
}

func TestForkSpawnErrors(t *testing.T) {
	_, err := forkSpawn(spawnSpec{argv: []string{"/nonexistent/shell"}, outLimit: 1})
	if spawnErrno(err) != syscall.ENOENT {
		t.Fatalf("ENOENT: %v -> %v", err, spawnErrno(err))
	}
	f := filepath.Join(t.TempDir(), "noexec")
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = forkSpawn(spawnSpec{argv: []string{f}, outLimit: 1})
	if spawnErrno(err) != syscall.EACCES {
		t.Fatalf("EACCES: %v -> %v", err, spawnErrno(err))
	}
}
