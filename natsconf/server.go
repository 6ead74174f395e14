package natsconf

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
)

// fromServer fills in u's password, permissions and connection types as
// nats-server reads its entry: the entry alone, rendered back into a
// config and given to the server's option parser. Reading each entry on
// its own keeps one bad entry (or a setting of the file import has no
// business with) from hiding the others, while every value keeps the
// server's meaning: the aliases, the defaults of allow_responses, and which
// directions an entry leaves unrestricted.
//
// An entry with problems of its own is not read: it is not imported, and
// its problems say why better than the server's refusal would. An entry the
// server refuses for a reason the token tree did not show gets the server's
// reason.
func (u *confUser) fromServer() {
	if len(u.problems) > 0 {
		return
	}
	var b strings.Builder
	var err error
	if s := u.single; s != nil {
		b.WriteString("authorization {\n user: ")
		err = render(&b, s.user)
		if err == nil && s.password != nil {
			b.WriteString("\n password: ")
			err = render(&b, s.password)
		}
		b.WriteString("\n}\n")
	} else {
		b.WriteString("authorization {\n users: [\n")
		err = render(&b, u.entry)
		b.WriteString("\n ]\n}\n")
	}
	if err != nil {
		u.problems = append(u.problems, "cannot be given to nats-server's parser: "+err.Error())
		return
	}
	opts := &server.Options{}
	if err := opts.ProcessConfigString(b.String()); err != nil {
		if reasons := serverErrors(err); len(reasons) > 0 {
			why := strings.Join(reasons, "; ")
			// The server's messages quote some values; never a password.
			for _, pw := range u.tokenPasswords() {
				why = strings.ReplaceAll(why, pw, "(password)")
			}
			u.problems = append(u.problems, "nats-server refuses it: "+why)
			return
		}
	}

	var su *server.User
	switch {
	case u.single != nil:
		su = &server.User{Username: opts.Username, Password: opts.Password}
	case len(opts.Users) == 1 && len(opts.Nkeys) == 0:
		su = opts.Users[0]
	default:
		u.problems = append(u.problems, fmt.Sprintf("nats-server reads %d users and %d nkey users from this entry, not one user", len(opts.Users), len(opts.Nkeys)))
		return
	}
	if su.Username != u.name {
		u.problems = append(u.problems, "nats-server reads another name from this entry")
		return
	}
	u.password = su.Password
	u.readConnTypes(su.AllowedConnectionTypes)
	u.readPermissions(su.Permissions)
}

// tokenPasswords returns the passwords of u's entry as the token tree has
// them.
func (u *confUser) tokenPasswords() []string {
	var out []string
	add := func(v any) {
		if pw, ok := confValue(v).(string); ok && pw != "" {
			out = append(out, pw)
		}
	}
	if u.single != nil {
		add(u.single.password)
	}
	if m, ok := confValue(u.entry).(map[string]any); ok {
		for k, v := range m {
			if k := strings.ToLower(k); k == "pass" || k == "password" {
				add(v)
			}
		}
	}
	return out
}

// serverErrors returns the reasons of a config error from nats-server,
// without the position in the rendered entry (which is not the file's).
// Warnings are not reasons: nats-server starts with them.
func serverErrors(err error) []string {
	errs := []error{err}
	var list interface{ Errors() []error }
	if errors.As(err, &list) {
		errs = list.Errors()
	}
	var out []string
	for _, e := range errs {
		out = append(out, serverPosition.ReplaceAllString(e.Error(), ""))
	}
	return out
}

// serverPosition is where in the rendered entry nats-server puts an error:
// ":line:column: " (the rendered entry has no file name). Its Source
// method cannot be used for this: it panics on an error without a token.
var serverPosition = regexp.MustCompile(`^[^:\n]*:\d+:\d+: `)

// readPermissions turns nats-server's permissions of an entry into
// authrelay's. nats-server leaves a direction unrestricted when it has no
// allow list (no permissions at all, no rule for the direction, an empty
// list, or only denies); authrelay permits nothing there, so the direction
// gets an explicit allow of '>', its denies kept, and a note says so.
// nats-server gives publish an empty allow list next to allow_responses
// (all but the replies closed), and so does authrelay.
func (u *confUser) readPermissions(p *server.Permissions) {
	if p == nil {
		p = &server.Permissions{}
	}
	var open []string
	u.perms.Pub, open = readRule(p.Publish, "publish", open)
	u.perms.Sub, open = readRule(p.Subscribe, "subscribe", open)
	if r := p.Response; r != nil {
		// Zero stands for nats-server's defaults, as in
		// accounts.ResponsePermission; negative means no limit in both.
		rp := &accounts.ResponsePermission{MaxMsgs: r.MaxMsgs, TTL: r.Expires}
		if rp.MaxMsgs == server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS {
			rp.MaxMsgs = 0
		}
		if rp.TTL == server.DEFAULT_ALLOW_RESPONSE_EXPIRATION {
			rp.TTL = 0
		}
		u.perms.Resp = rp
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

// readRule is readPermissions for one direction; it adds the direction to
// open when it opens it.
func readRule(sp *server.SubjectPermission, what string, open []string) (accounts.Rule, []string) {
	var r accounts.Rule
	if sp == nil || sp.Allow == nil {
		r.Allow = []string{accounts.AllSubjects}
		open = append(open, what)
	} else if len(sp.Allow) > 0 {
		r.Allow = slices.Clone(sp.Allow)
	}
	if sp != nil && len(sp.Deny) > 0 {
		r.Deny = slices.Clone(sp.Deny)
	}
	return r, open
}

// Connection types nats-server knows (convertAllowedConnectionTypes) that
// authrelay cannot allow.
var droppedConnTypes = []string{jwt.ConnectionTypeLeafnodeWS, jwt.ConnectionTypeMqttWS, jwt.ConnectionTypeInProcess}

// knownConnType reports whether nats-server knows the connection type t
// (upper case).
func knownConnType(t string) bool {
	_, err := accounts.ParseConnType(t)
	return err == nil || slices.Contains(droppedConnTypes, t)
}

// readConnTypes keeps the connection types of nats-server's reading that
// authrelay can allow. Leaving a type out only narrows where the user may
// connect from; a user left with none is not imported, since none means
// any.
func (u *confUser) readConnTypes(cts map[string]struct{}) {
	var dropped []string
	for _, t := range slices.Sorted(maps.Keys(cts)) {
		if c, err := accounts.ParseConnType(t); err == nil {
			u.connTypes = append(u.connTypes, c)
		} else {
			dropped = append(dropped, t)
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

// render writes the value v of the token tree in nats.conf syntax, without
// the variable definitions nats-server ignores where it expects settings.
// Values are as the parser resolved them, so variables and include files
// are already in.
func render(b *strings.Builder, v any) error {
	switch x := confValue(v).(type) {
	case map[string]any:
		b.WriteString("{")
		for _, k := range confKeys(x) {
			if usedVariable(x[k]) {
				continue
			}
			if strings.ContainsAny(k, "\"\n\r") {
				return fmt.Errorf("key %q has a quote or line break", k)
			}
			b.WriteString(" \"" + k + "\": ")
			if err := render(b, x[k]); err != nil {
				return err
			}
			b.WriteString("\n")
		}
		b.WriteString("}")
	case []any:
		b.WriteString("[")
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			if err := render(b, e); err != nil {
				return err
			}
		}
		b.WriteString("]")
	case string:
		renderString(b, x)
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		b.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case time.Time:
		b.WriteString(x.UTC().Format("2006-01-02T15:04:05Z"))
	default:
		return fmt.Errorf("a value of type %T", x)
	}
	return nil
}

// renderString writes s as a double-quoted string of nats.conf, whose
// lexer reads back exactly s: \t, \n, \r, \", \\ and \xHH for the other
// control bytes. A quoted string is never a variable reference.
func renderString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}
