package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/conf"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

const importUsage = `
Usage: authrelay import FILE [--dir DIR] [--account NAME] [--dry-run] [--json]

Brings the users of an existing nats.conf into authrelay, so that clients
keep their names, passwords and permissions when the server moves to
authrelay. FILE is read with nats-server's own parser (include files and
variables work) and is never changed.

  authorization { users: [...] }, or its single user/password, go into
      --account (default: the only application account of DIR, not
      counting accounts that FILE defines)
  accounts { NAME { users: [...] } } go into NAME, which is created if
      authrelay does not know it (reload the server afterwards)

bcrypt passwords ($2a$, $2b$, $2y$) are kept as they are, so they keep
working; plain-text passwords are stored hashed. Permissions carry over:
publish and subscribe (a subject, a list, or allow/deny), allow_responses
and allowed_connection_types. Where nats-server grants every subject
because the file allows none in a direction (no permissions, no rule for
the direction, or only denies), the user gets an explicit '>' for it, its
denies kept: authrelay grants nothing that no rule allows. Publish next to
allow_responses stays closed but for the replies, as in nats-server.

Not imported, each listed with the reason: users of the system account and
of AUTH (they stay static in nats.conf), nkey users, tokens, users without a
password, users that default_permissions would apply to, and every user with
a setting import does not understand: importing it without that setting
could give it more access than it had. Users and accounts that already exist
are reported as "exists" and left unchanged, so running import again is safe.
The report never shows a password or hash.

Exit status: 0 when the import ran, even if some users were not imported
(see the table); 1 if FILE cannot be read or parsed, or the database fails
(users added before the failure stay: fix the cause and run import again);
2 for a usage error.

Examples:

  authrelay import /etc/nats/nats.conf --dry-run
  authrelay import /etc/nats/nats.conf --account APP
  authrelay import nats.conf --json | jq -r '.users[] | select(.action == "skip") | .name + ": " + .detail'
`

// Actions import reports for users and accounts.
const (
	importAdd    = "add"    // user: added (or, with --dry-run, would be)
	importCreate = "create" // account: created (or would be)
	importExists = "exists" // already in authrelay: left unchanged
	importSkip   = "skip"   // not imported; the detail says why
	importFailed = "error"  // the database failed while adding it
	importNotRun = "not attempted"
)

// importUserRow is one user of FILE and what import does with it. The
// password or hash is unexported, so it never reaches JSON output.
type importUserRow struct {
	Name    string `json:"name"`
	Account string `json:"account"`
	Action  string `json:"action"`
	Detail  string `json:"detail"`

	user   accounts.User
	secret string
	hashed bool
}

// importAccountRow is one account of FILE and what import does with it.
type importAccountRow struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Detail string `json:"detail"`

	limits accounts.AccountLimits
}

// importSummary counts the rows by outcome.
type importSummary struct {
	DryRun           bool `json:"dry_run"`
	UsersImported    int  `json:"users_imported"`
	UsersExisting    int  `json:"users_existing"`
	UsersSkipped     int  `json:"users_skipped"`
	UsersFailed      int  `json:"users_failed,omitempty"`
	AccountsCreated  int  `json:"accounts_created"`
	AccountsExisting int  `json:"accounts_existing"`
	AccountsSkipped  int  `json:"accounts_skipped"`
}

// importReport is what import prints.
type importReport struct {
	Users    []*importUserRow    `json:"users"`
	Accounts []*importAccountRow `json:"accounts"`
	Summary  importSummary       `json:"summary"`
}

func (m *Main) runImport(ctx context.Context, args []string) error {
	fs := m.newFlagSet("import", importUsage)
	dir := m.dirFlag(fs)
	account := fs.String("account", "", "account for the users of FILE's authorization block (default: the only application account of DIR that FILE does not define)")
	dryRun := fs.Bool("dry-run", false, "print what would change, and change nothing")
	asJSON := fs.Bool("json", false, "print a JSON object instead of a table")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("import: give one FILE, the nats.conf to import from, got %d arguments", len(pos))
	}
	file := pos[0]
	if *account != "" {
		if err := accounts.ValidateAccount(*account); err != nil {
			return &usageError{msg: "--account: " + err.Error()}
		}
		if err := (deploy.Layout{Dir: *dir}).CheckAccountNotReserved(*account); err != nil {
			return err
		}
	}

	// Read FILE before touching DIR: a file that cannot be read changes
	// nothing.
	nc, err := readNatsConf(file)
	if err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()

	rep, err := planImport(ctx, db, nc, *account)
	if err != nil {
		return err
	}
	reserved, err := db.ReservedAccounts()
	if err != nil {
		return err
	}
	skipReservedImports(rep, reserved)
	sizer, err := newGrantSizer(deploy.Layout{Dir: *dir}, m.Now)
	if err != nil {
		return err
	}
	skipOversizeImports(rep, sizer)
	rep.Summary.DryRun = *dryRun
	var applyErr error
	if !*dryRun {
		if err := applyImport(ctx, m, deploy.Layout{Dir: *dir}, db, rep, pos[0], &applyErr); err != nil {
			return err
		}
	}
	rep.count()
	if *asJSON {
		if err := writeJSON(m.Stdout, rep); err != nil {
			return err
		}
	} else if err := rep.writeTable(m); err != nil {
		return err
	}
	warnBcryptTruncation(m.Stderr, rep, *dryRun)
	if applyErr == nil && !*dryRun && rep.Summary.AccountsCreated > 0 {
		// Stdout stays pure JSON with --json.
		w := m.Stdout
		if *asJSON {
			w = m.Stderr
		}
		fmt.Fprintf(w, "new accounts are in %s: the users in them can log in once the server has reloaded\n%s\n", deploy.AccountsConf, reloadHint)
	}
	return applyErr
}

// planImport decides, without changing anything, what import does with
// each user and account of nc, given what DIR's database holds.
func planImport(ctx context.Context, db *store.DB, nc *natsConf, account string) (*importReport, error) {
	known, err := db.Accounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	existing, err := db.Users(ctx)
	if err != nil {
		return nil, fmt.Errorf("import: %w", err)
	}
	userAccount := make(map[string]string, len(existing))
	for _, u := range existing {
		userAccount[u.Name] = u.Account
	}

	rep := &importReport{Users: []*importUserRow{}, Accounts: []*importAccountRow{}}
	acctRow := map[string]*importAccountRow{}
	for _, a := range nc.accounts {
		row := &importAccountRow{Name: a.name, limits: a.limits}
		nameErr := accounts.ValidateAccount(a.name)
		switch {
		case a.name == deploy.AuthAccount:
			row.Action, row.Detail = importSkip, "authrelay's callout account: its users stay static in nats.conf"
		case a.name == deploy.SystemAccount || a.name == nc.systemAccount:
			row.Action, row.Detail = importSkip, "system account: its users stay static in nats.conf"
		case a.name == nc.calloutAccount:
			row.Action, row.Detail = importSkip, "auth_callout account of the file: its users are callout services, not clients"
		case nameErr != nil:
			row.Action, row.Detail = importSkip, nameErr.Error()
		case len(a.problems) > 0:
			row.Action, row.Detail = importSkip, strings.Join(a.problems, "; ")
		case slices.Contains(known, a.name):
			row.Action, row.Detail = importExists, "already in authrelay: left unchanged"
			if !a.limits.IsZero() {
				row.Detail += "; limits of the file not applied (see 'authrelay account set')"
			}
		default:
			row.Action = importCreate
			var parts []string
			if !a.limits.IsZero() {
				parts = append(parts, "limits "+limitsText(a.limits))
			}
			row.Detail = strings.Join(parts, "; ")
		}
		if len(a.dropped) > 0 && row.Action != importSkip {
			if row.Detail != "" {
				row.Detail += "; "
			}
			row.Detail += "not carried over (authrelay accounts have no such settings): " + strings.Join(a.dropped, ", ")
		}
		acctRow[a.name] = row
		rep.Accounts = append(rep.Accounts, row)
	}

	// The account of the authorization block's users: by default the only
	// account of DIR that FILE does not define itself, so that the default
	// stays the same when import runs again after creating FILE's accounts.
	needDefault := slices.ContainsFunc(nc.users, func(u confUser) bool { return u.scope == scopeAuthorization && u.name != "" })
	target := account
	var candidates []string
	for _, name := range known {
		if _, inFile := acctRow[name]; !inFile {
			candidates = append(candidates, name)
		}
	}
	switch {
	case account != "":
		r, inFile := acctRow[account]
		if !slices.Contains(known, account) && !(inFile && r.Action == importCreate) {
			return nil, usagef("--account %s: no such account in the directory, nor one FILE creates; the directory has %s", account, impNone(known))
		}
	case !needDefault:
	case len(candidates) == 1:
		target = candidates[0]
	case len(candidates) == 0:
		return nil, usagef("import: FILE's authorization block has users, and the directory has no application account besides FILE's own: give --account, or create one with 'authrelay account add'")
	default:
		return nil, usagef("import: FILE's authorization block has users: give --account, one of %s", strings.Join(candidates, ", "))
	}

	counts := map[string]int{}
	for _, u := range nc.users {
		if u.name != "" {
			counts[u.name]++
		}
	}
	for _, cu := range nc.users {
		row := &importUserRow{Name: cu.display(), Account: cu.account}
		if cu.scope == scopeAuthorization && cu.name != "" {
			row.Account = target
		}
		rep.Users = append(rep.Users, row)
		reasons := slices.Clone(cu.problems)
		if cu.name != "" && cu.nkey == "" && cu.password == "" {
			reasons = append(reasons, "no password: authrelay logs users in with a name and password")
		}
		if cu.name != "" && counts[cu.name] > 1 {
			reasons = append(reasons, fmt.Sprintf("defined %d times in the file (nats-server refuses that)", counts[cu.name]))
		}
		if cu.name == deploy.RelayUser || cu.name == deploy.AdminUser {
			reasons = append(reasons, fmt.Sprintf("the name %q belongs to authrelay's own static user in nats.conf", cu.name))
		}
		if cu.scope == scopeAccount {
			if ar := acctRow[cu.account]; ar.Action == importSkip {
				reasons = append(reasons, fmt.Sprintf("account %s is not imported: %s", cu.account, ar.Detail))
			}
		}
		if len(reasons) == 0 {
			reasons = append(reasons, checkImportUser(cu, row)...)
		}
		if len(reasons) > 0 {
			row.Action, row.Detail = importSkip, strings.Join(reasons, "; ")
			continue
		}
		if acct, ok := userAccount[cu.name]; ok {
			row.Action, row.Detail = importExists, "already in authrelay: left unchanged"
			if acct != row.Account {
				row.Detail = fmt.Sprintf("already in authrelay in account %s: left unchanged", acct)
			}
			continue
		}
		row.Action = importAdd
		if row.hashed {
			row.Detail = "bcrypt hash kept"
		} else {
			row.Detail = "plain-text password, stored hashed"
		}
		if len(cu.notes) > 0 {
			row.Detail += "; " + strings.Join(cu.notes, "; ")
		}
	}
	return rep, nil
}

// checkImportUser checks a user that has no problem of its own against
// authrelay's rules and fills in row's user and secret; it returns the
// reasons not to import it.
func checkImportUser(cu confUser, row *importUserRow) []string {
	u := accounts.User{
		Name:        cu.name,
		Account:     row.Account,
		Permissions: cu.perms,
		ConnTypes:   cu.connTypes,
	}
	if err := u.Validate(); err != nil {
		return []string{err.Error()}
	}
	switch {
	case bcryptLike.MatchString(cu.password):
		// nats-server reads the password as a bcrypt hash, so it must
		// never be stored as a plain-text password.
		if err := checkStoredHash(cu.password); err != nil {
			return []string{err.Error()}
		}
		row.hashed = true
	default:
		if err := store.ValidatePassword(cu.password); err != nil {
			return []string{err.Error()}
		}
	}
	row.user, row.secret = u, cu.password
	return nil
}

// bcryptLike is the rule by which nats-server takes a password for a bcrypt
// hash (server/auth.go, validBcryptPrefix).
var bcryptLike = regexp.MustCompile(`^\$2[abxy]\$\d{2}\$`)

// checkStoredHash reports whether the store accepts hash, and why not,
// without the cost of a bcrypt verification: store.VerifyPassword parses the
// hash completely, then refuses a password longer than store.MaxPasswordLen
// before hashing anything. Its errors never quote the hash.
func checkStoredHash(hash string) error {
	_, err := store.VerifyPassword(hash, strings.Repeat("x", store.MaxPasswordLen+1))
	return err
}

// createImportAccounts creates the accounts planImport marked and writes
// accounts.conf. On failure it removes what it created.
func createImportAccounts(ctx context.Context, l deploy.Layout, db *store.DB, rep *importReport) error {
	var created []string
	for _, a := range rep.Accounts {
		if a.Action != importCreate {
			continue
		}
		err := db.AddAccountWithLimits(ctx, accounts.Account{Name: a.Name, Limits: a.limits})
		switch {
		case errors.Is(err, store.ErrExists):
			// Created by someone else since the plan was made.
			a.Action, a.Detail = importExists, "already in authrelay: left unchanged"
		case err != nil:
			return undoAccounts(ctx, db, created, fmt.Errorf("import: %w", err))
		default:
			created = append(created, a.Name)
		}
	}
	if len(created) > 0 {
		if err := syncAccountsConf(ctx, l, db); err != nil {
			// Keep the database and the server config in step.
			return undoAccounts(ctx, db, created, fmt.Errorf("import: %w", err))
		}
	}
	return nil
}

// addImportUsers adds the users planImport marked. A database error stops
// it: the rows then say which users were added, and the error what
// happened. Users added before the error are valid and stay.
func addImportUsers(ctx context.Context, db *store.DB, rep *importReport) error {
	for i, u := range rep.Users {
		if u.Action != importAdd {
			continue
		}
		var err error
		if u.hashed {
			err = db.AddUserWithHash(ctx, u.user, u.secret)
		} else {
			err = db.AddUser(ctx, u.user, u.secret)
		}
		if errors.Is(err, store.ErrExists) {
			// Added by someone else since the plan was made.
			u.Action, u.Detail = importExists, "already in authrelay: left unchanged"
			continue
		}
		if err == nil {
			continue
		}
		u.Action, u.Detail = importFailed, err.Error()
		added, rest := 0, 0
		for _, v := range rep.Users[:i] {
			if v.Action == importAdd {
				added++
			}
		}
		for _, v := range rep.Users[i+1:] {
			if v.Action == importAdd {
				v.Action, v.Detail = importNotRun, "import stopped before this user"
				rest++
			}
		}
		return fmt.Errorf("import stopped at user %q: %w; the %s added before it stay, %s not attempted: fix the cause and run import again (users already imported are then reported as exists)",
			u.Name, err, plural(added, "user"), plural(rest, "user"))
	}
	return nil
}

// undoAccounts removes the accounts import created, so that a failed import
// leaves neither accounts nor users behind, and returns err with what the
// undo could not do.
func undoAccounts(ctx context.Context, db *store.DB, created []string, err error) error {
	for _, name := range created {
		if rerr := db.RemoveAccount(ctx, name); rerr != nil {
			err = errors.Join(err, fmt.Errorf("undo: %w", rerr))
		}
	}
	return fmt.Errorf("%w; no user was imported", err)
}

func (r *importReport) count() {
	s := &r.Summary
	*s = importSummary{DryRun: s.DryRun}
	for _, u := range r.Users {
		switch u.Action {
		case importAdd:
			s.UsersImported++
		case importExists:
			s.UsersExisting++
		case importSkip:
			s.UsersSkipped++
		case importFailed, importNotRun:
			s.UsersFailed++
		}
	}
	for _, a := range r.Accounts {
		switch a.Action {
		case importCreate:
			s.AccountsCreated++
		case importExists:
			s.AccountsExisting++
		case importSkip:
			s.AccountsSkipped++
		}
	}
}

func (r *importReport) writeTable(m *Main) error {
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	if len(r.Accounts) > 0 {
		fmt.Fprintln(tw, "ACCOUNT\tACTION\tDETAIL")
		for _, a := range r.Accounts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.Action, dash(a.Detail))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "USER\tACCOUNT\tACTION\tDETAIL")
	for _, u := range r.Users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, dash(u.Account), u.Action, dash(u.Detail))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := r.Summary
	skipped := ""
	if s.UsersSkipped > 0 {
		skipped = fmt.Sprintf("; %d not imported (see above)", s.UsersSkipped)
	}
	if s.DryRun {
		_, err := fmt.Fprintf(m.Stdout, "dry run, nothing changed: would import %s and create %s; %s already exist%s\n",
			plural(s.UsersImported, "user"), plural(s.AccountsCreated, "account"), plural(s.UsersExisting, "user"), skipped)
		return err
	}
	failed := ""
	if s.UsersFailed > 0 {
		failed = fmt.Sprintf("; %d failed or not attempted", s.UsersFailed)
	}
	_, err := fmt.Fprintf(m.Stdout, "imported %s, %s created; %s already existed%s%s\n",
		plural(s.UsersImported, "user"), plural(s.AccountsCreated, "account"), plural(s.UsersExisting, "user"), skipped, failed)
	return err
}

func impNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// Reading nats.conf. The rules mirror nats-server's own (server/opts.go:
// parseAuthorization, parseAccounts, parseUsers, parseUserPermissions,
// parseAllowResponses): the same keys and aliases, matched without regard
// to case; variables defined inside a block and used elsewhere are not
// settings. Where nats-server would refuse the config, or authrelay cannot
// express a setting, the users it concerns are not imported.

// Where a user of the file belongs.
const (
	scopeAuthorization = "authorization"
	scopeAccount       = "account"
)

// natsConf is what import takes from a nats.conf.
type natsConf struct {
	// systemAccount is system_account (or system), if set.
	systemAccount string
	// calloutAccount is authorization.auth_callout.account, if set.
	calloutAccount string
	// users in the order of the file: the authorization block's, then
	// each account's, accounts sorted by name.
	users []confUser
	// accounts sorted by name.
	accounts []confAccount
}

// confUser is one user entry of the file.
type confUser struct {
	name     string
	nkey     string
	label    string // shown for an entry with neither name nor nkey
	where    string // file:line of the entry
	scope    string
	account  string // with scopeAccount
	password string
	perms    accounts.Permissions
	// hasPerms is set when the entry has its own permissions, even
	// empty ones: default_permissions do not apply to it then.
	hasPerms  bool
	connTypes []string
	// problems are reasons not to import the user.
	problems []string
	// notes are said about an imported user.
	notes []string
}

func (u confUser) display() string {
	switch {
	case u.name != "":
		return u.name
	case u.nkey != "":
		return u.nkey
	case u.label != "":
		return u.label
	}
	return "(entry at " + u.where + ")"
}

// confAccount is one account of the file's accounts block.
type confAccount struct {
	name   string
	limits accounts.AccountLimits
	// dropped are settings authrelay accounts do not have.
	dropped []string
	// problems are reasons not to import the account and its users.
	problems []string
}

// confToken is the interface of the parser's token type, which wraps each
// value when it checks the file (conf.ParseFileWithChecks) as nats-server
// does.
type confToken interface {
	Value() any
	Line() int
	SourceFile() string
	IsUsedVariable() bool
}

// confValue returns v without its token wrapper.
func confValue(v any) any {
	for {
		t, ok := v.(confToken)
		if !ok {
			return v
		}
		v = t.Value()
	}
}

// usedVariable reports whether v is a variable definition that the file
// refers to elsewhere; nats-server ignores those where it expects settings.
func usedVariable(v any) bool {
	t, ok := v.(confToken)
	return ok && t.IsUsedVariable()
}

// confWhere returns file:line of v, or "".
func confWhere(v any) string {
	t, ok := v.(confToken)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s:%d", t.SourceFile(), t.Line())
}

// confKeys returns the keys of m in order, so that output is stable.
func confKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readNatsConf parses path as nats-server does and collects its users and
// accounts. Only a file that cannot be read or parsed, or whose
// authorization or accounts block has the wrong shape, is an error.
func readNatsConf(path string) (*natsConf, error) {
	// ParseFileWithChecks is what nats-server itself uses; its tokens tell
	// variable definitions from settings, and where an entry is.
	m, err := conf.ParseFileWithChecks(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("import: %w", err)
		}
		return nil, fmt.Errorf("import: parse %s: %w", path, err)
	}
	nc := &natsConf{}
	// nats-server looks these two up with their exact names
	// (configureSystemAccount).
	for _, k := range []string{"system_account", "system"} {
		if v, ok := m[k]; ok {
			s, ok := confValue(v).(string)
			if !ok {
				return nil, fmt.Errorf("import: %s: %s must be a string", path, k)
			}
			nc.systemAccount = s
			break
		}
	}
	var noAuthUser string
	var authBlocks, acctBlocks []any
	for _, k := range confKeys(m) {
		switch strings.ToLower(k) {
		case "authorization":
			authBlocks = append(authBlocks, m[k])
		case "accounts":
			acctBlocks = append(acctBlocks, m[k])
		case "no_auth_user":
			noAuthUser, _ = confValue(m[k]).(string)
		}
	}
	for _, v := range authBlocks {
		if err := nc.readAuthorization(v); err != nil {
			return nil, fmt.Errorf("import: %s: %w", path, err)
		}
	}
	for _, v := range acctBlocks {
		if err := nc.readAccounts(v); err != nil {
			return nil, fmt.Errorf("import: %s: %w", path, err)
		}
	}
	if noAuthUser != "" {
		for i := range nc.users {
			if nc.users[i].name == noAuthUser {
				nc.users[i].notes = append(nc.users[i].notes, "was no_auth_user: clients without credentials no longer log in as this user")
			}
		}
	}
	return nc, nil
}

// readAuthorization reads the top-level authorization block.
func (nc *natsConf) readAuthorization(v any) error {
	am, ok := confValue(v).(map[string]any)
	if !ok {
		return errors.New("authorization must be a map")
	}
	var (
		single       confUser
		hasSingle    bool
		users        []confUser
		hasUsers     bool
		token        any
		defaultPerms bool
		problems     []string
		proxy        bool
	)
	single.scope = scopeAuthorization
	single.where = confWhere(v)
	single.hasPerms = true // nats-server gives the single user no permissions, default or other
	for _, k := range confKeys(am) {
		val := am[k]
		switch strings.ToLower(k) {
		case "user", "username":
			hasSingle = true
			single.setString(&single.name, "user", val)
			single.where = confWhere(val)
		case "pass", "password":
			hasSingle = true
			single.setString(&single.password, "password", val)
		case "token":
			token = val
		case "users":
			hasUsers = true
			list, ok := confValue(val).([]any)
			if !ok {
				return errors.New("authorization users must be a list")
			}
			for _, e := range list {
				users = append(users, readConfUser(e, scopeAuthorization, ""))
			}
		case "default_permission", "default_permissions", "permissions":
			defaultPerms = true
		case "proxy_required":
			proxy, _ = confValue(val).(bool)
		case "auth_callout", "auth_hook":
			if cm, ok := confValue(val).(map[string]any); ok {
				for _, ck := range confKeys(cm) {
					switch strings.ToLower(ck) {
					case "account", "acc":
						nc.calloutAccount, _ = confValue(cm[ck]).(string)
					}
				}
			}
		case "timeout":
			// The server's, not the users'.
		default:
			if !usedVariable(val) {
				problems = append(problems, fmt.Sprintf("the authorization block has %q, which import does not understand", k))
			}
		}
	}
	if hasSingle {
		if hasUsers {
			single.problems = append(single.problems, "a single authorization user next to a users list (nats-server refuses that)")
		}
		if token != nil {
			single.problems = append(single.problems, "a single authorization user next to a token (nats-server refuses that)")
		}
		if proxy {
			single.problems = append(single.problems, "proxy_required: authrelay cannot require a proxy connection")
		}
		if single.name == "" {
			single.problems = append(single.problems, "the authorization block has a password but no user")
		}
		// nats-server gives the single authorization user no permissions:
		// full access.
		single.openAsServer()
		single.problems = append(single.problems, problems...)
		nc.users = append(nc.users, single)
	}
	for _, u := range users {
		if defaultPerms && !u.hasPerms && u.nkey == "" {
			u.problems = append(u.problems, "has no permissions of its own, so the authorization block's default_permissions apply to it, which import does not carry over: give the user its own permissions in the file, or add it by hand")
		}
		u.problems = append(u.problems, problems...)
		nc.users = append(nc.users, u)
	}
	if token != nil {
		nc.users = append(nc.users, confUser{
			scope:    scopeAuthorization,
			label:    "(token)",
			where:    confWhere(token),
			problems: []string{"token authentication: authrelay has no tokens; give these clients a user and password"},
		})
	}
	return nil
}

// readAccounts reads the top-level accounts block: a map of accounts, or a
// list of account names.
func (nc *natsConf) readAccounts(v any) error {
	switch av := confValue(v).(type) {
	case []any:
		for _, e := range av {
			name, ok := confValue(e).(string)
			if !ok {
				return errors.New("accounts list must hold account names")
			}
			nc.addAccount(confAccount{name: name}, nil)
		}
		return nil
	case map[string]any:
		for _, name := range confKeys(av) {
			if usedVariable(av[name]) {
				continue
			}
			a, users := readConfAccount(name, av[name])
			nc.addAccount(a, users)
		}
		return nil
	}
	return errors.New("accounts must be a map of accounts or a list of account names")
}

func (nc *natsConf) addAccount(a confAccount, users []confUser) {
	i, found := slices.BinarySearchFunc(nc.accounts, a.name, func(x confAccount, name string) int { return strings.Compare(x.name, name) })
	if found {
		nc.accounts[i].problems = append(nc.accounts[i].problems, "defined twice (nats-server refuses that)")
	} else {
		nc.accounts = slices.Insert(nc.accounts, i, a)
	}
	nc.users = append(nc.users, users...)
}

// readConfAccount reads one account of the accounts block and its users.
func readConfAccount(name string, v any) (confAccount, []confUser) {
	a := confAccount{name: name}
	am, ok := confValue(v).(map[string]any)
	if !ok {
		a.problems = append(a.problems, "not a map (nats-server refuses that)")
		return a, nil
	}
	var (
		users        []confUser
		defaultPerms bool
	)
	for _, k := range confKeys(am) {
		val := am[k]
		switch lk := strings.ToLower(k); lk {
		case "users":
			list, ok := confValue(val).([]any)
			if !ok {
				a.problems = append(a.problems, "users is not a list (nats-server refuses that)")
				continue
			}
			for _, e := range list {
				users = append(users, readConfUser(e, scopeAccount, name))
			}
		case "default_permissions":
			defaultPerms = true
		case "limits":
			a.readLimits(val)
		case "nkey", "imports", "exports", "jetstream", "mappings", "maps", "msg_trace", "trace_dest":
			a.dropped = append(a.dropped, lk)
		default:
			if !usedVariable(val) {
				a.problems = append(a.problems, fmt.Sprintf("has %q, which import does not understand", k))
			}
		}
	}
	for i := range users {
		if defaultPerms && !users[i].hasPerms && users[i].nkey == "" {
			users[i].problems = append(users[i].problems, fmt.Sprintf("has no permissions of its own, so account %s's default_permissions apply to it, which import does not carry over: give the user its own permissions in the file, or add it by hand", name))
		}
	}
	return a, users
}

// readLimits reads an account's limits block (parseAccountLimits). Limits
// authrelay can set are carried over; the others are listed as dropped.
func (a *confAccount) readLimits(v any) {
	lm, ok := confValue(v).(map[string]any)
	if !ok {
		a.problems = append(a.problems, "limits is not a map (nats-server refuses that)")
		return
	}
	for _, k := range confKeys(lm) {
		val := lm[k]
		var dst *int64
		switch strings.ToLower(k) {
		case "max_connections", "max_conn":
			dst = &a.limits.MaxConnections
		case "max_subscriptions", "max_subs":
			dst = &a.limits.MaxSubs
		case "max_payload", "max_pay":
			dst = &a.limits.MaxPayload
		case "max_leafnodes", "max_leafs":
			a.dropped = append(a.dropped, "limits."+k)
			continue
		default:
			if !usedVariable(val) {
				a.problems = append(a.problems, fmt.Sprintf("limits has %q, which import does not understand", k))
			}
			continue
		}
		n, ok := confValue(val).(int64)
		switch {
		case !ok:
			a.problems = append(a.problems, fmt.Sprintf("limits %s is not a number (nats-server refuses that)", k))
		case n > 0 && n <= 1<<31-1:
			*dst = n
		default:
			// 0, negative or beyond int32: nats-server reads these its own
			// ways, which authrelay's limits (0 = none) cannot express.
			a.dropped = append(a.dropped, fmt.Sprintf("limits.%s %d", k, n))
		}
	}
}

// readConfUser reads one entry of a users list (parseUsers).
func readConfUser(v any, scope, account string) confUser {
	u := confUser{scope: scope, account: account, where: confWhere(v)}
	um, ok := confValue(v).(map[string]any)
	if !ok {
		u.problems = append(u.problems, "not a map (nats-server refuses that)")
		return u
	}
	seen := map[string]string{}
	for _, k := range confKeys(um) {
		val := um[k]
		field := ""
		switch strings.ToLower(k) {
		case "user", "username":
			field = "user"
			u.setString(&u.name, k, val)
			if w := confWhere(val); w != "" {
				u.where = w
			}
		case "pass", "password":
			field = "password"
			u.setString(&u.password, k, val)
		case "nkey":
			field = "nkey"
			u.setString(&u.nkey, k, val)
		case "permission", "permissions", "authorization":
			field = "permissions"
			u.hasPerms = true
			var probs []string
			u.perms, probs = readPermissions(val)
			u.problems = append(u.problems, probs...)
		case "allowed_connection_types", "connection_types", "clients":
			field = "allowed_connection_types"
			u.readConnTypes(val)
		case "proxy_required":
			field = "proxy_required"
			if b, ok := confValue(val).(bool); !ok {
				u.problems = append(u.problems, "proxy_required is not true or false (nats-server refuses that)")
			} else if b {
				u.problems = append(u.problems, "proxy_required: authrelay cannot require a proxy connection")
			}
		default:
			if !usedVariable(val) {
				u.problems = append(u.problems, fmt.Sprintf("has %q, which import does not understand", k))
			}
			continue
		}
		if prev, ok := seen[field]; ok {
			u.problems = append(u.problems, fmt.Sprintf("has both %q and %q", prev, k))
		}
		seen[field] = k
	}
	u.openAsServer()
	if u.nkey != "" {
		u.problems = append(u.problems, "nkey user: authrelay logs users in with a name and password only; create a password user for this client")
	}
	if u.name == "" && u.nkey == "" {
		u.problems = append(u.problems, "has neither user nor nkey (nats-server refuses that)")
	}
	return u
}

// openAsServer gives each direction that nats-server leaves unrestricted
// for this entry an explicit allow of '>' (its denies kept), so the user
// keeps under authrelay, where a direction with no allow permits nothing,
// what the file granted. nats-server leaves a direction unrestricted when
// the entry allows nothing in it: no permissions at all, no rule for the
// direction, an empty list, or only denies (everything but them). The one
// exception is publish next to allow_responses: nats-server then closes
// publish to all but the replies (validateResponsePermissions), and so
// does authrelay.
func (u *confUser) openAsServer() {
	var open []string
	if len(u.perms.Pub.Allow) == 0 && u.perms.Resp == nil {
		u.perms.Pub.Allow = []string{accounts.AllSubjects}
		open = append(open, "publish")
	}
	if len(u.perms.Sub.Allow) == 0 {
		u.perms.Sub.Allow = []string{accounts.AllSubjects}
		open = append(open, "subscribe")
	}
	if len(open) == 0 {
		return
	}
	what := "full access"
	if len(open) == 1 {
		what = "every " + open[0] + " subject"
	}
	u.notes = append(u.notes, fmt.Sprintf("%s ('>' for %s), as nats-server gave it where the file allows nothing; narrow it with 'authrelay user set'", what, strings.Join(open, " and ")))
}

// setString sets *dst to the string v, or records that it is not one. The
// value is never quoted: it may be a password.
func (u *confUser) setString(dst *string, key string, v any) {
	s, ok := confValue(v).(string)
	if !ok {
		u.problems = append(u.problems, fmt.Sprintf("%s is not a string (nats-server refuses that; quote it)", key))
		return
	}
	*dst = s
}

// readConnTypes reads allowed_connection_types. Types authrelay cannot
// allow are left out, which only narrows where the user may connect from;
// a user left with none is not imported, since none means any.
func (u *confUser) readConnTypes(v any) {
	var list []string
	switch cv := confValue(v).(type) {
	case string:
		list = []string{cv}
	case []any:
		for _, e := range cv {
			s, ok := confValue(e).(string)
			if !ok {
				u.problems = append(u.problems, "allowed_connection_types holds something other than names (nats-server refuses that)")
				return
			}
			list = append(list, s)
		}
	default:
		u.problems = append(u.problems, "allowed_connection_types is not a name or a list (nats-server refuses that)")
		return
	}
	var dropped []string
	for _, s := range list {
		t := strings.ToUpper(s)
		if c, err := accounts.ParseConnType(t); err == nil {
			u.connTypes = append(u.connTypes, c)
			continue
		}
		switch t {
		case jwt.ConnectionTypeLeafnodeWS, jwt.ConnectionTypeMqttWS, jwt.ConnectionTypeInProcess:
			dropped = append(dropped, t)
		default:
			u.problems = append(u.problems, fmt.Sprintf("allowed_connection_types has unknown type %q (nats-server refuses that)", s))
		}
	}
	if len(dropped) == 0 {
		return
	}
	if len(u.connTypes) == 0 {
		u.problems = append(u.problems, fmt.Sprintf("allowed_connection_types allows only %s, which authrelay cannot allow (an empty list would allow every type)", strings.Join(dropped, ", ")))
		return
	}
	u.notes = append(u.notes, fmt.Sprintf("connection types %s left out: authrelay cannot allow them", strings.Join(dropped, ", ")))
}

// readPermissions reads a user's permissions (parseUserPermissions) and
// returns them with the reasons they cannot be imported.
func readPermissions(v any) (accounts.Permissions, []string) {
	var p accounts.Permissions
	pm, ok := confValue(v).(map[string]any)
	if !ok {
		return p, []string{"permissions are not a map (nats-server refuses that)"}
	}
	var probs []string
	seen := map[string]string{}
	for _, k := range confKeys(pm) {
		val := pm[k]
		field := ""
		switch strings.ToLower(k) {
		case "pub", "publish", "import":
			field = "publish"
			p.Pub, probs = readRule(val, "publish", k, probs)
		case "sub", "subscribe", "export":
			field = "subscribe"
			p.Sub, probs = readRule(val, "subscribe", k, probs)
		case "publish_allow_responses", "allow_responses":
			field = "allow_responses"
			p.Resp, probs = readResponses(val, k, probs)
		default:
			if !usedVariable(val) {
				probs = append(probs, fmt.Sprintf("permission %q is not understood", k))
			}
			continue
		}
		if prev, ok := seen[field]; ok {
			probs = append(probs, fmt.Sprintf("permissions have both %q and %q", prev, k))
		}
		seen[field] = k
	}
	return p, probs
}

// readRule reads publish or subscribe permissions: a subject, a list of
// subjects (both allow), or a map of allow and deny.
func readRule(v any, what, key string, probs []string) (accounts.Rule, []string) {
	var r accounts.Rule
	m, ok := confValue(v).(map[string]any)
	if !ok {
		r.Allow, probs = readSubjects(v, what+" allow", key, probs)
		return r, probs
	}
	for _, k := range confKeys(m) {
		switch strings.ToLower(k) {
		case "allow":
			r.Allow, probs = readSubjects(m[k], what+" allow", key+"."+k, probs)
		case "deny":
			r.Deny, probs = readSubjects(m[k], what+" deny", key+"."+k, probs)
		default:
			if !usedVariable(m[k]) {
				probs = append(probs, fmt.Sprintf("%s has %q: only allow and deny are understood", key, k))
			}
		}
	}
	return r, probs
}

// readSubjects reads a subject or a list of subjects and checks each the
// way authrelay will use it.
func readSubjects(v any, what, key string, probs []string) ([]string, []string) {
	var subs []string
	switch sv := confValue(v).(type) {
	case string:
		subs = []string{sv}
	case []any:
		for _, e := range sv {
			s, ok := confValue(e).(string)
			if !ok {
				return nil, append(probs, fmt.Sprintf("%s holds something other than subjects (nats-server refuses that)", key))
			}
			subs = append(subs, s)
		}
	default:
		return nil, append(probs, fmt.Sprintf("%s is not a subject or a list of subjects (nats-server refuses that)", key))
	}
	for _, s := range subs {
		switch {
		case len(strings.Fields(s)) == 2 && strings.HasPrefix(what, "subscribe"):
			probs = append(probs, fmt.Sprintf("%s %q names a queue group: authrelay has no queue-group permissions", what, s))
		case strings.Contains(s, "{{"):
			// nats-server takes it literally; authrelay would expand it.
			probs = append(probs, fmt.Sprintf("%s %q contains \"{{\", which authrelay reads as a template", what, s))
		case strings.IndexFunc(s, unicode.IsSpace) >= 0:
			probs = append(probs, fmt.Sprintf("%s %q contains whitespace", what, s))
		default:
			if err := accounts.ValidateSubject(s); err != nil {
				probs = append(probs, fmt.Sprintf("%s: %v", what, err))
			}
		}
	}
	return subs, probs
}

// readResponses reads allow_responses (parseAllowResponses): true, false,
// or a map of max and expires. Zero stands for nats-server's defaults, as
// in accounts.ResponsePermission.
func readResponses(v any, key string, probs []string) (*accounts.ResponsePermission, []string) {
	switch rv := confValue(v).(type) {
	case bool:
		if !rv {
			return nil, probs
		}
		return &accounts.ResponsePermission{}, probs
	case map[string]any:
		rp := &accounts.ResponsePermission{}
		for _, k := range confKeys(rv) {
			val := rv[k]
			switch strings.ToLower(k) {
			case "max", "max_msgs", "max_messages", "max_responses":
				n, ok := confValue(val).(int64)
				if !ok {
					probs = append(probs, fmt.Sprintf("%s.%s is not a number (nats-server refuses that)", key, k))
					continue
				}
				// Negative means no limit, in both.
				rp.MaxMsgs = int(n)
			case "expires", "expiration", "ttl":
				s, ok := confValue(val).(string)
				if !ok {
					probs = append(probs, fmt.Sprintf("%s.%s is not a duration string such as \"1m\" (nats-server refuses a number here)", key, k))
					continue
				}
				d, err := time.ParseDuration(s)
				switch {
				case err != nil:
					probs = append(probs, fmt.Sprintf("%s.%s: %v (nats-server refuses that)", key, k, err))
				case d < 0:
					probs = append(probs, fmt.Sprintf("%s.%s %s (no time limit) cannot be expressed in authrelay", key, k, s))
				default:
					rp.TTL = d
				}
			default:
				if !usedVariable(val) {
					probs = append(probs, fmt.Sprintf("%s has %q, which import does not understand", key, k))
				}
			}
		}
		return rp, probs
	}
	return nil, append(probs, fmt.Sprintf("%s is not true, false or a map (nats-server refuses that)", key))
}
