package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"

	"github.com/authrelay/authrelay/accounts"
)

// TestRenderServerConf: the rendered nats.conf is a config nats-server
// accepts, delegates every login to the relay's issuer and xkey in the
// dedicated AUTH account, lets the relay and the admin log in with the
// passwords of secrets.json, and holds none of those secrets in clear.
func TestRenderServerConf(t *testing.T) {
	s, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, ServerConf)
	conf, err := RenderServerConf(s, "127.0.0.1:4333", path, testCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{s.IssuerSeed, s.XKeySeed, s.RelayPassword, s.AdminPassword} {
		if strings.Contains(string(conf), secret) {
			t.Errorf("nats.conf contains a secret of secrets.json")
		}
	}
	if !strings.Contains(string(conf), "nats-server -c "+path) {
		t.Errorf("nats.conf does not say how to run it:\n%s", conf)
	}
	if err := os.WriteFile(path, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, AccountsConf), RenderAccountsConf([]accounts.Account{{Name: "APP"}}), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects the rendered config: %v", err)
	}

	issuer, err := accounts.NewIssuer(s.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	xkey, err := accounts.NewXKey(s.XKeySeed)
	if err != nil {
		t.Fatal(err)
	}
	ac := opts.AuthCallout
	if ac == nil {
		t.Fatal("no auth_callout in the rendered config")
	}
	if ac.Issuer != issuer.PublicKey() || ac.XKey != xkey.PublicKey() || ac.Account != AuthAccount {
		t.Errorf("auth_callout = %+v, want issuer %s, xkey %s, account %s", ac, issuer.PublicKey(), xkey.PublicKey(), AuthAccount)
	}
	if got, want := ac.AuthUsers, []string{RelayUser}; !slices.Equal(got, want) {
		t.Errorf("auth_users = %q, want %q", got, want)
	}
	if got, want := ac.AllowedAccounts, []string{AuthAccount}; !slices.Equal(got, want) {
		t.Errorf("allowed_accounts = %q, want %q", got, want)
	}
	if opts.SystemAccount != SystemAccount {
		t.Errorf("system_account = %q, want %q", opts.SystemAccount, SystemAccount)
	}
	if opts.Host != "127.0.0.1" || opts.Port != 4333 {
		t.Errorf("listen = %s:%d, want 127.0.0.1:4333", opts.Host, opts.Port)
	}
	if opts.AuthTimeout != AuthTimeoutSeconds {
		t.Errorf("authorization.timeout = %v, want %d", opts.AuthTimeout, AuthTimeoutSeconds)
	}

	// The static users: each in its account, with a bcrypt hash of the
	// password in secrets.json; the relay's hash is the cheap one.
	want := map[string]struct {
		account, password string
		cost              int
	}{
		RelayUser: {AuthAccount, s.RelayPassword, testCost},
		AdminUser: {SystemAccount, s.AdminPassword, testCost},
	}
	if len(opts.Users) != len(want) {
		t.Fatalf("nats.conf has %d static users, want %d", len(opts.Users), len(want))
	}
	for _, u := range opts.Users {
		w, ok := want[u.Username]
		if !ok {
			t.Errorf("unexpected static user %q", u.Username)
			continue
		}
		if u.Account == nil || u.Account.Name != w.account {
			t.Errorf("user %s is in account %v, want %s", u.Username, u.Account, w.account)
		}
		if err := bcrypt.CompareHashAndPassword([]byte(u.Password), []byte(w.password)); err != nil {
			t.Errorf("user %s: the hash in nats.conf does not match the password of secrets.json: %v", u.Username, err)
		}
		if cost, err := bcrypt.Cost([]byte(u.Password)); err != nil || cost != w.cost {
			t.Errorf("user %s: bcrypt cost %d (%v), want %d", u.Username, cost, err, w.cost)
		}
	}
}

// TestRenderServerConfRelayCost: the relay's hash is capped at
// relayBcryptCost, so it logs in again quickly after a restart, while the
// admin's has the cost asked (the default for 0).
func TestRenderServerConfRelayCost(t *testing.T) {
	s, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ cost, relay, admin int }{
		{0, relayBcryptCost, DefaultBcryptCost},
		{testCost, testCost, testCost},
		{relayBcryptCost + 1, relayBcryptCost, relayBcryptCost + 1},
	} {
		conf, err := RenderServerConf(s, DefaultListen, ServerConf, c.cost)
		if err != nil {
			t.Fatal(err)
		}
		costs := map[string]int{}
		for _, line := range strings.Split(string(conf), "\n") {
			_, rest, ok := strings.Cut(line, `password: "`)
			if !ok {
				continue
			}
			hash, _, _ := strings.Cut(rest, `"`)
			n, err := bcrypt.Cost([]byte(hash))
			if err != nil {
				t.Fatal(err)
			}
			user, _, _ := strings.Cut(line[strings.Index(line, `user: "`)+len(`user: "`):], `"`)
			costs[user] = n
		}
		if costs[RelayUser] != c.relay || costs[AdminUser] != c.admin {
			t.Errorf("cost %d: relay %d, admin %d; want %d and %d", c.cost, costs[RelayUser], costs[AdminUser], c.relay, c.admin)
		}
	}
}

// TestRenderServerConfBadSeed: a seed that is not a key of its kind is
// refused, as serve refuses it, rather than written into a config whose
// logins could never work (before, a curve seed rendered as the issuer).
func TestRenderServerConfBadSeed(t *testing.T) {
	good, err := NewSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(*Secrets)
	}{
		{"issuer", func(s *Secrets) { s.IssuerSeed = "SAnotaseed" }},
		{"xkey", func(s *Secrets) { s.XKeySeed = "SXnotaseed" }},
		{"issuer is a curve seed", func(s *Secrets) { s.IssuerSeed = good.XKeySeed }},
		{"xkey is an account seed", func(s *Secrets) { s.XKeySeed = good.IssuerSeed }},
	} {
		s := good
		c.edit(&s)
		if conf, err := RenderServerConf(s, DefaultListen, ServerConf, testCost); err == nil {
			t.Errorf("%s: rendered without error:\n%s", c.name, conf)
		}
	}
}

// TestRenderAccountsConf: each account on its line, with only the limits
// it sets, in a file nats-server includes and enforces.
func TestRenderAccountsConf(t *testing.T) {
	accts := []accounts.Account{
		{Name: "APP"},
		{Name: "ORDERS", Limits: accounts.AccountLimits{MaxConnections: 10, MaxSubs: 100, MaxPayload: 4096}},
		{Name: "BILLING", Limits: accounts.AccountLimits{MaxSubs: 5}},
	}
	got := string(RenderAccountsConf(accts))
	wantLines := []string{
		"APP: {}",
		"ORDERS: { limits: { max_connections: 10, max_subs: 100, max_payload: 4096 } }",
		"BILLING: { limits: { max_subs: 5 } }",
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if !strings.HasPrefix(line, "#") {
			lines = append(lines, line)
		}
	}
	if !slices.Equal(lines, wantLines) {
		t.Errorf("accounts.conf lines = %q, want %q", lines, wantLines)
	}

	// The server reads it through nats.conf's include.
	l := initDir(t)
	if err := WriteFileAtomic(l.Path(AccountsConf), []byte(got), 0o644); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(l.Path(ServerConf))
	if err != nil {
		t.Fatalf("nats-server rejects the rendered accounts: %v", err)
	}
	found := map[string]*server.Account{}
	for _, a := range opts.Accounts {
		found[a.Name] = a
	}
	for _, a := range accts {
		if found[a.Name] == nil {
			t.Errorf("account %s missing from the server's config", a.Name)
		}
	}
	if got := found["ORDERS"].MaxActiveConnections(); got != 10 {
		t.Errorf("ORDERS max connections = %d, want 10", got)
	}
}

// TestMaxPayload: the server's default when nats.conf sets none, the value
// it sets otherwise, and an error naming the file and the fix when the
// server could not run it.
func TestMaxPayload(t *testing.T) {
	l := initDir(t)
	got, err := l.MaxPayload()
	if err != nil {
		t.Fatal(err)
	}
	if got != accounts.DefaultMaxPayload {
		t.Errorf("max_payload unset: %d, want the default %d", got, accounts.DefaultMaxPayload)
	}
	editConf(t, l, ServerConf, func(s string) string { return s + "\nmax_payload: 2MB\n" })
	if got, err := l.MaxPayload(); err != nil || got != 2<<20 {
		t.Errorf("max_payload 2MB: %d, %v; want %d", got, err, 2<<20)
	}
	editConf(t, l, ServerConf, func(s string) string { return s + "\nlisten: {{{\n" })
	_, err = l.MaxPayload()
	if err == nil || !strings.Contains(err.Error(), l.Path(ServerConf)) || !strings.Contains(err.Error(), "authrelay doctor --offline --dir "+l.Dir) {
		t.Errorf("broken nats.conf: err = %v, want one naming the file and doctor", err)
	}
}
