package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// TestExplainAgreesWithTheRelay logs in, through the relay of serve
// --embedded, as one user for each reason code 'user explain' can give
// (and one allowed), and checks that explain --json gives the reason the
// relay gave: the one in the server's auth error event, or none for the
// login that connects. Both decide with accounts.Decide; before, explain
// said "allowed" for a user in a reserved account, without an account, or
// outside its source networks or connection types. internal_error is
// reached three ways: no account, a role removed under its holder, and a
// login response larger than the server's max_payload.
func TestExplainAgreesWithTheRelay(t *testing.T) {
	for _, e := range envs {
		t.Run(e.name, func(t *testing.T) {
			// A small max_payload, for a grant whose login response the
			// server would refuse.
			s := serveWithMaxPayload(t, e.xkey, 64<<10)
			ctx := context.Background()
			reserved, err := deploy.Layout{Dir: s.dir}.ReservedAccounts()
			if err != nil {
				t.Fatal(err)
			}
			mustRun(t, "", "role", "add", "tpl", "--dir", s.dir, "--sub", "svc.{{name}}.>")
			mustRun(t, "", "role", "add", "gone", "--dir", s.dir, "--sub", "gone.>")
			cases := []struct {
				user string
				args []string
				want string
				why  string // in explain's why, when set
			}{
				{"ok", []string{"--sub", "_INBOX.>"}, "", ""},
				{"off", []string{"--sub", "_INBOX.>"}, accounts.ReasonUserDisabled, ""},
				{"old", []string{"--sub", "_INBOX.>"}, accounts.ReasonUserExpired, ""},
				{"sys", []string{"--sub", "_INBOX.>"}, accounts.ReasonAccountReserved, "reserved"},
				{"noacct", []string{"--sub", "_INBOX.>"}, accounts.ReasonInternalError, "no account"},
				{"norole", []string{"--role", "gone"}, accounts.ReasonInternalError, "unknown role"},
				{"huge", []string{"--sub", "_INBOX.>"}, accounts.ReasonInternalError, "max_payload"},
				{"evil.alice", []string{"--role", "tpl"}, accounts.ReasonTemplateUnsafe, ""},
				{"far", []string{"--sub", "_INBOX.>", "--src", "127.0.0.2/32"}, accounts.ReasonSourceNotAllowed, ""},
				{"web", []string{"--sub", "_INBOX.>", "--conn-type", "WEBSOCKET"}, accounts.ReasonConnTypeNotAllowed, ""},
			}
			for _, c := range cases {
				s.addUser(t, c.user, c.user+"-pass-123", c.args...)
			}
			// Each case has its state before its first login: nothing of
			// it is in the relay's credential cache.
			mustRun(t, "", "user", "disable", "off", "--dir", s.dir)
			db, err := store.Open(ctx, deploy.Layout{Dir: s.dir}.Path(deploy.DatabaseFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := db.UpdateUser(ctx, "old", func(u *accounts.User) error {
				u.Expires = time.Now().Add(-time.Hour)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// Past the commands, which refuse a grant this large.
			if err := db.UpdateUser(ctx, "huge", func(u *accounts.User) error {
				u.Permissions.Pub.Allow = longSubjects("huge", 1000)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			// Written around the store, as a script on the file could:
			// a reserved account, no account, a role removed under its
			// holder.
			raw, err := sql.Open("sqlite3", "file:"+deploy.Layout{Dir: s.dir}.Path(deploy.DatabaseFile)+"?_busy_timeout=5000")
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			conn, err := raw.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			for _, q := range []struct {
				sql  string
				args []any
			}{
				{`PRAGMA foreign_keys = OFF`, nil},
				{`UPDATE users SET account = ? WHERE name = 'sys'`, []any{reserved[0]}},
				{`UPDATE users SET account = '' WHERE name = 'noacct'`, nil},
				{`DELETE FROM roles WHERE name = 'gone'`, nil},
			} {
				if _, err := conn.ExecContext(ctx, q.sql, q.args...); err != nil {
					t.Fatalf("%s: %v", q.sql, err)
				}
			}

			events := s.authErrors(t)
			var covered []string
			for _, c := range cases {
				relayReason := s.loginReason(t, events, c.user, c.user+"-pass-123")
				r := run(t, "", "user", "explain", c.user, "--dir", s.dir, "--json", "--from", "127.0.0.1", "--conn-type", "STANDARD")
				if wantCode := map[bool]int{true: exitOK, false: exitFailure}[c.want == ""]; r.code != wantCode {
					t.Errorf("explain %s: exit %d, want %d (login %s)", c.user, r.code, wantCode, map[bool]string{true: "allowed", false: "refused"}[c.want == ""])
				}
				var v explainView
				if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
					t.Fatalf("explain %s: %v\n%s", c.user, err, r.stdout)
				}
				wantLogin := "allowed"
				if c.want != "" {
					wantLogin = "denied"
				}
				if relayReason != c.want || v.Reason != relayReason || v.Login != wantLogin {
					t.Errorf("%s: relay reason %q, explain login %q reason %q; want %q from both", c.user, relayReason, v.Login, v.Reason, c.want)
				}
				if !strings.Contains(v.Why, c.why) {
					t.Errorf("%s: explain says why %q, want it to say %q", c.user, v.Why, c.why)
				}
				if !slices.Contains(covered, c.want) {
					covered = append(covered, c.want)
				}
			}
			// Every reason accounts.Decide gives, and allowed.
			for _, reason := range []string{"", accounts.ReasonUserDisabled, accounts.ReasonUserExpired,
				accounts.ReasonAccountReserved, accounts.ReasonInternalError, accounts.ReasonTemplateUnsafe,
				accounts.ReasonSourceNotAllowed, accounts.ReasonConnTypeNotAllowed} {
				if !slices.Contains(covered, reason) {
					t.Errorf("no case for reason %q", reason)
				}
			}
		})
	}
}

// loginReason connects as user from 127.0.0.1 and returns the relay's
// reason for refusing it, from the server's auth error event, or "" when
// it connected.
func (s *servedDir) loginReason(t *testing.T, events <-chan authErr, user, password string) string {
	t.Helper()
	nc, err := s.connect(user, password, from("127.0.0.1"))
	if err == nil {
		nc.Close()
		return ""
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("%s: %v, want connected or Authorization Violation", user, err)
	}
	select {
	case ev := <-events:
		if ev.User != user {
			t.Fatalf("%s: auth error event for %+v", user, ev)
		}
		i := strings.LastIndex(ev.Reason, ": ")
		if i < 0 {
			t.Fatalf("%s: auth error event without a reason: %+v", user, ev)
		}
		return ev.Reason[i+2:]
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no auth error event", user)
	}
	return ""
}
