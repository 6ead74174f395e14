package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
	"github.com/nats-io/nats.go"
)

// TestUserUnlockNeedsItsAuditRow locks bob out, then closes the audit table
// to admin rows (a trigger, standing in for a full disk): 'user unlock bob'
// fails saying why and lifts nothing, instead of lifting the lockout with
// no row. With the table open again it lifts it and writes its row.
func TestUserUnlockNeedsItsAuditRow(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	mustRun(t, "pw-123456\n", "user", "add", "bob", "--password-stdin", "--dir", dir)
	path := deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile)

	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	p := accounts.DefaultLockoutPolicy
	g := db.Lockouts(p)
	now := time.Now()
	for range p.Threshold {
		if err := g.Failed(ctx, "bob", "192.0.2.7", now, accounts.FailedPassword); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	locked := func() bool {
		t.Helper()
		var list []map[string]any
		if err := json.Unmarshal([]byte(mustRun(t, "", "user", "lockouts", "--json", "--dir", dir).stdout), &list); err != nil {
			t.Fatal(err)
		}
		return len(list) > 0
	}
	if !locked() {
		t.Fatal("bob is not locked out after the threshold of failures")
	}

	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`CREATE TRIGGER audit_closed BEFORE INSERT ON audit
		WHEN NEW.kind = 'admin' BEGIN SELECT RAISE(ABORT, 'audit closed'); END`); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "user", "unlock", "bob", "--dir", dir); r.code == 0 || !strings.Contains(r.stderr, "audit closed") {
		t.Errorf("user unlock with the audit closed: exit %d, stderr %q; want a failure that says why", r.code, r.stderr)
	}
	if !locked() {
		t.Error("bob's lockout was lifted although the unlock was not audited")
	}

	if _, err := raw.Exec(`DROP TRIGGER audit_closed`); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "user", "unlock", "bob", "--dir", dir)
	if locked() {
		t.Error("bob is still locked out after user unlock")
	}
	var rows []auditView
	if err := json.Unmarshal([]byte(mustRun(t, "", "audit", "--dir", dir, "--kind", "admin", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	var unlocks int
	for _, r := range rows {
		if r.Action == "user unlock" {
			unlocks++
		}
	}
	if unlocks != 1 {
		t.Errorf("user unlock rows = %d, want 1 (the one that lifted the lockout): %+v", unlocks, rows)
	}
}

// smallDisk mounts a tmpfs of size bytes on a new directory, unmounted when
// the test ends: filling it is a real full disk. It needs the right to
// mount (root in a container that allows it); without it the test is
// skipped saying so (store's max_page_count tests still run).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs to fill (needs CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk empties the WAL of the database at path, from a handle of its
// own, so that the next write must grow the file, then writes a file in
// dir until the disk is full. It returns a function that removes the file.
func fillDisk(t *testing.T, path, dir string) (free func()) {
	t.Helper()
	raw, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	var busy, logPages, done int
	if err := raw.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done); err != nil || busy != 0 {
		t.Fatalf("checkpoint the WAL: busy %d, %v", busy, err)
	}
	if err := raw.Close(); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	for chunk := make([]byte, 64<<10); len(chunk) > 0; chunk = chunk[:len(chunk)/2] {
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("fill the disk: %v", err)
				}
				break
			}
		}
	}
	if err := f.Close(); err != nil && !errors.Is(err, syscall.ENOSPC) {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
}

// ready polls serve's /readyz until its status is want, and returns the
// body; it fails after within.
func (s *servedDir) readyz(t *testing.T, want int, within time.Duration) string {
	t.Helper()
	url := "http://" + s.httpAddr(t) + "/readyz"
	deadline := time.Now().Add(within)
	for {
		code, body := get(t, url)
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %q after %v, want %d", code, body, within, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFullDisk serves a directory on a small tmpfs and fills the disk. An
// attacker's wrong passwords, which the database cannot record, lock the
// address out all the same: the right password from it is refused as
// locked_out, where before it was allowed. The user's own client still
// logs in. /readyz fails naming the audit trail and the full disk, the
// metrics count what the database could not take and nothing is dropped.
// Once the disk has room, /readyz passes again by itself, every refusal is
// in the audit trail, and the lockout held in memory is in the database.
func TestFullDisk(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			dir := smallDisk(t, 16<<20)
			mustRun(t, "", "init", "--dir", dir)
			cheapHashPolicy(t, dir)
			if !e.xkey {
				dropXKey(t, dir)
			}
			s := serveOn(t, dir, "--http", "127.0.0.1:0")
			s.addUser(t, "svc", "svc-pass", "--sub", "_INBOX.>")
			events := s.authErrors(t)
			const user, attacker, other = "127.0.0.1", "127.0.0.2", "127.0.0.3"
			s.allowed(t, user, "svc", "svc-pass")
			s.readyz(t, http.StatusOK, 5*time.Second)

			free := fillDisk(t, deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile), dir)
			threshold := accounts.DefaultLockoutPolicy.Threshold
			for range threshold {
				s.refused(t, events, attacker, "svc", "guess", "bad_credentials")
			}
			s.refused(t, events, attacker, "svc", "svc-pass", "locked_out")
			s.allowed(t, user, "svc", "svc-pass")

			body := s.readyz(t, http.StatusServiceUnavailable, 10*time.Second)
			if !strings.Contains(body, "audit") || !strings.Contains(body, "full") {
				t.Errorf("/readyz during the fault: %q, want the audit trail and the full disk named", body)
			}
			_, metrics := get(t, "http://"+s.httpAddr(t)+"/metrics")
			m := samples(t, metrics)
			if got := m["authrelay_lockout_unrecorded_total"]; got < float64(threshold) {
				t.Errorf("authrelay_lockout_unrecorded_total = %v, want at least %d", got, threshold)
			}
			if m["authrelay_lockout_memory_keys"] == 0 || m["authrelay_audit_waiting"] == 0 {
				t.Errorf("lockout keys held %v, audit events waiting %v; want both above 0",
					m["authrelay_lockout_memory_keys"], m["authrelay_audit_waiting"])
			}
			if got, ok := m["authrelay_audit_dropped_total"]; !ok || got != 0 {
				t.Errorf("authrelay_audit_dropped_total = %v (exported %v), want 0", got, ok)
			}
			for _, want := range []string{"audit trail not written", "held in memory and enforced by this relay only"} {
				if !strings.Contains(s.log.String(), want) {
					t.Errorf("serve log lacks %q", want)
				}
			}

			free()
			s.readyz(t, http.StatusOK, 15*time.Second)
			s.refused(t, events, other, "svc", "guess", "bad_credentials")
			var denied int64
			waitUntil(t, "the attacker's refusals in the audit trail", func() bool {
				var rows []auditView
				if err := json.Unmarshal([]byte(mustRun(t, "", "audit", "--dir", dir, "--user", "svc", "--result", "denied", "--json").stdout), &rows); err != nil {
					t.Fatal(err)
				}
				denied = 0
				for _, r := range rows {
					if r.Host == attacker {
						denied += r.Count
					}
				}
				return denied == int64(threshold+1)
			})
			l := lockouts(t, dir)
			if len(l) != 1 || l[0]["kind"] != "user+addr" || l[0]["addr"] != attacker {
				t.Errorf("lockouts in the database after the disk has room = %v, want svc from %s", l, attacker)
			}
			s.refused(t, events, attacker, "svc", "svc-pass", "locked_out")
		})
	}
}

// dropXKey removes the xkey line from dir's nats.conf.
func dropXKey(t *testing.T, dir string) {
	t.Helper()
	path := deploy.Layout{Dir: dir}.Path(deploy.ServerConf)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "xkey:") {
			kept = append(kept, line)
		}
	}
	if err := os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLockoutReadFailsClosed makes the lockout state unreadable (the
// table renamed away from another handle): the relay then refuses even a
// login its credential cache could answer, with internal_error (the reason
// in the server's auth error event), since a relay that answered from the
// cache without the lockout state would let a locked-out attacker test
// guesses against it. Once the table is back the login is allowed again.
func TestLockoutReadFailsClosed(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			s := serveEmbedded(t, e.xkey)
			s.addUser(t, "svc", "svc-pass", "--sub", "_INBOX.>")
			events := s.authErrors(t)
			s.allowed(t, "127.0.0.1", "svc", "svc-pass") // now cached
			raw, err := sql.Open("sqlite3", "file:"+deploy.Layout{Dir: s.dir}.Path(deploy.DatabaseFile))
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			if _, err := raw.Exec(`ALTER TABLE lockouts RENAME TO lockouts_away`); err != nil {
				t.Fatal(err)
			}
			s.refused(t, events, "127.0.0.1", "svc", "svc-pass", "internal_error")
			if _, err := raw.Exec(`ALTER TABLE lockouts_away RENAME TO lockouts`); err != nil {
				t.Fatal(err)
			}
			s.allowed(t, "127.0.0.1", "svc", "svc-pass")
		})
	}
}

// TestFullDiskLosesNoDecision is the fault trial of a full disk under
// load: for AUTHRELAY_FULLDISK (a duration; 1s by default) logins arrive at
// 100/s on a full tmpfs, from four client addresses of one user and, one in
// ten, a wrong password from one of seven others. /readyz fails meanwhile;
// once the disk has room every decision is in the audit trail (the rows'
// counts add up to them all) and none is dropped. The log line gives the
// figures.
//
//	AUTHRELAY_FULLDISK=20s go test -run TestFullDiskLosesNoDecision -v ./cmd/authrelay/
func TestFullDiskLosesNoDecision(t *testing.T) {
	d := time.Second
	if v := os.Getenv("AUTHRELAY_FULLDISK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil || d <= 0 {
			t.Fatalf("AUTHRELAY_FULLDISK=%q: want a duration such as 20s", v)
		}
	}
	dir := smallDisk(t, 16<<20)
	mustRun(t, "", "init", "--dir", dir)
	cheapHashPolicy(t, dir)
	s := serveOn(t, dir, "--http", "127.0.0.1:0")
	s.addUser(t, "svc", "svc-pass", "--sub", "_INBOX.>")
	s.allowed(t, "127.0.0.1", "svc", "svc-pass")
	free := fillDisk(t, deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile), dir)
	n := int(d / (10 * time.Millisecond))
	start := time.Now()
	var allowed, refused int
	for i := range n {
		for time.Since(start) < time.Duration(i)*10*time.Millisecond {
			time.Sleep(time.Millisecond)
		}
		ip, pw := []string{"127.0.0.1", "127.0.0.4", "127.0.0.5", "127.0.0.6"}[i%4], "svc-pass"
		if i%10 == 9 {
			ip, pw = fmt.Sprintf("127.0.1.%d", 1+i%7), "wrong"
		}
		nc, err := s.connect("svc", pw, from(ip))
		switch {
		case err == nil:
			nc.Close()
			allowed++
		case errors.Is(err, nats.ErrAuthorization):
			refused++
		default:
			t.Fatalf("login %d: %v", i, err)
		}
	}
	body := s.readyz(t, http.StatusServiceUnavailable, time.Second)
	free()
	s.readyz(t, http.StatusOK, 15*time.Second)
	_, metrics := get(t, "http://"+s.httpAddr(t)+"/metrics")
	dropped := samples(t, metrics)["authrelay_audit_dropped_total"]
	s.stop() // the last counts are written as serve ends
	var rows []auditView
	if err := json.Unmarshal([]byte(mustRun(t, "", "audit", "--dir", dir, "--kind", "login", "--json").stdout), &rows); err != nil {
		t.Fatal(err)
	}
	var events int64
	for _, r := range rows {
		events += r.Count
	}
	t.Logf("%d logins in %v on a full disk (%d allowed, %d refused), /readyz: %q; after: %d audit rows standing for %d decisions, %v dropped",
		n, time.Since(start).Round(time.Millisecond), allowed, refused, strings.TrimSpace(body), len(rows), events, dropped)
	if events != int64(n+1) || dropped != 0 {
		t.Errorf("audit rows stand for %d decisions and %v were dropped, want %d and 0", events, dropped, n+1)
	}
}
