package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestServeFlagsFromEnvironmentAndFile(t *testing.T) {
	dir := t.TempDir()
	newFS := func() (*flag.FlagSet, *time.Duration, *int, *string) {
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.String("dir", dir, "")
		ttl := fs.Duration("session-ttl", time.Hour, "")
		workers := fs.Int("workers", 0, "")
		level := fs.String("log-level", "info", "")
		return fs, ttl, workers, level
	}
	os.WriteFile(filepath.Join(dir, serveConfigFile), []byte("# settings\nsession-ttl = 15m\nworkers = 3\nlog-level = \"warn\"\n"), 0o600)
	env := map[string]string{"AUTHRELAY_WORKERS": "7"}
	m := &Main{Getenv: func(k string) string { return env[k] }}

	fs, ttl, workers, level := newFS()
	if err := fs.Parse([]string{"--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	applied, err := m.applyFlagDefaults(fs, dir)
	if err != nil {
		t.Fatal(err)
	}
	// The command line wins, then the environment, then the file.
	if *level != "debug" || *workers != 7 || *ttl != 15*time.Minute {
		t.Errorf("log-level %q workers %d session-ttl %v; want debug (flag), 7 (env), 15m (file)", *level, *workers, *ttl)
	}
	if got := strings.Join(applied, "; "); !strings.Contains(got, "workers ($AUTHRELAY_WORKERS)") || !strings.Contains(got, "session-ttl (authrelay.conf)") {
		t.Errorf("applied = %q", got)
	}

	for _, tc := range []struct {
		file, env, want string
	}{
		{"sesion-ttl = 1m\n", "", "unknown setting"},
		{"session-ttl 1m\n", "", "name = value"},
		{"session-ttl = soon\n", "", "session-ttl"},
		{"", "nope", "AUTHRELAY_WORKERS"},
		{"workers = 1\nworkers = 2\n", "", "twice"},
	} {
		os.WriteFile(filepath.Join(dir, serveConfigFile), []byte(tc.file), 0o600)
		env["AUTHRELAY_WORKERS"] = tc.env
		fs, _, _, _ := newFS()
		fs.Parse(nil)
		_, err := m.applyFlagDefaults(fs, dir)
		var ue *usageError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !asUsage(err, &ue) {
			t.Errorf("file %q env %q: error %v, want a usage error mentioning %q", tc.file, tc.env, err, tc.want)
		}
	}
}

func asUsage(err error, ue **usageError) bool {
	u, ok := err.(*usageError)
	*ue = u
	return ok
}

func TestServeReadsAuthrelayConf(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	os.WriteFile(filepath.Join(dir, serveConfigFile), []byte("session-ttl = 2s\n"), 0o600)
	s := serveOn(t, dir)
	if !strings.Contains(s.log.String(), "session-ttl (authrelay.conf)") || !strings.Contains(s.log.String(), "session_ttl=2s") {
		t.Errorf("serve did not take session-ttl from authrelay.conf:\n%s", s.log.String())
	}
}

func TestReloadSettingsOnHup(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	conf := filepath.Join(dir, serveConfigFile)
	os.WriteFile(conf, []byte("session-ttl = 1h\n"), 0o600)
	s := serveOn(t, dir)

	os.WriteFile(conf, []byte("session-ttl = 15m\n"), 0o600)
	s.reload(t)
	if !strings.Contains(s.log.String(), "session-ttl: 1h0m0s -> 15m0s") {
		t.Errorf("reload did not say that session-ttl changed and needs a restart:\n%s", s.log.String())
	}

	// The log level applies at once.
	level := new(slog.LevelVar)
	level.Set(slog.LevelInfo)
	m := &Main{Getenv: func(string) string { return "" }}
	os.WriteFile(conf, nil, 0o600) // serve started with the defaults
	c, _, err := m.parseServe([]string{"--dir", dir})
	if err != nil {
		t.Fatal(err)
	}
	c.level = level
	os.WriteFile(conf, []byte("log-level = warn\n"), 0o600)
	applied, restart, err := m.reloadSettings(c)
	if err != nil {
		t.Fatal(err)
	}
	if level.Level() != slog.LevelWarn || len(applied) != 1 || len(restart) != 0 {
		t.Errorf("level %v, applied %v, restart %v; want WARN applied and nothing else", level.Level(), applied, restart)
	}
}

// TestReloadCoversEveryServeFlag sets each of serve's flags in
// authrelay.conf to a value other than its default and reads the settings
// as serve starts; a SIGHUP's reload then reports nothing while the file
// is unchanged, and reports the flag, and only it, once the file gives it
// another value: applied (log-level) or needing a restart (every other
// flag). A flag the reload did not compare would be missed or reported on
// every SIGHUP. dir is the exception: the file cannot set it.
func TestReloadCoversEveryServeFlag(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, serveConfigFile)
	m := &Main{Getenv: func(string) string { return "" }}
	var sc serveConfig
	var lf lockoutFlags
	fs, _ := m.serveFlags(&sc, &lf)
	var names int
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "dir" {
			return
		}
		names++
		start, next := changedValues(t, f)
		t.Run(f.Name, func(t *testing.T) {
			write := func(v string) {
				t.Helper()
				if err := os.WriteFile(conf, []byte(f.Name+" = "+v+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write(start)
			c, applied, err := m.parseServe([]string{"--dir", dir})
			if err != nil {
				t.Fatal(err)
			}
			if len(applied) != 1 {
				t.Fatalf("settings applied from %s = %v, want %s", serveConfigFile, applied, f.Name)
			}
			c.level = new(slog.LevelVar)
			if err := c.level.UnmarshalText([]byte(c.logLevel)); err != nil {
				t.Fatal(err)
			}
			got, restart, err := m.reloadSettings(c)
			if err != nil || len(got) != 0 || len(restart) != 0 {
				t.Fatalf("reload with %s unchanged: applied %v, restart %v, %v; want nothing", serveConfigFile, got, restart, err)
			}
			write(next)
			got, restart, err = m.reloadSettings(c)
			if err != nil {
				t.Fatal(err)
			}
			reported := restart
			if f.Name == "log-level" {
				reported = got
				if len(restart) != 0 {
					t.Errorf("restart %v, want nothing", restart)
				}
			} else if len(got) != 0 {
				t.Errorf("applied %v, want nothing: %s needs a restart", got, f.Name)
			}
			if len(reported) != 1 || !strings.HasPrefix(reported[0], f.Name+": ") {
				t.Errorf("reload after %s = %s -> %s: applied %v, restart %v; want %s reported alone", f.Name, start, next, got, restart, f.Name)
			}
		})
	})
	if names < 25 {
		t.Errorf("%d serve flags checked, want all of them (at least 25)", names)
	}
}

// changedValues returns two values for f, each other than its default and
// other than each other, that serve accepts as it reads its settings.
func changedValues(t *testing.T, f *flag.Flag) (string, string) {
	t.Helper()
	switch f.Name {
	case "log-level":
		return "warn", "error"
	case "log-format":
		return "json", "text-not-checked-at-reload"
	}
	switch v := f.Value.(flag.Getter).Get().(type) {
	case bool:
		return fmt.Sprint(!v), fmt.Sprint(v)
	case time.Duration:
		return (v + 3*time.Second).String(), (v + 7*time.Second).String()
	case int:
		return fmt.Sprint(v + 1), fmt.Sprint(v + 2)
	case string:
		return "a-" + f.Name, "b-" + f.Name
	default:
		t.Fatalf("flag %s: no changed value for a %T; add one to changedValues", f.Name, v)
		return "", ""
	}
}
