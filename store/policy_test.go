package store

import (
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"golang.org/x/crypto/bcrypt"
)

// Policies at the floor's memory, as cheap as a policy can be.
var (
	policyA = Argon2Params{Memory: MinPolicyMemory, Time: 5, Threads: 1, SaltLen: 16, KeyLen: 32}
	policyB = Argon2Params{Memory: MinPolicyMemory, Time: 6, Threads: 1, SaltLen: 16, KeyLen: 32}
)

func TestHashPolicy(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "authrelay.db")
	db := openTest(t, path)

	got, err := db.HashPolicy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got != DefaultArgon2Params {
		t.Errorf("HashPolicy of a new database = %+v, want the default %+v", got, DefaultArgon2Params)
	}
	fresh, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fresh.Params; got != DefaultArgon2Params {
		t.Errorf("Params after Open of a new database = %+v, want the default", got)
	}
	fresh.Close()

	for _, p := range []Argon2Params{policyA, {Memory: 65536, Time: 3, Threads: 4, SaltLen: 32, KeyLen: 64}} {
		if err := db.SetHashPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got := db.Params; got != p {
			t.Errorf("Params after SetHashPolicy = %+v, want %+v", got, p)
		}
		got, err := db.HashPolicy(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got != p {
			t.Errorf("HashPolicy = %+v, want %+v", got, p)
		}
		// Another process, opening the database, hashes at the policy.
		other, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if got := other.Params; got != p {
			t.Errorf("Params after Open = %+v, want %+v", got, p)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("floor refused", func(t *testing.T) {
		before := db.Params
		for _, tc := range []struct {
			name  string
			p     Argon2Params
			words string
		}{
			{"memory below 7 MiB", Argon2Params{Memory: 7167, Time: 6, Threads: 1, SaltLen: 16, KeyLen: 32}, "7 MiB"},
			{"below OWASP's memory × time", Argon2Params{Memory: 8192, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, "OWASP's minimum of 35840"},
			{"19 MiB once", Argon2Params{Memory: 19456, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, "use --time 2"},
			{"test params", testParams, "below the floor"},
			{"time 0", Argon2Params{Memory: 19456, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32}, "time cost 0"},
			{"short salt", Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 32}, "salt length 8"},
			{"no threads", Argon2Params{Memory: 19456, Time: 2, Threads: 0, SaltLen: 16, KeyLen: 32}, "parallelism"},
			{"short key", Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 8}, "key length"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := db.SetHashPolicy(ctx, tc.p)
				if err == nil || !strings.Contains(err.Error(), tc.words) {
					t.Errorf("SetHashPolicy(%+v) = %v, want an error saying %q", tc.p, err, tc.words)
				}
				if got, err := db.HashPolicy(ctx); err != nil || got != before {
					t.Errorf("HashPolicy after a refused set = %+v, %v; want %+v", got, err, before)
				}
				if db.Params != before {
					t.Errorf("Params after a refused set = %+v, want %+v", db.Params, before)
				}
			})
		}
	})

	t.Run("corrupt stored policy", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "authrelay.db")
		db := openTest(t, path)
		if _, err := db.sql.ExecContext(ctx, `INSERT INTO settings (key, value, updated) VALUES ('argon2id', '{"memory_kib":0}', '')`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.HashPolicy(ctx); err == nil {
			t.Error("HashPolicy of a corrupt policy: no error")
		}
		if other, err := Open(ctx, path); err == nil {
			other.Close()
			t.Error("Open with a corrupt policy: no error")
		} else if !strings.Contains(err.Error(), "hash policy") {
			t.Errorf("Open with a corrupt policy = %v, want it to name the hash policy", err)
		}
	})
}

func TestNeedsRehash(t *testing.T) {
	hash := func(p Argon2Params) string {
		t.Helper()
		h, err := HashPassword("pw", p)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	p := testParams
	change := func(f func(*Argon2Params)) Argon2Params {
		q := p
		f(&q)
		return q
	}
	for _, tc := range []struct {
		name string
		hash string
		want bool
	}{
		{"same params", hash(p), false},
		{"more memory", hash(change(func(q *Argon2Params) { q.Memory *= 2 })), true},
		{"less memory", hash(change(func(q *Argon2Params) { q.Memory /= 2 })), true},
		{"more time", hash(change(func(q *Argon2Params) { q.Time++ })), true},
		{"more threads", hash(change(func(q *Argon2Params) { q.Threads++ })), true},
		{"longer salt", hash(change(func(q *Argon2Params) { q.SaltLen = 32 })), true},
		{"shorter key", hash(change(func(q *Argon2Params) { q.KeyLen = 16 })), true},
		{"bcrypt", "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq", true},
		{"garbage", "garbage", true},
		{"malformed argon2id", "$argon2id$v=19$m=64,t=1,p=1$x$y", true},
	} {
		if got := NeedsRehash(tc.hash, p); got != tc.want {
			t.Errorf("%s: NeedsRehash = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// rehashLog records what OnRehash receives.
type rehashLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *rehashLog) record(name string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *rehashLog) take() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errs
	l.errs = nil
	return errs
}

// storedHash returns the user's stored password hash.
func storedHash(t *testing.T, db *DB, name string) string {
	t.Helper()
	var h string
	if err := db.sql.QueryRowContext(t.Context(), `SELECT password_hash FROM users WHERE name = ?`, name).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// policyDB returns a store at hash policy p, with account APP and a clock at
// t0, recording rehashes.
func policyDB(t *testing.T, p Argon2Params) (*DB, string, *rehashLog, *clock) {
	t.Helper()
	db, path := newTestDB(t)
	if err := db.SetHashPolicy(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	c := &clock{t: t0}
	db.Now = c.Now
	log := &rehashLog{}
	db.OnRehash = log.record
	if err := db.AddAccount(t.Context(), "APP"); err != nil {
		t.Fatal(err)
	}
	return db, path, log, c
}

func wantHashInfo(t *testing.T, db *DB, name, scheme string, current bool) {
	t.Helper()
	gotScheme, gotCurrent, err := db.HashInfo(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	if gotScheme != scheme || gotCurrent != current {
		t.Errorf("HashInfo(%s) = %s, %v; want %s, %v", name, gotScheme, gotCurrent, scheme, current)
	}
}

func TestRehashBcrypt(t *testing.T) {
	db, _, log, c := policyDB(t, policyA)
	ctx := t.Context()
	bc, err := bcrypt.GenerateFromPassword([]byte("pw-bob"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddUserWithHash(ctx, accounts.User{Name: "bob", Account: "APP"}, string(bc)); err != nil {
		t.Fatal(err)
	}
	wantHashInfo(t, db, "bob", SchemeBcrypt, false)

	// A wrong password changes nothing.
	if _, err := db.Authenticate(ctx, "bob", "pw-wrong"); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if got := storedHash(t, db, "bob"); got != string(bc) {
		t.Error("a wrong password changed the stored hash")
	}
	if errs := log.take(); len(errs) != 0 {
		t.Errorf("OnRehash after a wrong password: %v", errs)
	}

	// The right one writes nothing either: Authenticate never writes,
	// so that a refused login with the right password costs what a wrong
	// one costs.
	c.Set(t1)
	u, err := db.Authenticate(ctx, "bob", "pw-bob")
	if err != nil {
		t.Fatal(err)
	}
	if !u.Updated.Equal(t0) {
		t.Errorf("returned user Updated = %v, want the stored %v", u.Updated, t0)
	}
	if got := storedHash(t, db, "bob"); got != string(bc) {
		t.Error("Authenticate with the right password changed the stored hash")
	}
	if errs := log.take(); len(errs) != 0 {
		t.Errorf("OnRehash after Authenticate: %v", errs)
	}
	// Rehash with a wrong password changes nothing.
	db.Rehash(ctx, "bob", "pw-wrong")
	if got := storedHash(t, db, "bob"); got != string(bc) {
		t.Error("Rehash with a wrong password changed the stored hash")
	}
	// Rehash after the granted login rehashes, once.
	db.Rehash(ctx, "bob", "pw-bob")
	if errs := log.take(); len(errs) != 1 || errs[0] != nil {
		t.Errorf("OnRehash got %v, want one nil error", errs)
	}
	h := storedHash(t, db, "bob")
	parsed, err := parseArgon2id(h)
	if err != nil {
		t.Fatalf("stored hash after the login: %v", err)
	}
	if parsed.params != policyA {
		t.Errorf("rehashed at %+v, want the policy %+v", parsed.params, policyA)
	}
	wantHashInfo(t, db, "bob", SchemeArgon2id, true)
	if u, err := db.User(ctx, "bob"); err != nil || !u.Updated.Equal(t1) {
		t.Errorf("Updated after the rehash = %v, %v; want %v", u.Updated, err, t1)
	}
	for range 2 {
		if _, err := db.Authenticate(ctx, "bob", "pw-bob"); err != nil {
			t.Fatalf("same password after the rehash: %v", err)
		}
		db.Rehash(ctx, "bob", "pw-bob")
	}
	if _, err := db.Authenticate(ctx, "bob", "pw-wrong"); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("wrong password after the rehash: %v", err)
	}
	if got := storedHash(t, db, "bob"); got != h {
		t.Error("the hash changed again at a later login")
	}
	if errs := log.take(); len(errs) != 0 {
		t.Errorf("OnRehash at later logins: %v", errs)
	}
}

func TestRehashToNewPolicy(t *testing.T) {
	db, path, log, _ := policyDB(t, policyA)
	ctx := t.Context()
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "pw-alice"); err != nil {
		t.Fatal(err)
	}
	wantHashInfo(t, db, "alice", SchemeArgon2id, true)

	t.Run("outdated process does not rehash", func(t *testing.T) {
		// Another process raises the policy; this one opened before.
		other := openTest(t, path)
		if err := other.SetHashPolicy(ctx, policyB); err != nil {
			t.Fatal(err)
		}
		// Users at B, hashed by the other process, are not brought back to
		// A by this one.
		if err := other.AddUser(ctx, accounts.User{Name: "bob", Account: "APP"}, "pw-bob"); err != nil {
			t.Fatal(err)
		}
		h := storedHash(t, db, "bob")
		if _, err := db.Authenticate(ctx, "bob", "pw-bob"); err != nil {
			t.Fatal(err)
		}
		db.Rehash(ctx, "bob", "pw-bob")
		if storedHash(t, db, "bob") != h {
			t.Error("a process with an outdated policy rehashed a password")
		}
		if errs := log.take(); len(errs) != 1 || !errors.Is(errs[0], ErrHashPolicyChanged) {
			t.Errorf("OnRehash got %v, want ErrHashPolicyChanged", errs)
		}
	})

	t.Run("reopened process rehashes", func(t *testing.T) {
		db, err := Open(ctx, path) // not openTest: keep the stored policy
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if db.Params != policyB {
			t.Fatalf("Params after Open = %+v, want %+v", db.Params, policyB)
		}
		log := &rehashLog{}
		db.OnRehash = log.record
		wantHashInfo(t, db, "alice", SchemeArgon2id, false)
		if _, err := db.Authenticate(ctx, "alice", "pw-alice"); err != nil {
			t.Fatal(err)
		}
		db.Rehash(ctx, "alice", "pw-alice")
		parsed, err := parseArgon2id(storedHash(t, db, "alice"))
		if err != nil {
			t.Fatal(err)
		}
		if parsed.params != policyB {
			t.Errorf("rehashed at %+v, want %+v", parsed.params, policyB)
		}
		if errs := log.take(); len(errs) != 1 || errs[0] != nil {
			t.Errorf("OnRehash got %v, want one nil error", errs)
		}
		wantHashInfo(t, db, "alice", SchemeArgon2id, true)
		if _, err := db.Authenticate(ctx, "alice", "pw-alice"); err != nil {
			t.Errorf("same password after the rehash: %v", err)
		}
	})
}

func TestRehashLosesToSetPassword(t *testing.T) {
	db, _, _, _ := policyDB(t, policyB)
	ctx := t.Context()
	db.Params = policyA
	if err := db.AddUser(ctx, accounts.User{Name: "alice", Account: "APP"}, "old-pw"); err != nil {
		t.Fatal(err)
	}
	db.Params = policyB
	old := storedHash(t, db, "alice")

	// A login has verified old-pw against old; before it stores the new
	// hash, an admin sets a new password.
	if err := db.SetPassword(ctx, "alice", "new-pw"); err != nil {
		t.Fatal(err)
	}
	done, err := db.rehashPassword(ctx, "alice", old, "old-pw")
	if err != nil || done {
		t.Errorf("rehash after a concurrent SetPassword = %v, %v; want false, nil", done, err)
	}
	if _, err := db.Authenticate(ctx, "alice", "new-pw"); err != nil {
		t.Errorf("the new password: %v", err)
	}
	if _, err := db.Authenticate(ctx, "alice", "old-pw"); !errors.Is(err, accounts.ErrInvalidCredentials) {
		t.Errorf("the old password after the rehash = %v, want ErrInvalidCredentials", err)
	}
	// A user removed meanwhile is no error either.
	if err := db.RemoveUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if done, err := db.rehashPassword(ctx, "alice", old, "old-pw"); err != nil || done {
		t.Errorf("rehash of a removed user = %v, %v; want false, nil", done, err)
	}
}

func TestRehashDoesNotWaitForWriter(t *testing.T) {
	db, path, log, _ := policyDB(t, policyA)
	ctx := t.Context()
	bc, err := bcrypt.GenerateFromPassword([]byte("pw-bob"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddUserWithHash(ctx, accounts.User{Name: "bob", Account: "APP"}, string(bc)); err != nil {
		t.Fatal(err)
	}
	other := openTest(t, path)
	tx, err := other.sql.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `UPDATE accounts SET max_subs = 1`); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if _, err := db.Authenticate(ctx, "bob", "pw-bob"); err != nil {
		t.Fatalf("Authenticate while another handle writes: %v", err)
	}
	db.Rehash(ctx, "bob", "pw-bob")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Authenticate and Rehash took %v while another handle wrote: the rehash waited for the write lock", d)
	}
	if errs := log.take(); len(errs) != 1 || errs[0] == nil {
		t.Errorf("OnRehash got %v, want one error", errs)
	}
	if storedHash(t, db, "bob") != string(bc) {
		t.Error("the hash changed while another handle held the write lock")
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}

	// The connection's busy timeout is back: a write waits again.
	var timeout int
	for range 4 {
		conn, err := db.sql.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx, `PRAGMA busy_timeout`).Scan(&timeout); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		if timeout != 5000 {
			t.Errorf("busy_timeout of a pooled connection = %d, want 5000", timeout)
		}
	}

	// The next login does it.
	if _, err := db.Authenticate(ctx, "bob", "pw-bob"); err != nil {
		t.Fatal(err)
	}
	db.Rehash(ctx, "bob", "pw-bob")
	if errs := log.take(); len(errs) != 1 || errs[0] != nil {
		t.Errorf("OnRehash got %v, want one nil error", errs)
	}
	wantHashInfo(t, db, "bob", SchemeArgon2id, true)
}

func TestHashInfo(t *testing.T) {
	db, _ := setup(t) // alice at testParams, which are db.Params
	ctx := t.Context()
	wantHashInfo(t, db, "alice", SchemeArgon2id, true)
	db.Params = policyA
	wantHashInfo(t, db, "alice", SchemeArgon2id, false)
	if _, _, err := db.HashInfo(ctx, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("HashInfo of an unknown user = %v, want ErrNotFound", err)
	}
	if _, err := db.sql.ExecContext(ctx, `UPDATE users SET password_hash = 'secret-garbage' WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.HashInfo(ctx, "alice"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("HashInfo of a corrupt hash = %v, want an error without the hash", err)
	}
}

func TestCalibrate(t *testing.T) {
	// The floor's memory, which needs 5 passes: calibrate never suggests
	// fewer, whatever the target.
	const target = 3 * time.Millisecond
	p, d, err := Calibrate(target, MinPolicyMemory, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("calibrated %+v: %v", p, d)
	if p.Time < 5 || p.Time > MaxPolicyTime {
		t.Errorf("time cost %d is out of range 5..%d", p.Time, MaxPolicyTime)
	}
	if p.Memory != MinPolicyMemory || p.Threads != 1 || p.SaltLen != DefaultArgon2Params.SaltLen || p.KeyLen != DefaultArgon2Params.KeyLen {
		t.Errorf("params %+v: want the memory and threads asked for and the default salt and key lengths", p)
	}
	if err := ValidatePolicy(p); err != nil {
		t.Errorf("calibrated %+v is refused by the policy: %v", p, err)
	}
	if d <= 0 {
		t.Errorf("measured %v for a target of %v", d, target)
	}

	// A target below the floor's cost gives the floor.
	if p, _, err := Calibrate(time.Nanosecond, MinPolicyMemory, 1); err != nil || p.Time != 5 {
		t.Errorf("Calibrate(1ns) = %+v, %v; want time cost 5", p, err)
	}
	if p, _, err := Calibrate(time.Nanosecond, 19456, 1); err != nil || p.Time != 2 {
		t.Errorf("Calibrate(1ns, 19 MiB) = %+v, %v; want time cost 2", p, err)
	}
	for _, tc := range []struct {
		target  time.Duration
		memory  uint32
		threads uint8
	}{
		{0, MinPolicyMemory, 1},
		{target, 4, 1},
		{target, MinPolicyMemory - 1, 1},
		{target, MinPolicyMemory, 0},
	} {
		if _, _, err := Calibrate(tc.target, tc.memory, tc.threads); err == nil {
			t.Errorf("Calibrate(%v, %d, %d): no error", tc.target, tc.memory, tc.threads)
		}
	}
}

// TestCalibrateStaysWithinPolicy: however long a target, calibrate never
// suggests a time cost that 'hash set' would refuse.
func TestCalibrateStaysWithinPolicy(t *testing.T) {
	p, _, err := Calibrate(time.Minute, MinPolicyMemory, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidatePolicy(p); err != nil || p.Time != MaxPolicyTime {
		t.Errorf("Calibrate(1m) = %+v: %v; want time cost %d within the policy", p, err, MaxPolicyTime)
	}
	if _, _, err := Calibrate(time.Millisecond, MaxPolicyMemory+1, 1); err == nil {
		t.Error("Calibrate above the memory limit: no error")
	}
}
