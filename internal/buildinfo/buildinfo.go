// Package buildinfo reads what a binary knows of its own build: the
// module version, the VCS revision and time, and the Go version.
package buildinfo

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
)

// Info is a build's version.
type Info struct {
	// Version is the version given (-ldflags "-X main.version=..."), or,
	// when that is "dev", the module version of a tagged build.
	Version  string
	Revision string // vcs.revision
	Time     string // vcs.time
	Modified bool   // vcs.modified: the tree had uncommitted changes
	Go       string
}

// Read returns the running binary's build info, version being the one the
// binary was given ("dev" when none).
func Read(version string) Info {
	v := Info{Version: version, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if v.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// ServiceVersion returns v as the semantic version a NATS micro service
// must have: v without a leading "v" when it is one, else 0.0.0-dev.
func ServiceVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semver.MatchString(v) {
		return v
	}
	return "0.0.0-dev"
}

// semver is semver.org's regular expression.
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
