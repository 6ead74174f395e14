package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/authrelay/authrelay/deploy"
)

// serveConfigFile is the optional file in DIR that sets serve flags.
const serveConfigFile = "authrelay.conf"

// envName is the environment variable that sets the flag name, e.g.
// AUTHRELAY_SESSION_TTL for --session-ttl.
func envName(flagName string) string {
	return "AUTHRELAY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// applyFlagDefaults fills in the flags of fs that the command line did not
// set: first from the environment (AUTHRELAY_FLAG_NAME), then from
// DIR/authrelay.conf, whose lines are 'flag-name = value' ('#' starts a
// comment). The command line wins over the environment, which wins over the
// file. It returns what it applied, as "flag (source)", for the log.
func (m *Main) applyFlagDefaults(fset *flag.FlagSet, dir string) ([]string, error) {
	given := setFlags(fset)
	var applied []string
	fromFile, err := readFlagFile(deploy.Layout{Dir: dir}.Path(serveConfigFile))
	if err != nil {
		return nil, err
	}
	var errs []error
	fset.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || f.Name == "dir" {
			return
		}
		if v := m.Getenv(envName(f.Name)); v != "" {
			if err := fset.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("$%s=%q: %v", envName(f.Name), v, err))
			}
			applied = append(applied, f.Name+" ($"+envName(f.Name)+")")
			return
		}
		if v, ok := fromFile[f.Name]; ok {
			if err := fset.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s = %q: %v", serveConfigFile, f.Name, v, err))
			}
			applied = append(applied, f.Name+" ("+serveConfigFile+")")
		}
	})
	for name := range fromFile {
		if fset.Lookup(name) == nil {
			errs = append(errs, fmt.Errorf("%s: unknown setting %q: use the names of serve's flags without the dashes, such as session-ttl", serveConfigFile, name))
		}
	}
	if len(errs) > 0 {
		return nil, &usageError{msg: errors.Join(errs...).Error()}
	}
	return applied, nil
}

// readFlagFile reads 'name = value' lines; a missing file is no settings.
func readFlagFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &usageError{msg: fmt.Sprintf("%s:%d: want 'name = value', such as 'session-ttl = 15m'", path, n)}
		}
		name = strings.TrimPrefix(strings.TrimSpace(name), "--")
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if _, dup := out[name]; dup {
			return nil, &usageError{msg: fmt.Sprintf("%s:%d: %s is set twice", path, n, name)}
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
