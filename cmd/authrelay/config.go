package main

import (
	"errors"
	"flag"

	"github.com/authrelay/authrelay/deploy"
)

// serveConfigFile is the optional file in DIR that sets serve flags.
const serveConfigFile = deploy.SettingsFile

// applyFlagDefaults fills in the flags of fs that the command line did not
// set, from the environment and DIR/authrelay.conf (deploy.ApplySettings),
// and returns what it applied, for the log. A bad setting is a usage
// error.
func (m *Main) applyFlagDefaults(fset *flag.FlagSet, dir string) ([]string, error) {
	applied, err := deploy.Layout{Dir: dir}.ApplySettings(fset, m.Getenv)
	if errors.Is(err, deploy.ErrInvalid) {
		return nil, &usageError{msg: err.Error()}
	}
	return applied, err
}
