package accounts

import (
	"errors"
	"testing"
	"time"
)

// TestDecide checks each reason Decide gives, and that the first check to
// fail gives it: the user's own state before its grant, the grant before
// the client, the client before the size.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	keys, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := func() User {
		return User{Name: "bob", Account: "APP", Src: []string{"10.0.0.0/8"}, ConnTypes: []string{ConnStandard},
			Permissions: Permissions{Sub: Rule{Allow: []string{"_INBOX.>"}}}}
	}
	inside := Client{Host: "10.1.2.3", ConnType: ConnStandard}
	tpl := Role{Name: "tpl", Permissions: Permissions{Pub: Rule{Allow: []string{"svc.{{name}}.>"}}}}
	for _, c := range []struct {
		name   string
		edit   func(*User, *Login)
		reason string
		cause  error // errors.Is the verdict's Err, when set
	}{
		{"allowed", func(*User, *Login) {}, "", nil},
		{"disabled and in a reserved account", func(u *User, l *Login) { u.Disabled, u.Account = true, "SYS" }, ReasonUserDisabled, ErrUserDisabled},
		{"expired", func(u *User, _ *Login) { u.Expires = now }, ReasonUserExpired, ErrUserExpired},
		{"no account", func(u *User, _ *Login) { u.Account = "" }, ReasonInternalError, errNoAccount},
		{"reserved account and an unknown role", func(u *User, _ *Login) { u.Account, u.Roles = "SYS", []string{"gone"} }, ReasonAccountReserved, nil},
		{"unknown role", func(u *User, _ *Login) { u.Roles = []string{"gone"} }, ReasonInternalError, ErrUnknownRole},
		{"unsafe template from another network", func(u *User, l *Login) {
			u.Name, u.Roles, l.Roles, l.Client.Host = "a.b", []string{"tpl"}, []Role{tpl}, "192.0.2.1"
		}, ReasonTemplateUnsafe, ErrUnsafeTemplate},
		{"another network", func(_ *User, l *Login) { l.Client.Host = "192.0.2.1" }, ReasonSourceNotAllowed, ErrSourceNotAllowed},
		{"another connection type, too large", func(_ *User, l *Login) { l.Client.ConnType, l.MaxPayload = ConnWebsocket, 100 }, ReasonConnTypeNotAllowed, ErrConnTypeNotAllowed},
		{"another network, client not checked", func(_ *User, l *Login) { l.Client.Host, l.CheckClient = "192.0.2.1", false }, "", nil},
		{"too large", func(_ *User, l *Login) { l.MaxPayload = 100 }, ReasonInternalError, nil},
		{"resolved before", func(u *User, l *Login) {
			// The resolution given is used, not the roles.
			u.Roles = []string{"gone"}
			l.Resolution, l.Resolved = Resolution{Err: ErrUnsafeTemplate}, true
		}, ReasonTemplateUnsafe, ErrUnsafeTemplate},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := base()
			l := Login{Reserved: []string{"AUTH", "SYS"}, Client: inside, CheckClient: true, Now: now,
				Issuer: issuer, MaxPayload: DefaultMaxPayload}
			c.edit(&u, &l)
			l.User = u
			v := Decide(&l)
			if v.Reason != c.reason {
				t.Fatalf("reason %q (%v), want %q", v.Reason, v.Err, c.reason)
			}
			if (v.Reason == "") != (v.Err == nil) {
				t.Errorf("reason %q with err %v", v.Reason, v.Err)
			}
			if c.cause != nil && !errors.Is(v.Err, c.cause) {
				t.Errorf("err %v, want %v", v.Err, c.cause)
			}
			if c.name == "too large" {
				var tl *ResponseTooLargeError
				if !errors.As(v.Err, &tl) || tl.Limit != 100 || v.ResponseBytes <= 100 {
					t.Errorf("err %v, %d bytes: want a ResponseTooLargeError over 100", v.Err, v.ResponseBytes)
				}
			}
			if v.Reason == "" && (!v.Resolved || v.Grant.Account != "APP" || v.ResponseBytes == 0) {
				t.Errorf("allowed without the grant and its size: %+v", v)
			}
		})
	}
}
