package relay

import (
	"context"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// positionUsers is a Users and ChangeFeed in one value that also reads both
// positions in one query, as the store does.
type positionUsers struct {
	*memUsers
	*fakeFeed
}

func (positionUsers) UserPositions(context.Context, string) (int64, int64, error) { return 0, 0, nil }

// TestPositionsComeFromConfig: the relay reads both positions in one query
// only with Config.Positions, and only when the cache and revocation are on;
// it no longer guesses it from the types of Users and Revoke.Changes.
func TestPositionsComeFromConfig(t *testing.T) {
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	both := positionUsers{newMemUsers(), &fakeFeed{}}
	for _, c := range []struct {
		name string
		cfg  Config
		want PositionReader
	}{
		{"given", Config{Issuer: issuer, Users: both, CacheTTL: time.Minute, Revoke: &RevokeConfig{Changes: both}, Positions: both}, both},
		{"not given", Config{Issuer: issuer, Users: both, CacheTTL: time.Minute, Revoke: &RevokeConfig{Changes: both}}, nil},
		{"cache off", Config{Issuer: issuer, Users: both, Revoke: &RevokeConfig{Changes: both}, Positions: both}, nil},
	} {
		r, err := New(c.cfg)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.positions != c.want {
			t.Errorf("%s: positions = %v, want %v", c.name, r.positions, c.want)
		}
	}
}
