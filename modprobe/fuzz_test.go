package modprobe

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The loaders must never panic or hang, whatever the input; errors must
// name a file.

func FuzzModulesFile(f *testing.F) {
	def, _ := fs.ReadFile(Defaults(), "modprobe.toml")
	f.Add(string(def))
	for _, s := range []string{
		"[[modules]]\nname = \"a\"\nrequires = [\"kvs\"]\n",
		"feasibility.ranks = \"0-1\"\nkvs.needs-config = [\"x\"]\n",
		"[alternatives]\nsched = \"sched-fifo\"\n",
		"modules = [{name = \"a\", before = [\"*\"], after = [\"b\"]}]\n",
		"[[modules]]\nname = \"kvs\"\nprovides = [\"x\", \"kvs\"]\n",
		"[kvs]\nranks = \">-5\"\npriority = 9223372036854775807\n",
		"a = \n", "[[modules]]\n[[modules.x]]\n", "kvs.args = [[1]]\n",
		"[[modules]]\nname = \"sched\"\nprovides = []\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		d := newDB()
		require.NoError(t, d.applyModulesFile("base.toml", def))
		err := d.applyModulesFile("x.toml", []byte(src))
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "x.toml"), "error does not name the file: %v", err)
			return
		}
		// Whatever loaded must plan without panicking.
		p := newPlanner(d, &facts{})
		var names []string
		for _, e := range d.entries {
			names = append(names, e.name)
		}
		if names, err = p.filterActive(names); err != nil {
			return
		}
		tasks, err := p.closure(names, false)
		if err != nil {
			return
		}
		pl, err := p.graph(tasks)
		if err != nil {
			return
		}
		_ = pl.Check()
		_ = pl.DepsJSON()
		for _, e := range d.entries {
			_ = showJSON(e)
			if _, err := dependencyTree(d, e.name, true, 0); err != nil {
				return
			}
		}
	})
}

func FuzzRCFile(f *testing.F) {
	for _, name := range []string{"rc1.toml", "rc3.toml"} {
		b, _ := fs.ReadFile(Defaults(), name)
		f.Add(string(b))
	}
	f.Add("[[tasks]]\nname = \"t\"\nbranks = \"0\"\n")
	f.Add("[setup]\nload = [\"kvs\"]\nwhen-env = [\"!X=y\"]\n")
	f.Add("[[tasks]]\nname = \"t\"\nrpc = \"a.b\"\nnodeid = -1\npayload = {x = 1}\n")
	f.Add("[[tasks]]\nname = \"t\"\nbuiltin = \"fsck\"\nwhen-env = [\"!X\"]\nwhen-attrs = [\"a=1\"]\n")
	f.Add("[[tasks]]\nname = \"t\"\nbuiltin = \"fsk\"\nrun = \"true\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		u, err := parseRCFile("rc.toml", []byte(src))
		if err != nil {
			require.True(t, strings.HasPrefix(err.Error(), "rc.toml"), "error does not name the file: %v", err)
			return
		}
		for _, e := range u.tasks {
			require.True(t, e.name != "" && e.action != nil, "task without name or action: %+v", e)
		}
	})
}

func FuzzBrokerModules(f *testing.F) {
	f.Add(`{"modules":{"feasibility":{"ranks":"0-3"},"alternatives":{"sched":"sched-fifo"}}}`)
	f.Add(`{"modules":{"kvs":{"args":null,"priority":1e300}}}`)
	f.Add(`{"modules":{"kvs":{"requires":["a",1]}}}`)
	def, _ := fs.ReadFile(Defaults(), "modprobe.toml")
	f.Fuzz(func(t *testing.T, src string) {
		d := newDB()
		require.NoError(t, d.applyModulesFile("base.toml", def))
		_ = d.applyBrokerModules([]byte(src))
	})
}

func FuzzRanks(f *testing.F) {
	for _, s := range []string{"all", ">0", "<5", "0-3,7", "", "=0", ">", "[0-2]", "1-3,2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRanks(s)
		if err != nil {
			return
		}
		r2, err := ParseRanks(r.String())
		require.NoError(t, err, "%q -> %q", s, r.String())
		require.Equal(t, r.String(), r2.String(), "%q does not round-trip", s)
	})
}
