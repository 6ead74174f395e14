package store

import (
	"errors"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// TestPasswordGrace: within the grace both passwords log in, the previous
// one with Expires (and Grace) at the grace's end; the replacement wrote a
// quiet change; after the grace the previous password is stale, not
// invalid, and EndGraces writes one change limited to what came before the
// replacement, once. A replacement without grace makes the previous
// password stale at once and writes a change that is not quiet.
func TestPasswordGrace(t *testing.T) {
	ctx := t.Context()
	db, _ := newTestDB(t)
	c := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	db.Now = c.Now
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	if err := db.AddUser(ctx, accounts.User{Name: "svc", Account: "APP"}, "old-pass-123"); err != nil {
		t.Fatal(err)
	}
	last, err := db.LastUserChange(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetPasswordGrace(ctx, "svc", "new-pass-456", time.Minute); err != nil {
		t.Fatal(err)
	}
	changes, err := db.UserChangesSince(ctx, last)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || !changes[0].Quiet {
		t.Fatalf("changes of the replacement = %+v, want one quiet row", changes)
	}
	mark := changes[0].ID

	end := c.Now().Add(time.Minute)
	c.Set(c.Now().Add(30 * time.Second))
	if u, err := db.Authenticate(ctx, "svc", "new-pass-456"); err != nil || !u.Grace.IsZero() {
		t.Errorf("new password in the grace: %+v, %v", u, err)
	}
	u, err := db.Authenticate(ctx, "svc", "old-pass-123")
	if err != nil || !u.Grace.Equal(end) || !u.Expires.Equal(end) {
		t.Errorf("previous password in the grace: grace %v expires %v err %v; want both %v", u.Grace, u.Expires, err, end)
	}
	if _, err := db.Authenticate(ctx, "svc", "guess-789"); !errors.Is(err, accounts.ErrInvalidCredentials) || errors.Is(err, accounts.ErrStaleCredentials) {
		t.Errorf("a wrong password in the grace: %v, want invalid, not stale", err)
	}
	if n, err := db.EndGraces(ctx); err != nil || n != 0 {
		t.Errorf("EndGraces in the grace = %d, %v; want 0", n, err)
	}

	c.Set(end)
	if _, err := db.Authenticate(ctx, "svc", "old-pass-123"); !errors.Is(err, accounts.ErrStaleCredentials) {
		t.Errorf("previous password after the grace: %v, want ErrStaleCredentials", err)
	}
	if _, err := db.Authenticate(ctx, "svc", "new-pass-456"); err != nil {
		t.Errorf("new password after the grace: %v", err)
	}
	v1, err := db.UserVersion(ctx, "svc")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.EndGraces(ctx); err != nil || n != 1 {
		t.Fatalf("EndGraces after the grace = %d, %v; want 1", n, err)
	}
	if n, err := db.EndGraces(ctx); err != nil || n != 0 {
		t.Errorf("EndGraces again = %d, %v; want 0: each grace ends once", n, err)
	}
	if v2, err := db.UserVersion(ctx, "svc"); err != nil || v2 == v1 {
		t.Errorf("user version after the grace's end = %d, %v; want it bumped from %d", v2, err, v1)
	}
	changes, err = db.UserChangesSince(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Quiet || changes[0].BeforeID != mark || changes[0].Before.IsZero() {
		t.Fatalf("changes of the grace's end = %+v, want one row before %d", changes, mark)
	}

	// Without grace: kicks at once, and the previous password is stale
	// at once.
	if err := db.SetPassword(ctx, "svc", "third-pass-789"); err != nil {
		t.Fatal(err)
	}
	changes, err = db.UserChangesSince(ctx, changes[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || changes[0].Quiet || changes[0].BeforeID != 0 {
		t.Errorf("changes of a replacement without grace = %+v, want one plain row", changes)
	}
	if _, err := db.Authenticate(ctx, "svc", "new-pass-456"); !errors.Is(err, accounts.ErrStaleCredentials) {
		t.Errorf("previous password after a replacement without grace: %v, want ErrStaleCredentials", err)
	}
	// A day after, it is forgotten: a wrong password like any other.
	c.Set(c.Now().Add(staleWindow + time.Minute))
	if n, err := db.PruneGraces(ctx, c.Now()); err != nil || n != 1 {
		t.Errorf("PruneGraces = %d, %v; want 1", n, err)
	}
	if _, err := db.Authenticate(ctx, "svc", "new-pass-456"); !errors.Is(err, accounts.ErrInvalidCredentials) || errors.Is(err, accounts.ErrStaleCredentials) {
		t.Errorf("previous password a day later: %v, want invalid, not stale", err)
	}
	if err := db.SetPasswordGrace(ctx, "svc", "fourth-pass-1", MaxPasswordGrace+time.Second); err == nil {
		t.Error("a grace above MaxPasswordGrace was accepted")
	}
}
