package deploy

import (
	"fmt"

	"github.com/nats-io/nats-server/v2/server"
)

// CalloutProblem is one way a server config's auth_callout block fails to
// delegate logins to a relay.
type CalloutProblem struct {
	// Field is the setting at fault: "auth_callout" (the block is
	// missing), "issuer", "xkey" or "account".
	Field string
	// Fatal reports that no login can succeed through the relay, so that
	// 'authrelay serve' refuses to run the config. The one problem that is
	// not fatal is a missing xkey: logins work, but their passwords travel
	// in clear inside the callout account.
	Fatal bool
	// Message says what is wrong and what to do about it, in one line
	// that does not name the config file.
	Message string
}

// CheckCallout returns the problems of the auth_callout block ac (nil when
// the config has none) for a relay whose issuer and xkey public keys are
// issuerPub and xkeyPub, in the order auth_callout, issuer, xkey, account.
// An empty issuerPub or xkeyPub skips comparing that key, for a caller
// that could not read the relay's keys; a missing xkey is reported all the
// same. A nil result means the block delegates logins to the relay.
func CheckCallout(ac *server.AuthCallout, issuerPub, xkeyPub string) []CalloutProblem {
	if ac == nil {
		return []CalloutProblem{{
			Field: "auth_callout", Fatal: true,
			Message: "no authorization { auth_callout { … } } block: the server never asks the relay about logins; restore the block 'authrelay init' wrote (changing it needs a server restart)",
		}}
	}
	var ps []CalloutProblem
	if issuerPub != "" && ac.Issuer != issuerPub {
		ps = append(ps, CalloutProblem{
			Field: "issuer", Fatal: true,
			Message: fmt.Sprintf("auth_callout.issuer %s does not match the relay's issuer key %s (the public key of issuer_seed in secrets.json): the server would reject every answer, so no login succeeds; set 'issuer: %s' and restart the server", ac.Issuer, issuerPub, issuerPub),
		})
	}
	switch {
	case ac.XKey == "":
		want := xkeyPub
		if want == "" {
			want = "<the relay's public xkey>"
		}
		ps = append(ps, CalloutProblem{
			Field:   "xkey",
			Message: fmt.Sprintf("auth_callout has no xkey: passwords travel in clear inside the callout account, where anyone who can subscribe there reads them; add 'xkey: %s' and restart the server", want),
		})
	case xkeyPub != "" && ac.XKey != xkeyPub:
		ps = append(ps, CalloutProblem{
			Field: "xkey", Fatal: true,
			Message: fmt.Sprintf("auth_callout.xkey %s does not match the relay's xkey %s (the public key of xkey_seed in secrets.json): the relay cannot open the sealed requests, so no login succeeds; set 'xkey: %s' and restart the server", ac.XKey, xkeyPub, xkeyPub),
		})
	}
	if ac.Account == "" || ac.Account == server.DEFAULT_GLOBAL_ACCOUNT {
		// AUTH is the callout account 'authrelay init' writes.
		ps = append(ps, CalloutProblem{
			Field: "account", Fatal: true,
			Message: "auth_callout.account is not set, so login requests go to the global account where every user without an account lands and could read them; set 'account: AUTH', a dedicated account holding only the relay's user",
		})
	}
	return ps
}
