package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

const auditUsage = `
Usage: authrelay audit [--user NAME] [--since TIME] [--result allowed|denied]
                       [--kind login|admin] [--limit N] [--json] [--follow]

Prints the audit trail, oldest first: every login decision (time, user,
account, client address, server, client id, connection type, result, reason
code, decision time) and every admin change (what changed, the OS user who
ran the command). In a cluster every node holds every node's rows; a login
another node saw says which (CLIENT "node:NAME", JSON "node"). It never holds a password or hash. 'serve' keeps rows for
--audit-retention (default 30 days).

Cheap denials (no credentials, a name that is not a valid username, a
password over the length limit) are counted, not kept one row each: the
first per reason, client address and name in a minute is a row at once, its
repeats one row at the minute's end with COUNT (JSON "count") saying how
many. Past 256 distinct keys in a minute, the rest count into one row per
reason with CLIENT "(many)". Every other row has count 1.

--since takes a duration back from now (1h, 30m) or a time (2026-12-01,
2026-12-01T10:00:00Z). --follow prints the rows written from now on until
interrupted, as tail -f does (with --since, the rows since then first, at
most --limit of them); with --json it prints one JSON object per line.

Examples:

  authrelay audit --since 1h --result denied
  authrelay audit --user alice --json
  authrelay audit --follow
  authrelay audit --follow --since 10m --kind admin
`

func (m *Main) runAudit(ctx context.Context, args []string) error {
	fs := m.newFlagSet("audit", auditUsage)
	dir := m.dirFlag(fs)
	userName := fs.String("user", "", "only rows about this user")
	since := fs.String("since", "", "only rows from this time on: a duration back from now (1h) or a time")
	result := fs.String("result", "", "only login decisions with this result: allowed or denied")
	kind := fs.String("kind", "", "only login decisions or admin changes: login or admin")
	limit := fs.Int("limit", 1000, "at most this many rows (the newest), 0 for all")
	asJSON := fs.Bool("json", false, "print JSON")
	follow := fs.Bool("follow", false, "keep printing new rows until interrupted")
	if err := parseNoArgs(fs, args, "audit"); err != nil {
		return err
	}
	f := store.AuditFilter{User: *userName, Result: *result, Kind: *kind, Limit: *limit}
	switch *result {
	case "", "allowed", "denied":
	default:
		return usagef("--result %q: want allowed or denied", *result)
	}
	switch *kind {
	case "", "login", "admin":
	default:
		return usagef("--kind %q: want login or admin", *kind)
	}
	if *limit < 0 {
		return usagef("--limit %d: must not be negative", *limit)
	}
	if *since != "" {
		var err error
		if f.Since, err = accounts.ParseSince(*since, m.Now()); err != nil {
			return &usageError{msg: err.Error()}
		}
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if *follow {
		if *since == "" {
			// Like tail -f: only what comes after now; --since prints
			// the history first.
			if f.AfterID, err = db.LastAuditID(ctx); err != nil {
				return err
			}
			f.Limit = 0
		}
		header := true
		return db.FollowAudit(ctx, f, 500*time.Millisecond, func(rows []store.AuditEntry) error {
			if *asJSON {
				// One object per line.
				enc := json.NewEncoder(m.Stdout)
				enc.SetEscapeHTML(false)
				for _, v := range auditViews(rows) {
					if err := enc.Encode(v); err != nil {
						return err
					}
				}
				return nil
			}
			err := writeAuditTable(m.Stdout, rows, header)
			header = false
			return err
		})
	}
	rows, err := db.Audit(ctx, f)
	if err != nil {
		return err
	}
	if *asJSON {
		if rows == nil {
			rows = []store.AuditEntry{}
		}
		return writeJSON(m.Stdout, auditViews(rows))
	}
	return writeAuditTable(m.Stdout, rows, true)
}

// auditView is an audit row as --json prints it.
type auditView struct {
	ID        int64   `json:"id"`
	Time      string  `json:"time"`
	Kind      string  `json:"kind"`
	User      string  `json:"user,omitempty"`
	Account   string  `json:"account,omitempty"`
	Host      string  `json:"client_host,omitempty"`
	ServerID  string  `json:"server_id,omitempty"`
	ClientID  uint64  `json:"client_id,omitempty"`
	ConnType  string  `json:"conn_type,omitempty"`
	Result    string  `json:"result,omitempty"`
	Reason    string  `json:"reason,omitempty"`
	LatencyMS float64 `json:"latency_ms,omitempty"`
	Actor     string  `json:"actor,omitempty"`
	Action    string  `json:"action,omitempty"`
	Detail    string  `json:"detail,omitempty"`
	// Count is how many identical decisions the row stands for: more
	// than 1 for cheap denials counted over an interval.
	Count int64 `json:"count"`
	// Node is the cluster node a login row came from, when another sent it.
	Node string `json:"node,omitempty"`
}

func auditViews(rows []store.AuditEntry) []auditView {
	out := make([]auditView, 0, len(rows))
	for _, r := range rows {
		out = append(out, auditView{
			ID: r.ID, Time: r.Time.UTC().Format(time.RFC3339Nano), Kind: r.Kind, User: r.User, Account: r.Account,
			Host: r.Host, ServerID: r.ServerID, ClientID: r.ClientID, ConnType: r.ConnType, Result: r.Result,
			Reason: r.Reason, LatencyMS: float64(r.Latency) / float64(time.Millisecond), Actor: r.Actor,
			Action: r.Action, Detail: r.Detail, Count: max(r.Count, 1), Node: r.Node,
		})
	}
	return out
}

func writeAuditTable(w io.Writer, rows []store.AuditEntry, header bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "TIME\tKIND\tUSER\tACCOUNT\tRESULT\tREASON\tCOUNT\tCLIENT\tLATENCY\tBY\tCHANGE")
	}
	for _, r := range rows {
		// Every field may hold what a client sent (the username, the
		// address) or what an import carried: each is clipped and
		// quoted when it holds a space, a quote or a control character,
		// so that no value can end the line, move into another column or
		// steer the terminal.
		client, latency := "-", "-"
		if r.Kind == "login" {
			client = textField(r.Host) + " " + textField(r.ConnType) + " cid:" + strconv.FormatUint(r.ClientID, 10)
			latency = r.Latency.Round(10 * time.Microsecond).String()
			if r.Host == "" && r.Count > 1 {
				client = "(many)" // the overflow of an aggregation interval
			}
			if r.Node != "" {
				client += " node:" + textField(r.Node) // another cluster node's login
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), textField(r.Kind),
			textField(r.User), textField(r.Account), textField(r.Result), textField(r.Reason), max(r.Count, 1), client, latency,
			textField(r.Actor), dash(accounts.EscapeControl(joinNonEmpty(r.Action, r.Detail))))
	}
	return tw.Flush()
}

// textField is s for one column of a text table: "-" when empty, and
// otherwise clipped and quoted as accounts.ClientText does.
func textField(s string) string {
	if s == "" {
		return "-"
	}
	return accounts.ClientText(s)
}

// dash is s, or "-" when s is empty.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + " " + b
}
