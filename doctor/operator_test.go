package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"golang.org/x/crypto/bcrypt"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

// TestOperatorMode: doctor checks an operator-mode directory as serve
// does (deploy.Layout.CheckServer): offline, the server config trusts the
// directory's operator and AUTH's JWT delegates to the relay; online, the
// relay's and the admin's JWT logins work, and no relay answers yet.
func TestOperatorMode(t *testing.T) {
	d := testDir{dir: filepath.Join(t.TempDir(), "data")}
	l := deploy.Layout{Dir: d.dir}
	if err := deploy.Init(context.Background(), l, deploy.InitOptions{Accounts: []string{"APP"}, Listen: "127.0.0.1:4222", BcryptCost: bcrypt.MinCost, Operator: true}); err != nil {
		t.Fatal(err)
	}
	got := Run(context.Background(), d.config())
	if failed(got) {
		t.Fatalf("doctor --offline fails a fresh operator directory:\n%s", dump(got))
	}
	want(t, got, OK, "operator", "users can be placed in [APP]")
	want(t, got, OK, "placed accounts", "every account of the database (APP) is allowed by the AUTH account")
	want(t, got, OK, "secrets.json", "relay user")

	url := d.startServer(t)
	got = Run(context.Background(), d.online(url))
	want(t, got, OK, "relay login", "logs in to the callout account A")
	want(t, got, OK, "admin login", "nats-server 2.")
	want(t, got, OK, "server accounts", "operator mode")
	want(t, got, Fail, "relay answering", "no relay is answering logins")

	t.Run("no default sentinel", func(t *testing.T) {
		d.edit(t, "nats.conf", func(s string) string { return replaceLine(s, "default_sentinel:", "") })
		got := Run(context.Background(), d.config())
		want(t, got, Warn, "default_sentinel", "clients with only a username and password are refused")
		if !strings.Contains(dump(got), "default_sentinel") {
			t.Errorf("no default_sentinel finding:\n%s", dump(got))
		}
	})
}

// TestOperatorPlacedAccounts: an account of the database the relay cannot
// place users in (AUTH's allowed_accounts does not list it) fails doctor
// when it has users, and warns when it has none.
func TestOperatorPlacedAccounts(t *testing.T) {
	ctx := context.Background()
	d := testDir{dir: filepath.Join(t.TempDir(), "data")}
	l := deploy.Layout{Dir: d.dir}
	if err := deploy.Init(ctx, l, deploy.InitOptions{Accounts: []string{"APP", "ORDERS", "EMPTY"}, Listen: "127.0.0.1:4222", BcryptCost: bcrypt.MinCost, Operator: true}); err != nil {
		t.Fatal(err)
	}
	db, err := l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "bob", Account: "ORDERS"}, "bob-password-long-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// AUTH's JWT now allows APP only, as an admin's nsc edit would leave it.
	oi, err := l.Operator()
	if err != nil {
		t.Fatal(err)
	}
	s, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := l.AccountJWT(oi, oi.AuthAccount)
	if err != nil {
		t.Fatal(err)
	}
	app, err := s.Operator.Accounts["APP"].Pub()
	if err != nil {
		t.Fatal(err)
	}
	auth.Authorization.AllowedAccounts = jwt.StringList{app}
	osk, err := nkeys.FromSeed([]byte(s.Operator.OperatorSigning))
	if err != nil {
		t.Fatal(err)
	}
	j, err := auth.Encode(osk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.dir, deploy.ResolverDir, oi.AuthAccount+".jwt"), []byte(j), 0o644); err != nil {
		t.Fatal(err)
	}
	got := Run(ctx, d.config())
	want(t, got, Fail, "placed accounts", "account ORDERS (1 user): the AUTH account's allowed_accounts does not list it")
	want(t, got, Warn, "placed accounts", "account EMPTY: the AUTH account's allowed_accounts does not list it")
}
