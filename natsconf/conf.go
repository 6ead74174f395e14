package natsconf

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats-server/v2/conf"

	"github.com/authrelay/authrelay/accounts"
)

// Reading nats.conf happens in two passes. The token tree
// (conf.ParseFileWithChecks, as nats-server reads it) says where each
// entry is, which keys it has and whether import understands them; the
// reasons not to import a user come from it. The values (name, password,
// permissions, connection types) come from nats-server's own option parser
// (server.Options.ProcessConfigString), run on each user entry alone, so
// that aliases, defaults and the meaning of an empty rule are the
// server's. See server.go.

// Where a user of the file belongs.
const (
	scopeAuthorization = "authorization"
	scopeAccount       = "account"
)

// Conf is what import takes from a nats.conf: its users and accounts, each
// with the reasons it cannot be imported. Read makes one; Plan turns it
// into a Report.
type Conf struct {
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
	name  string // from the token tree, so that a refused entry has one
	nkey  string
	label string // shown for an entry with neither name nor nkey
	where string // file:line of the entry
	scope string
	// account is the entry's account, with scopeAccount.
	account string
	// entry is the entry's token, for the server's parse; single is set
	// for the authorization block's single user instead.
	entry  any
	single *singleUser
	// hasPassword is set when the entry has a password that is not empty.
	hasPassword bool
	// hasPerms is set when the entry has its own permissions, even
	// empty ones: default_permissions do not apply to it then.
	hasPerms bool
	// password, perms and connTypes are nats-server's reading of the
	// entry (fromServer), made only for an entry without problems.
	password  string
	perms     accounts.Permissions
	connTypes []string
	// problems are reasons not to import the user.
	problems []string
	// notes are said about an imported user.
	notes []string
}

// singleUser is the authorization block's user and password, as tokens.
type singleUser struct {
	user, password any
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
	name string
	// limits are read from the token tree: nats-server keeps an
	// account's limits in unexported fields.
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

// Read parses the nats.conf at path as nats-server does (include files and
// variables work) and collects its users and accounts; the file is never
// changed. Only a file that cannot be read or parsed, or whose
// authorization or accounts block has the wrong shape, is an error: a user
// or account that cannot be imported is kept with its reasons, for Plan to
// report. The errors name path.
//
// Read does not require the whole file to be a config nats-server would
// start with (server.ProcessConfigFile refuses a file for one bad user, and
// for settings import has no business with, such as a TLS certificate
// that is not on this machine): each user entry is given to the server's
// parser on its own.
func Read(path string) (*Conf, error) {
	// ParseFileWithChecks is what nats-server itself uses; its tokens tell
	// variable definitions from settings, and where an entry is.
	m, err := conf.ParseFileWithChecks(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, err
		}
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	nc := &Conf{}
	// nats-server looks these two up with their exact names
	// (configureSystemAccount).
	for _, k := range []string{"system_account", "system"} {
		if v, ok := m[k]; ok {
			s, ok := confValue(v).(string)
			if !ok {
				return nil, fmt.Errorf("%s: %s must be a string", path, k)
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
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	for _, v := range acctBlocks {
		if err := nc.readAccounts(v); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	for i := range nc.users {
		nc.users[i].fromServer()
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
func (nc *Conf) readAuthorization(v any) error {
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
	single.single = &singleUser{}
	single.hasPerms = true // nats-server gives the single user no permissions, default or other
	for _, k := range confKeys(am) {
		val := am[k]
		switch strings.ToLower(k) {
		case "user", "username":
			hasSingle = true
			single.setString(&single.name, "user", val)
			single.where = confWhere(val)
			single.single.user = val
		case "pass", "password":
			hasSingle = true
			single.setPassword("password", val)
			single.single.password = val
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
func (nc *Conf) readAccounts(v any) error {
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

func (nc *Conf) addAccount(a confAccount, users []confUser) {
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

// readConfUser reads one entry of a users list (parseUsers): where it is,
// who it is, and what import cannot carry over. Its values are the
// server's (fromServer).
func readConfUser(v any, scope, account string) confUser {
	u := confUser{scope: scope, account: account, where: confWhere(v), entry: v}
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
			u.setPassword(k, val)
		case "nkey":
			field = "nkey"
			u.setString(&u.nkey, k, val)
		case "permission", "permissions", "authorization":
			field = "permissions"
			u.hasPerms = true
			u.problems = append(u.problems, checkPermissions(val)...)
		case "allowed_connection_types", "connection_types", "clients":
			field = "allowed_connection_types"
			u.checkConnTypes(val)
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
	if u.nkey != "" {
		u.problems = append(u.problems, "nkey user: authrelay logs users in with a name and password only; create a password user for this client")
	}
	if u.name == "" && u.nkey == "" {
		u.problems = append(u.problems, "has neither user nor nkey (nats-server refuses that)")
	}
	return u
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

// setPassword records whether v is a password that is not empty; the
// password itself is the server's reading (fromServer).
func (u *confUser) setPassword(key string, v any) {
	var s string
	u.setString(&s, key, v)
	u.hasPassword = s != ""
}

// checkConnTypes checks the shape of allowed_connection_types and that
// each type is one nats-server knows. Which types authrelay keeps is
// decided on the server's reading (fromServer).
func (u *confUser) checkConnTypes(v any) {
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
	for _, s := range list {
		if !knownConnType(strings.ToUpper(s)) {
			u.problems = append(u.problems, fmt.Sprintf("allowed_connection_types has unknown type %q (nats-server refuses that)", s))
		}
	}
}

// checkPermissions checks a user's permissions (parseUserPermissions) and
// returns the reasons they cannot be imported.
func checkPermissions(v any) []string {
	pm, ok := confValue(v).(map[string]any)
	if !ok {
		return []string{"permissions are not a map (nats-server refuses that)"}
	}
	var probs []string
	seen := map[string]string{}
	for _, k := range confKeys(pm) {
		val := pm[k]
		field := ""
		switch strings.ToLower(k) {
		case "pub", "publish", "import":
			field = "publish"
			probs = checkRule(val, "publish", k, probs)
		case "sub", "subscribe", "export":
			field = "subscribe"
			probs = checkRule(val, "subscribe", k, probs)
		case "publish_allow_responses", "allow_responses":
			field = "allow_responses"
			probs = checkResponses(val, k, probs)
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
	return probs
}

// checkRule checks publish or subscribe permissions: a subject, a list of
// subjects (both allow), or a map of allow and deny.
func checkRule(v any, what, key string, probs []string) []string {
	m, ok := confValue(v).(map[string]any)
	if !ok {
		return checkSubjects(v, what+" allow", key, probs)
	}
	for _, k := range confKeys(m) {
		switch strings.ToLower(k) {
		case "allow":
			probs = checkSubjects(m[k], what+" allow", key+"."+k, probs)
		case "deny":
			probs = checkSubjects(m[k], what+" deny", key+"."+k, probs)
		default:
			if !usedVariable(m[k]) {
				probs = append(probs, fmt.Sprintf("%s has %q: only allow and deny are understood", key, k))
			}
		}
	}
	return probs
}

// checkSubjects checks a subject or a list of subjects the way authrelay
// will use them.
func checkSubjects(v any, what, key string, probs []string) []string {
	var subs []string
	switch sv := confValue(v).(type) {
	case string:
		subs = []string{sv}
	case []any:
		for _, e := range sv {
			s, ok := confValue(e).(string)
			if !ok {
				return append(probs, fmt.Sprintf("%s holds something other than subjects (nats-server refuses that)", key))
			}
			subs = append(subs, s)
		}
	default:
		return append(probs, fmt.Sprintf("%s is not a subject or a list of subjects (nats-server refuses that)", key))
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
	return probs
}

// checkResponses checks allow_responses (parseAllowResponses): true,
// false, or a map of max and expires.
func checkResponses(v any, key string, probs []string) []string {
	switch rv := confValue(v).(type) {
	case bool:
		return probs
	case map[string]any:
		for _, k := range confKeys(rv) {
			val := rv[k]
			switch strings.ToLower(k) {
			case "max", "max_msgs", "max_messages", "max_responses":
				if _, ok := confValue(val).(int64); !ok {
					probs = append(probs, fmt.Sprintf("%s.%s is not a number (nats-server refuses that)", key, k))
				}
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
				}
			default:
				if !usedVariable(val) {
					probs = append(probs, fmt.Sprintf("%s has %q, which import does not understand", key, k))
				}
			}
		}
		return probs
	}
	return append(probs, fmt.Sprintf("%s is not true, false or a map (nats-server refuses that)", key))
}
