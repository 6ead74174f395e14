package deploy

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// SettingsFile is the optional file in DIR that sets serve's flags, one
// 'flag-name = value' a line.
const SettingsFile = "authrelay.conf"

// SettingEnv is the environment variable that sets the flag name, e.g.
// AUTHRELAY_SESSION_TTL for --session-ttl.
func SettingEnv(flagName string) string {
	return "AUTHRELAY_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ApplySettings fills in the flags of fset that the command line did not
// set: first from the environment (SettingEnv, read with getenv), then
// from l's SettingsFile, whose lines are 'flag-name = value' ('#' starts
// a comment). The command line wins over the environment, which wins over
// the file; the flag dir is never set, since it names the file. It
// returns what it applied, as "flag (source)", for the log. A value a
// flag refuses, a setting no flag has, or a malformed line matches
// ErrInvalid, naming each; fset may then hold some of the other settings,
// and is not to be used.
func (l Layout) ApplySettings(fset *flag.FlagSet, getenv func(string) string) ([]string, error) {
	given := map[string]bool{}
	fset.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fromFile, err := ReadSettings(l.Path(SettingsFile))
	if err != nil {
		return nil, err
	}
	var applied []string
	var errs []error
	fset.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || f.Name == "dir" {
			return
		}
		if v := getenv(SettingEnv(f.Name)); v != "" {
			if err := fset.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("$%s=%q: %v", SettingEnv(f.Name), v, err))
			}
			applied = append(applied, f.Name+" ($"+SettingEnv(f.Name)+")")
			return
		}
		if v, ok := fromFile[f.Name]; ok {
			if err := fset.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %s = %q: %v", SettingsFile, f.Name, v, err))
			}
			applied = append(applied, f.Name+" ("+SettingsFile+")")
		}
	})
	for name := range fromFile {
		if fset.Lookup(name) == nil {
			errs = append(errs, fmt.Errorf("%s: unknown setting %q: use the names of serve's flags without the dashes, such as session-ttl", SettingsFile, name))
		}
	}
	if len(errs) > 0 {
		return nil, &invalidError{msg: errors.Join(errs...).Error()}
	}
	return applied, nil
}

// ReadSettings reads the 'name = value' lines of path into a map, with a
// leading "--" of a name and quotes around a value dropped; a missing file
// is no settings. A line without '=' or a name set twice matches
// ErrInvalid.
func ReadSettings(path string) (map[string]string, error) {
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
			return nil, invalidf("%s:%d: want 'name = value', such as 'session-ttl = 15m'", path, n)
		}
		name = strings.TrimPrefix(strings.TrimSpace(name), "--")
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if _, dup := out[name]; dup {
			return nil, invalidf("%s:%d: %s is set twice", path, n, name)
		}
		out[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}
