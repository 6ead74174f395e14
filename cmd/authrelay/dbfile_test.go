package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// TestMissingDatabaseRefused reproduces issue 10's item 3: on a directory
// whose database was removed, 'user list' created a new empty one, 'user
// disable u1' then said "not found", and the next relay start refused
// everyone. Now only init creates a database: every other command fails
// with exit 1, says what happened and what to do, and creates nothing.
func TestMissingDatabaseRefused(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	mustRun(t, "pw-u1-123456\n", "user", "add", "u1", "--dir", dir, "--account", "APP", "--password-stdin", "--pub", "a")
	saved := filepath.Join(t.TempDir(), "saved.db")
	mustRun(t, "", "backup", saved, "--dir", dir)
	db := deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile)
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Remove(db + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"user", "list"}},
		{"", []string{"user", "disable", "u1"}},
		{"", []string{"user", "show", "u1"}},
		{"", []string{"user", "explain", "u1"}},
		{"pw-u2-123456\n", []string{"user", "add", "u2", "--account", "APP", "--password-stdin", "--pub", "a"}},
		{"", []string{"user", "lockouts"}},
		{"", []string{"role", "list"}},
		{"", []string{"role", "add", "r", "--pub", "a"}},
		{"", []string{"account", "list"}},
		{"", []string{"export"}},
		{"", []string{"backup", backup}},
		{"", []string{"audit"}},
		{"", []string{"hash", "show"}},
		{"", []string{"serve", "--nats", "nats://127.0.0.1:1"}},
		{"", []string{"serve", "--embedded", "--listen", "127.0.0.1:0"}},
	} {
		t.Run(strings.Join(c.args[:min(2, len(c.args))], " "), func(t *testing.T) {
			var r result
			if c.args[0] == "serve" {
				// Bounded: the old serve ran on an empty new database.
				r = runFor(t, 20*time.Second, append(c.args, "--dir", dir)...)
			} else {
				r = run(t, c.stdin, append(c.args, "--dir", dir)...)
			}
			if r.code != exitFailure {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, exitFailure, r.stdout, r.stderr)
			}
			for _, want := range []string{"no user database", "Nothing was created", "authrelay restore FILE --dir " + dir} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
				}
			}
			for _, suffix := range []string{"", "-wal", "-shm"} {
				if _, err := os.Stat(db + suffix); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s exists after the command: %v", db+suffix, err)
				}
			}
			if _, err := os.Stat(backup); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("backup wrote %s without a database", backup)
			}
		})
	}
	t.Run("doctor", func(t *testing.T) {
		r := run(t, "", "doctor", "--dir", dir, "--offline")
		if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "authrelay restore FILE --dir "+dir) {
			t.Errorf("doctor on a directory without its database: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	// What the message says to do works.
	t.Run("restore", func(t *testing.T) {
		r := mustRun(t, "", "restore", saved, "--dir", dir)
		if !strings.Contains(r.stdout, "there was no database to replace") {
			t.Errorf("restore into a directory without a database:\n%s", r.stdout)
		}
		mustRun(t, "", "user", "show", "u1", "--dir", dir)
	})
	// The README's first command still works: serve --embedded on an
	// empty (or new) directory initialises it.
	t.Run("serve --embedded initialises an empty directory", func(t *testing.T) {
		fresh := filepath.Join(t.TempDir(), "new")
		s := serveOn(t, fresh)
		s.stop()
		for _, name := range []string{deploy.SecretsFile, deploy.ServerConf, deploy.DatabaseFile} {
			if _, err := os.Stat(deploy.Layout{Dir: fresh}.Path(name)); err != nil {
				t.Errorf("serve --embedded did not initialise %s: %v", name, err)
			}
		}
	})
}

// TestServeNoticesDatabaseFile reproduces the rest of item 3: the database
// file removed (or replaced) under a running relay, which kept granting
// logins from the removed file with /readyz at 200 and nothing in the log.
// Now /readyz fails within seconds naming the database file, the log says
// so loudly, authrelay_database_file_replaced is 1, doctor names it, and
// all pass again when the file is back.
func TestServeNoticesDatabaseFile(t *testing.T) {
	s := serveEmbedded(t, true, "--http", "127.0.0.1:0")
	base := "http://" + s.httpAddr(t)
	readyz := base + "/readyz"
	replaced := func(t *testing.T) float64 {
		t.Helper()
		_, body := get(t, base+"/metrics")
		v, ok := samples(t, body)["authrelay_database_file_replaced"]
		if !ok {
			t.Fatal("no authrelay_database_file_replaced in /metrics")
		}
		return v
	}
	s.addUser(t, "u1", "pw-u1-123456", "--account", "APP", "--pub", "a")
	waitReady := func(t *testing.T, wantCode int, wantBody string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			code, body := get(t, readyz)
			if code == wantCode && strings.Contains(body, wantBody) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: %d %q; want %d with %q within 5s", code, body, wantCode, wantBody)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLog := func(t *testing.T, want string, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for strings.Count(s.log.String(), want) < n {
			if time.Now().After(deadline) {
				t.Fatalf("the log does not say %q %d times within 5s", want, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(t, http.StatusOK, "ok")

	path := deploy.Layout{Dir: s.dir}.Path(deploy.DatabaseFile)
	moved := path + ".moved"
	removedAt := time.Now()
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	waitReady(t, http.StatusServiceUnavailable, "not ready: database file: the database file was removed or replaced: "+path+" no longer exists")
	notReady := time.Since(removedAt)
	waitLog(t, "DATABASE FILE REMOVED OR REPLACED", 1)
	t.Logf("file removed: /readyz 503 after %v, logged after %v", notReady.Round(time.Millisecond), time.Since(removedAt).Round(time.Millisecond))
	if v := replaced(t); v != 1 {
		t.Errorf("authrelay_database_file_replaced = %v with the file away, want 1", v)
	}
	// The relay still answers from the removed file; an admin command
	// refuses rather than write to a new empty database.
	if nc, err := s.connect("u1", "pw-u1-123456"); err != nil {
		t.Errorf("u1's login while the file is away: %v", err)
	} else {
		nc.Close()
	}
	if r := run(t, "", "user", "disable", "u1", "--dir", s.dir); r.code != exitFailure || !strings.Contains(r.stderr, "no user database") {
		t.Errorf("user disable with the file away: exit %d: %s", r.code, r.stderr)
	}
	if r := run(t, "", "doctor", "--dir", s.dir, "--offline"); r.code == 0 || !strings.Contains(r.stdout, "a relay is serving") {
		t.Errorf("doctor with the file away under a relay: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	if err := os.Rename(moved, path); err != nil {
		t.Fatal(err)
	}
	waitReady(t, http.StatusOK, "ok")
	waitLog(t, "database file is back", 1)
	if v := replaced(t); v != 0 {
		t.Errorf("authrelay_database_file_replaced = %v with the file back, want 0", v)
	}

	// Replaced: another file (a copy of the same bytes) at the path.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	waitReady(t, http.StatusServiceUnavailable, "is now another file than the one this process opened")
	waitLog(t, "DATABASE FILE REMOVED OR REPLACED", 2)
	if err := os.Rename(moved, path); err != nil {
		t.Fatal(err)
	}
	waitReady(t, http.StatusOK, "ok")
	waitLog(t, "database file is back", 2)
}

// TestRestoreCommand: 'authrelay restore' refuses while serve runs, then
// puts the backup in place, moves the replaced database aside, says what it
// did, and records the restore in the audit trail.
func TestRestoreCommand(t *testing.T) {
	s := serveEmbedded(t, true)
	s.addUser(t, "kept", "pw-kept-123456", "--account", "APP", "--pub", "a")
	backup := filepath.Join(t.TempDir(), "b.db")
	mustRun(t, "", "backup", backup, "--dir", s.dir)
	s.addUser(t, "later", "pw-later-123456", "--account", "APP", "--pub", "a")

	r := run(t, "", "restore", backup, "--dir", s.dir)
	if r.code != exitFailure || !strings.Contains(r.stderr, "a relay is serving the database") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("restore while serve runs: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if nc, err := s.connect("later", "pw-later-123456"); err != nil {
		t.Fatalf("later's login after the refused restore: %v", err)
	} else {
		nc.Close()
	}
	s.stop()

	now := time.Now().UTC()
	r = mustRun(t, "", "restore", backup, "--dir", s.dir)
	path := deploy.Layout{Dir: s.dir}.Path(deploy.DatabaseFile)
	for _, want := range []string{
		"checked " + backup + ": integrity ok, schema version",
		"1 user",
		"moved the replaced database aside to " + path + ".replaced-",
		"restored " + backup + " to " + path,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("restore's output lacks %q:\n%s", want, r.stdout)
		}
	}
	asides, err := filepath.Glob(path + ".replaced-*")
	if err != nil || len(asides) == 0 {
		t.Fatalf("no replaced database aside: %v %v", asides, err)
	}
	if !strings.HasPrefix(filepath.Base(asides[0]), deploy.DatabaseFile+".replaced-"+now.Format("20060102T")) {
		t.Errorf("aside file %s is not named after the time", asides[0])
	}
	var users []struct{ Name string }
	if err := json.Unmarshal([]byte(mustRun(t, "", "user", "list", "--json", "--dir", s.dir).stdout), &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 1 || users[0].Name != "kept" {
		t.Errorf("users after restore: %+v, want only kept", users)
	}
	if out := mustRun(t, "", "audit", "--dir", s.dir).stdout; !strings.Contains(out, "database restore") {
		t.Errorf("the audit trail lacks the restore:\n%s", out)
	}
	// The replaced database is whole, later included.
	aside := t.TempDir()
	for _, name := range []string{deploy.SecretsFile} {
		b, err := os.ReadFile(deploy.Layout{Dir: s.dir}.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(deploy.Layout{Dir: aside}.Path(name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, suffix := range []string{"", "-wal"} {
		if b, err := os.ReadFile(asides[0] + suffix); err == nil {
			if err := os.WriteFile(deploy.Layout{Dir: aside}.Path(deploy.DatabaseFile)+suffix, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if out := mustRun(t, "", "user", "list", "--dir", aside).stdout; !strings.Contains(out, "later") {
		t.Errorf("the replaced database lacks later:\n%s", out)
	}

	// A relay starts on the restored database.
	s2 := serveOn(t, s.dir)
	if nc, err := s2.connect("kept", "pw-kept-123456"); err != nil {
		t.Errorf("kept's login after restore: %v", err)
	} else {
		nc.Close()
	}
}

// TestListTablesBounded reproduces item 9a: 'role list' padded every row to
// the widest cell, so 200 roles and one with a thousand subjects printed
// megabytes. Cells are now cut to tableCellMax characters; --json keeps
// everything.
func TestListTablesBounded(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	for i := range 200 {
		mustRun(t, "", "role", "add", fmt.Sprintf("r%03d", i), "--dir", dir, "--pub", "a")
	}
	args := []string{"role", "add", "big", "--dir", dir}
	for i := range 1000 {
		args = append(args, "--pub", fmt.Sprintf("svc.%04d.>", i))
	}
	mustRun(t, "", args...)

	out := mustRun(t, "", "role", "list", "--dir", dir).stdout
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 202 {
		t.Fatalf("role list printed %d lines, want 202", len(lines))
	}
	widest := 0
	for _, l := range lines {
		widest = max(widest, len([]rune(l)))
	}
	// NAME, HOLDERS, PUB and SUB with tabwriter's padding of 2.
	if limit := 3*tableCellMax + 20; widest > limit {
		t.Errorf("role list's widest line is %d characters (%d bytes in all), want at most %d", widest, len(out), limit)
	}
	if !strings.Contains(out, "svc.0000.>,svc.0001.>") || !strings.Contains(out, "…") {
		t.Errorf("role list does not show the start of big's subjects cut with an ellipsis:\n%s", lines[1])
	}
	t.Logf("role list: %d bytes, widest line %d characters", len(out), widest)

	var roles []struct {
		Name string
		Pub  struct{ Allow []string }
	}
	if err := json.Unmarshal([]byte(mustRun(t, "", "role", "list", "--json", "--dir", dir).stdout), &roles); err != nil {
		t.Fatal(err)
	}
	for _, r := range roles {
		if r.Name == "big" && len(r.Pub.Allow) != 1000 {
			t.Errorf("role list --json gives big %d subjects, want 1000", len(r.Pub.Allow))
		}
	}

	// user list: the same bound.
	uargs := []string{"user", "add", "wide", "--dir", dir, "--account", "APP", "--password-stdin", "--role", "big"}
	for i := range 300 {
		uargs = append(uargs, "--sub", fmt.Sprintf("feed.%04d.>", i))
	}
	mustRun(t, "pw-wide-123456\n", uargs...)
	for _, l := range strings.Split(mustRun(t, "", "user", "list", "--dir", dir).stdout, "\n") {
		if n := len([]rune(l)); n > 4*tableCellMax+60 {
			t.Errorf("user list line of %d characters: %.100s…", n, l)
		}
	}
}

func TestTableCell(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""},
		{strings.Repeat("a", tableCellMax), strings.Repeat("a", tableCellMax)},
		{strings.Repeat("a", tableCellMax+1), strings.Repeat("a", tableCellMax-1) + "…"},
		{strings.Repeat("é", tableCellMax+5), strings.Repeat("é", tableCellMax-1) + "…"},
	} {
		if got := tableCell(c.in); got != c.want {
			t.Errorf("tableCell(%d runes) = %q, want %q", len([]rune(c.in)), got, c.want)
		}
	}
}

// TestServeTruncatesWAL: a write-ahead log that a burst of writes (here one
// large admin change, made while another handle keeps the database open)
// left large is emptied when serve starts. Before, the file kept its size.
func TestServeTruncatesWAL(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	cheapHashPolicy(t, dir)
	db := openDir(t, dir) // open throughout, as another relay would be
	const bcryptHash = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"
	err := db.Admin(t.Context(), "test", "bulk add", func(ctx context.Context) (string, error) {
		for i := range 3000 {
			var subs []string
			for j := range 20 {
				subs = append(subs, fmt.Sprintf("bulk.%s.%d.%d", strings.Repeat("s", 150), i, j))
			}
			u := accounts.User{Name: fmt.Sprintf("bulk-%d", i), Account: "APP", Permissions: accounts.Permissions{Sub: accounts.Rule{Allow: subs}}}
			if err := db.AddUserWithHash(ctx, u, bcryptHash); err != nil {
				return "", err
			}
		}
		return "{}", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wal := deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile) + "-wal"
	fi, err := os.Stat(wal)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= store.WALTruncateAbove {
		t.Fatalf("the write-ahead log after the burst is %d bytes; want more than %d for the test to mean anything", fi.Size(), store.WALTruncateAbove)
	}
	before := fi.Size()
	serveOn(t, dir)
	if fi, err = os.Stat(wal); err != nil {
		t.Fatal(err)
	}
	// serve's own writes after its checkpoint may have begun a new log.
	if fi.Size() > 1<<20 {
		t.Errorf("the write-ahead log after serve started is %d bytes (was %d), want it truncated", fi.Size(), before)
	}
	t.Logf("write-ahead log: %d bytes before serve, %d after it started", before, fi.Size())
}
