package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/doctor"
	"github.com/authrelay/authrelay/relay"
)

const doctorUsage = `
Usage: authrelay doctor [--dir DIR] [--config FILE] [--nats URL | --offline] [--json]

Checks a deployment end to end and says what is wrong in NATS terms, and
what to do about it. It reads DIR (secrets.json, the user database) and the
server config, then talks to the server:

  files    secrets.json readable by its owner only; DIR not world-writable;
           the database opens and its schema is current; users and roles
           that grant a direction entirely (an allow of '>')
  config   the server config parses; auth_callout names the relay's issuer
           and xkey; the callout account is dedicated and holds only the
           relay's user; allowed_accounts keeps the admin on static auth;
           system_account is set; authorization.timeout leaves the relay
           time to answer
  network  the server answers at the URL; the relay's user and the system
           admin log in; the server's version, the clock skew between it and
           this host; whether a relay answers logins at all; each identity
           provider reachable

Each check prints one line: "ok", "warn" (a risk worth fixing; it does not
fail the run) or "FAIL", the check's name, and what was found or what to do.
Exit status: 0 when no check fails, 1 when any does.

The server config is DIR/nats.conf unless --config names the file the server
runs. The URL is the config's listen address unless --nats gives one; doctor
talks to it, and to each identity provider (its discovery document and keys,
the "identity provider" check). To see whether a relay is answering,
doctor logs in once with a random username and password: a relay denies that
at once, a server with no relay refuses it only after authorization.timeout.
The attempt shows in the relay's log as one denied login (user
authrelay-doctor-<random>) from this host, and counts towards that address's
lockout like any wrong password.

With --json the output is an array of {"check", "status", "message"}
objects, status being "ok", "warn" or "fail".

Examples:

  authrelay doctor --dir ./data
  authrelay doctor --dir ./data --offline          # files and config only, before starting nats-server
  authrelay doctor --dir /var/lib/authrelay --config /etc/nats/nats.conf --nats nats://10.0.0.5:4222
  authrelay doctor --dir ./data --json | jq '.[] | select(.status != "ok")'
`

// doctorResult is one line of doctor's report, as --json prints it.
type doctorResult struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func (m *Main) runDoctor(ctx context.Context, args []string) error {
	fs := m.newFlagSet("doctor", doctorUsage)
	dir := m.dirFlag(fs)
	confPath := fs.String("config", "", "the server config nats-server runs (default DIR/nats.conf)")
	var nf natsFlags
	nf.register(fs, "URL of the server to check")
	offline := fs.Bool("offline", false, "check files and config only; do not connect to the server")
	asJSON := fs.Bool("json", false, "print the results as a JSON array")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("doctor takes no arguments, got %q", pos)
	}
	if *offline && (nf.url != "" || nf.context != "") {
		return usagef("--offline and --nats or --context exclude each other: --offline makes no connection")
	}
	l := deploy.Layout{Dir: *dir}
	// Without --nats, $NATS_URL or a context, doctor takes the listen
	// address of the config it checks (--config), not only DIR's.
	url, tls, err := nf.resolve(m, nil)
	if err != nil {
		return err
	}
	cfg := doctor.LayoutConfig(l)
	cfg.URL, cfg.NATSOptions, cfg.Offline, cfg.Now = url, tls, *offline, m.Now
	cfg.DecisionTimeout, cfg.SkewWarn, cfg.MaxSkew = relay.DefaultDecisionTimeout, relay.SkewWarnThreshold, relay.DefaultMaxClockSkew
	if *confPath != "" {
		cfg.ConfigPath = *confPath
	}
	results := doctor.Run(ctx, cfg)

	if *asJSON {
		out := make([]doctorResult, len(results))
		for i, r := range results {
			out[i] = doctorResult{Check: r.Check, Status: string(r.Status), Message: r.Message}
		}
		// As every --json: subjects as they are, never \u003e.
		if err := writeJSON(m.Stdout, out); err != nil {
			return fmt.Errorf("doctor: encode results: %w", err)
		}
	} else {
		for _, r := range results {
			fmt.Fprintf(m.Stdout, "%-4s  %-16s  %s\n", doctorStatusText(r.Status), r.Check, r.Message)
		}
	}
	failed := doctor.Failed(results)
	if len(failed) > 0 {
		return fmt.Errorf("doctor: %s failed: %s", accounts.Plural(len(failed), "check"), strings.Join(failed, ", "))
	}
	return nil
}

// doctorStatusText is a status as the text output prints it: a failure
// in capitals, to stand out.
func doctorStatusText(s doctor.Status) string {
	if s == doctor.Fail {
		return "FAIL"
	}
	return string(s)
}
