package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"slices"

	"github.com/authrelay/authrelay/store"
)

// actor names the OS user running this command, for the audit trail.
func actor() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if name := os.Getenv("USER"); name != "" {
		return name
	}
	return fmt.Sprintf("uid:%d", os.Getuid())
}

// audit records an admin change that has been committed. detail says what
// changed (names and the flags given, never a password or hash). A failure
// to record is reported but does not undo the change.
func (m *Main) audit(ctx context.Context, db *store.DB, action string, detail map[string]any) {
	b, err := json.Marshal(detail)
	if err != nil {
		b = []byte(fmt.Sprintf("%q", fmt.Sprint(detail)))
	}
	if err := db.AuditAdmin(ctx, actor(), action, string(b)); err != nil {
		fmt.Fprintf(m.Stderr, "authrelay: warning: the change is made but the audit trail did not record it: %v\n", err)
	}
}

// changedFlags lists the flags given on the command line, minus --dir, for
// the audit trail: what was changed, not the values.
func changedFlags(set map[string]bool) []string {
	var out []string
	for name := range set {
		if name != "dir" {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
