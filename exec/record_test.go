package exec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A record reads back what was appended; a line cut short by a crash is
// not read; a record without its launch line is removed (nothing was
// started for it); one that cannot be read is reported and left in place.
func TestRecords(t *testing.T) {
	dir := t.TempDir()
	lr := launchReq{ID: 77, Userid: 5, Ranks: "3-4", Fanout: 8, Method: MethodBulkExec, Argv: []string{"/bin/true"}, Service: "job-exec"}
	r, err := createRecord(dir, &lr, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := createRecord(dir, &lr, 3, ""); err == nil {
		t.Fatal("a second record for the same shell")
	}
	if err := r.setPid(1234, 99); err != nil {
		t.Fatal(err)
	}
	if err := r.setBarriers(1); err != nil {
		t.Fatal(err)
	}
	if err := r.setBarriers(2); err != nil {
		t.Fatal(err)
	}
	if err := r.setStatus(256); err != nil {
		t.Fatal(err)
	}
	appendRaw := func(d, s string) {
		f, err := os.OpenFile(filepath.Join(d, recordName), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	appendRaw(r.dir, "released") // no newline: cut short
	// Another job's record without its launch line, and a corrupt one.
	noLaunch := recordDir(dir, 78, 3)
	if err := os.Mkdir(noLaunch, 0o700); err != nil {
		t.Fatal(err)
	}
	lr.ID = 79
	bad, err := createRecord(dir, &lr, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	appendRaw(bad.dir, "pid x\n")
	// And one for rank 4, not this rank's.
	if _, err := createRecord(dir, &lr, 4, ""); err != nil {
		t.Fatal(err)
	}

	recs, errs := loadRecords(dir, 3)
	if len(recs) != 1 || len(errs) != 1 || !strings.Contains(errs[0].Error(), `pid line "x"`) {
		t.Fatalf("records %v errors %v", recs, errs)
	}
	got := recs[0].rec
	if got.Launch.ID != 77 || got.Pid != 1234 || got.Start != 99 || got.Barriers != 2 || got.Status == nil ||
		*got.Status != 256 || got.Released || got.Launch.Argv[0] != "/bin/true" {
		t.Fatalf("read back %+v", got)
	}
	if _, err := os.Stat(noLaunch); !os.IsNotExist(err) {
		t.Fatal("a record without a launch was kept")
	}
	if _, err := os.Stat(bad.dir); err != nil {
		t.Fatal("an unreadable record was removed")
	}
}

func FuzzRecordRead(f *testing.F) {
	for _, s := range []string{
		"launch {\"id\":1,\"ranks\":\"0\",\"fanout\":8,\"method\":\"bulk-exec\",\"service\":\"x\",\"coord\":0}\npid 5 6\nstatus 0\nreleased\nbarriers 2\n",
		"pid 1\n", "launch {\n", "status\n", "\n", "launch null\npid 1 2 3\n", "bogus\n", "launch {}\nstatus 1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, recordName), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &record{dir: dir}
		if err := r.read(0); err == nil && r.rec.Pid < 0 {
			t.Fatalf("%q: pid %d", s, r.rec.Pid)
		}
	})
}
