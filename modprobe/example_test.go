package modprobe_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fluxkit/fluxkit"
	"github.com/fluxkit/fluxkit/internal/testbroker"
	"github.com/fluxkit/fluxkit/modprobe"
)

// A dry run of the embedded rc1 on rank 1 of a two-rank instance: the
// modules every rank loads, in an order the graph allows (job-info and
// job-ingest are not ordered after anything loaded on rank 1; kvs waits
// for content).
func Example() {
	b, err := testbroker.Start(testbroker.Config{Size: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	m, err := modprobe.New(b.Owner(1), modprobe.Config{
		DryRun:    true,
		ConfDir:   "/nonexistent",
		LookupEnv: func(string) (string, bool) { return "", false },
		Stdout:    os.Stdout,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if _, err := m.RC1(context.Background()); err != nil {
		fmt.Println(err)
	}
	// Output:
	// load content
	// load heartbeat
	// load job-info
	// load job-ingest
	// load kvs
	// load kvs-watch
	// load resource
	// run run-all-rc1
}

// Go tasks ordered with before and after; "*" puts a task before every
// other one.
func ExampleModprobe_Run() {
	b, _ := testbroker.Start(testbroker.Config{})
	defer b.Close()
	m, _ := modprobe.New(b.Owner(0), modprobe.Config{Stdout: os.Stdout, ConfDir: "/nonexistent"})
	say := func(s string) func(context.Context, *modprobe.Context) error {
		return func(_ context.Context, c *modprobe.Context) error {
			_, err := fmt.Fprintln(c.Stdout(), s)
			return err
		}
	}
	_, err := m.Run(context.Background(), modprobe.RC{Tasks: []modprobe.Task{
		{Name: "last", After: []string{"middle"}, Run: say("last")},
		{Name: "middle", Run: say("middle")},
		{Name: "first", Before: []string{"*"}, Run: say("first")},
	}})
	fmt.Println(err)
	// Output:
	// first
	// middle
	// last
	// <nil>
}

// Execute runs any predecessor map; the report gives the makespan and the
// critical path.
func ExampleExecute() {
	preds := map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}}
	rep, err := modprobe.Execute(context.Background(), preds, modprobe.ExecConfig{}, func(_ context.Context, name string) error {
		return nil
	})
	fmt.Println(err, len(rep.Tasks), len(rep.Skipped))
	// Output: <nil> 4 0
}

// A declarative rc file with a built-in action and a run-time condition:
// fsck checks nothing on a first start (there is no KVS checkpoint yet),
// and the announcement is made unless QUIET is set when it runs.
func ExampleModprobe_PrepareRunFile() {
	b, _ := testbroker.Start(testbroker.Config{})
	defer b.Close()
	// The in-process broker has no content module: answer as one does
	// before the first checkpoint.
	_, _ = b.Owner(0).Register("content.checkpoint-get", 0, func(_ context.Context, w fluxkit.Responder, _ *fluxkit.Message) {
		_ = w.RespondError(fluxkit.Errorf(fluxkit.ENOENT, "no checkpoint"))
	})
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "rc.toml")
	_ = os.WriteFile(file, []byte(`
[[tasks]]
name = "fsck"
builtin = "fsck"

[[tasks]]
name = "announce"
after = ["fsck"]
when-env = ["!QUIET"]
print = "content checked"
`), 0o644)
	m, _ := modprobe.New(b.Owner(0), modprobe.Config{
		Stdout:    os.Stdout,
		ConfDir:   "/nonexistent",
		LookupEnv: func(string) (string, bool) { return "", false },
	})
	ctx := context.Background()
	s, err := m.PrepareRunFile(ctx, file)
	if err != nil {
		fmt.Println(err)
		return
	}
	rep, err := s.Execute(ctx)
	fmt.Println(err, len(rep.Tasks))
	// Output:
	// content checked
	// <nil> 2
}

// A rank condition says where a task or module runs.
func ExampleParseRanks() {
	for _, cond := range []string{"all", ">0", "<2", "0,5,7"} {
		r := modprobe.MustParseRanks(cond)
		fmt.Printf("%-5s rank0=%t rank1=%t rank5=%t\n", r, r.Contains(0), r.Contains(1), r.Contains(5))
	}
	_, err := modprobe.ParseRanks(">=1")
	fmt.Println(err)
	_, err = modprobe.ParseRanks("1-0")
	fmt.Println(err)
	// Output:
	// all   rank0=true rank1=true rank5=true
	// >0    rank0=false rank1=true rank5=true
	// <2    rank0=true rank1=true rank5=false
	// 0,5,7 rank0=true rank1=false rank5=true
	// invalid literal for int() with base 10: '=1'
	// ranks: invalid idset: 1-0
}
