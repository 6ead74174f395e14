package idp

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/authrelay/authrelay/accounts"
)

// Limits on a Provider's fields, in bytes.
const (
	MaxNameLen     = 64    // a provider's name
	MaxIssuerLen   = 512   // its issuer URL
	MaxAudienceLen = 256   // the audience tokens must carry
	MaxClaimLen    = 128   // the name of the username or roles claim
	MaxRoleValue   = 256   // one value of the roles claim that RoleMap maps
	MaxRoleMap     = 256   // entries of RoleMap
	DefaultClaim   = "sub" // the username claim when UsernameClaim is empty
)

// Provider is one OpenID Connect or OAuth2 identity provider whose bearer
// tokens authrelay accepts: where its keys are, which tokens are meant for
// authrelay, and how their claims map to an authrelay user.
type Provider struct {
	// Name identifies the provider in commands, logs and the users bound to
	// it: a letter, then letters, digits, '_', '-' or '.'.
	Name string
	// Issuer is the provider's issuer URL exactly as its tokens' iss claim
	// and its discovery document give it. It must be https, except for a
	// loopback host (127.0.0.1, ::1, localhost).
	Issuer string
	// Audience is the value a token's aud claim must hold: the client id for
	// ID tokens, the API identifier for access tokens.
	Audience string
	// UsernameClaim is the claim whose string value is the authrelay
	// username: sub when empty, or email, preferred_username, any string
	// claim. A name with dots that is no top-level claim is read as a path
	// into nested objects (realm_access.roles).
	UsernameClaim string
	// RolesClaim is the claim holding the user's groups or roles at the
	// provider, a string or an array of strings; empty for none.
	RolesClaim string
	// RoleMap maps a value of RolesClaim to an authrelay role name. Values
	// it does not name are ignored.
	RoleMap map[string]string
	// Account is the account users created on first login are placed in.
	Account string
	// CreateUsers lets a token whose username is no authrelay user create
	// one in Account; otherwise such a token is refused.
	CreateUsers bool
}

// usernameClaim returns the claim the username is read from.
func (p Provider) usernameClaim() string {
	if p.UsernameClaim == "" {
		return DefaultClaim
	}
	return p.UsernameClaim
}

// Validate reports the first problem with p, or nil, in words that say what
// to change.
func (p Provider) Validate() error {
	if err := ValidateName(p.Name); err != nil {
		return err
	}
	if err := ValidateIssuer(p.Issuer); err != nil {
		return err
	}
	switch {
	case p.Audience == "":
		return fmt.Errorf("provider %s: audience is empty: give the client id (ID tokens) or API identifier (access tokens) the provider puts in aud", p.Name)
	case len(p.Audience) > MaxAudienceLen:
		return fmt.Errorf("provider %s: audience is %d bytes long: the limit is %d", p.Name, len(p.Audience), MaxAudienceLen)
	case !printable(p.Audience):
		return fmt.Errorf("provider %s: audience %s contains whitespace or a control character", p.Name, accounts.Quote(p.Audience))
	}
	if p.UsernameClaim != "" {
		if err := validateClaimName("username claim", p.UsernameClaim); err != nil {
			return fmt.Errorf("provider %s: %w", p.Name, err)
		}
	}
	switch {
	case p.RolesClaim == "" && len(p.RoleMap) > 0:
		return fmt.Errorf("provider %s: a role map needs a roles claim: give the claim that holds the groups (groups, roles, realm_access.roles)", p.Name)
	case p.RolesClaim != "" && len(p.RoleMap) == 0:
		return fmt.Errorf("provider %s: roles claim %s has no role map: map its values to roles (VALUE=ROLE)", p.Name, p.RolesClaim)
	case len(p.RoleMap) > MaxRoleMap:
		return fmt.Errorf("provider %s: role map has %d entries: the limit is %d", p.Name, len(p.RoleMap), MaxRoleMap)
	}
	if p.RolesClaim != "" {
		if err := validateClaimName("roles claim", p.RolesClaim); err != nil {
			return fmt.Errorf("provider %s: %w", p.Name, err)
		}
	}
	values := make([]string, 0, len(p.RoleMap))
	for v := range p.RoleMap {
		values = append(values, v)
	}
	sort.Strings(values)
	for _, v := range values {
		switch {
		case v == "":
			return fmt.Errorf("provider %s: role map has an empty claim value", p.Name)
		case len(v) > MaxRoleValue:
			return fmt.Errorf("provider %s: role map value is %d bytes long: the limit is %d", p.Name, len(v), MaxRoleValue)
		case !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl):
			return fmt.Errorf("provider %s: role map value %s contains a control character", p.Name, accounts.Quote(v))
		}
		if err := accounts.ValidateRoleName(p.RoleMap[v]); err != nil {
			return fmt.Errorf("provider %s: role map %s: %w", p.Name, accounts.Quote(v), err)
		}
	}
	if p.Account != "" {
		if err := accounts.ValidateAccount(p.Account); err != nil {
			return fmt.Errorf("provider %s: %w", p.Name, err)
		}
	}
	if p.CreateUsers && p.Account == "" {
		return fmt.Errorf("provider %s: creating users needs an account to put them in: give one", p.Name)
	}
	return nil
}

// ValidateName checks a provider name: a letter, then ASCII letters,
// digits, '_', '-' and '.', at most MaxNameLen bytes.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("provider name is empty: give one such as okta or keycloak")
	case len(name) > MaxNameLen:
		return fmt.Errorf("provider name is %d bytes long: the limit is %d", len(name), MaxNameLen)
	}
	for i, r := range name {
		letter := (r >= 'A' && r <= 'Z') || (r >= 'a' && r <= 'z')
		if i == 0 && !letter {
			return fmt.Errorf("provider name %s must start with a letter", accounts.Quote(name))
		}
		if !letter && !(r >= '0' && r <= '9') && r != '_' && r != '-' && r != '.' {
			return fmt.Errorf("provider name %s may contain only letters, digits, '_', '-' and '.'", accounts.Quote(name))
		}
	}
	return nil
}

// ValidateIssuer checks an issuer URL: absolute, https (http only for a
// loopback host), with a host, and no user, query or fragment.
func ValidateIssuer(issuer string) error {
	if issuer == "" {
		return errors.New("issuer is empty: give the provider's issuer URL, such as https://login.example.com/realms/acme")
	}
	if len(issuer) > MaxIssuerLen {
		return fmt.Errorf("issuer is %d bytes long: the limit is %d", len(issuer), MaxIssuerLen)
	}
	if !printable(issuer) {
		return fmt.Errorf("issuer %s contains whitespace or a control character", accounts.Quote(issuer))
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("issuer %s is not a URL: %v", accounts.Quote(issuer), err)
	}
	switch {
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("issuer %s has no host: give an absolute URL such as https://login.example.com", accounts.Quote(issuer))
	case u.User != nil:
		return fmt.Errorf("issuer %s holds a user name: remove it", accounts.Quote(issuer))
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(issuer, "#"):
		return fmt.Errorf("issuer %s has a query or fragment, which an issuer never has", accounts.Quote(issuer))
	}
	return checkScheme("issuer", u)
}

// checkScheme allows https, and http only to a loopback host (tests, and a
// provider on the same machine).
func checkScheme(what string, u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if loopbackHost(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%s %s is http: use https (plain http is allowed only to 127.0.0.1, ::1 or localhost)", what, accounts.Quote(u.Redacted()))
	default:
		return fmt.Errorf("%s %s must be an https URL", what, accounts.Quote(u.Redacted()))
	}
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}

func validateClaimName(what, name string) error {
	switch {
	case len(name) > MaxClaimLen:
		return fmt.Errorf("%s is %d bytes long: the limit is %d", what, len(name), MaxClaimLen)
	case !printable(name):
		return fmt.Errorf("%s %s contains whitespace or a control character", what, accounts.Quote(name))
	}
	return nil
}

// printable reports whether s is valid UTF-8 with no whitespace or control
// character.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
