package deploy

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/store"
)

// TestReservedAccounts: the callout and system accounts are read from the
// directory's nats.conf, whatever it calls them, so that a config edited
// after init still has its own accounts refused.
func TestReservedAccounts(t *testing.T) {
	l := initDir(t)
	got, err := l.ReservedAccounts()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{AuthAccount, SystemAccount}; !slices.Equal(got, want) {
		t.Errorf("reserved of a new directory = %q, want %q", got, want)
	}

	// Rename both accounts in nats.conf: the new names are reserved.
	editConf(t, l, ServerConf, func(s string) string {
		s = strings.ReplaceAll(s, "AUTH", "CALLOUT")
		s = replaceLine(t, s, "system_account:", "system_account: OPS")
		return strings.Replace(s, "  SYS: {", "  OPS: {", 1)
	})
	got, err = l.ReservedAccounts()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CALLOUT", "OPS"}; !slices.Equal(got, want) {
		t.Errorf("reserved after renaming = %q, want %q", got, want)
	}
	if err := l.CheckAccountNotReserved("OPS"); !errors.Is(err, store.ErrReservedAccount) {
		t.Errorf("check OPS: err = %v, want a reserved account", err)
	}
	if err := l.CheckAccountNotReserved(SystemAccount); err != nil {
		t.Errorf("check SYS once nats.conf no longer has it: %v", err)
	}

	editConf(t, l, ServerConf, func(s string) string { return s + "\nlisten: {{{\n" })
	_, err = l.ReservedAccounts()
	if err == nil || !strings.Contains(err.Error(), l.Path(ServerConf)) || !strings.Contains(err.Error(), "authrelay doctor --offline --dir "+l.Dir) {
		t.Errorf("broken nats.conf: err = %v, want one naming the file and doctor", err)
	}
	if err := l.CheckAccountNotReserved("APP"); err == nil {
		t.Error("check with a broken nats.conf: no error; it must not guess the reserved accounts")
	}

	empty := Layout{Dir: t.TempDir()}
	if _, err := empty.ReservedAccounts(); err == nil || !strings.Contains(err.Error(), "is not an authrelay directory") {
		t.Errorf("uninitialised: err = %v, want not an authrelay directory", err)
	}
}

// TestReservedFromOptions: the server's own defaults count where nats.conf
// leaves a name out: the global account takes the requests of a callout
// without an account, and $SYS is the system account when none is set.
func TestReservedFromOptions(t *testing.T) {
	for _, c := range []struct {
		name string
		opts server.Options
		want []string
	}{
		{"both set", server.Options{AuthCallout: &server.AuthCallout{Account: "AUTH"}, SystemAccount: "SYS"}, []string{"AUTH", "SYS"}},
		{"no system account", server.Options{AuthCallout: &server.AuthCallout{Account: "AUTH"}}, []string{"AUTH", server.DEFAULT_SYSTEM_ACCOUNT}},
		{"callout without account", server.Options{AuthCallout: &server.AuthCallout{}, SystemAccount: "SYS"}, []string{server.DEFAULT_GLOBAL_ACCOUNT, "SYS"}},
		{"no callout", server.Options{SystemAccount: "SYS"}, []string{"SYS"}},
		{"callout in the system account", server.Options{AuthCallout: &server.AuthCallout{Account: "SYS"}, SystemAccount: "SYS"}, []string{"SYS"}},
	} {
		if got := reservedFromOptions(&c.opts); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestCheckAccountNotReserved: a reserved account is refused with a
// message that names it, as the store refuses it (store.ErrReservedAccount);
// an application account passes.
func TestCheckAccountNotReserved(t *testing.T) {
	l := initDir(t)
	for _, acct := range []string{AuthAccount, SystemAccount} {
		err := l.CheckAccountNotReserved(acct)
		var re *ReservedAccountError
		if !errors.As(err, &re) || re.Account != acct || !errors.Is(err, store.ErrReservedAccount) {
			t.Errorf("%s: err = %v, want a *ReservedAccountError matching store.ErrReservedAccount", acct, err)
			continue
		}
		if want := `account "` + acct + `" is reserved: it is the callout or system account of nats.conf`; err.Error() != want {
			t.Errorf("%s: message %q, want %q", acct, err, want)
		}
	}
	if err := l.CheckAccountNotReserved("APP"); err != nil {
		t.Errorf("APP: %v", err)
	}
}

// TestCheckAccountName: the fixed accounts of the config init writes and
// names that are not account names are refused as bad input.
func TestCheckAccountName(t *testing.T) {
	for _, c := range []struct {
		name string
		want string // empty: accepted
	}{
		{"APP", ""},
		{"ORDERS_2", ""},
		{AuthAccount, `account "AUTH" is reserved for authrelay's own use: pick another name`},
		{SystemAccount, `account "SYS" is reserved for authrelay's own use: pick another name`},
		{"", "account"},
		{"A B", "account"},
		{"A.B", "account"},
		{"$G", "account"},
	} {
		err := CheckAccountName(c.name)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v, want accepted", c.name, err)
		case c.want != "" && (!errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: err = %v, want ErrInvalid with %q", c.name, err, c.want)
		}
	}
}

// TestStaticUser: the relay's and the admin's logins of nats.conf, which
// the server authenticates itself, and nothing else.
func TestStaticUser(t *testing.T) {
	for name, want := range map[string]bool{RelayUser: true, AdminUser: true, "alice": false, "Admin": false, "": false} {
		if got := StaticUser(name); got != want {
			t.Errorf("StaticUser(%q) = %v, want %v", name, got, want)
		}
	}
}
