package deploy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/authrelay/authrelay/internal/nsctest"
)

// nscInit runs 'init --operator --nsc keys' into a new directory.
func nscInit(t *testing.T, keys string) (deploy.Layout, error) {
	t.Helper()
	l := deploy.Layout{Dir: filepath.Join(t.TempDir(), "data")}
	return l, deploy.Init(context.Background(), l, deploy.InitOptions{Operator: true, Nsc: keys, Listen: loopback.Addr(t), BcryptCost: 4})
}

// TestNscInitRefusals: an nsc export that lacks what a relay needs is
// refused with what to do, and nothing is written.
func TestNscInitRefusals(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		setup func(t *testing.T, n *nsctest.Nsc) string
		want  string
	}{
		{"no operator jwt", func(t *testing.T, n *nsctest.Nsc) string {
			n.NewOperator(t, "APP")
			keys := n.Export(t)
			if err := os.Remove(filepath.Join(keys, deploy.NscOperatorFile)); err != nil {
				t.Fatal(err)
			}
			return keys
		}, "nsc describe operator --raw --output-file"},
		{"no xkey", func(t *testing.T, n *nsctest.Nsc) string {
			n.NewOperator(t, "APP")
			n.Run(t, "edit", "authcallout", "--account", "AUTH", "--rm-curve")
			return n.Export(t)
		}, "has no xkey"},
		{"xkey seed not exported", func(t *testing.T, n *nsctest.Nsc) string {
			n.NewOperator(t, "APP")
			keys := n.Export(t)
			xkeys, err := filepath.Glob(filepath.Join(keys, "X*.nk"))
			if err != nil || len(xkeys) != 1 {
				t.Fatalf("curve seeds in the export: %v, %v", xkeys, err)
			}
			if err := os.Remove(xkeys[0]); err != nil {
				t.Fatal(err)
			}
			return keys
		}, "export with --curves"},
		{"two system users", func(t *testing.T, n *nsctest.Nsc) string {
			n.NewOperator(t, "APP")
			n.Run(t, "add", "user", "--account", "SYS", "admin")
			return n.Export(t)
		}, "several system account users (admin, sys)"},
		{"no callout account", func(t *testing.T, n *nsctest.Nsc) string {
			n.NewOperator(t, "APP")
			n.Run(t, "edit", "authcallout", "--account", "AUTH", "--disable")
			return n.Export(t)
		}, "has no callout account"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			n := nsctest.New(t)
			l, err := nscInit(t, c.setup(t, n))
			if !errors.Is(err, deploy.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("init: %v, want an invalid-input error containing %q", err, c.want)
			}
			if _, serr := os.Stat(l.Dir); serr == nil {
				entries, _ := os.ReadDir(l.Dir)
				if len(entries) > 0 {
					t.Errorf("a refused init left %d files in %s", len(entries), l.Dir)
				}
			}
		})
	}
	t.Run("nsc without operator", func(t *testing.T) {
		l := deploy.Layout{Dir: filepath.Join(t.TempDir(), "data")}
		err := deploy.Init(context.Background(), l, deploy.InitOptions{Nsc: t.TempDir(), Listen: loopback.Addr(t)})
		if !errors.Is(err, deploy.ErrInvalid) || !strings.Contains(err.Error(), "--nsc goes with --operator") {
			t.Fatalf("init --nsc without --operator: %v", err)
		}
	})
}

// TestNscAccounts: what an nsc directory keeps, and the account commands'
// library side there: an account registered from a later export, refused
// while AUTH does not allow it or with a limit; one removed from the
// database loses its signing key; doctor's placement check names an
// account that cannot take users.
func TestNscAccounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := nsctest.New(t)
	op := n.NewOperator(t, "APP")
	var notes []string
	l := deploy.Layout{Dir: filepath.Join(t.TempDir(), "data")}
	if err := deploy.Init(ctx, l, deploy.InitOptions{Operator: true, Nsc: n.Export(t), Listen: loopback.Addr(t),
		Notes: func(s string) { notes = append(notes, s) }}); err != nil {
		t.Fatal(err)
	}
	oi, err := l.Operator()
	if err != nil {
		t.Fatal(err)
	}
	if !oi.NscManaged() {
		t.Errorf("operator.json managed_by = %q, want nsc", oi.ManagedBy)
	}
	s, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	ok := s.Operator
	if ok.Operator != "" || ok.OperatorSigning != "" || ok.Auth != "" || ok.System != "" {
		t.Error("secrets.json holds operator or account identity seeds from the export; it needs none")
	}
	if got := ok.Accounts["APP"]; got.Seed != "" || got.PublicKey != op.Accounts["APP"] || got.SigningSeed == "" {
		t.Errorf("APP's keys = %+v, want its public key and signing seed only", got)
	}
	if ok.RelayUserJWT == "" || ok.AdminUserJWT == "" {
		t.Error("the relay's and the admin's nsc-issued JWTs are not kept")
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "accounts [APP]") {
		t.Errorf("init notes %q, want the imported accounts", notes)
	}

	db, err := l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	// Without its keys, an account cannot be added.
	if err := db.AddAccount(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WriteAccountsConf(ctx, db); !errors.Is(err, deploy.ErrManagedByNsc) || !strings.Contains(err.Error(), "account add ORDERS --nsc KEYDIR") {
		t.Errorf("an account without keys: %v, want ErrManagedByNsc with the steps", err)
	}
	problems, err := l.PlacementProblems([]string{"APP", "ORDERS"})
	if err != nil {
		t.Fatal(err)
	}
	if _, bad := problems["APP"]; bad || !strings.Contains(problems["ORDERS"], "no signing key") {
		t.Errorf("placement problems %q, want ORDERS only, for its signing key", problems)
	}

	n.Run(t, "add", "account", "ORDERS")
	n.Run(t, "edit", "account", "ORDERS", "--sk", "generate")
	orders := accounts.Account{Name: "ORDERS"}
	if err := l.ImportNscAccount(orders, n.Export(t)); !errors.Is(err, deploy.ErrInvalid) || !strings.Contains(err.Error(), "allowed_accounts does not list it") {
		t.Errorf("import of an account AUTH does not allow: %v", err)
	}
	n.Run(t, "edit", "authcallout", "--account", "AUTH", "--allowed-account", n.Field(t, "sub", "account", "ORDERS"))
	limited := orders
	limited.Limits.MaxConnections = 5
	if err := l.ImportNscAccount(limited, n.Export(t)); !errors.Is(err, deploy.ErrInvalid) || !strings.Contains(err.Error(), "nsc edit account ORDERS") {
		t.Errorf("import with a limit: %v", err)
	}
	if err := l.ImportNscAccount(orders, n.Export(t)); err != nil {
		t.Fatalf("import ORDERS: %v", err)
	}
	if _, err := l.WriteAccountsConf(ctx, db); err != nil {
		t.Fatalf("with ORDERS' keys: %v", err)
	}
	if problems, err := l.PlacementProblems([]string{"APP", "ORDERS"}); err != nil || len(problems) > 0 {
		t.Errorf("placement problems %q, %v; want none", problems, err)
	}
	id, err := l.Identity()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(id.Accounts, ","); got != "APP,ORDERS" {
		t.Errorf("the relay places users in %s, want APP,ORDERS", got)
	}

	if err := db.RemoveAccount(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WriteAccountsConf(ctx, db); err != nil {
		t.Fatal(err)
	}
	if s, err := l.LoadSecrets(); err != nil {
		t.Fatal(err)
	} else if _, held := s.Operator.Accounts["ORDERS"]; held {
		t.Error("a removed account's signing key is still in secrets.json")
	}
}
