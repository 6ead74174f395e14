package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

// explainView is what user explain prints: what the relay would issue.
// PubScope and SubScope say what each direction permits as issued:
// "nothing" (no allow: the JWT denies '>'), "limited" or "anything" (an
// allow of '>'), less the denies; they are empty when no JWT is issued.
type explainView struct {
	Name      string                       `json:"name"`
	Account   string                       `json:"account"`
	Login     string                       `json:"login"`
	Reason    string                       `json:"reason,omitempty"`
	Why       string                       `json:"why,omitempty"` // the reason in words
	Roles     []string                     `json:"roles"`
	Pub       accounts.Rule                `json:"pub"`
	Sub       accounts.Rule                `json:"sub"`
	PubScope  accounts.Scope               `json:"pub_scope,omitempty"`
	SubScope  accounts.Scope               `json:"sub_scope,omitempty"`
	Resp      *accounts.ResponsePermission `json:"resp"`
	Expires   *time.Time                   `json:"expires"`
	Src       []string                     `json:"src"`
	ConnTypes []string                     `json:"conn_types"`
	// ResponseBytes is the size of the login response the user gets
	// (sealed, at worst), MaxPayload the server's limit for it; 0 when no
	// JWT is issued.
	ResponseBytes int `json:"response_bytes,omitempty"`
	MaxPayload    int `json:"max_payload"`
	// Server says whether the running servers have loaded the account
	// (without it the server refuses the login the relay grants), or why
	// that is unknown; empty with --offline.
	Server           string `json:"server,omitempty"`
	ServerHasAccount *bool  `json:"server_has_account,omitempty"`
}

// explainServer asks the servers of l, as the system admin, whether they
// have loaded acct.
func (m *Main) explainServer(ctx context.Context, l deploy.Layout, nf natsFlags, acct string) (string, *bool) {
	url, tls, err := nf.resolve(m, &l)
	if err != nil {
		return "not asked: " + err.Error(), nil
	}
	return l.ServerHasAccount(ctx, url, "authrelay user explain", acct, tls...)
}

func (m *Main) runUserExplain(ctx context.Context, args []string) error {
	fs := m.newFlagSet("user explain", `
Usage: authrelay user explain NAME [--from IP] [--conn-type TYPE] [--json]

Shows what the relay would issue for the user right now, without
connecting: its roles merged with its own permissions, {{name}} and
{{account}} expanded, and the constraints checked at login. "login" says
whether a login with the right password would be allowed, and if not, the
reason code the server would log. "publish" and "subscribe" say what each
direction permits: "nothing" when no role or rule of the user allows a
subject there (the JWT then denies everything in that direction),
"anything" for an allow of '>', otherwise the allowed subjects; denies
follow "except". --json has the same as pub_scope and sub_scope.

It decides with the relay's own decision function, so its reason is the
relay's. Unless --offline, it also asks the running servers (as the system
admin, to --nats or DIR/nats.conf's listen address) whether they have
loaded the user's account: one that has not refuses the login the relay
grants. The exit status is 0 when the login would be allowed and 1 when
it would be refused, by the relay or by a server. --from and --conn-type describe a client, and check the user's
source networks and connection types against it (one left out counts as
unknown, which a restriction on it refuses); without either, those two
checks are left out.

Examples:

  authrelay user explain bob
  authrelay user explain bob --json | jq .sub.allow
  authrelay user explain bob --from 10.1.2.3 --conn-type WEBSOCKET
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	host := fs.String("from", "", "decide for a client connecting from this IP address (checks --src)")
	connTypeFlag := fs.String("conn-type", "", "decide for a client of this connection type: STANDARD, WEBSOCKET, MQTT or LEAFNODE (checks --conn-type)")
	offline := fs.Bool("offline", false, "do not ask the servers whether they have loaded the user's account")
	var nf natsFlags
	nf.register(fs, "server to ask whether it has loaded the account")
	db, name, err := m.parseNamed(ctx, fs, args, dir, oneName, "explain")
	if err != nil {
		return err
	}
	defer db.Close()
	var connType string
	if *connTypeFlag != "" {
		if connType, err = accounts.ParseConnType(*connTypeFlag); err != nil {
			return usagef("--conn-type: %v", err)
		}
	}
	if *host != "" {
		if _, err := netip.ParseAddr(*host); err != nil {
			return usagef("--from %q: not an IP address: give the client's address as the server sees it, such as 10.1.2.3", *host)
		}
	}
	login, err := deploy.Layout{Dir: *dir}.LoginOf(ctx, db, name, m.Now)
	if err != nil {
		return userError(err, name, db, ctx)
	}
	u := login.User
	v := explainView{Name: u.Name, Account: u.Account, Login: "allowed", Roles: nonNil(u.Roles),
		Src: nonNil(u.Src), ConnTypes: nonNil(u.ConnTypes), MaxPayload: login.MaxPayload}
	if !u.Expires.IsZero() {
		e := u.Expires
		v.Expires = &e
	}
	if *host != "" || connType != "" {
		login.Client, login.CheckClient = accounts.Client{Host: *host, ConnType: connType}, true
	}
	// The relay's own decision: explain is what it would answer, and what
	// would be issued even for a login refused before its grant matters (a
	// disabled user, say).
	verdict, err := accounts.Explain(&login)
	if err != nil {
		return err
	}
	if verdict.Reason != "" {
		v.Login, v.Reason = "denied", verdict.Reason
		if verdict.Err != nil {
			v.Why = verdict.Err.Error()
		}
	}
	rerr := verdict.GrantErr
	if rerr == nil {
		p := verdict.Grant.Permissions
		v.Pub, v.Sub, v.Resp = p.Pub, p.Sub, p.Resp
		v.PubScope, v.SubScope = v.Pub.Scope(), v.Sub.Scope()
		v.ResponseBytes = verdict.ResponseBytes
	}
	v.Pub, v.Sub = nonNilRule(v.Pub), nonNilRule(v.Sub)
	if !*offline && v.Reason == "" {
		v.Server, v.ServerHasAccount = m.explainServer(ctx, deploy.Layout{Dir: *dir}, nf, u.Account)
	}
	if err := m.writeExplain(v, rerr, *asJSON); err != nil {
		return err
	}
	switch {
	case v.Reason != "":
		// Exit status 1, for scripts: the login would be refused.
		return fmt.Errorf("%s's login would be refused: %s", u.Name, v.Reason)
	case v.ServerHasAccount != nil && !*v.ServerHasAccount:
		return fmt.Errorf("%s's login would be refused by the server: it has not loaded account %s", u.Name, u.Account)
	}
	return nil
}

// writeExplain prints what explain found, as text or JSON.
func (m *Main) writeExplain(v explainView, rerr error, asJSON bool) error {
	if asJSON {
		return writeJSON(m.Stdout, v)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", v.Name)
	fmt.Fprintf(tw, "account:\t%s\n", v.Account)
	if v.Reason != "" {
		fmt.Fprintf(tw, "login:\tdenied (%s)\n", v.Reason)
		if v.Why != "" {
			fmt.Fprintf(tw, "why:\t%s\n", v.Why)
		}
	} else {
		fmt.Fprintf(tw, "login:\tallowed with the right password\n")
	}
	fmt.Fprintf(tw, "roles:\t%s\n", listText(v.Roles))
	if rerr != nil {
		fmt.Fprintf(tw, "publish:\t- (no JWT is issued)\n")
		fmt.Fprintf(tw, "subscribe:\t- (no JWT is issued)\n")
	} else {
		fmt.Fprintf(tw, "publish:\t%s\n", scopeText(v.Pub, v.Resp))
		fmt.Fprintf(tw, "subscribe:\t%s\n", scopeText(v.Sub, nil))
	}
	if v.Resp != nil {
		fmt.Fprintf(tw, "responses:\tallowed (max %d, ttl %v; 0 = server default)\n", v.Resp.MaxMsgs, v.Resp.TTL)
	} else {
		fmt.Fprintf(tw, "responses:\tnot allowed beyond publish permissions\n")
	}
	fmt.Fprintf(tw, "expires:\t%s\n", expiresText(v.Expires))
	fmt.Fprintf(tw, "source networks:\t%s\n", orAny(v.Src))
	fmt.Fprintf(tw, "connection types:\t%s\n", orAny(v.ConnTypes))
	if v.Server != "" {
		fmt.Fprintf(tw, "server:\t%s\n", v.Server)
	}
	if v.ResponseBytes > 0 {
		fmt.Fprintf(tw, "login response:\t%d bytes of the server's max_payload %d (%.1f%%)\n",
			v.ResponseBytes, v.MaxPayload, 100*float64(v.ResponseBytes)/float64(v.MaxPayload))
	} else {
		fmt.Fprintf(tw, "login response:\t- (no JWT is issued); the server's max_payload is %d\n", v.MaxPayload)
	}
	return tw.Flush()
}

// scopeText says in words what one direction of a merged grant permits, as
// the relay issues it: "nothing", "anything", or the allowed subjects, each
// followed by the denied ones. resp is the response permission, for
// publish.
func scopeText(r accounts.Rule, resp *accounts.ResponsePermission) string {
	var s string
	switch r.Scope() {
	case accounts.ScopeNothing:
		if resp != nil {
			return "nothing but replies to the requests it receives (no role or rule allows a subject)"
		}
		return "nothing (no role or rule allows a subject)"
	case accounts.ScopeAnything:
		s = "anything"
	default:
		s = "only " + strings.Join(r.Allow, ",")
	}
	if len(r.Deny) > 0 {
		s += ", except " + strings.Join(r.Deny, ",")
	}
	return s
}
