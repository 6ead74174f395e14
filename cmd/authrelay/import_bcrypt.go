package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/authrelay/authrelay/accounts"
)

// warnBcryptTruncation writes, once, the users of an import that keep a
// bcrypt hash. bcrypt looks at only the first 72 bytes of a password, and
// nats-server accepted a longer password by ignoring the rest. authrelay
// refuses a password over 72 bytes against a bcrypt hash instead (it would
// match any password with the same first 72 bytes), so a client that sends
// such a password is refused until the user's password is reset. A hash does
// not tell how long its password was, so every bcrypt user is listed.
func warnBcryptTruncation(w io.Writer, rep *importReport, dryRun bool) {
	var names []string
	for _, u := range rep.Users {
		if u.Action == importAdd && bcryptLike.MatchString(u.secret) {
			names = append(names, accounts.ClientText(u.Name))
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	verb := "keep"
	if dryRun {
		verb = "would keep"
	}
	fmt.Fprintf(w, `warning: %d imported user(s) %s their bcrypt hash: %s.
bcrypt uses only the first 72 bytes of a password, and nats-server accepted a
longer password by ignoring the rest. authrelay refuses a password over 72
bytes against a bcrypt hash, so a user whose password is longer cannot log in
until it is reset: authrelay user passwd NAME --generate-password (shorter
passwords keep working, and are rehashed to argon2id at the next login).
`, len(names), verb, strings.Join(names, ", "))
}
