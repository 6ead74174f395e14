package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
)

// floodDuration is how long TestCheapDenialFloodIsAggregated floods:
// AUTHRELAY_FLOOD (a duration, such as 60s) or 2s.
func floodDuration(t *testing.T) time.Duration {
	t.Helper()
	v := os.Getenv("AUTHRELAY_FLOOD")
	if v == "" {
		return 2 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("AUTHRELAY_FLOOD=%q: want a duration such as 60s", v)
	}
	return d
}

// dbSize returns the login audit rows, the lockout rows and the database's
// size in bytes (pages in use, WAL included, as a reader sees it).
func dbSize(t *testing.T, dir string) (rows, lockouts, bytes int64) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile)+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`SELECT count(*) FROM audit WHERE kind = 'login'`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM lockouts`).Scan(&lockouts); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()`).Scan(&bytes); err != nil {
		t.Fatal(err)
	}
	return rows, lockouts, bytes
}

// TestCheapDenialFloodIsAggregated floods the real embedded server with
// connects the relay refuses without a lookup, as fast as this machine
// goes, for AUTHRELAY_FLOOD (2s by default): with no credentials and with
// a password over the length limit, from one name and from a new name on
// every connect. Each costs the audit trail at most two rows per (reason,
// address, name) and aggregation minute, and past 256 names one row per
// reason, not one per connect; the rows' counts add up to every connect
// made. The log line gives the rows and bytes written.
//
//	AUTHRELAY_FLOOD=60s go test -run TestCheapDenialFloodIsAggregated -v ./cmd/authrelay/
func TestCheapDenialFloodIsAggregated(t *testing.T) {
	flood := floodDuration(t)
	for _, tc := range []struct {
		name    string
		reasons string // as group_concat lists them
		keys    int64  // distinct (reason, address, name) kept apart a minute
		opt     func(i int64) nats.Option
	}{
		{"no credentials", "no_credentials", 1, func(int64) nats.Option { return func(*nats.Options) error { return nil } }},
		// The lockout locks the address after its threshold of failures.
		{"password over the limit", "bad_credentials,locked_out", 2, func(int64) nats.Option {
			return nats.UserInfo("mallory", strings.Repeat("p", 1025))
		}},
		// A new name on every connect: past 256 keys a minute (the
		// writer's default) they count into one row per reason.
		{"distinct names without a password", "no_credentials", 256 + 1, func(i int64) nats.Option {
			return nats.UserInfo(fmt.Sprintf("name-%d", i), "")
		}},
		{"distinct names with a password over the limit", "bad_credentials,locked_out", 256 + 2, func(i int64) nats.Option {
			return nats.UserInfo(fmt.Sprintf("name-%d", i), strings.Repeat("p", 1025))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serveEmbedded(t, true)
			rows0, locks0, bytes0 := dbSize(t, s.dir)

			ctx, cancel := context.WithTimeout(context.Background(), flood)
			defer cancel()
			var connects, unexpected, seq atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						nc, err := nats.Connect(s.url, tc.opt(seq.Add(1)), nats.NoReconnect(), nats.Timeout(5*time.Second))
						if err == nil {
							nc.Close()
							unexpected.Add(1)
							continue
						}
						if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
							unexpected.Add(1)
							continue
						}
						connects.Add(1)
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			s.stop() // writes what the audit writer holds
			if n := unexpected.Load(); n > 0 {
				t.Errorf("%d connects were not refused with Authorization Violation", n)
			}
			rows1, locks1, bytes1 := dbSize(t, s.dir)
			n := connects.Load()
			t.Logf("flood %s: %d connects in %v (%.0f/s); audit rows %d -> %d, lockout rows %d -> %d, database %d -> %d bytes (+%d)",
				tc.name, n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), rows0, rows1, locks0, locks1, bytes0, bytes1, bytes1-bytes0)

			// Two rows per key and aggregation minute begun.
			if max := 2 * tc.keys * (int64(elapsed/time.Minute) + 2); rows1-rows0 > max {
				t.Errorf("the flood of %d connects wrote %d audit rows, want at most %d", n, rows1-rows0, max)
			}
			db, err := sql.Open("sqlite3", "file:"+deploy.Layout{Dir: s.dir}.Path(deploy.DatabaseFile))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var total int64
			var reasons string
			if err := db.QueryRow(`SELECT coalesce(sum(count), 0) FROM audit WHERE kind = 'login'`).Scan(&total); err != nil {
				t.Fatal(err)
			}
			if err := db.QueryRow(`SELECT coalesce(group_concat(reason), '')
				FROM (SELECT DISTINCT reason FROM audit WHERE kind = 'login' ORDER BY reason)`).Scan(&reasons); err != nil {
				t.Fatal(err)
			}
			if total != n || reasons != tc.reasons {
				t.Errorf("audit rows stand for %d denials with reasons %q, want %d with %q", total, reasons, n, tc.reasons)
			}

			// authrelay audit shows the counts.
			var rows []auditView
			if err := json.Unmarshal([]byte(mustRun(t, "", "audit", "--dir", s.dir, "--kind", "login", "--limit", "0", "--json").stdout), &rows); err != nil {
				t.Fatal(err)
			}
			var shown int64
			for _, r := range rows {
				shown += r.Count
			}
			if shown != n {
				t.Errorf("authrelay audit --json counts %d denials, want %d", shown, n)
			}
			if text := mustRun(t, "", "audit", "--dir", s.dir, "--kind", "login", "--limit", "0").stdout; !strings.Contains(text, "COUNT") {
				t.Errorf("authrelay audit has no COUNT column:\n%s", text)
			}
		})
	}
}
