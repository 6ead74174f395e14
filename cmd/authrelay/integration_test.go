package main

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
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
				admin := deploy.Layout{Dir: s.dir}
				sec, err := admin.LoadSecrets()
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
			s.addUser(t, "alice", "s3cret-pass", "--pub", ">", "--sub", ">")
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

func TestCalloutAccountIsClosed(t *testing.T) {
	s := serveEmbedded(t, true)
	sec, err := deploy.Layout{Dir: s.dir}.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	// Even the relay's own user may not inject login requests: the server
	// denies auth_users publishing on the callout subject.
	errs := make(chan error, 1)
	nc, err := s.connect(sec.RelayUser, sec.RelayPassword, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case errs <- err:
		default:
		}
	}))
	if err != nil {
		t.Fatalf("connect as the relay user: %v", err)
	}
	defer nc.Close()
	_, err = nc.Request("$SYS.REQ.USER.AUTH", []byte("forged"), 2*time.Second)
	if err == nil {
		t.Fatal("a request published on $SYS.REQ.USER.AUTH inside AUTH got an answer")
	}
	select {
	case err := <-errs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("async error %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("publishing on $SYS.REQ.USER.AUTH as the relay user was not refused")
	}
	// A user placed by authrelay never lands in AUTH or SYS: init refuses
	// those names, and so does the database.
	r := run(t, "", "user", "add", "eve", "--dir", s.dir, "--account", "AUTH", "--generate-password")
	if r.code == 0 {
		t.Fatal("user add placed a user in the AUTH account")
	}
}

func TestAdminWritesDuringLogins(t *testing.T) {
	s := serveEmbedded(t, true)
	s.addUser(t, "alice", "s3cret-pass")

	stop := make(chan struct{})
	var logins, failures atomicCounter
	var wg sync.WaitGroup
	for range 1 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				nc, err := s.connect("alice", "s3cret-pass")
				if err != nil {
					failures.add()
					t.Logf("login during admin writes: %v", err)
					continue
				}
				nc.Close()
				logins.add()
			}
		}()
	}
	// Admin commands run as separate database handles, like separate
	// processes, while logins are verified: three writers at once, which
	// keeps the two CPUs of a small machine from starving the logins.
	const writers, each = 3, 4
	results := make(chan result, writers*each)
	var admins sync.WaitGroup
	for w := range writers {
		admins.Add(1)
		go func() {
			defer admins.Done()
			for i := range each {
				name := "svc-" + strconv.Itoa(w*each+i)
				results <- run(t, "pw-"+name+"\n", "user", "add", name, "--dir", s.dir, "--password-stdin", "--pub", "svc."+name+".>")
			}
		}()
	}
	admins.Wait()
	close(results)
	for r := range results {
		if r.code != 0 {
			t.Errorf("user add during logins: exit %d: %s", r.code, r.stderr)
		}
	}
	close(stop)
	wg.Wait()
	if failures.get() > 0 {
		t.Errorf("%d of %d logins failed during admin writes", failures.get(), failures.get()+logins.get())
	}
	if logins.get() == 0 {
		t.Error("no login completed during the admin writes")
	}
	if strings.Contains(s.log.String(), "locked") || strings.Contains(s.log.String(), "internal_error") {
		t.Error("the relay hit a database error during admin writes")
	}
	// Every write landed, and each new user can log in.
	for i := range writers * each {
		name := "svc-" + strconv.Itoa(i)
		nc, err := s.connect(name, "pw-"+name)
		if err != nil {
			t.Errorf("connect as %s: %v", name, err)
			continue
		}
		nc.Close()
	}
}

// atomicCounter counts across goroutines.
type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) add()       { c.n.Add(1) }
func (c *atomicCounter) get() int64 { return c.n.Load() }
