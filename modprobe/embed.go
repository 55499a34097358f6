package modprobe

import (
	"embed"
	"io/fs"
)

//go:embed defaults/modprobe.toml defaults/rc1.toml defaults/rc3.toml
var defaultFiles embed.FS

// Defaults is the embedded default configuration: modprobe.toml (flux-core's
// module table), rc1.toml and rc3.toml (flux-core's rc1.py and rc3.py task
// graphs as declarative tasks).
func Defaults() fs.FS {
	sub, _ := fs.Sub(defaultFiles, "defaults") // a literal, valid path
	return sub
}
