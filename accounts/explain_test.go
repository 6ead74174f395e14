package accounts

import (
	"errors"
	"testing"
	"time"
)

// TestExplain checks that Explain gives Decide's reason and, unlike
// Decide, the grant and its response size for a login refused before the
// grant matters.
func TestExplain(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	issuer, _ := newTestIssuer(t)
	svc := Role{Name: "svc", Permissions: Permissions{Pub: Rule{Allow: []string{"svc.{{name}}.>"}}}}
	base := func() User {
		return User{Name: "bob", Account: "APP", Roles: []string{"svc"}, Src: []string{"10.0.0.0/8"},
			Permissions: Permissions{Sub: Rule{Allow: []string{"_INBOX.>"}}}}
	}
	for _, c := range []struct {
		name     string
		edit     func(*User, *Login)
		reason   string
		grantErr error // errors.Is GrantErr; nil: the grant resolves
	}{
		{"allowed", func(*User, *Login) {}, "", nil},
		{"disabled", func(u *User, _ *Login) { u.Disabled = true }, ReasonUserDisabled, nil},
		{"expired", func(u *User, _ *Login) { u.Expires = now.Add(-time.Second) }, ReasonUserExpired, nil},
		{"reserved account", func(u *User, _ *Login) { u.Account = "SYS" }, ReasonAccountReserved, nil},
		{"disabled, holding a removed role", func(u *User, l *Login) { u.Disabled, l.Roles = true, nil }, ReasonUserDisabled, ErrUnknownRole},
		{"disabled, resolved before", func(u *User, l *Login) {
			u.Disabled = true
			l.Resolution, l.Resolved = Resolution{Err: ErrUnsafeTemplate}, true
		}, ReasonUserDisabled, ErrUnsafeTemplate},
		{"unsafe template", func(u *User, _ *Login) { u.Name = "a.b" }, ReasonTemplateUnsafe, ErrUnsafeTemplate},
		{"another network", func(_ *User, l *Login) { l.Client, l.CheckClient = Client{Host: "192.0.2.1"}, true }, ReasonSourceNotAllowed, nil},
		{"no issuer: nothing to size", func(_ *User, l *Login) { l.Issuer, l.MaxPayload = nil, 0 }, "", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := base()
			l := Login{Roles: []Role{svc}, Reserved: []string{"AUTH", "SYS"}, Now: now, Issuer: issuer, MaxPayload: DefaultMaxPayload}
			c.edit(&u, &l)
			l.User = u
			v, err := Explain(&l)
			if err != nil {
				t.Fatal(err)
			}
			d := Decide(&l)
			if v.Reason != c.reason || v.Reason != d.Reason || errText(v.Err) != errText(d.Err) {
				t.Fatalf("reason %q (%v), Decide %q (%v), want %q", v.Reason, v.Err, d.Reason, d.Err, c.reason)
			}
			if !v.Resolved {
				t.Error("Explain left the grant unresolved")
			}
			if c.grantErr != nil {
				if !errors.Is(v.GrantErr, c.grantErr) || v.ResponseBytes != 0 {
					t.Errorf("GrantErr %v, %d bytes: want %v and no size", v.GrantErr, v.ResponseBytes, c.grantErr)
				}
				return
			}
			if v.GrantErr != nil {
				t.Fatalf("GrantErr %v", v.GrantErr)
			}
			want := []string{"svc." + u.Name + ".>"}
			if got := v.Grant.Permissions.Pub.Allow; len(got) != 1 || got[0] != want[0] {
				t.Errorf("pub allow %q, want %q", got, want)
			}
			if l.Issuer == nil {
				if v.ResponseBytes != 0 {
					t.Errorf("%d response bytes without an issuer", v.ResponseBytes)
				}
				return
			}
			n, err := issuer.ResponseSize(v.Grant, now)
			if err != nil {
				t.Fatal(err)
			}
			if v.ResponseBytes != n {
				t.Errorf("ResponseBytes %d, want %d", v.ResponseBytes, n)
			}
		})
	}
}

func TestGrantsNothing(t *testing.T) {
	for _, c := range []struct {
		p    Permissions
		want bool
	}{
		{Permissions{}, true},
		{Permissions{Pub: Rule{Deny: []string{">"}}, Sub: Rule{Deny: []string{"a"}}}, true},
		{Permissions{Pub: Rule{Allow: []string{"a"}}}, false},
		{Permissions{Sub: Rule{Allow: []string{">"}}}, false},
		{Permissions{Resp: &ResponsePermission{}}, false},
	} {
		if got := c.p.GrantsNothing(); got != c.want {
			t.Errorf("%+v: GrantsNothing %v, want %v", c.p, got, c.want)
		}
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
