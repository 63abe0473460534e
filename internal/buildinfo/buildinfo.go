// Package buildinfo says which build of OctoStore is running. The version is
// set at link time (-ldflags "-X .../internal/buildinfo.version=v1.2.3"); a
// plain `go build` or `go run` falls back to the VCS revision Go stamps into
// the binary, then to "dev".
package buildinfo

import (
	"runtime/debug"
	"sync"
)

// version is overridden at link time by the Makefile.
var version = ""

var resolved = sync.OnceValue(func() string {
	bi, _ := debug.ReadBuildInfo()
	return resolve(version, bi)
})

// Version returns the build's version string; it never returns "". It is
// safe for concurrent use.
func Version() string { return resolved() }

func resolve(linked string, bi *debug.BuildInfo) string {
	if linked != "" {
		return linked
	}
	if bi == nil {
		return "dev"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "dev-" + rev
}
