package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// wantAuthViolation fails unless err is the server's authorization violation.
func wantAuthViolation(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("connect succeeded, want Authorization Violation")
	}
	if !errors.Is(err, nats.ErrAuthorization) && !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
		t.Fatalf("connect error = %v, want Authorization Violation", err)
	}
}

func TestLoginDecisions(t *testing.T) {
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) {
			s := serveEmbedded(t, env.xkey)
			s.addUser(t, "alice", "s3cret-pass", "--account", "APP",
				"--pub", "orders.>", "--sub", "orders.>", "--sub", "_INBOX.>",
				"--deny-pub", "orders.secret", "--deny-sub", "orders.private.>")
			s.addUser(t, "bob", "bob-pass-1")

			t.Run("allowed", func(t *testing.T) {
				nc, err := s.connect("alice", "s3cret-pass")
				if err != nil {
					t.Fatalf("connect as alice: %v", err)
				}
				defer nc.Close()
				sub, err := nc.SubscribeSync("orders.>")
				if err != nil {
					t.Fatal(err)
				}
				if err := nc.Publish("orders.new", []byte("hi")); err != nil {
					t.Fatal(err)
				}
				msg, err := sub.NextMsg(5 * time.Second)
				if err != nil {
					t.Fatalf("alice did not receive her own orders.new: %v", err)
				}
				if got, want := string(msg.Data), "hi"; got != want {
					t.Errorf("got %q, want %q", got, want)
				}
			})
			t.Run("wrong password", func(t *testing.T) {
				_, err := s.connect("alice", "wrong")
				wantAuthViolation(t, err)
			})
			t.Run("unknown user", func(t *testing.T) {
				_, err := s.connect("mallory", "s3cret-pass")
				wantAuthViolation(t, err)
			})
			t.Run("no credentials", func(t *testing.T) {
				_, err := nats.Connect(s.url, nats.Timeout(5*time.Second), nats.NoReconnect())
				wantAuthViolation(t, err)
			})
			t.Run("permissions enforced by the server", func(t *testing.T) {
				errs := make(chan error, 10)
				nc, err := s.connect("alice", "s3cret-pass", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
					errs <- err
				}))
				if err != nil {
					t.Fatalf("connect as alice: %v", err)
				}
				defer nc.Close()
				for _, tc := range []struct {
					op, subject string
					do          func() error
				}{
					{"Publish", "billing.x", func() error { return nc.Publish("billing.x", []byte("hi")) }},
					{"Publish", "orders.secret", func() error { return nc.Publish("orders.secret", []byte("hi")) }},
					{"Subscription", "billing.>", func() error { _, err := nc.SubscribeSync("billing.>"); return err }},
					{"Subscription", "orders.private.x", func() error { _, err := nc.SubscribeSync("orders.private.x"); return err }},
				} {
					if err := tc.do(); err != nil {
						t.Fatal(err)
					}
					if err := nc.Flush(); err != nil {
						t.Fatal(err)
					}
					select {
					case err := <-errs:
						want := `Permissions Violation for ` + tc.op + ` to "` + tc.subject + `"`
						if !strings.Contains(err.Error(), want) {
							t.Errorf("error = %v, want %q", err, want)
						}
					case <-time.After(5 * time.Second):
						t.Errorf("%s to %s: no permissions violation", tc.op, tc.subject)
					}
				}
			})
			t.Run("user in the application account is isolated from it", func(t *testing.T) {
				// bob has no permissions listed, so he may do anything in APP.
				nc, err := s.connect("bob", "bob-pass-1")
				if err != nil {
					t.Fatalf("connect as bob: %v", err)
				}
				defer nc.Close()
				admin := Layout{Dir: s.dir}
				sec, err := admin.loadSecrets()
				if err != nil {
					t.Fatal(err)
				}
				sys, err := s.connect(sec.AdminUser, sec.AdminPassword)
				if err != nil {
					t.Fatalf("connect as the system admin: %v", err)
				}
				defer sys.Close()
				sub, err := sys.SubscribeSync("orders.>")
				if err != nil {
					t.Fatal(err)
				}
				sys.Flush()
				nc.Publish("orders.new", []byte("hi"))
				nc.Flush()
				if msg, err := sub.NextMsg(300 * time.Millisecond); err == nil {
					t.Errorf("SYS subscriber received %q from APP: accounts not isolated", msg.Data)
				}
			})
			t.Run("changes apply on the next connect", func(t *testing.T) {
				mustRun(t, "", "user", "disable", "bob", "--dir", s.dir)
				_, err := s.connect("bob", "bob-pass-1")
				wantAuthViolation(t, err)

				mustRun(t, "", "user", "enable", "--dir", s.dir, "bob")
				nc, err := s.connect("bob", "bob-pass-1")
				if err != nil {
					t.Fatalf("connect after enable: %v", err)
				}
				nc.Close()

				mustRun(t, "n3w-pass\n", "user", "passwd", "bob", "--dir", s.dir, "--password-stdin")
				_, err = s.connect("bob", "bob-pass-1")
				wantAuthViolation(t, err)
				nc, err = s.connect("bob", "n3w-pass")
				if err != nil {
					t.Fatalf("connect with the new password: %v", err)
				}
				nc.Close()

				mustRun(t, "", "user", "rm", "bob", "--dir", s.dir)
				_, err = s.connect("bob", "n3w-pass")
				wantAuthViolation(t, err)
			})
			t.Run("expired user", func(t *testing.T) {
				s.addUser(t, "carol", "carol-pass", "--expires", "2001-01-01T00:00:00Z")
				_, err := s.connect("carol", "carol-pass")
				wantAuthViolation(t, err)
			})
		})
	}
}

func TestSessionExpiryReconnects(t *testing.T) {
	for _, env := range envs {
		t.Run(env.name, func(t *testing.T) {
			s := serveEmbedded(t, env.xkey, "--session-ttl", "2s")
			s.addUser(t, "alice", "s3cret-pass")
			asyncErrs := make(chan error, 4)
			reconnected := make(chan struct{}, 4)
			nc, err := nats.Connect(s.url,
				nats.UserInfo("alice", "s3cret-pass"),
				nats.ReconnectWait(50*time.Millisecond),
				nats.MaxReconnects(-1),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err }),
				nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }),
			)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer nc.Close()
			select {
			case err := <-asyncErrs:
				if !errors.Is(err, nats.ErrAuthExpired) {
					t.Errorf("server said %v, want %v", err, nats.ErrAuthExpired)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("session not ended by the server within 10s of a 2s session")
			}
			select {
			case <-reconnected:
			case <-time.After(10 * time.Second):
				t.Fatal("did not reconnect after the session expired")
			}
			// The reconnected session carries messages.
			sub, err := nc.SubscribeSync("after.expiry")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish("after.expiry", []byte("ok")); err != nil {
				t.Fatal(err)
			}
			if _, err := sub.NextMsg(5 * time.Second); err != nil {
				t.Errorf("no message on the reconnected session: %v", err)
			}
		})
	}
}
