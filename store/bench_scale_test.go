package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// BenchmarkLookupScale measures what a login costs the store apart from
// the password hash — the user row with its roles (the read Authenticate
// makes before verifying), the lockout check and the change counter — with
// 100 and with 100,000 users in the database. Compare the two ns/op: the
// target is at most 10% more with 100,000 users.
func BenchmarkLookupScale(b *testing.B) {
	for _, n := range []int{100, 100_000} {
		b.Run(fmt.Sprintf("users=%d", n), func(b *testing.B) {
			db := benchDB(b, testParams)
			ctx := b.Context()
			hash, err := HashPassword("pw", testParams)
			if err != nil {
				b.Fatal(err)
			}
			// One transaction for all rows: AddUser would cost a commit each.
			tx, err := db.sql.BeginTx(ctx, nil)
			if err != nil {
				b.Fatal(err)
			}
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO users (name, account, password_hash, permissions, created, updated)
				VALUES (?, 'APP', ?, '{"pub":{"allow":["svc.>"],"deny":null},"sub":{"allow":null,"deny":null}}', ?, ?)`)
			if err != nil {
				b.Fatal(err)
			}
			now := formatTime(time.Now())
			for i := range n - 1 {
				if _, err := stmt.ExecContext(ctx, fmt.Sprintf("user-%06d", i), hash, now, now); err != nil {
					b.Fatal(err)
				}
			}
			stmt.Close()
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
			l := db.Lockouts(accounts.DefaultLockoutPolicy)
			names := []string{"alice", fmt.Sprintf("user-%06d", (n-1)/2), fmt.Sprintf("user-%06d", n-2)}
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				name := names[i%len(names)]
				i++
				if _, err := db.User(ctx, name); err != nil {
					b.Fatal(err)
				}
				if _, err := l.Locked(ctx, name, "192.0.2.9", time.Now()); err != nil {
					b.Fatal(err)
				}
				if _, err := db.UserVersion(ctx, name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
