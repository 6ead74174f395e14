package deploy

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

func TestCheckCallout(t *testing.T) {
	pub := func(t *testing.T, create func() (nkeys.KeyPair, error)) string {
		t.Helper()
		kp, err := create()
		if err != nil {
			t.Fatal(err)
		}
		p, err := kp.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	issuer, otherIssuer := pub(t, nkeys.CreateAccount), pub(t, nkeys.CreateAccount)
	xkey, otherXKey := pub(t, nkeys.CreateCurveKeys), pub(t, nkeys.CreateCurveKeys)
	good := func() *server.AuthCallout {
		return &server.AuthCallout{Issuer: issuer, Account: "AUTH", AuthUsers: []string{"authrelay"}, XKey: xkey, AllowedAccounts: []string{"AUTH"}}
	}

	// want is one expected problem: its field, whether it is fatal, and
	// strings its message must hold.
	type want struct {
		field string
		fatal bool
		in    []string
	}
	for _, c := range []struct {
		name               string
		ac                 *server.AuthCallout
		issuerPub, xkeyPub string
		want               []want
	}{{
		name: "matches", ac: good(), issuerPub: issuer, xkeyPub: xkey,
	}, {
		name: "no auth_callout block", issuerPub: issuer, xkeyPub: xkey,
		want: []want{{"auth_callout", true, []string{"no authorization { auth_callout { … } } block", "the server never asks the relay about logins", "restore the block 'authrelay init' wrote"}}},
	}, {
		name: "issuer of another relay", ac: func() *server.AuthCallout { ac := good(); ac.Issuer = otherIssuer; return ac }(),
		issuerPub: issuer, xkeyPub: xkey,
		want: []want{{"issuer", true, []string{"auth_callout.issuer " + otherIssuer + " does not match the relay's issuer key " + issuer, "the server would reject every answer", "set 'issuer: " + issuer + "'"}}},
	}, {
		name: "xkey of another relay", ac: func() *server.AuthCallout { ac := good(); ac.XKey = otherXKey; return ac }(),
		issuerPub: issuer, xkeyPub: xkey,
		want: []want{{"xkey", true, []string{"auth_callout.xkey " + otherXKey + " does not match the relay's xkey " + xkey, "the relay cannot open the sealed requests", "set 'xkey: " + xkey + "'"}}},
	}, {
		name: "no xkey", ac: func() *server.AuthCallout { ac := good(); ac.XKey = ""; return ac }(),
		issuerPub: issuer, xkeyPub: xkey,
		// Logins work without one: not fatal, but the passwords are exposed.
		want: []want{{"xkey", false, []string{"auth_callout has no xkey: passwords travel in clear", "add 'xkey: " + xkey + "'"}}},
	}, {
		name: "no xkey, relay's unknown", ac: func() *server.AuthCallout { ac := good(); ac.XKey = ""; return ac }(),
		issuerPub: issuer,
		want:      []want{{"xkey", false, []string{"add 'xkey: <the relay's public xkey>'"}}},
	}, {
		name: "keys unknown", ac: func() *server.AuthCallout {
			ac := good()
			ac.Issuer, ac.XKey = otherIssuer, otherXKey
			return ac
		}(),
		// Nothing to compare with: no mismatch reported.
	}, {
		name: "account not set", ac: func() *server.AuthCallout { ac := good(); ac.Account = ""; return ac }(),
		issuerPub: issuer, xkeyPub: xkey,
		want: []want{{"account", true, []string{"auth_callout.account is not set, so login requests go to the global account", "set 'account: AUTH'"}}},
	}, {
		name: "global account", ac: func() *server.AuthCallout { ac := good(); ac.Account = server.DEFAULT_GLOBAL_ACCOUNT; return ac }(),
		issuerPub: issuer, xkeyPub: xkey,
		want: []want{{"account", true, []string{"auth_callout.account is not set"}}},
	}, {
		name: "everything wrong", ac: &server.AuthCallout{Issuer: otherIssuer},
		issuerPub: issuer, xkeyPub: xkey,
		want: []want{{"issuer", true, nil}, {"xkey", false, nil}, {"account", true, nil}},
	}} {
		t.Run(c.name, func(t *testing.T) {
			got := CheckCallout(c.ac, c.issuerPub, c.xkeyPub)
			if len(got) != len(c.want) {
				t.Fatalf("%d problems, want %d: %+v", len(got), len(c.want), got)
			}
			for i, w := range c.want {
				p := got[i]
				if p.Field != w.field || p.Fatal != w.fatal {
					t.Errorf("problem %d: field %q fatal %v, want %q %v: %s", i, p.Field, p.Fatal, w.field, w.fatal, p.Message)
				}
				for _, s := range w.in {
					if !strings.Contains(p.Message, s) {
						t.Errorf("problem %d: message %q lacks %q", i, p.Message, s)
					}
				}
				if strings.ContainsAny(p.Message, "\n\r") {
					t.Errorf("problem %d: message is not one line: %q", i, p.Message)
				}
			}
		})
	}
}
