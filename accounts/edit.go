package accounts

import (
	"errors"
	"fmt"
	"time"
)

// The edits below are the changes the admin commands make to a stored
// user, role or account: 'user add|set', 'role add|set' and 'account
// add|set' fill one from their flags and apply it. A nil field was not
// given and leaves its field as it is. Their errors name the fields as
// those commands' flags do (--pub, --clear-pub, --src), since the commands
// print them as they are.

// PermissionEdit is a change to a Permissions value.
type PermissionEdit struct {
	// Pub, Sub, DenyPub and DenySub, when not nil, replace the publish
	// allow, subscribe allow, publish deny and subscribe deny lists
	// (--pub, --sub, --deny-pub, --deny-sub).
	Pub, Sub, DenyPub, DenySub *[]string
	// AllowResponses true grants a response permission (--allow-responses);
	// false removes it, as ClearResp does (--allow-responses=false); nil
	// keeps the one there is.
	AllowResponses *bool
	// RespMax and RespTTL set the response permission's MaxMsgs and TTL
	// (--resp-max, --resp-ttl); they need a response permission, granted
	// by the same edit or already there.
	RespMax *int
	RespTTL *time.Duration
	// ClearPub, ClearSub, ClearDenyPub and ClearDenySub empty that list
	// (--clear-pub and so on) and ClearResp removes the response permission
	// (--no-responses). Giving a list and clearing it is refused.
	ClearPub, ClearSub, ClearDenyPub, ClearDenySub, ClearResp bool
}

// Empty reports whether e neither gives nor clears anything.
func (e PermissionEdit) Empty() bool {
	return e.Pub == nil && e.Sub == nil && e.DenyPub == nil && e.DenySub == nil &&
		!e.respGiven() && !e.ClearPub && !e.ClearSub && !e.ClearDenyPub && !e.ClearDenySub && !e.ClearResp
}

func (e PermissionEdit) respGiven() bool {
	return e.AllowResponses != nil || e.RespMax != nil || e.RespTTL != nil
}

// errRespNeedsAllow refuses a response limit without a response permission.
var errRespNeedsAllow = errors.New("--resp-max and --resp-ttl need --allow-responses")

// New returns the permissions e gives, as a new user or role has them: the
// lists given, and a response permission when AllowResponses is true. A
// nonzero RespMax or RespTTL without it is refused. The Clear fields have
// nothing to clear and are not read.
func (e PermissionEdit) New() (Permissions, error) {
	p := Permissions{
		Pub: Rule{Allow: deref(e.Pub), Deny: deref(e.DenyPub)},
		Sub: Rule{Allow: deref(e.Sub), Deny: deref(e.DenySub)},
	}
	resp := ResponsePermission{MaxMsgs: deref(e.RespMax), TTL: deref(e.RespTTL)}
	if deref(e.AllowResponses) {
		p.Resp = &resp
	} else if resp != (ResponsePermission{}) {
		return p, errRespNeedsAllow
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// Apply changes *p by e: each list given replaces that list, each cleared
// one is emptied, and the response permission is removed, granted or
// changed. It refuses a list both given and cleared, a response setting
// given with ClearResp, a RespMax or RespTTL with no response permission,
// and a result that does not validate; *p is then left as it was.
func (e PermissionEdit) Apply(p *Permissions) error {
	out := *p
	lists := []struct {
		flag, clear string
		src         *[]string
		cleared     bool
		dst         *[]string
	}{
		{"pub", "clear-pub", e.Pub, e.ClearPub, &out.Pub.Allow},
		{"sub", "clear-sub", e.Sub, e.ClearSub, &out.Sub.Allow},
		{"deny-pub", "clear-deny-pub", e.DenyPub, e.ClearDenyPub, &out.Pub.Deny},
		{"deny-sub", "clear-deny-sub", e.DenySub, e.ClearDenySub, &out.Sub.Deny},
	}
	for _, l := range lists {
		switch {
		case l.src != nil && l.cleared:
			return fmt.Errorf("--%s and --%s contradict each other", l.flag, l.clear)
		case l.src != nil:
			*l.dst = append([]string(nil), *l.src...)
		case l.cleared:
			*l.dst = nil
		}
	}
	denied := e.AllowResponses != nil && !*e.AllowResponses
	limits := e.RespMax != nil || e.RespTTL != nil
	switch {
	case e.ClearResp && (deref(e.AllowResponses) || limits):
		return errors.New("--no-responses contradicts --allow-responses, --resp-max and --resp-ttl")
	case denied && limits:
		return errors.New("--allow-responses=false contradicts --resp-max and --resp-ttl")
	case e.ClearResp, denied:
		out.Resp = nil
	case e.respGiven():
		if !deref(e.AllowResponses) && out.Resp == nil {
			return errRespNeedsAllow
		}
		var r ResponsePermission
		if out.Resp != nil {
			r = *out.Resp
		}
		if e.RespMax != nil {
			r.MaxMsgs = *e.RespMax
		}
		if e.RespTTL != nil {
			r.TTL = *e.RespTTL
		}
		out.Resp = &r
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*p = out
	return nil
}

// ConstraintEdit is a change to a user's roles, source networks and
// connection types.
type ConstraintEdit struct {
	// Roles, Src and ConnTypes, when not nil, replace that list (--role,
	// --src, --conn-type).
	Roles, Src, ConnTypes *[]string
	// ClearRoles, ClearSrc and ClearConnTypes empty that list
	// (--clear-roles, --clear-src, --clear-conn-types): no roles, any
	// network, any connection type. Giving a list and clearing it is
	// refused.
	ClearRoles, ClearSrc, ClearConnTypes bool
}

// Check returns e with its source networks (ParseSource) and connection
// types (ParseConnType) in canonical form, or the first value that is not
// valid (a source network, a connection type, a role name, in that order),
// or the first list both given and cleared.
func (e ConstraintEdit) Check() (ConstraintEdit, error) {
	if e.Src != nil {
		src := make([]string, len(*e.Src))
		for i, s := range *e.Src {
			p, err := ParseSource(s)
			if err != nil {
				return e, fmt.Errorf("--src: %w", err)
			}
			src[i] = p.String()
		}
		e.Src = &src
	}
	if e.ConnTypes != nil {
		types := make([]string, len(*e.ConnTypes))
		for i, t := range *e.ConnTypes {
			ct, err := ParseConnType(t)
			if err != nil {
				return e, fmt.Errorf("--conn-type: %w", err)
			}
			types[i] = ct
		}
		e.ConnTypes = &types
	}
	for _, r := range deref(e.Roles) {
		if err := ValidateRoleName(r); err != nil {
			return e, fmt.Errorf("--role: %w", err)
		}
	}
	for _, c := range []struct {
		list, clear string
		given       bool
		cleared     bool
	}{
		{"role", "clear-roles", e.Roles != nil, e.ClearRoles},
		{"src", "clear-src", e.Src != nil, e.ClearSrc},
		{"conn-type", "clear-conn-types", e.ConnTypes != nil, e.ClearConnTypes},
	} {
		if c.given && c.cleared {
			return e, fmt.Errorf("--%s and --%s contradict each other", c.list, c.clear)
		}
	}
	return e, nil
}

// Apply changes u by e, which Check has returned: each list given
// replaces u's, each cleared one is emptied.
func (e ConstraintEdit) Apply(u *User) {
	for _, l := range []struct {
		src     *[]string
		cleared bool
		dst     *[]string
	}{
		{e.Roles, e.ClearRoles, &u.Roles},
		{e.Src, e.ClearSrc, &u.Src},
		{e.ConnTypes, e.ClearConnTypes, &u.ConnTypes},
	} {
		switch {
		case l.src != nil:
			*l.dst = *l.src
		case l.cleared:
			*l.dst = nil
		}
	}
}

// LimitEdit is a change to an account's limits and JetStream (--max-connections,
// --max-subs, --max-payload, --jetstream, --js-max-*); 0 removes a limit.
// Turning JetStream off removes the JetStream limits too; a JetStream limit
// on an account left without JetStream is refused.
type LimitEdit struct {
	MaxConnections, MaxSubs, MaxPayload *int64
	JetStream                           *bool
	// JSMaxMemory, JSMaxStorage, JSMaxStreams and JSMaxConsumers change
	// the account's JetStreamLimits.
	JSMaxMemory, JSMaxStorage, JSMaxStreams, JSMaxConsumers *int64
}

// Empty reports whether e gives nothing.
func (e LimitEdit) Empty() bool {
	return e.MaxConnections == nil && e.MaxSubs == nil && e.MaxPayload == nil && e.JetStream == nil &&
		e.JSMaxMemory == nil && e.JSMaxStorage == nil && e.JSMaxStreams == nil && e.JSMaxConsumers == nil
}

// Apply changes a by e and refuses limits that do not validate
// (AccountLimits.Validate, and JetStream limits without JetStream); *a is
// then left as it was.
func (e LimitEdit) Apply(a *Account) error {
	out := *a
	if e.JetStream != nil {
		out.JetStream = *e.JetStream
		if !out.JetStream {
			out.JetStreamLimits = JetStreamLimits{}
		}
	}
	for _, l := range []struct {
		src *int64
		dst *int64
	}{
		{e.MaxConnections, &out.Limits.MaxConnections},
		{e.MaxSubs, &out.Limits.MaxSubs},
		{e.MaxPayload, &out.Limits.MaxPayload},
		{e.JSMaxMemory, &out.JetStreamLimits.MaxMemory},
		{e.JSMaxStorage, &out.JetStreamLimits.MaxStorage},
		{e.JSMaxStreams, &out.JetStreamLimits.MaxStreams},
		{e.JSMaxConsumers, &out.JetStreamLimits.MaxConsumers},
	} {
		if l.src != nil {
			*l.dst = *l.src
		}
	}
	if err := out.Limits.Validate(); err != nil {
		return err
	}
	if err := out.validateJetStream(); err != nil {
		return err
	}
	*a = out
	return nil
}

// deref returns *p, or the zero value for nil.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
