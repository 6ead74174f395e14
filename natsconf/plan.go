package natsconf

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

// Actions a Report gives users and accounts.
const (
	ActionAdd     = "add"           // user: added (or, in a dry run, would be)
	ActionCreate  = "create"        // account: created (or would be)
	ActionExists  = "exists"        // already in authrelay: left unchanged
	ActionSkip    = "skip"          // not imported; the detail says why
	ActionFailed  = "error"         // the database failed while adding it
	ActionNotRun  = "not attempted" // the import stopped before it
	existsDetail  = "already in authrelay: left unchanged"
	reservedWhy   = "reserved in this directory's nats.conf (its callout or system account)"
	stoppedDetail = "import stopped before this user"
)

// UserRow is one user of the file and what import does with it. The
// password or hash is unexported, so it never reaches JSON output.
type UserRow struct {
	Name    string `json:"name"`
	Account string `json:"account"`
	Action  string `json:"action"`
	Detail  string `json:"detail"`

	user   accounts.User
	secret string
	hashed bool
}

// AccountRow is one account of the file and what import does with it.
type AccountRow struct {
	Name   string `json:"name"`
	Action string `json:"action"`
	Detail string `json:"detail"`

	limits accounts.AccountLimits
}

// Summary counts the rows of a Report by outcome.
type Summary struct {
	DryRun           bool `json:"dry_run"`
	UsersImported    int  `json:"users_imported"`
	UsersExisting    int  `json:"users_existing"`
	UsersSkipped     int  `json:"users_skipped"`
	UsersFailed      int  `json:"users_failed,omitempty"`
	AccountsCreated  int  `json:"accounts_created"`
	AccountsExisting int  `json:"accounts_existing"`
	AccountsSkipped  int  `json:"accounts_skipped"`
}

// Report is an import plan, and after Apply its outcome: a row for each
// user and account of the file, in the order of the file (accounts sorted
// by name).
type Report struct {
	Users    []*UserRow    `json:"users"`
	Accounts []*AccountRow `json:"accounts"`
	Summary  Summary       `json:"summary"`
}

// Snapshot is what Plan needs to know of the directory it imports into.
type Snapshot struct {
	// Accounts are the accounts the store has.
	Accounts []string
	// Users maps the name of each user the store has to its account.
	Users map[string]string
	// Reserved are the accounts reserved in the directory's nats.conf
	// (its callout and system accounts): import never creates one nor
	// places a user in one.
	Reserved []string
	// CalloutAccount and SystemAccount are the names authrelay's own
	// layout gives those accounts, and StaticUsers the names of its own
	// static users in nats.conf: the file's users of these stay there.
	CalloutAccount string
	SystemAccount  string
	StaticUsers    []string
	// Size, if not nil, returns an error when the login response a user
	// gets would be too large for the directory's server; such a user is
	// skipped with the error as the reason.
	Size func(accounts.User) error
}

// Lister is the part of the store that Load reads; *store.DB is one.
type Lister interface {
	Accounts(ctx context.Context) ([]string, error)
	Users(ctx context.Context) ([]accounts.User, error)
}

var _ Lister = (*store.DB)(nil)

// Load returns a Snapshot with the accounts and users of st; the caller
// fills in the rest.
func Load(ctx context.Context, st Lister) (Snapshot, error) {
	var s Snapshot
	var err error
	if s.Accounts, err = st.Accounts(ctx); err != nil {
		return s, err
	}
	users, err := st.Users(ctx)
	if err != nil {
		return s, err
	}
	s.Users = make(map[string]string, len(users))
	for _, u := range users {
		s.Users[u.Name] = u.Account
	}
	return s, nil
}

// AccountError is Plan's refusal to choose the account of the
// authorization block's users.
type AccountError struct {
	// Account is the account asked for, or "" when none was.
	Account string
	// Known are the accounts of the directory.
	Known []string
	// Candidates are the accounts of the directory that the file does not
	// define, when Account is "".
	Candidates []string
}

func (e *AccountError) Error() string {
	switch {
	case e.Account != "":
		return fmt.Sprintf("account %s: no such account in the directory, nor one the file creates", e.Account)
	case len(e.Candidates) == 0:
		return "the file's authorization block has users, and the directory has no application account besides the file's own"
	}
	return "the file's authorization block has users: choose one of " + strings.Join(e.Candidates, ", ")
}

// Plan decides, without changing anything, what import does with each
// user and account of c, given what the directory holds (s). The users of
// the file's authorization block go into account; when account is "",
// into the only account of the directory that the file does not define
// (so that the default stays the same when import runs again after
// creating the file's accounts), else Plan returns an *AccountError. An
// account that is neither in the directory nor created by the file is an
// *AccountError too.
func Plan(c *Conf, s Snapshot, account string) (*Report, error) {
	rep := &Report{Users: []*UserRow{}, Accounts: []*AccountRow{}}
	acctRow := map[string]*AccountRow{}
	for _, a := range c.accounts {
		row := &AccountRow{Name: a.name, limits: a.limits}
		nameErr := accounts.ValidateAccount(a.name)
		switch {
		case a.name == s.CalloutAccount:
			row.Action, row.Detail = ActionSkip, "authrelay's callout account: its users stay static in nats.conf"
		case a.name == s.SystemAccount || a.name == c.systemAccount:
			row.Action, row.Detail = ActionSkip, "system account: its users stay static in nats.conf"
		case a.name == c.calloutAccount:
			row.Action, row.Detail = ActionSkip, "auth_callout account of the file: its users are callout services, not clients"
		case nameErr != nil:
			row.Action, row.Detail = ActionSkip, nameErr.Error()
		case len(a.problems) > 0:
			row.Action, row.Detail = ActionSkip, strings.Join(a.problems, "; ")
		case slices.Contains(s.Accounts, a.name):
			row.Action, row.Detail = ActionExists, existsDetail
			if !a.limits.IsZero() {
				row.Detail += "; limits of the file not applied (see 'authrelay account set')"
			}
		default:
			row.Action = ActionCreate
			if !a.limits.IsZero() {
				row.Detail = "limits " + a.limits.String()
			}
		}
		if len(a.dropped) > 0 && row.Action != ActionSkip {
			if row.Detail != "" {
				row.Detail += "; "
			}
			row.Detail += "not carried over (authrelay accounts have no such settings): " + strings.Join(a.dropped, ", ")
		}
		acctRow[a.name] = row
		rep.Accounts = append(rep.Accounts, row)
	}

	target, err := chooseAccount(c, s, acctRow, account)
	if err != nil {
		return nil, err
	}

	counts := map[string]int{}
	for _, u := range c.users {
		if u.name != "" {
			counts[u.name]++
		}
	}
	for _, cu := range c.users {
		row := &UserRow{Name: cu.display(), Account: cu.account}
		if cu.scope == scopeAuthorization && cu.name != "" {
			row.Account = target
		}
		rep.Users = append(rep.Users, row)
		reasons := slices.Clone(cu.problems)
		if cu.name != "" && cu.nkey == "" && !cu.hasPassword {
			reasons = append(reasons, "no password: authrelay logs users in with a name and password")
		}
		if cu.name != "" && counts[cu.name] > 1 {
			reasons = append(reasons, fmt.Sprintf("defined %d times in the file (nats-server refuses that)", counts[cu.name]))
		}
		if slices.Contains(s.StaticUsers, cu.name) {
			reasons = append(reasons, fmt.Sprintf("the name %q belongs to authrelay's own static user in nats.conf", cu.name))
		}
		if cu.scope == scopeAccount {
			if ar := acctRow[cu.account]; ar.Action == ActionSkip {
				reasons = append(reasons, fmt.Sprintf("account %s is not imported: %s", cu.account, ar.Detail))
			}
		}
		if len(reasons) == 0 {
			reasons = append(reasons, checkUser(cu, row)...)
		}
		if len(reasons) > 0 {
			row.Action, row.Detail = ActionSkip, strings.Join(reasons, "; ")
			continue
		}
		if acct, ok := s.Users[cu.name]; ok {
			row.Action, row.Detail = ActionExists, existsDetail
			if acct != row.Account {
				row.Detail = fmt.Sprintf("already in authrelay in account %s: left unchanged", acct)
			}
			continue
		}
		row.Action = ActionAdd
		if row.hashed {
			row.Detail = "bcrypt hash kept"
		} else {
			row.Detail = "plain-text password, stored hashed"
		}
		if len(cu.notes) > 0 {
			row.Detail += "; " + strings.Join(cu.notes, "; ")
		}
	}

	// The directory's reserved accounts, then the size of each grant: a
	// user that could not log in is never added.
	for _, a := range rep.Accounts {
		if slices.Contains(s.Reserved, a.Name) && a.Action != ActionSkip {
			a.Action, a.Detail = ActionSkip, "account "+reservedWhy
		}
	}
	for _, u := range rep.Users {
		if slices.Contains(s.Reserved, u.Account) && u.Action == ActionAdd {
			u.Action, u.Detail = ActionSkip, "account "+u.Account+" is "+reservedWhy
		}
	}
	if s.Size != nil {
		for _, u := range rep.Users {
			if u.Action != ActionAdd {
				continue
			}
			if err := s.Size(u.user); err != nil {
				u.Action, u.Detail = ActionSkip, err.Error()
			}
		}
	}
	rep.Count()
	return rep, nil
}

// chooseAccount returns the account of the authorization block's users.
func chooseAccount(c *Conf, s Snapshot, acctRow map[string]*AccountRow, account string) (string, error) {
	if account != "" {
		r, inFile := acctRow[account]
		if !slices.Contains(s.Accounts, account) && !(inFile && r.Action == ActionCreate) {
			return "", &AccountError{Account: account, Known: s.Accounts}
		}
		return account, nil
	}
	if !slices.ContainsFunc(c.users, func(u confUser) bool { return u.scope == scopeAuthorization && u.name != "" }) {
		return "", nil
	}
	var candidates []string
	for _, name := range s.Accounts {
		if _, inFile := acctRow[name]; !inFile {
			candidates = append(candidates, name)
		}
	}
	if len(candidates) == 1 {
		return candidates[0], nil
	}
	return "", &AccountError{Known: s.Accounts, Candidates: candidates}
}

// checkUser checks a user that has no problem of its own against
// authrelay's rules and fills in row's user and secret; it returns the
// reasons not to import it.
func checkUser(cu confUser, row *UserRow) []string {
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
	case IsBcrypt(cu.password):
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

// IsBcrypt reports whether nats-server takes password for a bcrypt hash.
func IsBcrypt(password string) bool { return bcryptLike.MatchString(password) }

// checkStoredHash reports whether the store accepts hash, and why not,
// without the cost of a bcrypt verification: store.VerifyPassword parses the
// hash completely, then refuses a password longer than store.MaxPasswordLen
// before hashing anything. Its errors never quote the hash.
func checkStoredHash(hash string) error {
	_, err := store.VerifyPassword(hash, strings.Repeat("x", store.MaxPasswordLen+1))
	return err
}

// Count sets r.Summary from the rows, keeping DryRun.
func (r *Report) Count() {
	s := &r.Summary
	*s = Summary{DryRun: s.DryRun}
	for _, u := range r.Users {
		switch u.Action {
		case ActionAdd:
			s.UsersImported++
		case ActionExists:
			s.UsersExisting++
		case ActionSkip:
			s.UsersSkipped++
		case ActionFailed, ActionNotRun:
			s.UsersFailed++
		}
	}
	for _, a := range r.Accounts {
		switch a.Action {
		case ActionCreate:
			s.AccountsCreated++
		case ActionExists:
			s.AccountsExisting++
		case ActionSkip:
			s.AccountsSkipped++
		}
	}
}

// BcryptKept returns the names of the users the report adds with the
// bcrypt hash of the file. bcrypt looks at only the first 72
// bytes of a password, and nats-server accepted a longer password by
// ignoring the rest; authrelay refuses a password over 72 bytes against a
// bcrypt hash instead (it would match any password with the same first 72
// bytes), so a client that sends such a password is refused until the
// user's password is reset. A hash does not tell how long its password
// was, so every such user is listed.
func (r *Report) BcryptKept() []string {
	var names []string
	for _, u := range r.Users {
		if u.Action == ActionAdd && IsBcrypt(u.secret) {
			names = append(names, u.Name)
		}
	}
	return names
}
