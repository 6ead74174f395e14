package store

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// timingUsers is how many users the timing measurements run against.
const timingUsers = 100

// timingDB returns a store hashing at DefaultArgon2Params, the stored
// policy, with timingUsers users u000… whose password is "pw". They share one
// hash: verification costs the same whatever the salt, and hashing a hundred
// passwords at the default cost would take seconds.
func timingDB(tb testing.TB) *DB {
	tb.Helper()
	db, err := Open(tb.Context(), tb.TempDir()+"/authrelay.db")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if db.Params != DefaultArgon2Params {
		tb.Fatalf("Params = %+v, want the default", db.Params)
	}
	if err := db.AddAccount(tb.Context(), "APP"); err != nil {
		tb.Fatal(err)
	}
	hash, err := HashPassword("pw", db.Params)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range timingUsers {
		if err := db.AddUserWithHash(tb.Context(), accounts.User{Name: timingName(i), Account: "APP"}, hash); err != nil {
			tb.Fatal(err)
		}
	}
	// The first unknown user computes the dummy hash.
	if _, err := db.Authenticate(tb.Context(), "nobody", "pw-wrong"); !errors.Is(err, accounts.ErrInvalidCredentials) {
		tb.Fatal(err)
	}
	return db
}

func timingName(i int) string { return fmt.Sprintf("u%03d", i%timingUsers) }

// authenticateRefused runs one Authenticate that must be refused and returns
// how long it took.
func authenticateRefused(tb testing.TB, db *DB, name string) time.Duration {
	start := time.Now()
	_, err := db.Authenticate(tb.Context(), name, "pw-wrong")
	d := time.Since(start)
	if !errors.Is(err, accounts.ErrInvalidCredentials) {
		tb.Fatalf("Authenticate(%s) = %v, want ErrInvalidCredentials", name, err)
	}
	return d
}

func BenchmarkAuthenticateUnknownUser(b *testing.B) {
	db := timingDB(b)
	i := 0
	for b.Loop() {
		authenticateRefused(b, db, fmt.Sprintf("x%03d", i%timingUsers))
		i++
	}
}

func BenchmarkAuthenticateWrongPassword(b *testing.B) {
	db := timingDB(b)
	i := 0
	for b.Loop() {
		authenticateRefused(b, db, timingName(i))
		i++
	}
}

// TestUnknownAndWrongPasswordTiming measures Authenticate for unknown users
// and for wrong passwords, interleaved, at the default cost, and logs the
// figures with Welch's t statistic for the difference of the means (|t|
// above about 2 suggests a real difference). It prints figures rather than
// asserting a bound, which would be flaky on a shared machine; it fails only
// on an absurd ratio. Run it with -v to see them.
func TestUnknownAndWrongPasswordTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("timing measurement at the default argon2id cost")
	}
	db := timingDB(t)
	const n = 30
	var unknown, wrong []time.Duration
	for i := range n {
		// Alternate which goes first, so that neither always runs on a
		// warmer cache.
		u := func() { unknown = append(unknown, authenticateRefused(t, db, fmt.Sprintf("x%03d", i))) }
		w := func() { wrong = append(wrong, authenticateRefused(t, db, timingName(i*7))) }
		if i%2 == 0 {
			u()
			w()
		} else {
			w()
			u()
		}
	}
	su, sw := summarize(unknown), summarize(wrong)
	t.Logf("unknown user:   mean %v, median %v, stddev %v (n=%d)", su.mean, su.median, su.stddev, n)
	t.Logf("wrong password: mean %v, median %v, stddev %v (n=%d)", sw.mean, sw.median, sw.stddev, n)
	t.Logf("difference of means %v, Welch t = %.2f", su.mean-sw.mean, welchT(su, sw, n))
	if ratio := float64(su.mean) / float64(sw.mean); ratio > 5 || ratio < 1.0/5 {
		t.Errorf("unknown user takes %.1f times as long as a wrong password: the dummy verification is broken", ratio)
	}
}

type summary struct {
	mean, median, stddev time.Duration
}

func summarize(ds []time.Duration) summary {
	sorted := slices.Sorted(slices.Values(ds))
	var sum float64
	for _, d := range ds {
		sum += float64(d)
	}
	mean := sum / float64(len(ds))
	var sq float64
	for _, d := range ds {
		sq += (float64(d) - mean) * (float64(d) - mean)
	}
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	return summary{
		mean:   time.Duration(mean),
		median: median,
		stddev: time.Duration(math.Sqrt(sq / float64(len(ds)-1))),
	}
}

// welchT is Welch's t statistic for two samples of n each.
func welchT(a, b summary, n int) float64 {
	va, vb := float64(a.stddev)*float64(a.stddev), float64(b.stddev)*float64(b.stddev)
	se := math.Sqrt(va/float64(n) + vb/float64(n))
	if se == 0 {
		return 0
	}
	return float64(a.mean-b.mean) / se
}
