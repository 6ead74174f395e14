package main

import (
	"context"
	"fmt"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=..."; when it
// is not, the module version from the build info is used.
var version = "dev"

// buildVersion is what 'authrelay version' prints.
type buildVersion struct {
	Version  string `json:"version"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// readVersion reads the version from the linker flag or the build info: the
// module version (a tagged install), the VCS revision and time, and whether
// the tree had uncommitted changes.
func readVersion() buildVersion {
	v := buildVersion{Version: version, Go: runtime.Version()}
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

func (m *Main) runVersion(_ context.Context, args []string) error {
	fs := m.newFlagSet("version", `
Usage: authrelay version [--json]

Prints authrelay's version: the module version of a tagged build (or the
one given with -ldflags "-X main.version=..."; "dev" otherwise), the VCS
revision and commit time it was built from, "+modified" if the tree had
uncommitted changes, and the Go version. 'authrelay --version' is the same.

Examples:

  authrelay version
  authrelay version --json
`)
	asJSON := fs.Bool("json", false, "print a JSON object")
	if err := parseNoArgs(fs, args, "version"); err != nil {
		return err
	}
	v := readVersion()
	if *asJSON {
		return writeJSON(m.Stdout, v)
	}
	line := "authrelay " + v.Version
	if v.Revision != "" {
		line += " (" + v.Revision
		if v.Modified {
			line += "+modified"
		}
		if v.Time != "" {
			line += ", " + v.Time
		}
		line += ")"
	}
	fmt.Fprintf(m.Stdout, "%s %s\n", line, v.Go)
	return nil
}

// serviceVersion turns the build's version into the semantic version a
// micro service must report: "v1.2.3" → "1.2.3", anything else
// (a development build) → "0.0.0-dev".
func serviceVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	if semver.MatchString(v) {
		return v
	}
	return "0.0.0-dev"
}

// semver is the semantic version syntax nats.go's micro package accepts
// (https://semver.org).
var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
