package doctor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

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
