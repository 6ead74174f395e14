package main

import (
	"flag"
	"io"
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
