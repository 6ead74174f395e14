package main

import "slices"

// reservedHint follows a store.ErrReservedAccount refusal: the store refuses
// the reserved accounts (deploy.Layout.OpenDatabase gives it those of
// nats.conf), and so does deploy.Layout.CheckAccountNotReserved; the command
// line says why and what to do instead.
const reservedHint = "a user in it could read every login request or control the server: give an application account"

// skipReservedImports marks the accounts of an import plan that are reserved
// in DIR's nats.conf, and the users the plan would place in them, as
// skipped: import never creates a reserved account or places a user in one.
func skipReservedImports(rep *importReport, reserved []string) {
	const why = "reserved in this directory's nats.conf (its callout or system account)"
	for _, a := range rep.Accounts {
		if slices.Contains(reserved, a.Name) && a.Action != importSkip {
			a.Action, a.Detail = importSkip, "account "+why
		}
	}
	for _, u := range rep.Users {
		if slices.Contains(reserved, u.Account) && u.Action == importAdd {
			u.Action, u.Detail = importSkip, "account "+u.Account+" is "+why
		}
	}
}
