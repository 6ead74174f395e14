package doctor

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

// The relay's thresholds, as serve's defaults give them (this package
// does not import relay).
const (
	testDecisionTimeout = 1500 * time.Millisecond
	testSkewWarn        = time.Second
	testMaxSkew         = 5 * time.Second
)

// testDir is an authrelay directory as 'authrelay init' writes it.
type testDir struct {
	dir     string
	secrets deploy.Secrets
}

func (d testDir) path(name string) string { return filepath.Join(d.dir, name) }

// config is the Config that 'authrelay doctor --dir DIR --offline' runs.
func (d testDir) config() Config {
	return Config{
		Dir:             d.dir,
		SecretsPath:     d.path("secrets.json"),
		DatabasePath:    d.path("authrelay.db"),
		ConfigPath:      d.path("nats.conf"),
		Offline:         true,
		DecisionTimeout: testDecisionTimeout,
		SkewWarn:        testSkewWarn,
		MaxSkew:         testMaxSkew,
	}
}

// online is the Config that checks the server at url too.
func (d testDir) online(url string) Config {
	c := d.config()
	c.Offline, c.URL = false, url
	return c
}

// newTestDir makes an authrelay directory with deploy.Init, whose
// nats.conf listens on listen, with the application account APP.
func newTestDir(t *testing.T, listen string) testDir {
	t.Helper()
	d := testDir{dir: filepath.Join(t.TempDir(), "data")}
	l := deploy.Layout{Dir: d.dir}
	// The real init, so that the checks see what users have.
	if err := deploy.Init(context.Background(), l, deploy.InitOptions{Accounts: []string{"APP"}, Listen: listen, BcryptCost: bcrypt.MinCost}); err != nil {
		t.Fatal(err)
	}
	var err error
	if d.secrets, err = l.LoadSecrets(); err != nil {
		t.Fatal(err)
	}
	return d
}

// edit rewrites a file of the directory with edit, failing the test if
// edit changes nothing.
func (d testDir) edit(t *testing.T, name string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(d.path(name))
	if err != nil {
		t.Fatal(err)
	}
	out := edit(string(b))
	if out == string(b) {
		t.Fatalf("the edit changed nothing in %s:\n%s", name, b)
	}
	if err := os.WriteFile(d.path(name), []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceLine replaces the line of s whose trimmed text starts with prefix.
func replaceLine(s, prefix, with string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			lines[i] = with
		}
	}
	return strings.Join(lines, "\n")
}

// startServer runs nats-server in-process from the directory's nats.conf,
// on a free loopback port, with no relay, and returns its URL.
func (d testDir) startServer(t *testing.T) string {
	t.Helper()
	opts, err := server.ProcessConfigFile(d.path("nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.NoSigs, opts.NoLog = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		t.Fatal("nats-server not ready within 10s")
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns.ClientURL()
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// find returns the results of one check.
func find(results []Result, check string) []Result {
	var out []Result
	for _, r := range results {
		if r.Check == check {
			out = append(out, r)
		}
	}
	return out
}

// failed reports whether any result is a failure.
func failed(results []Result) bool {
	for _, r := range results {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// want fails the test unless the check has a result with status whose
// message contains substr.
func want(t *testing.T, results []Result, status Status, check, substr string) {
	t.Helper()
	for _, r := range find(results, check) {
		if r.Status == status && strings.Contains(r.Message, substr) {
			return
		}
	}
	t.Errorf("no %s %q result containing %q; got:\n%s", status, check, substr, dump(results))
}

func dump(results []Result) string {
	var b strings.Builder
	for _, r := range results {
		fmt.Fprintf(&b, "%s  %s  %s\n", r.Status, r.Check, r.Message)
	}
	return b.String()
}

// TestOrder: the checks run in the order files, config, network, and a
// fresh directory passes every offline check.
func TestOrder(t *testing.T) {
	d := newTestDir(t, "127.0.0.1:4222")
	got := Run(context.Background(), d.config())
	var checks []string
	for _, r := range got {
		if r.Status != OK {
			t.Errorf("%s on a fresh directory: %s %s", r.Check, r.Status, r.Message)
		}
		checks = append(checks, r.Check)
	}
	wantChecks := []string{"directory", "secrets.json", "database", "unrestricted", "server config", "issuer", "xkey",
		"callout account", "auth_users", "nonce", "app accounts", "allowed_accounts", "system account", "auth timeout", "jetstream"}
	if strings.Join(checks, ",") != strings.Join(wantChecks, ",") {
		t.Errorf("checks ran in the order\n%v, want\n%v", checks, wantChecks)
	}
}

func TestConfigProblems(t *testing.T) {
	otherIssuer := func(t *testing.T) string {
		kp, err := nkeys.CreateAccount()
		if err != nil {
			t.Fatal(err)
		}
		pub, err := kp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		return pub
	}
	conf := func(edit func(string) string) func(*testing.T, testDir) {
		return func(t *testing.T, d testDir) { d.edit(t, "nats.conf", edit) }
	}
	cases := []struct {
		name   string
		change func(t *testing.T, d testDir)
		fails  bool
		status Status
		check  string
		want   string
	}{{
		name: "wrong issuer",
		change: func(t *testing.T, d testDir) {
			pub := otherIssuer(t)
			d.edit(t, "nats.conf", func(s string) string { return replaceLine(s, "issuer:", "    issuer: "+pub) })
		},
		fails: true, status: Fail, check: "issuer", want: "does not match the relay's issuer key",
	}, {
		name:   "missing xkey",
		change: conf(func(s string) string { return replaceLine(s, "xkey:", "") }),
		fails:  true, status: Fail, check: "xkey", want: "passwords travel in clear",
	}, {
		name: "xkey of another relay",
		change: func(t *testing.T, d testDir) {
			kp, err := nkeys.CreateCurveKeys()
			if err != nil {
				t.Fatal(err)
			}
			pub, err := kp.PublicKey()
			if err != nil {
				t.Fatal(err)
			}
			d.edit(t, "nats.conf", func(s string) string { return replaceLine(s, "xkey:", "    xkey: "+pub) })
		},
		fails: true, status: Fail, check: "xkey", want: "the relay cannot open the sealed requests",
	}, {
		name: "secrets readable by others",
		change: func(t *testing.T, d testDir) {
			if err := os.Chmod(d.path("secrets.json"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		fails: true, status: Fail, check: "secrets.json", want: "chmod 600",
	}, {
		name: "secrets not JSON",
		change: func(t *testing.T, d testDir) {
			d.edit(t, "secrets.json", func(s string) string { return s[1:] })
			if err := os.Chmod(d.path("secrets.json"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		fails: true, status: Fail, check: "secrets.json", want: "is not valid JSON",
	}, {
		name: "directory writable by anyone",
		change: func(t *testing.T, d testDir) {
			if err := os.Chmod(d.dir, 0o777); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := os.Chmod(d.dir, 0o700); err != nil {
					t.Error(err)
				}
			})
		},
		fails: true, status: Fail, check: "directory", want: "chmod 700",
	}, {
		name: "extra static user in the callout account",
		change: conf(func(s string) string {
			return strings.Replace(s, `{ user: "authrelay",`, `{ user: "eve", password: "eve-pass" }, { user: "authrelay",`, 1)
		}),
		fails: true, status: Fail, check: "callout account", want: `user "eve" in the callout account AUTH could read other users' passwords`,
	}, {
		name: "nkey user in the callout account that may subscribe",
		change: conf(func(s string) string {
			return strings.Replace(s, `permissions: { publish: { deny: ">" }, subscribe: { deny: ">" } }`, `permissions: { publish: { deny: ">" } }`, 1)
		}),
		fails: true, status: Fail, check: "callout account", want: `user "` + deploy.NonceKey + `" in the callout account AUTH could read other users' passwords`,
	}, {
		name: "no nkey user: no nonce",
		change: conf(func(s string) string {
			var kept []string
			for _, line := range strings.Split(s, "\n") {
				if !strings.Contains(line, deploy.NonceKey) {
					kept = append(kept, line)
				}
			}
			return strings.Join(kept, "\n")
		}),
		status: Warn, check: "nonce", want: "nkey logins are refused with nonce_missing",
	}, {
		name:   "relay user not in auth_users",
		change: conf(func(s string) string { return replaceLine(s, "auth_users:", `    auth_users: [ "someone" ]`) }),
		fails:  true, status: Fail, check: "auth_users", want: `lacks the relay's user "authrelay"`,
	}, {
		name:   "callout account not set",
		change: conf(func(s string) string { return replaceLine(s, "account: AUTH", "") }),
		fails:  true, status: Fail, check: "callout account", want: "auth_callout.account is not set",
	}, {
		name:   "no system account",
		change: conf(func(s string) string { return replaceLine(s, "system_account:", "") }),
		fails:  true, status: Fail, check: "system account", want: "system_account is not set",
	}, {
		name:   "auth_callout misspelt",
		change: conf(func(s string) string { return strings.Replace(s, "auth_callout {", "auth_callout_disabled {", 1) }),
		fails:  true, status: Fail, check: "server config", want: "nats-server would refuse",
	}, {
		name: "auth_callout removed",
		change: conf(func(s string) string {
			i, j := strings.Index(s, "authorization {"), strings.LastIndex(s, "}")
			return s[:i] + s[j+1:]
		}),
		fails: true, status: Fail, check: "auth_callout", want: "has no authorization { auth_callout { … } } block: the server never asks the relay",
	}, {
		name:   "allowed_accounts empty",
		change: conf(func(s string) string { return replaceLine(s, "allowed_accounts:", "") }),
		status: Warn, check: "allowed_accounts", want: "the admin cannot log in",
	}, {
		name:   "short authorization timeout",
		change: conf(func(s string) string { return replaceLine(s, "timeout:", "  timeout: 1") }),
		status: Warn, check: "auth timeout", want: "decision timeout",
	}, {
		name:   "a second jetstream block",
		change: conf(func(s string) string { return s + "\njetstream { store_dir: \"/elsewhere\" }\n" }),
		fails:  true, status: Fail, check: "jetstream", want: "sets jetstream again (first at ",
	}, {
		name: "an application account defined in nats.conf too",
		change: conf(func(s string) string {
			return strings.Replace(s, `  include "accounts.conf"`, "  APP: { jetstream: enabled }\n  include \"accounts.conf\"", 1)
		}),
		fails: true, status: Fail, check: "jetstream", want: "defines account APP, which authrelay defines in accounts.conf",
	}, {
		name: "a nats.conf from before JetStream, an account with --jetstream",
		change: func(t *testing.T, d testDir) {
			d.edit(t, "nats.conf", func(s string) string {
				i := strings.Index(s, "\njetstream {")
				j := i + 1 + strings.Index(s[i+1:], "}\n")
				return s[:i] + s[j+1:]
			})
			db, err := store.Open(t.Context(), d.path("authrelay.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.SetAccountJetStream(t.Context(), "APP", true); err != nil {
				t.Fatal(err)
			}
		},
		fails: true, status: Fail, check: "jetstream", want: "has JetStream off, so accounts APP (given --jetstream) have no JetStream, KV or MQTT: add server_name: ",
	}, {
		name: "static user in an application account",
		change: func(t *testing.T, d testDir) {
			d.edit(t, "accounts.conf", func(s string) string {
				return strings.Replace(s, "APP: {}", `APP: { users: [ { user: "bob", password: "bob-pass" } ] }`, 1)
			})
		},
		status: Warn, check: "app accounts", want: `static users "bob" that log in with the server's own password check`,
	}, {
		name: "database account missing from the config",
		change: func(t *testing.T, d testDir) {
			d.edit(t, "accounts.conf", func(s string) string { return strings.Replace(s, "APP: {}", "", 1) })
		},
		status: Warn, check: "app accounts", want: "account APP of authrelay's database is not defined",
	}, {
		name: "no database",
		change: func(t *testing.T, d testDir) {
			if err := os.Remove(d.path("authrelay.db")); err != nil {
				t.Fatal(err)
			}
		},
		fails: true, status: Fail, check: "database", want: "though secrets.json does: it was removed or moved away",
	}, {
		name: "database from a newer authrelay",
		change: func(t *testing.T, d testDir) {
			setSchemaVersion(t, d.path("authrelay.db"), 999)
		},
		fails: true, status: Fail, check: "database", want: "written by a newer authrelay",
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDir(t, "127.0.0.1:4222")
			if got := Run(context.Background(), d.config()); failed(got) {
				t.Fatalf("doctor on a fresh directory failed:\n%s", dump(got))
			}
			c.change(t, d)
			got := Run(context.Background(), d.config())
			if f := failed(got); f != c.fails {
				t.Errorf("a check failed: %v, want %v:\n%s", f, c.fails, dump(got))
			}
			want(t, got, c.status, c.check, c.want)
			for _, r := range got {
				if r.Status == Fail && r.Check != c.check && !c.fails {
					t.Errorf("unexpected failure: %s  %s", r.Check, r.Message)
				}
			}
		})
	}

	t.Run("older schema is not migrated", func(t *testing.T) {
		d := newTestDir(t, "127.0.0.1:4222")
		path := d.path("authrelay.db")
		latest, err := store.LatestSchemaVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v := userVersion(t, path); v != latest {
			t.Fatalf("schema version of a new database = %d, want %d", v, latest)
		}
		setSchemaVersion(t, path, latest-1)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		got := Run(context.Background(), d.config())
		if failed(got) {
			t.Errorf("an older schema is a warning, not a failure:\n%s", dump(got))
		}
		want(t, got, Warn, "database", fmt.Sprintf("has schema version %d, this authrelay's is %d: the next 'authrelay serve' or admin command migrates it", latest-1, latest))
		if v := userVersion(t, path); v != latest-1 {
			t.Errorf("schema version after doctor = %d, want %d: doctor must not migrate", v, latest-1)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(before, after) {
			t.Errorf("doctor changed %s", path)
		}
	})

	t.Run("no secrets", func(t *testing.T) {
		// Without the keys, the issuer and xkey are not compared: a
		// warning each, not a false failure.
		d := newTestDir(t, "127.0.0.1:4222")
		if err := os.Remove(d.path("secrets.json")); err != nil {
			t.Fatal(err)
		}
		got := Run(context.Background(), d.config())
		want(t, got, Fail, "secrets.json", "is not an authrelay directory")
		want(t, got, Warn, "issuer", "not compared: secrets.json could not be read")
		want(t, got, Warn, "xkey", "not compared: secrets.json could not be read")
		want(t, got, OK, "auth_users", `the relay's user "authrelay"`)
	})
}

// userVersion reads the database's PRAGMA user_version.
func userVersion(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// setSchemaVersion sets the database's PRAGMA user_version.
func setSchemaVersion(t *testing.T, path string, v int) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("PRAGMA user_version = " + strconv.Itoa(v)); err != nil {
		t.Fatal(err)
	}
}

// TestUnrestricted: users and roles that allow '>' in a direction are
// named, at most listMax of them, with their denies.
func TestUnrestricted(t *testing.T) {
	d := newTestDir(t, "127.0.0.1:4222")
	ctx := context.Background()
	db, err := store.Open(ctx, d.path("authrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.ReservedAccounts = func() ([]string, error) { return []string{"AUTH", "SYS"}, nil }
	h, err := bcrypt.GenerateFromPassword([]byte("a-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddRole(ctx, accounts.Role{Name: "ops", Permissions: accounts.Permissions{
		Pub: accounts.Rule{Allow: []string{">"}, Deny: []string{"$SYS.>"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUserWithHash(ctx, accounts.User{Name: "reader", Account: "APP",
		Permissions: accounts.Permissions{Sub: accounts.Rule{Allow: []string{"metrics.>"}}}}, string(h)); err != nil {
		t.Fatal(err)
	}
	for i := range listMax + 2 {
		u := accounts.User{Name: fmt.Sprintf("u%02d", i), Account: "APP",
			Permissions: accounts.Permissions{Sub: accounts.Rule{Allow: []string{">"}}}}
		if err := db.AddUserWithHash(ctx, u, string(h)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	got := Run(ctx, d.config())
	if failed(got) {
		t.Errorf("an unrestricted direction is a warning:\n%s", dump(got))
	}
	want(t, got, Warn, "unrestricted", "22 users: u00 (subscribe), u01 (subscribe), ")
	want(t, got, Warn, "unrestricted", "u19 (subscribe) and 2 more; 1 role: ops (publish except $SYS.>)")
	for _, r := range find(got, "unrestricted") {
		if strings.Contains(r.Message, "reader") || strings.Contains(r.Message, "u20") {
			t.Errorf("doctor lists reader, who may only subscribe to metrics.>, or more than %d names: %s", listMax, r.Message)
		}
	}
}

// TestNoRelay: against a server that runs the directory's config but has
// no relay, every check passes but the one that sees no relay answer.
func TestNoRelay(t *testing.T) {
	d := newTestDir(t, "127.0.0.1:4222")
	url := d.startServer(t)

	start := time.Now()
	got := Run(context.Background(), d.online(url))
	want(t, got, Fail, "relay answering", "no relay is answering logins")
	want(t, got, Fail, "relay answering", "authrelay serve --dir "+d.dir)
	// Everything else about the server is fine.
	want(t, got, OK, "server", url+" accepts connections")
	want(t, got, OK, "relay login", "callout account AUTH")
	want(t, got, OK, "admin login", "nats-server 2.")
	want(t, got, OK, "config in use", "as it is now")
	want(t, got, OK, "server accounts", "knows every account")
	want(t, got, OK, "clock", "the server's clock is within")
	for _, r := range got {
		if r.Status == Fail && r.Check != "relay answering" {
			t.Errorf("unexpected failure: %s  %s", r.Check, r.Message)
		}
	}
	if e := time.Since(start); e < 2*time.Second {
		t.Errorf("doctor took %v: it cannot know no relay answers before the 2s authorization timeout", e)
	}

	t.Run("clock skew", func(t *testing.T) {
		cfg := d.online(url)
		cfg.Now = func() time.Time { return time.Now().Add(-45 * time.Second) }
		got := Run(context.Background(), cfg)
		want(t, got, Fail, "clock", "ahead of this host's, beyond the relay's clock skew tolerance")
		want(t, got, Fail, "relay answering", "behind the server's, beyond the relay's clock skew tolerance")
	})

	t.Run("relay password does not match", func(t *testing.T) {
		d.edit(t, "secrets.json", func(s string) string {
			return regexp.MustCompile(`"relay_password": "[^"]*"`).ReplaceAllString(s, `"relay_password": "not-the-password"`)
		})
		if err := os.Chmod(d.path("secrets.json"), 0o600); err != nil {
			t.Fatal(err)
		}
		got := Run(context.Background(), d.online(url))
		want(t, got, Fail, "relay login", "refused the relay's user")
	})

	t.Run("cancelled", func(t *testing.T) {
		// A cancelled run does not wait out the probe's timeout.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		got := Run(ctx, d.online(url))
		if e := time.Since(start); e >= 2*time.Second {
			t.Errorf("a cancelled doctor took %v", e)
		}
		if n := len(find(got, "relay answering")); n != 0 {
			t.Errorf("a cancelled doctor probed logins:\n%s", dump(got))
		}
	})
}

func TestServerUnreachable(t *testing.T) {
	addr := "127.0.0.1:" + strconv.Itoa(closedPort(t))
	d := newTestDir(t, addr)
	for _, url := range []string{"nats://" + addr, ""} { // "": the URL comes from nats.conf's listen
		got := Run(context.Background(), d.online(url))
		want(t, got, Fail, "server", "nothing answers at nats://"+addr)
		want(t, got, Fail, "server", "start the server: nats-server -c "+d.path("nats.conf"))
		if n := len(find(got, "relay answering")); n != 0 {
			t.Errorf("doctor (URL %q) probed logins on an unreachable server", url)
		}
	}

	t.Run("bad URL", func(t *testing.T) {
		got := Run(context.Background(), d.online("nats://:4222"))
		want(t, got, Fail, "server", `--nats "nats://:4222": no host`)
	})
}

// TestResultsEscapeControlCharacters: a message embeds what a server
// answered, such as the account a login landed in; a newline or an ANSI
// escape in it comes out escaped.
func TestResultsEscapeControlCharacters(t *testing.T) {
	d := &checker{}
	d.fail("relay login", "the relay's user %q logs in to account %s", "authrelay", "APP\nOK    everything  fine\x1b[2J")
	got := d.results[0].Message
	if want := `the relay's user "authrelay" logs in to account APP\nOK    everything  fine\x1b[2J`; got != want {
		t.Errorf("message = %q, want %q", got, want)
	}
}

// TestClientCertificatesNeedVerify: a user bound to a client certificate
// cannot log in through a server that does not verify client
// certificates (the relay reads only verified chains): doctor fails and
// says what to add.
func TestClientCertificatesNeedVerify(t *testing.T) {
	d := newTestDir(t, "127.0.0.1:4222")
	ctx := context.Background()
	db, err := store.Open(ctx, d.path("authrelay.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.ReservedAccounts = func() ([]string, error) { return []string{"AUTH", "SYS"}, nil }
	if err := db.AddUserWith(ctx, accounts.User{Name: "ingest", Account: "APP"}, "", []accounts.StoredCredential{
		{Kind: accounts.CredTLSSubject, Value: "CN=ingest,O=acme"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got := Run(ctx, d.config())
	want(t, got, Fail, "client certificates", "1 user with a client certificate binding, but the server does not verify client certificates")
	want(t, got, Fail, "client certificates", "verify: true")
}
