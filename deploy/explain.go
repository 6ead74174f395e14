package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// LoginOf returns what the relay of the directory decides a login of the
// user called name with: the user and its roles from db, the reserved
// accounts of nats.conf, the relay's issuer (its placement: in operator
// mode the accounts AUTH allows, with the signing keys held) and the
// server's max_payload, at now. The client is left out (CheckClient
// false). It is what 'user explain' decides with accounts.Explain.
func (l Layout) LoginOf(ctx context.Context, db *store.DB, name string, now func() time.Time) (accounts.Login, error) {
	u, err := db.User(ctx, name)
	if err != nil {
		return accounts.Login{}, err
	}
	roles, err := db.RolesNamed(ctx, u.Roles)
	if err != nil {
		return accounts.Login{}, err
	}
	reserved, err := l.ReservedAccounts()
	if err != nil {
		return accounts.Login{}, err
	}
	sizer, err := NewGrantSizer(l, now)
	if err != nil {
		return accounts.Login{}, err
	}
	id, err := l.Identity()
	if err != nil {
		return accounts.Login{}, err
	}
	return accounts.Login{User: u, Roles: roles, Reserved: reserved, Now: now(),
		Issuer: id.Issuer, MaxPayload: sizer.Limit}, nil
}

// LoginNotes returns what a change just made does to the logins of the
// users named, for the admin who made it: a warning for a user the relay
// would refuse every login of even with the right password (expired, a
// template its name cannot fill, a reserved account…), with the relay's
// own reason from accounts.Decide, so that a change that locks a user out
// does not pass in silence; a note for a user that may neither publish nor
// subscribe nor reply. A disabled user was disabled on purpose and gets
// none. At most five users are named, then how many more. A user that
// cannot be read is left out.
func (l Layout) LoginNotes(ctx context.Context, db *store.DB, now func() time.Time, names ...string) []string {
	const most = 5
	var notes []string
	more := 0
	for _, name := range names {
		login, err := l.LoginOf(ctx, db, name, now)
		if err != nil {
			continue
		}
		u, v := login.User, accounts.Decide(&login)
		var note string
		switch {
		case v.Reason == accounts.ReasonUserDisabled:
		case v.Reason != "":
			note = fmt.Sprintf("warning: %s cannot log in: the relay will refuse every login with %s (%v); 'authrelay user explain %s' shows it", u.Name, v.Reason, v.Err, u.Name)
		case v.Grant.Permissions.GrantsNothing():
			note = fmt.Sprintf("note: %s may neither publish nor subscribe: no --pub, --sub or role of it allows a subject (--pub '>' --sub '>' grants every subject)", u.Name)
		}
		switch {
		case note == "":
		case len(notes) < most:
			notes = append(notes, note)
		default:
			more++
		}
	}
	if more > 0 {
		notes = append(notes, fmt.Sprintf("and %d more such users", more))
	}
	return notes
}
