package main

import "github.com/authrelay/authrelay/natsconf"

// The names the import tests use for natsconf's report types.
type (
	importReport     = natsconf.Report
	importUserRow    = natsconf.UserRow
	importAccountRow = natsconf.AccountRow
	importSummary    = natsconf.Summary
)
