package main

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/relay"
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
	os.WriteFile(conf, []byte("log-level = warn\n"), 0o600)
	applied, restart, err := m.reloadSettings(serveConfig{dir: dir, level: level, logLevel: "info", logFormat: "text",
		sessionTTL: time.Hour, decisionTimeout: relay.DefaultDecisionTimeout, cacheTTL: relay.DefaultCacheTTL,
		cacheSize: relay.DefaultCacheSize, natsURL: "nats://127.0.0.1:4222", lockout: accounts.DefaultLockoutPolicy,
		revoke: true, revokePoll: relay.DefaultRevokePoll, revokeReplay: defaultRevokeReplay, auditRetention: 30 * 24 * time.Hour,
		maxClockSkew: relay.DefaultMaxClockSkew})
	if err != nil {
		t.Fatal(err)
	}
	if level.Level() != slog.LevelWarn || len(applied) != 1 || len(restart) != 0 {
		t.Errorf("level %v, applied %v, restart %v; want WARN applied and nothing else", level.Level(), applied, restart)
	}
}
