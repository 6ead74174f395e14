package main

import (
	"context"
	"fmt"

	"github.com/authrelay/authrelay/internal/buildinfo"
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

// readVersion reads the version from the linker flag or the build info
// (buildinfo.Read).
func readVersion() buildVersion {
	i := buildinfo.Read(version)
	return buildVersion{Version: i.Version, Revision: i.Revision, Time: i.Time, Modified: i.Modified, Go: i.Go}
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
