package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

// TestAccountJetStreamLimits: JetStream limits are stored with the
// account (migration 0015), replaced by UpdateAccount in one transaction,
// refused on an account without JetStream, and removed when JetStream is
// turned off.
func TestAccountJetStreamLimits(t *testing.T) {
	db, _ := newTestDB(t)
	ctx := t.Context()
	iot := accounts.Account{Name: "IOT", JetStream: true, JetStreamLimits: accounts.JetStreamLimits{MaxMemory: 1 << 20, MaxStorage: 1 << 40, MaxStreams: 10, MaxConsumers: 1<<31 - 1}}
	if err := db.AddAccountWithLimits(ctx, iot); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Account(ctx, "IOT"); err != nil || got != iot {
		t.Fatalf("Account(IOT) = %+v, %v; want %+v", got, err, iot)
	}
	bad := accounts.Account{Name: "OFF", JetStreamLimits: accounts.JetStreamLimits{MaxStreams: 1}}
	if err := db.AddAccountWithLimits(ctx, bad); err == nil || !strings.Contains(err.Error(), "add --jetstream") {
		t.Errorf("AddAccountWithLimits with a JetStream limit and no JetStream = %v, want a refusal", err)
	}
	iot.JetStreamLimits = accounts.JetStreamLimits{MaxStreams: 3}
	iot.Limits.MaxSubs = 7
	if err := db.UpdateAccount(ctx, iot); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Account(ctx, "IOT"); err != nil || got != iot {
		t.Errorf("after UpdateAccount: %+v, %v; want %+v", got, err, iot)
	}
	if err := db.UpdateAccount(ctx, accounts.Account{Name: "IOT", JetStreamLimits: accounts.JetStreamLimits{MaxStreams: 3}}); err == nil {
		t.Error("UpdateAccount with a JetStream limit and JetStream off succeeded")
	}
	if err := db.UpdateAccount(ctx, accounts.Account{Name: "NONE"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateAccount(NONE) = %v, want ErrNotFound", err)
	}
	if err := db.SetAccountJetStream(ctx, "IOT", false); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Account(ctx, "IOT"); err != nil || got.JetStream || !got.JetStreamLimits.IsZero() {
		t.Errorf("after SetAccountJetStream(false): %+v, %v; want no JetStream and no limits", got, err)
	}
	if err := db.SetAccountJetStreamLimits(ctx, "IOT", accounts.JetStreamLimits{MaxStreams: 1}); err == nil {
		t.Error("SetAccountJetStreamLimits on an account without JetStream succeeded")
	}
	// The schema refuses a negative limit even from a writer that skips
	// Validate.
	if _, err := db.sql.ExecContext(ctx, `UPDATE accounts SET js_max_streams = -1 WHERE name = 'IOT'`); err == nil {
		t.Error("the schema took js_max_streams = -1")
	}
}
