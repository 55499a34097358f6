package modprobe

import (
	"io/fs"
	"testing/fstest"
)

// memFS is an in-memory file system for tests: name -> content.
type memFS map[string]string

func (m memFS) Open(name string) (fs.File, error) {
	f := fstest.MapFS{}
	for k, v := range m {
		f[k] = &fstest.MapFile{Data: []byte(v)}
	}
	return f.Open(name)
}
