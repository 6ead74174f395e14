package accounts

import (
	"errors"
	"strings"
	"testing"
)

// FuzzResolve feeds arbitrary names and subjects through template expansion:
// it must never panic, and whatever it grants must be valid subjects in
// which the name stands as exactly one token.
func FuzzResolve(f *testing.F) {
	for _, seed := range []struct{ name, account, subject string }{
		{"bob", "APP", "svc.{{name}}.>"},
		{"evil.alice", "APP", "svc.{{name}}.>"},
		{"{{account}}", "APP", "svc.{{name}}.x"},
		{"a*", "APP", "{{name}}"},
		{"x", "APP", "acct.{{account}}.{{name}}"},
		{"x", "APP", "a.{{nmae}}"},
		{"x}}", "APP", "{{name}}}}"},
		{"ünï", "APP", "u.{{name}}"},
	} {
		f.Add(seed.name, seed.account, seed.subject)
	}
	f.Fuzz(func(t *testing.T, name, account, subject string) {
		if ValidateSubject(subject) != nil {
			return // the store refuses such subjects before they reach here
		}
		u := User{Name: name, Account: account, Permissions: Permissions{Sub: Rule{Allow: []string{subject}}}}
		g, err := Resolve(u, nil)
		if err != nil {
			if !errors.Is(err, ErrUnsafeTemplate) {
				t.Fatalf("Resolve(%q, %q): unexpected error kind %v", name, subject, err)
			}
			return
		}
		for _, s := range g.Permissions.Sub.Allow {
			if err := ValidateSubject(s); err != nil {
				t.Fatalf("granted an invalid subject %q from %q for %q: %v", s, subject, name, err)
			}
			if strings.Contains(s, "{{") {
				t.Fatalf("granted an unexpanded template %q", s)
			}
		}
		if strings.Contains(subject, TemplateName) {
			want := strings.Count(subject, ".") + 1
			if got := strings.Count(g.Permissions.Sub.Allow[0], ".") + 1; got != want {
				t.Fatalf("name %q changed the token count of %q: %d tokens, want %d", name, subject, got, want)
			}
		}
	})
}
