package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

func (m *Main) runUserUnlock(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user unlock", `
Usage: authrelay user unlock NAME
       authrelay user unlock --addr ADDRESS
       authrelay user unlock NAME --addr ADDRESS

Lifts lockouts after repeated failed logins, and forgets their failures:
with NAME, the username's lockouts (from everywhere, and from each
address); with --addr, the client address's lockouts (over any names, and
of each name from it); with both, that username from that address only.
An IPv6 ADDRESS matches the prefix it was counted under (see 'authrelay
user lockouts').

Examples:

  authrelay user unlock alice
  authrelay user unlock --addr 192.0.2.7
  authrelay user unlock alice --addr 2001:db8:1:2::/64
`)
	dir := m.dirFlag(fs)
	addr := fs.String("addr", "", "unlock this client address (an IP address or a prefix such as 2001:db8::/64)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name := ""
	if len(pos) > 0 || *addr == "" {
		if name, err = oneName("unlock", pos); err != nil {
			return err
		}
	}
	key := ""
	if *addr != "" {
		if key, err = store.UnlockAddr(*addr); err != nil {
			return &usageError{msg: err.Error()}
		}
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	what := ""
	switch {
	case name != "" && key != "":
		what = fmt.Sprintf("user %s from %s", accounts.ClientText(name), key)
	case name != "":
		what = "user " + accounts.ClientText(name)
	default:
		what = "addr " + key
	}
	// The lockouts lifted and the audit row commit together, or neither.
	was, err := deploy.Unlock(ctx, db, m.actor(), name, key)
	if err != nil {
		return err
	}
	if was {
		fmt.Fprintf(m.Stdout, "unlocked %s\n", what)
	} else {
		fmt.Fprintf(m.Stdout, "%s was not locked; its failure count is cleared\n", what)
	}
	return nil
}

func (m *Main) runUserLockouts(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user lockouts", `
Usage: authrelay user lockouts [--json]

Lists what is locked out now after repeated failed logins: a username from
one client address (user+addr), a client address over any usernames
(addr), or a username from all addresses except those it logged in from
recently (user); with the failures that locked it, until when, and how many
times it has been locked. Lift one with 'authrelay user unlock'. Usernames
and addresses come from clients: unusual ones are printed quoted.

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
		User        string    `json:"user,omitempty"`
		Addr        string    `json:"addr,omitempty"`
		Failures    int       `json:"failures"`
		Window      string    `json:"window,omitempty"`
		Why         string    `json:"why"`
		LockedUntil time.Time `json:"locked_until"`
		Locks       int       `json:"locks"`
	}
	views := make([]view, 0, len(list))
	for _, l := range list {
		v := view{Kind: l.Kind, Key: l.Key(), User: l.User, Addr: l.Addr, Failures: l.LockFailures,
			Why: l.Why(), LockedUntil: l.LockedUntil.UTC(), Locks: l.Locks}
		if l.LockWindow > 0 {
			v.Window = l.LockWindow.String()
		}
		views = append(views, v)
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tUSER\tADDRESS\tLOCKED UNTIL\tREMAINING\tLOCKS\tWHY")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%s\n", v.Kind, textField(v.User), textField(v.Addr), v.LockedUntil.Format(time.RFC3339),
			v.LockedUntil.Sub(now).Round(time.Second), v.Locks, v.Why)
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
	fsRegister.IntVar(&l.p.Threshold, "lockout-threshold", d.Threshold, "failed logins of one username from one client address within --lockout-window that lock that username from that address (0 = off)")
	fsRegister.IntVar(&l.p.AddrThreshold, "lockout-addr-threshold", d.AddrThreshold, "failed logins from one client address, over any usernames, within --lockout-window that lock the address (0 = off)")
	fsRegister.IntVar(&l.p.UserThreshold, "lockout-user-threshold", d.UserThreshold, "failed logins of one username from all addresses within --lockout-window that lock the username, except from the addresses it logged in from within --lockout-known-for (0 = off)")
	fsRegister.DurationVar(&l.p.KnownFor, "lockout-known-for", d.KnownFor, "how long after a successful login its address stays exempt from a lockout of the username (0 = no address is exempt)")
	fsRegister.IntVar(&l.p.IPv6Prefix, "lockout-ipv6-prefix", d.IPv6Prefix, "prefix length IPv6 client addresses are counted under, so that addresses of one prefix count as one (1 to 128)")
	fsRegister.DurationVar(&l.p.Window, "lockout-window", d.Window, "how far back failed logins count")
	fsRegister.DurationVar(&l.p.Duration, "lockout-duration", d.Duration, "length of a first lockout; each further lockout of the same key doubles it")
	fsRegister.DurationVar(&l.p.MaxDuration, "lockout-max", d.MaxDuration, "longest lockout")
}
