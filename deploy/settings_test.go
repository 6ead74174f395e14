package deploy

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSettingEnv(t *testing.T) {
	for in, want := range map[string]string{"session-ttl": "AUTHRELAY_SESSION_TTL", "workers": "AUTHRELAY_WORKERS", "lockout-ipv6-prefix": "AUTHRELAY_LOCKOUT_IPV6_PREFIX"} {
		if got := SettingEnv(in); got != want {
			t.Errorf("SettingEnv(%q) = %q, want %q", in, got, want)
		}
	}
}

// settingsFlags is a flag set like serve's, with --dir.
type settingsFlags struct {
	fs      *flag.FlagSet
	ttl     *time.Duration
	workers *int
	level   *string
	dir     *string
}

func newSettingsFlags(dir string) settingsFlags {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return settingsFlags{fs: fs, dir: fs.String("dir", dir, ""), ttl: fs.Duration("session-ttl", time.Hour, ""),
		workers: fs.Int("workers", 0, ""), level: fs.String("log-level", "info", "")}
}

func writeSettings(t *testing.T, l Layout, body string) {
	t.Helper()
	if err := os.WriteFile(l.Path(SettingsFile), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestApplySettings: the command line wins over the environment, which
// wins over authrelay.conf; dir is never taken from either; what was
// applied is named with its source.
func TestApplySettings(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	writeSettings(t, l, "# settings\n\nsession-ttl = 15m\n--workers = 3\nlog-level = \"warn\"\ndir = /elsewhere\n")
	env := map[string]string{"AUTHRELAY_WORKERS": "7", "AUTHRELAY_DIR": "/elsewhere"}
	f := newSettingsFlags(l.Dir)
	if err := f.fs.Parse([]string{"--log-level", "debug"}); err != nil {
		t.Fatal(err)
	}
	applied, err := l.ApplySettings(f.fs, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	if *f.level != "debug" || *f.workers != 7 || *f.ttl != 15*time.Minute || *f.dir != l.Dir {
		t.Errorf("log-level %q workers %d session-ttl %v dir %q; want debug (flag), 7 (env), 15m (file), %s (untouched)", *f.level, *f.workers, *f.ttl, *f.dir, l.Dir)
	}
	want := []string{"session-ttl (authrelay.conf)", "workers ($AUTHRELAY_WORKERS)"}
	if !reflect.DeepEqual(applied, want) {
		t.Errorf("applied %q, want %q", applied, want)
	}

	// No file and no environment: nothing applied, the defaults stay.
	empty := Layout{Dir: t.TempDir()}
	f = newSettingsFlags(empty.Dir)
	if applied, err := empty.ApplySettings(f.fs, envOf(nil)); err != nil || len(applied) != 0 || *f.ttl != time.Hour {
		t.Errorf("without settings: applied %q, %v, session-ttl %v; want nothing", applied, err, *f.ttl)
	}
}

// TestApplySettingsRefuses: every mistake is named with where it is, and
// matches ErrInvalid.
func TestApplySettingsRefuses(t *testing.T) {
	l := Layout{Dir: t.TempDir()}
	for _, tc := range []struct{ file, env, want string }{
		{"sesion-ttl = 1m\n", "", `unknown setting "sesion-ttl"`},
		{"session-ttl 1m\n", "", "authrelay.conf:1: want 'name = value'"},
		{"session-ttl = soon\n", "", `session-ttl = "soon"`},
		{"", "nope", `$AUTHRELAY_WORKERS="nope"`},
		{"# c\nworkers = 1\nworkers = 2\n", "", "authrelay.conf:3: workers is set twice"},
	} {
		writeSettings(t, l, tc.file)
		f := newSettingsFlags(l.Dir)
		_, err := l.ApplySettings(f.fs, envOf(map[string]string{"AUTHRELAY_WORKERS": tc.env}))
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalid) {
			t.Errorf("file %q env %q: error %v, want ErrInvalid mentioning %q", tc.file, tc.env, err, tc.want)
		}
	}
	// A file that cannot be read is the directory's fault, not a usage
	// error.
	if err := os.Remove(l.Path(SettingsFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(l.Dir, SettingsFile), 0o700); err != nil {
		t.Fatal(err)
	}
	f := newSettingsFlags(l.Dir)
	if _, err := l.ApplySettings(f.fs, envOf(nil)); err == nil || errors.Is(err, ErrInvalid) {
		t.Errorf("unreadable %s: %v, want an error that is not ErrInvalid", SettingsFile, err)
	}
}
