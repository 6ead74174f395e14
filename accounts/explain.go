package accounts

// Explain decides l as Decide does, for a person rather than a server: the
// Verdict's Reason and Err are Decide's, and Explain also fills in what
// Decide leaves out when it refuses a login before the grant matters. Grant
// and GrantErr are then resolved whatever the reason (Resolved is always
// true), and ResponseBytes is the size of the grant's login response when
// l.Issuer is set and the grant resolved, checked or not. The error is
// that of sizing the response. It is what 'user explain' shows.
func Explain(l *Login) (Verdict, error) {
	v := Decide(l)
	if !v.Resolved {
		if l.Resolved {
			v.Grant, v.GrantErr = l.Resolution.Grant, l.Resolution.Err
		} else {
			v.Grant, v.GrantErr = Resolve(l.User, l.Roles)
		}
		v.Resolved = true
	}
	// No response is sized for an account the user cannot be placed in:
	// nothing would be issued there.
	if v.GrantErr == nil && v.ResponseBytes == 0 && l.Issuer != nil && v.Reason != ReasonAccountNotAllowed {
		n, err := l.Issuer.ResponseSize(v.Grant, l.Now)
		if err != nil {
			return v, err
		}
		v.ResponseBytes = n
	}
	return v, nil
}

// GrantsNothing reports whether p lets a user do nothing at all: neither
// publish nor subscribe to any subject (Scope ScopeNothing both ways) nor
// reply to requests it receives.
func (p Permissions) GrantsNothing() bool {
	return p.Pub.Scope() == ScopeNothing && p.Sub.Scope() == ScopeNothing && p.Resp == nil
}
