package accounts

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
)

// MaxRoleLen is the longest role name, in bytes.
const MaxRoleLen = 64

// Role is a named set of permissions. A user holds any number of roles; the
// user's effective permissions are the union of its roles' and its own.
type Role struct {
	Name        string      `json:"name"`
	Permissions Permissions `json:"permissions"`
	Created     time.Time   `json:"created,omitzero"`
	Updated     time.Time   `json:"updated,omitzero"`
}

// Validate reports the first problem with the role, or nil.
func (r Role) Validate() error {
	if err := ValidateRoleName(r.Name); err != nil {
		return err
	}
	return r.Permissions.Validate()
}

// ValidateRoleName checks a role name: ASCII letters, digits, '_', '-' and
// '.', starting with a letter, at most MaxRoleLen bytes.
func ValidateRoleName(name string) error {
	switch {
	case name == "":
		return errors.New("role name is empty: give one such as svc or reader")
	case len(name) > MaxRoleLen:
		return fmt.Errorf("role name is %d bytes long: the limit is %d", len(name), MaxRoleLen)
	}
	for i, r := range name {
		letter := (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z')
		if i == 0 && !letter {
			return fmt.Errorf("role name %q must start with a letter", name)
		}
		if !letter && !(r >= '0' && r <= '9') && r != '_' && r != '-' && r != '.' {
			return fmt.Errorf("role name %q may contain only letters, digits, '_', '-' and '.'", name)
		}
	}
	return nil
}

// Connection types a user may be limited to, as jwt/v2 names them.
const (
	ConnStandard  = jwt.ConnectionTypeStandard
	ConnWebsocket = jwt.ConnectionTypeWebsocket
	ConnMQTT      = jwt.ConnectionTypeMqtt
	ConnLeafnode  = jwt.ConnectionTypeLeafnode
)

// ConnTypes lists the connection types authrelay can restrict a user to.
var connTypes = []string{ConnStandard, ConnWebsocket, ConnMQTT, ConnLeafnode}

// ParseConnType returns the canonical name of a connection type given in any
// case, or an error naming the valid ones.
func ParseConnType(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if slices.Contains(connTypes, u) {
		return u, nil
	}
	return "", fmt.Errorf("connection type %q: want one of %s", s, strings.Join(connTypes, ", "))
}

// ClientConnType maps the kind and type nats-server reports for a client in
// an auth request (client_info.kind, client_info.type) to a connection type.
// It returns "" for anything it does not know.
func ClientConnType(kind, typ string) string {
	if kind == "Leafnode" {
		return ConnLeafnode
	}
	switch typ {
	case "nats":
		return ConnStandard
	case "websocket":
		return ConnWebsocket
	case "mqtt":
		return ConnMQTT
	}
	return ""
}

// ParseSource parses a source network: a CIDR prefix such as 10.1.0.0/16 or
// a single address, which means just that host. It returns the prefix in
// canonical form.
func ParseSource(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("source network %q: want a CIDR prefix such as 10.0.0.0/8 or an address such as 192.0.2.7", s)
}

// Template variables that subjects may contain.
const (
	TemplateName    = "{{name}}"
	TemplateAccount = "{{account}}"
)

// checkTemplates refuses any "{{" that does not start a known template.
func checkTemplates(s string) error {
	rest := s
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if strings.Contains(rest, "}}") {
				return fmt.Errorf("subject %q has a stray '}}': templates are {{name}} and {{account}}", s)
			}
			return nil
		}
		rest = rest[i:]
		switch {
		case strings.HasPrefix(rest, TemplateName):
			rest = rest[len(TemplateName):]
		case strings.HasPrefix(rest, TemplateAccount):
			rest = rest[len(TemplateAccount):]
		default:
			return fmt.Errorf("subject %q has an unknown template: the only templates are {{name}} and {{account}}", s)
		}
	}
}

// ErrUnsafeTemplate means a subject template would expand a value that
// contains a subject separator, a wildcard or whitespace, so the login is
// refused rather than granting more than the template says.
var ErrUnsafeTemplate = errors.New("template value is not a single subject token")

// safeToken reports whether v can stand as one subject token.
func safeToken(v string) bool {
	return v != "" && !strings.ContainsAny(v, ".*>{} \t\r\n\f\v") && !strings.ContainsFunc(v, func(r rune) bool {
		return r < 0x20 || r == 0x7f
	})
}

// expand replaces the templates in subject with the user's name and account.
func expand(subject, name, account string) (string, error) {
	if !strings.Contains(subject, "{{") {
		return subject, nil
	}
	if strings.Contains(subject, TemplateName) && !safeToken(name) {
		return "", fmt.Errorf("subject %q: user name %q: %w", subject, name, ErrUnsafeTemplate)
	}
	if strings.Contains(subject, TemplateAccount) && !safeToken(account) {
		return "", fmt.Errorf("subject %q: account %q: %w", subject, account, ErrUnsafeTemplate)
	}
	// One pass, so a value is never itself expanded again.
	out := strings.NewReplacer(TemplateName, name, TemplateAccount, account).Replace(subject)
	if err := ValidateSubject(out); err != nil {
		return "", fmt.Errorf("subject %q expands to an invalid subject: %w: %w", subject, err, ErrUnsafeTemplate)
	}
	return out, nil
}

// Grant is what the relay issues for a user right now: the user's own
// permissions and those of its roles merged, templates expanded, and the
// constraints the relay checks at login.
type Grant struct {
	Name        string      `json:"name"`
	Account     string      `json:"account"`
	Roles       []string    `json:"roles"`
	Permissions Permissions `json:"permissions"`
	// Expires is the user's own expiry; zero means none.
	Expires   time.Time `json:"expires,omitzero"`
	Src       []string  `json:"src"`
	ConnTypes []string  `json:"conn_types"`
}

// ErrUnknownRole means a user holds a role that no longer exists.
var ErrUnknownRole = errors.New("unknown role")

// Resolve merges u's own permissions with those of its roles and expands
// the subject templates. roles must hold every role u names; order does not
// matter. Allows are the union of all allows, denies the union of all
// denies (nats-server lets a deny win over any allow); response permission
// is the most generous one given. A direction whose merged allow is empty
// grants nothing, whatever it denies: Issuer.UserClaims closes it.
func Resolve(u User, roles []Role) (Grant, error) {
	byName := make(map[string]Role, len(roles))
	for _, r := range roles {
		byName[r.Name] = r
	}
	g := Grant{
		Name:      u.Name,
		Account:   u.Account,
		Roles:     slices.Clone(u.Roles),
		Expires:   u.Expires,
		Src:       slices.Clone(u.Src),
		ConnTypes: slices.Clone(u.ConnTypes),
	}
	var m merger
	for _, name := range u.Roles {
		r, ok := byName[name]
		if !ok {
			return Grant{}, fmt.Errorf("user %q holds role %q: %w", u.Name, name, ErrUnknownRole)
		}
		if err := m.add(r.Permissions, u.Name, u.Account); err != nil {
			return Grant{}, fmt.Errorf("role %q: %w", name, err)
		}
	}
	if err := m.add(u.Permissions, u.Name, u.Account); err != nil {
		return Grant{}, err
	}
	g.Permissions = m.p
	return g, nil
}

// merger accumulates permissions without duplicates.
type merger struct {
	p Permissions
}

func (m *merger) add(p Permissions, name, account string) error {
	lists := []struct {
		dst *[]string
		src []string
	}{
		{&m.p.Pub.Allow, p.Pub.Allow}, {&m.p.Pub.Deny, p.Pub.Deny},
		{&m.p.Sub.Allow, p.Sub.Allow}, {&m.p.Sub.Deny, p.Sub.Deny},
	}
	for _, l := range lists {
		for _, s := range l.src {
			x, err := expand(s, name, account)
			if err != nil {
				return err
			}
			if !slices.Contains(*l.dst, x) {
				*l.dst = append(*l.dst, x)
			}
		}
	}
	if p.Resp != nil {
		if m.p.Resp == nil {
			r := *p.Resp
			m.p.Resp = &r
		} else {
			m.p.Resp = moreGenerous(*m.p.Resp, *p.Resp)
		}
	}
	return nil
}

// moreGenerous combines two response permissions into one that allows what
// either allows, reading 0 as the server's defaults.
func moreGenerous(a, b ResponsePermission) *ResponsePermission {
	maxMsgs := func(n int) int {
		switch {
		case n < 0:
			return int(^uint(0) >> 1)
		case n == 0:
			return 1
		}
		return n
	}
	ttl := func(d time.Duration) time.Duration {
		if d == 0 {
			return 2 * time.Minute
		}
		return d
	}
	out := a
	if maxMsgs(b.MaxMsgs) > maxMsgs(a.MaxMsgs) {
		out.MaxMsgs = b.MaxMsgs
	}
	if ttl(b.TTL) > ttl(a.TTL) {
		out.TTL = b.TTL
	}
	return &out
}

// Errors Admit returns.
var (
	// ErrSourceNotAllowed means the client's address is outside the user's
	// source networks.
	ErrSourceNotAllowed = errors.New("client address not in the user's source networks")
	// ErrConnTypeNotAllowed means the client's connection type is not one the
	// user may use.
	ErrConnTypeNotAllowed = errors.New("connection type not allowed for the user")
)

// Client is what the relay knows about a connecting client.
type Client struct {
	// Host is the client's IP address as the server saw it.
	Host string
	// ConnType is the connection type, from ClientConnType.
	ConnType string
}

// Admit checks the grant's source networks and connection types against c.
func (g Grant) Admit(c Client) error {
	if len(g.Src) > 0 {
		addr, err := netip.ParseAddr(c.Host)
		if err != nil {
			return fmt.Errorf("client host %q: %w", c.Host, ErrSourceNotAllowed)
		}
		addr = addr.Unmap()
		ok := false
		for _, s := range g.Src {
			p, err := ParseSource(s)
			if err == nil && p.Contains(addr) {
				ok = true
				break
			}
		}
		if !ok {
			return ErrSourceNotAllowed
		}
	}
	if len(g.ConnTypes) > 0 && !slices.Contains(g.ConnTypes, c.ConnType) {
		return ErrConnTypeNotAllowed
	}
	return nil
}
