package deploy

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// adminConn is the system admin's connection to the server of l.
func adminConn(t *testing.T, l Layout) *nats.Conn {
	t.Helper()
	url, err := l.ClientURL()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := l.ConnectAdmin(url, "authrelay test", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// TestReloadAppliesAccountsConf: an account written to accounts.conf is
// loaded by the running server once Reload has it reload; a broken
// accounts.conf is refused with the server's reason, and the server keeps
// its accounts.
func TestReloadAppliesAccountsConf(t *testing.T) {
	l, ns := initServed(t)
	ctx := t.Context()
	nc := adminConn(t, l)
	loaded, err := ServerAccounts(ctx, nc, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := loaded[ns.ID()]; !slices.Contains(got, "APP") || slices.Contains(got, "ORDERS") {
		t.Fatalf("accounts before: %v, want APP and not ORDERS", got)
	}
	if lacking, servers, err := ServersLacking(ctx, nc, "ORDERS", time.Second); err != nil || servers != 1 || !slices.Equal(lacking, []string{ns.ID()}) {
		t.Fatalf("ServersLacking(ORDERS) before = %v, %d, %v; want this server of 1", lacking, servers, err)
	}

	db, err := l.OpenDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.AddAccount(ctx, "ORDERS"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WriteAccountsConf(ctx, db); err != nil {
		t.Fatal(err)
	}
	res, err := Reload(ctx, nc, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].ID != ns.ID() || res[0].Err != nil {
		t.Fatalf("Reload = %+v, want server %s reloaded", res, ns.ID())
	}
	if loaded, err = ServerAccounts(ctx, nc, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := loaded[ns.ID()]; !slices.Contains(got, "ORDERS") {
		t.Errorf("accounts after the reload: %v, want ORDERS", got)
	}
	if lacking, servers, err := ServersLacking(ctx, nc, "ORDERS", time.Second); err != nil || servers != 1 || len(lacking) != 0 {
		t.Errorf("ServersLacking(ORDERS) after the reload = %v, %d, %v; want none of 1", lacking, servers, err)
	}

	if err := os.WriteFile(l.Path(AccountsConf), []byte("accounts {\n  BROKEN: { users: [ {user: \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err = Reload(ctx, nc, time.Second); err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Err == nil {
		t.Fatalf("Reload of a broken accounts.conf = %+v, want the server's refusal", res)
	}
	if loaded, err = ServerAccounts(ctx, nc, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := loaded[ns.ID()]; !slices.Contains(got, "ORDERS") {
		t.Errorf("accounts after a refused reload: %v, want the old ones", got)
	}
}

// TestSessions lists the connections of one user as the server reports
// them, and none of a user who is not connected.
func TestSessions(t *testing.T) {
	l, ns := initServed(t)
	ctx := t.Context()
	nc := adminConn(t, l)
	list, truncated, err := Sessions(ctx, nc, AdminUser, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if truncated || len(list) != 1 {
		t.Fatalf("Sessions(admin) = %+v, truncated %v; want this connection", list, truncated)
	}
	s := list[0]
	if s.User != AdminUser || s.Account != SystemAccount || s.ServerID != ns.ID() || s.Name != "authrelay test" || s.Start.IsZero() {
		t.Errorf("session %+v, want admin in SYS on %s named 'authrelay test'", s, ns.ID())
	}
	if list, _, err = Sessions(ctx, nc, "nobody", time.Second); err != nil || len(list) != 0 {
		t.Errorf("Sessions(nobody) = %+v, %v; want none", list, err)
	}
}
