package store

import (
	"context"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// benchDB returns a store with account APP, the user alice (password
// "alice-pw-7f3a", hashed at p) holding one role, and a few lockout rows.
func benchDB(b *testing.B, p Argon2Params) *DB {
	b.Helper()
	ctx := b.Context()
	db, err := Open(ctx, b.TempDir()+"/authrelay.db")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.Params = p
	if err := db.AddAccount(ctx, "APP"); err != nil {
		b.Fatal(err)
	}
	if err := db.AddRole(ctx, accounts.Role{Name: "reader", Permissions: accounts.Permissions{Sub: accounts.Rule{Allow: []string{"app.>"}}}}); err != nil {
		b.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP", Roles: []string{"reader"}}, "alice-pw-7f3a"); err != nil {
		b.Fatal(err)
	}
	l := db.Lockouts(accounts.DefaultLockoutPolicy)
	for _, name := range []string{"bob", "carol", "dave"} {
		if err := l.Failed(ctx, name, "192.0.2.1", time.Now(), accounts.FailedPassword); err != nil {
			b.Fatal(err)
		}
	}
	return db
}

// BenchmarkWarmDecisionReads measures what a cached login costs the store:
// Locked, UserVersion and Succeeded's read, each one prepared statement.
func BenchmarkWarmDecisionReads(b *testing.B) {
	db := benchDB(b, testParams)
	l := db.Lockouts(accounts.DefaultLockoutPolicy)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		now := time.Now()
		if locked, err := l.Locked(ctx, "alice", "192.0.2.9", now); err != nil || locked {
			b.Fatal(locked, err)
		}
		if _, err := db.UserVersion(ctx, "alice"); err != nil {
			b.Fatal(err)
		}
		if err := l.Succeeded(ctx, "alice", "192.0.2.9", now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGeneration compares the prepared read of the generation with
// the same query parsed on every call, and with a cancellable context.
func BenchmarkGeneration(b *testing.B) {
	db := benchDB(b, testParams)
	ctx := context.WithoutCancel(b.Context())
	b.Run("prepared", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := db.Generation(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unprepared", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var n int64
			if err := db.sql.QueryRowContext(ctx, generationQuery).Scan(&n); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prepared-cancellable", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			var n int64
			if err := db.stmts.generation.QueryRowContext(ctx).Scan(&n); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkColdDecisionReads measures what a cache miss costs the store:
// Authenticate (at the default argon2id cost, and at a trivial one to show
// the reads alone) and RolesNamed.
func BenchmarkColdDecisionReads(b *testing.B) {
	for _, bc := range []struct {
		name string
		p    Argon2Params
	}{{"argon2id-default", DefaultArgon2Params}, {"argon2id-trivial", testParams}} {
		b.Run(bc.name, func(b *testing.B) {
			db := benchDB(b, bc.p)
			ctx := b.Context()
			b.ReportAllocs()
			for b.Loop() {
				u, err := db.Authenticate(ctx, "alice", "alice-pw-7f3a")
				if err != nil {
					b.Fatal(err)
				}
				if _, err := db.RolesNamed(ctx, u.Roles); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkUserVersion measures the read the credential cache makes on
// every decision, against BenchmarkGeneration's global counter it replaced.
func BenchmarkUserVersion(b *testing.B) {
	db := benchDB(b, testParams)
	ctx := context.WithoutCancel(b.Context())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := db.UserVersion(ctx, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}
