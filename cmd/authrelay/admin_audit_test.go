package main

import (
	"context"
	"errors"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/store"
)

// TestAdminAuditActor: the actor of an admin audit row is the OS account of
// the process, and $USER of the program's own environment (Main.Getenv)
// only where that account cannot be looked up; $USER never overrides it.
func TestAdminAuditActor(t *testing.T) {
	noUser := func() (*user.User, error) { return nil, errors.New("no such user id") }
	dave := func() (*user.User, error) { return &user.User{Username: "dave"}, nil }
	for _, c := range []struct {
		name    string
		current func() (*user.User, error)
		env     string
		want    string
	}{
		{"environment when the account is unknown", noUser, "carol", "carol"},
		{"account over the environment", dave, "carol", "dave"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ar")
			mustRun(t, "", "init", "--dir", dir, "--account", "APP")
			var out, errOut syncBuffer
			m := &Main{
				Stdin:  strings.NewReader(""),
				Stdout: &out,
				Stderr: &errOut,
				Getenv: func(k string) string {
					if k == "USER" {
						return c.env
					}
					return ""
				},
				CurrentUser: c.current,
				Now:         time.Now,
			}
			if code := m.Exit(m.Run(context.Background(), []string{"account", "add", "OPS", "--dir", dir})); code != 0 {
				t.Fatalf("account add: exit %d, stderr %q", code, errOut.String())
			}
			rows, err := openDir(t, dir).Audit(t.Context(), store.AuditFilter{Kind: store.AuditAdmin})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				if r.Action == "account add" {
					got = append(got, r.Actor)
				}
			}
			if len(got) != 1 || got[0] != c.want {
				t.Errorf("actors of the account add rows = %q, want [%q]", got, c.want)
			}
		})
	}
}
