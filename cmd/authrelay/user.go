package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

const userUsage = `
Usage: authrelay user <subcommand> [flags] [NAME]

Subcommands:

  add NAME      create a user
  set NAME      change a user's account, roles, permissions or constraints
  list          list users
  show NAME     show one user as stored
  explain NAME  show what the relay would issue for the user right now
  passwd NAME   set a user's password
  disable NAME  refuse the user's next logins
  enable NAME   allow the user to log in again
  rm NAME       remove a user
  unlock NAME   lift lockouts after repeated failed logins (--addr for an address, both for a pair)
  lockouts      list what is locked out now, and why

Changes take effect on the user's next connect; the server needs no reload.
They are safe while 'authrelay serve' runs. Passwords are read from standard
input (--password-stdin) or a no-echo prompt, never from a flag.

Examples:

  printf 's3cret-pass\n' | authrelay user add alice --account APP --password-stdin \
      --pub 'orders.>' --sub 'orders.>' --sub '_INBOX.>'
  authrelay user add billing-svc --generate-password --pub 'billing.>'
  authrelay user list --json
  authrelay user disable alice
`

func (m *Main) runUser(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "user", userUsage, []subcommand{
		{[]string{"add"}, m.runUserAdd},
		{[]string{"set"}, m.runUserSet},
		{[]string{"explain"}, m.runUserExplain},
		{[]string{"list", "ls"}, m.runUserList},
		{[]string{"show"}, m.runUserShow},
		{[]string{"passwd"}, m.runUserPasswd},
		{[]string{"disable"}, func(ctx context.Context, args []string) error { return m.runUserSetDisabled(ctx, args, true) }},
		{[]string{"enable"}, func(ctx context.Context, args []string) error { return m.runUserSetDisabled(ctx, args, false) }},
		{[]string{"rm", "remove"}, m.runUserRemove},
		{[]string{"unlock"}, m.runUserUnlock},
		{[]string{"lockouts"}, m.runUserLockouts},
	}, args)
}

// openStore opens the database of an initialised directory; see
// deploy.Layout.OpenDatabase.
func (m *Main) openStore(ctx context.Context, dir string) (*store.DB, error) {
	db, err := deploy.Layout{Dir: dir}.OpenDatabase(ctx)
	if err != nil {
		return nil, err
	}
	db.Now = m.Now
	return db, nil
}

// oneName returns the single NAME argument of a user subcommand.
func oneName(cmd string, pos []string) (string, error) {
	switch len(pos) {
	case 0:
		return "", usagef("user %s: give the user's NAME", cmd)
	case 1:
		if err := accounts.ValidateName(pos[0]); err != nil {
			return "", &usageError{msg: err.Error()}
		}
		return pos[0], nil
	default:
		return "", usagef("user %s: give one NAME, got %d arguments %q", cmd, len(pos), pos)
	}
}

// permFlags are the permission flags shared by user commands.
type permFlags struct {
	pub, sub, denyPub, denySub stringList
	allowResponses             bool
	respMax                    int
	respTTL                    time.Duration
}

func (p *permFlags) register(fs *flag.FlagSet) {
	fs.Var(&p.pub, "pub", "subject the user may publish to (repeatable, wildcards allowed), e.g. 'orders.>'; '>' is every subject, and with no --pub (own or from a role) the user may publish nothing")
	fs.Var(&p.sub, "sub", "subject the user may subscribe to (repeatable), e.g. '_INBOX.>'; '>' is every subject, and with no --sub (own or from a role) the user may subscribe to nothing")
	fs.Var(&p.denyPub, "deny-pub", "subject the user may never publish to (repeatable; wins over --pub)")
	fs.Var(&p.denySub, "deny-sub", "subject the user may never subscribe to (repeatable; wins over --sub)")
	fs.BoolVar(&p.allowResponses, "allow-responses", false, "let the user reply to requests it receives, whatever --pub allows")
	fs.IntVar(&p.respMax, "resp-max", 0, "with --allow-responses: replies allowed per request (0 = one)")
	fs.DurationVar(&p.respTTL, "resp-ttl", 0, "with --allow-responses: how long a reply is allowed (0 = no limit)")
}

func (p *permFlags) permissions() (accounts.Permissions, error) {
	perms := accounts.Permissions{
		Pub: accounts.Rule{Allow: p.pub, Deny: p.denyPub},
		Sub: accounts.Rule{Allow: p.sub, Deny: p.denySub},
	}
	if p.allowResponses {
		perms.Resp = &accounts.ResponsePermission{MaxMsgs: p.respMax, TTL: p.respTTL}
	} else if p.respMax != 0 || p.respTTL != 0 {
		return perms, usagef("--resp-max and --resp-ttl need --allow-responses")
	}
	if err := perms.Validate(); err != nil {
		return perms, &usageError{msg: err.Error()}
	}
	return perms, nil
}

// parseExpires parses --expires: "never", an RFC 3339 time, a date
// (YYYY-MM-DD, midnight UTC) or a duration from now such as 720h.
func parseExpires(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "" || s == "never":
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).UTC().Truncate(time.Second), nil
	}
	return time.Time{}, usagef("--expires %q: want never, a time such as 2027-01-31T18:00:00Z, a date such as 2027-01-31, or a duration such as 720h", s)
}

const userAddUsage = `
Usage: authrelay user add NAME [--account ACCOUNT] (--password-stdin | --generate-password)
                          [--role ROLE]... [permission flags] [--expires TIME]
                          [--src CIDR]... [--conn-type TYPE]...

Creates a user. The password is read from the first line of standard input
(--password-stdin), generated and printed once (--generate-password), or
asked for without echo when standard input is a terminal.

Only allows grant: a direction (publish, subscribe) that no --pub or --sub
of the user or of its roles allows permits nothing. --pub '>' (or
--sub '>') grants every subject of the account, explicitly.

Examples:

  printf 's3cret-pass\n' | authrelay user add alice --account APP --password-stdin \
      --pub 'orders.>' --sub 'orders.>' --sub '_INBOX.>'
  authrelay user add reporter --generate-password --sub 'metrics.>' --deny-sub 'metrics.secret.>'
  authrelay user add bob --generate-password --role svc --src 10.1.0.0/16 --conn-type STANDARD
`

func (m *Main) runUserAdd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user add", userAddUsage)
	dir := m.dirFlag(fs)
	account := fs.String("account", "", "account to place the user in (default: the only application account)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	generate := fs.Bool("generate-password", false, "generate a strong password and print it once")
	expires := fs.String("expires", "never", "when the user stops being able to log in: never, 2027-01-31T18:00:00Z, 2027-01-31 or 720h")
	disabled := fs.Bool("disabled", false, "create the user disabled")
	var pf permFlags
	pf.register(fs)
	var cf constraintFlags
	cf.register(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName("add", pos)
	if err != nil {
		return err
	}
	if deploy.StaticUser(name) {
		return usagef("user add: %q is a static user of nats.conf (the relay's or the system admin's login); the server would never ask authrelay about it, pick another name", name)
	}
	if err := cf.check(); err != nil {
		return err
	}
	perms, err := pf.permissions()
	if err != nil {
		return err
	}
	exp, err := parseExpires(*expires, m.Now())
	if err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	acct := *account
	if acct == "" {
		names, err := db.Accounts(ctx)
		if err != nil {
			return err
		}
		if len(names) != 1 {
			return usagef("user add: give --account, one of %s", strings.Join(names, ", "))
		}
		acct = names[0]
	}
	u := accounts.User{Name: name, Account: acct, Permissions: perms, Disabled: *disabled, Expires: exp,
		Roles: cf.roles, Src: cf.src, ConnTypes: cf.connTypes}
	if err := u.Validate(); err != nil {
		return &usageError{msg: err.Error()}
	}
	sizer, err := deploy.NewGrantSizer(deploy.Layout{Dir: *dir}, m.Now)
	if err != nil {
		return err
	}
	if _, err := sizer.CheckStored(ctx, db, u); err != nil {
		return fmt.Errorf("user add %s: %w", name, err)
	}
	pw, err := m.newPassword(ctx, db, name, *pwStdin, *generate)
	if err != nil {
		return err
	}
	detail := map[string]any{"user": name, "account": acct, "flags": changedFlags(setFlags(fs))}
	if err := m.admin(ctx, db, "user add", func(ctx context.Context) (map[string]any, error) {
		return detail, db.AddUser(ctx, u, pw)
	}); err != nil {
		return userError(err, name, db, ctx)
	}
	fmt.Fprintf(m.Stdout, "added user %s in account %s\n", name, acct)
	if *generate {
		fmt.Fprintf(m.Stdout, "password: %s\n(shown once: store it now)\n", pw)
	}
	m.noteLogins(ctx, db, *dir, name)
	return nil
}

const userPasswdUsage = `
Usage: authrelay user passwd NAME (--password-stdin | --generate-password) [--grace DURATION]

Sets a user's password. It applies from the user's next connect, and a
running 'authrelay serve' closes the user's open connections within a
second, so clients must reconnect with the new password.

--grace DURATION rotates without downtime: the previous password keeps
working for that long (at most 168h), and no connection is closed
before it ends; logins with it get a JWT that ends with the grace. When the grace
ends, serve closes the connections made before the change (those of the
previous password), not those of the new one. Either way, a client still
trying the previous password later is refused as a wrong password but
never locks the user out: authrelay knows it is stale, not a guess.

Examples:

  printf 'n3w-pass\n' | authrelay user passwd alice --password-stdin
  authrelay user passwd billing-svc --generate-password --grace 10m
`

func (m *Main) runUserPasswd(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user passwd", userPasswdUsage)
	dir := m.dirFlag(fs)
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	generate := fs.Bool("generate-password", false, "generate a strong password and print it once")
	grace := fs.Duration("grace", 0, "keep the previous password working for this long (at most 168h), and its connections open until then")
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneName, "passwd")
	if err != nil {
		return err
	}
	defer db.Close()
	if *grace < 0 || *grace > store.MaxPasswordGrace {
		return usagef("--grace %v: give 0 to %v", *grace, store.MaxPasswordGrace)
	}
	if _, err := db.User(ctx, name); err != nil {
		return userError(err, name, db, ctx)
	}
	pw, err := m.newPassword(ctx, db, name, *pwStdin, *generate)
	if err != nil {
		return err
	}
	if err := m.admin(ctx, db, "user passwd", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"user": name, "grace": grace.String()}, db.SetPasswordGrace(ctx, name, pw, *grace)
	}); err != nil {
		return userError(err, name, db, ctx)
	}
	if *grace > 0 {
		fmt.Fprintf(m.Stdout, "password of %s changed; the previous one works until %s, and its connections close then\n",
			name, m.Now().Add(*grace).UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintf(m.Stdout, "password of %s changed\n", name)
	}
	if *generate {
		fmt.Fprintf(m.Stdout, "password: %s\n(shown once: store it now)\n", pw)
	}
	return nil
}

// password obtains a new password from standard input, the generator or a
// terminal prompt.
// newPassword reads or generates the new password of the user called name
// (password) and holds one the admin chose to the password policy
// (store.CheckNewPassword, at the database's minimum length).
func (m *Main) newPassword(ctx context.Context, db *store.DB, name string, fromStdin, generate bool) (string, error) {
	pw, err := m.password(fromStdin, generate)
	if err != nil || generate {
		return pw, err
	}
	minLen, err := db.MinPasswordLen(ctx)
	if err != nil {
		return "", err
	}
	if err := store.CheckNewPassword(name, pw, minLen); err != nil {
		return "", &usageError{msg: fmt.Sprintf("password of %s: %v; nothing changed", name, err)}
	}
	return pw, nil
}

func (m *Main) password(fromStdin, generate bool) (string, error) {
	switch {
	case fromStdin && generate:
		return "", usagef("give either --password-stdin or --generate-password, not both")
	case generate:
		return deploy.RandomPassword(), nil
	case fromStdin:
		return readPasswordLine(m.Stdin)
	case m.ReadPassword != nil:
		pw, err := m.ReadPassword("Password: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		again, err := m.ReadPassword("Repeat password: ")
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if pw != again {
			return "", errors.New("the two passwords differ: nothing changed, try again")
		}
		if pw == "" {
			return "", errors.New("empty password: nothing changed")
		}
		return pw, nil
	default:
		return "", usagef("no password given: pipe it in with --password-stdin (printf 'pass\\n' | authrelay user ... --password-stdin), or use --generate-password; passwords are never taken from flags")
	}
}

// maxPasswordInput bounds what is read from standard input for a password.
const maxPasswordInput = 64 << 10

// readPasswordLine reads the first line of r, without its line ending.
func readPasswordLine(r io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, maxPasswordInput))
	line, err := br.ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", errors.New("no password on standard input: pipe one line in, e.g. printf 's3cret-pass\\n' | authrelay user ... --password-stdin")
	}
	return line, nil
}

// userError turns store errors into messages that say what to do.
func userError(err error, name string, db *store.DB, ctx context.Context) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("user %q not found: see 'authrelay user list'", name)
	case errors.Is(err, store.ErrExists):
		return fmt.Errorf("user %q already exists: change it with 'authrelay user passwd' or remove it with 'authrelay user rm' first", name)
	case errors.Is(err, accounts.ErrUnknownRole):
		return fmt.Errorf("%v: create it with 'authrelay role add', see 'authrelay role list'", err)
	case errors.Is(err, store.ErrUnknownAccount):
		names, _ := db.Accounts(ctx)
		return fmt.Errorf("%v: known accounts are %s", err, strings.Join(names, ", "))
	}
	return err
}

func (m *Main) runUserSetDisabled(ctx context.Context, args []string, disabled bool) error {
	verb := "enable"
	if disabled {
		verb = "disable"
	}
	fs := m.newFlagSet("user "+verb, fmt.Sprintf(`
Usage: authrelay user %[1]s NAME

%[2]s.

Example:

  authrelay user %[1]s alice
`, verb, map[bool]string{
		true:  "Refuses the user's logins until 'user enable'. It applies from the user's\nnext connect, and a running 'authrelay serve' closes the user's open\nconnections within a second",
		false: "Lets a disabled user log in again. It applies from the user's next connect",
	}[disabled]))
	dir := m.dirFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	name, err := oneName(verb, pos)
	if err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.admin(ctx, db, "user "+verb, func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"user": name}, db.SetDisabled(ctx, name, disabled)
	}); err != nil {
		return userError(err, name, db, ctx)
	}
	fmt.Fprintf(m.Stdout, "user %s %sd\n", name, verb)
	return nil
}

func (m *Main) runUserRemove(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user rm", `
Usage: authrelay user rm NAME

Removes a user. Its next connect is refused, and a running 'authrelay
serve' closes its open connections within a second.

Example:

  authrelay user rm alice
`)
	dir := m.dirFlag(fs)
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneName, "rm")
	if err != nil {
		return err
	}
	defer db.Close()
	if err := m.admin(ctx, db, "user rm", func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"user": name}, db.RemoveUser(ctx, name)
	}); err != nil {
		return userError(err, name, db, ctx)
	}
	fmt.Fprintf(m.Stdout, "user %s removed\n", name)
	return nil
}

// userView is a user as list and show print it: never a hash.
type userView struct {
	Name       string                       `json:"name"`
	Account    string                       `json:"account"`
	Disabled   bool                         `json:"disabled"`
	Expires    *time.Time                   `json:"expires"`
	Pub        accounts.Rule                `json:"pub"`
	Sub        accounts.Rule                `json:"sub"`
	Resp       *accounts.ResponsePermission `json:"resp"`
	Roles      []string                     `json:"roles"`
	Src        []string                     `json:"src"`
	ConnTypes  []string                     `json:"conn_types"`
	HashScheme string                       `json:"hash_scheme,omitempty"`
	// HashCurrent tells whether the hash follows the current policy.
	HashCurrent *bool     `json:"hash_current,omitempty"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	// Effective is the grant with the roles merged, in user list.
	Effective *effectiveView `json:"effective,omitempty"`
}

func newUserView(u accounts.User) userView {
	v := userView{
		Name:      u.Name,
		Account:   u.Account,
		Disabled:  u.Disabled,
		Pub:       nonNilRule(u.Permissions.Pub),
		Sub:       nonNilRule(u.Permissions.Sub),
		Resp:      u.Permissions.Resp,
		Roles:     nonNil(u.Roles),
		Src:       nonNil(u.Src),
		ConnTypes: nonNil(u.ConnTypes),
		Created:   u.Created,
		Updated:   u.Updated,
	}
	if !u.Expires.IsZero() {
		e := u.Expires
		v.Expires = &e
	}
	return v
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func nonNilRule(r accounts.Rule) accounts.Rule {
	if r.Allow == nil {
		r.Allow = []string{}
	}
	if r.Deny == nil {
		r.Deny = []string{}
	}
	return r
}

func (m *Main) runUserList(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user list", `
Usage: authrelay user list [--json]

Lists users: name, account, status, expiry, roles and the effective
permissions: the user's own rules merged with those of its roles, templates
expanded, as the relay issues them. --json has the user's own rules as pub
and sub, and the merged ones under effective. Never hashes.
A long cell is cut to 60 characters, ending in '…'; --json prints
everything, and 'authrelay user show NAME' one user whole.

Examples:

  authrelay user list
  authrelay user list --json | jq -r '.[].name'
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := parseNoArgs(fs, args, "user list"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	users, err := db.Users(ctx)
	if err != nil {
		return err
	}
	// One query for every role, not one per user.
	all, err := db.Roles(ctx)
	if err != nil {
		return err
	}
	byName := make(map[string]accounts.Role, len(all))
	for _, r := range all {
		byName[r.Name] = r
	}
	views := make([]userView, 0, len(users))
	for _, u := range users {
		v := newUserView(u)
		var roles []accounts.Role
		for _, name := range u.Roles {
			if r, ok := byName[name]; ok {
				roles = append(roles, r)
			}
		}
		v.Effective = newEffectiveView(u, roles)
		views = append(views, v)
	}
	if *asJSON {
		return writeJSON(m.Stdout, views)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tACCOUNT\tSTATUS\tEXPIRES\tROLES\tPUB\tSUB")
	for _, v := range views {
		pub, sub := "- (no JWT: "+v.Effective.Error+")", "-"
		if v.Effective.Error == "" {
			pub, sub = ruleText(v.Effective.Pub), ruleText(v.Effective.Sub)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tableCell(v.Name), v.Account, status(v), expiresText(v.Expires), tableCell(listText(v.Roles)), tableCell(pub), tableCell(sub))
	}
	return tw.Flush()
}

// effectiveView is what a user is granted once its roles are merged with
// its own rules and templates expanded, as the relay issues it (Error when
// the relay would issue nothing, such as a template the name cannot fill).
type effectiveView struct {
	Pub   accounts.Rule                `json:"pub"`
	Sub   accounts.Rule                `json:"sub"`
	Resp  *accounts.ResponsePermission `json:"resp"`
	Error string                       `json:"error,omitempty"`
}

func newEffectiveView(u accounts.User, roles []accounts.Role) *effectiveView {
	g, err := accounts.Resolve(u, roles)
	if err != nil {
		return &effectiveView{Pub: nonNilRule(accounts.Rule{}), Sub: nonNilRule(accounts.Rule{}), Error: err.Error()}
	}
	p := g.Permissions
	return &effectiveView{Pub: nonNilRule(p.Pub), Sub: nonNilRule(p.Sub), Resp: p.Resp}
}

func (m *Main) runUserShow(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user show", `
Usage: authrelay user show NAME [--json]

Shows one user as stored: account, status, expiry, roles, its own
permissions, constraints and the password hash scheme (never the hash).
'authrelay user explain' shows the merged permissions the relay issues.

Examples:

  authrelay user show alice
  authrelay user show alice --json
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneName, "show")
	if err != nil {
		return err
	}
	defer db.Close()
	u, err := db.User(ctx, name)
	if err != nil {
		return userError(err, name, db, ctx)
	}
	v := newUserView(u)
	scheme, current, err := db.HashInfo(ctx, name)
	if err != nil {
		return userError(err, name, db, ctx)
	}
	v.HashScheme, v.HashCurrent = scheme, &current
	if *asJSON {
		return writeJSON(m.Stdout, v)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "account:\t%s\n", v.Account)
	fmt.Fprintf(tw, "status:\t%s\n", status(v))
	fmt.Fprintf(tw, "expires:\t%s\n", expiresText(v.Expires))
	fmt.Fprintf(tw, "roles:\t%s\n", listText(v.Roles))
	writePermLines(tw, v.Pub, v.Sub, v.Resp)
	fmt.Fprintf(tw, "source networks:\t%s\n", orAny(v.Src))
	fmt.Fprintf(tw, "connection types:\t%s\n", orAny(v.ConnTypes))
	if current {
		fmt.Fprintf(tw, "password hash:\t%s (current policy)\n", v.HashScheme)
	} else {
		fmt.Fprintf(tw, "password hash:\t%s (rehashed to the current policy at the next login)\n", v.HashScheme)
	}
	fmt.Fprintf(tw, "created:\t%s\n", v.Created.Format(time.RFC3339))
	fmt.Fprintf(tw, "updated:\t%s\n", v.Updated.Format(time.RFC3339))
	return tw.Flush()
}

func orAny(l []string) string {
	if len(l) == 0 {
		return "any"
	}
	return strings.Join(l, ",")
}

func status(v userView) string {
	if v.Disabled {
		return "disabled"
	}
	return "enabled"
}

func expiresText(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.RFC3339)
}

func ruleText(r accounts.Rule) string {
	s := listText(r.Allow)
	if len(r.Deny) > 0 {
		s += " deny:" + strings.Join(r.Deny, ",")
	}
	return s
}

func listText(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return strings.Join(l, ",")
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// Subjects hold '>' and names may hold '&': printed as they are, not
	// as \u003e, for jq and for people.
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
