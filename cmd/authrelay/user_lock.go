package main

import (
	"context"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

func (m *Main) runUserUnlock(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user unlock", `
Usage: authrelay user unlock NAME
       authrelay user unlock --addr ADDRESS

Lifts the lockout of a username (after repeated wrong passwords) or of a
client address (after password spraying), and forgets their failures.

Examples:

  authrelay user unlock alice
  authrelay user unlock --addr 192.0.2.7
`)
	dir := m.dirFlag(fs)
	addr := fs.String("addr", "", "unlock this client address instead of a username")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	kind, key := "user", ""
	switch {
	case *addr != "" && len(pos) > 0:
		return usagef("user unlock: give a NAME or --addr, not both")
	case *addr != "":
		a, err := netip.ParseAddr(*addr)
		if err != nil {
			return usagef("--addr %q: want an IP address such as 192.0.2.7", *addr)
		}
		kind, key = "addr", a.Unmap().String()
	default:
		if key, err = oneName("unlock", pos); err != nil {
			return err
		}
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	was, err := db.Unlock(ctx, kind, key)
	if err != nil {
		return err
	}
	m.audit(ctx, db, "user unlock", map[string]any{kind: key, "was_locked": was})
	if was {
		fmt.Fprintf(m.Stdout, "unlocked %s %s\n", kind, key)
	} else {
		fmt.Fprintf(m.Stdout, "%s %s was not locked; its failure count is cleared\n", kind, key)
	}
	return nil
}

func (m *Main) runUserLockouts(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user lockouts", `
Usage: authrelay user lockouts [--json]

Lists the usernames and client addresses locked out now, until when, and
how many times each has been locked. Lift one with 'authrelay user unlock'.

Examples:

  authrelay user lockouts
  authrelay user lockouts --json
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseNoArgs(fs, args, "user lockouts"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	now := m.Now()
	list, err := db.ActiveLockouts(ctx, now)
	if err != nil {
		return err
	}
	type view struct {
		Kind        string    `json:"kind"`
		Key         string    `json:"key"`
		LockedUntil time.Time `json:"locked_until"`
		Locks       int       `json:"locks"`
	}
	views := make([]view, 0, len(list))
	for _, l := range list {
		views = append(views, view{Kind: l.Kind, Key: l.Key, LockedUntil: l.LockedUntil.UTC(), Locks: l.Locks})
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAME OR ADDRESS\tLOCKED UNTIL\tREMAINING\tLOCKS")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%d\n", v.Kind, v.Key, v.LockedUntil.Format(time.RFC3339), v.LockedUntil.Sub(now).Round(time.Second), v.Locks)
	}
	return tw.Flush()
}

// lockoutFlags are serve's lockout policy flags.
type lockoutFlags struct {
	p accounts.LockoutPolicy
}

func (l *lockoutFlags) register(fsRegister interface {
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
}) {
	d := accounts.DefaultLockoutPolicy
	fsRegister.IntVar(&l.p.Threshold, "lockout-threshold", d.Threshold, "failed logins of one username within --lockout-window that lock it (0 = off)")
	fsRegister.IntVar(&l.p.AddrThreshold, "lockout-addr-threshold", d.AddrThreshold, "failed logins from one client address, over any usernames, within --lockout-window that lock the address (0 = off)")
	fsRegister.DurationVar(&l.p.Window, "lockout-window", d.Window, "how far back failed logins count")
	fsRegister.DurationVar(&l.p.Duration, "lockout-duration", d.Duration, "length of a first lockout; each further lockout of the same name or address doubles it")
	fsRegister.DurationVar(&l.p.MaxDuration, "lockout-max", d.MaxDuration, "longest lockout")
}
