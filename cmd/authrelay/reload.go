package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

// reloadWait bounds how long a reload waits for the servers to answer.
const reloadWait = 2 * time.Second

// reloadFlags are the flags of a command that changes accounts.conf and then
// has the servers reload it.
type reloadFlags struct {
	nats natsFlags
	skip bool
}

func (f *reloadFlags) register(fs *flag.FlagSet) {
	f.nats.register(fs, "server to reload accounts.conf through")
	fs.BoolVar(&f.skip, "no-reload", false, "only write accounts.conf; reload later with 'authrelay reload'")
}

// errReloadFailed means a server answered a reload request with an error.
var errReloadFailed = errors.New("a server refused to reload")

// reload has the servers of DIR reload their configuration after a change
// to accounts.conf, and says what happened: each server reloaded, or none
// reachable (the change applies when the server starts, or at 'authrelay
// reload'). It returns an error only when a server answered and refused,
// which means its configuration is broken.
func (m *Main) reload(ctx context.Context, w io.Writer, l deploy.Layout, f reloadFlags) error {
	if f.skip {
		fmt.Fprintf(w, "not reloaded (--no-reload): apply it with 'authrelay reload --dir %s'\n", l.Dir)
		return nil
	}
	res, url, err := m.reloadServers(ctx, l, f.nats)
	if err != nil {
		fmt.Fprintf(m.Stderr, "authrelay: warning: %s is written, but no server was reloaded: %v; the server reads it when it starts, or run 'authrelay reload --dir %s' once it runs\n", l.AccountsFile(), err, l.Dir)
		return nil
	}
	return m.reportReload(w, res, url)
}

// reloadServers reloads every server reachable through f (default:
// DIR/nats.conf's listen address); see deploy.Layout.ReloadAt.
func (m *Main) reloadServers(ctx context.Context, l deploy.Layout, f natsFlags) ([]deploy.Reloaded, string, error) {
	url, tls, err := f.resolve(m, &l)
	if err != nil {
		return nil, "", err
	}
	res, err := l.ReloadAt(ctx, url, reloadWait, tls...)
	if errors.Is(err, deploy.ErrManagedByNsc) {
		fmt.Fprintf(m.Stdout, "nothing pushed: %v\n", err)
		return nil, url, nil
	}
	return res, url, err
}

// reportReload prints each server's answer: reloads to w, refusals to
// standard error.
func (m *Main) reportReload(w io.Writer, res []deploy.Reloaded, url string) error {
	failed := 0
	for _, r := range res {
		if r.Err != nil {
			failed++
			fmt.Fprintf(m.Stderr, "authrelay: nats-server %s did not reload: %s\n", r.Label(), accounts.ClientText(r.Err.Error()))
			continue
		}
		fmt.Fprintf(w, "%s nats-server %s through %s\n", r.Done(), r.Label(), accounts.RedactURL(url))
	}
	if failed > 0 {
		return fmt.Errorf("%w: %d of %d servers kept their old configuration; fix it (authrelay doctor --offline) and run 'authrelay reload'", errReloadFailed, failed, len(res))
	}
	return nil
}

func (m *Main) runReload(ctx context.Context, args []string) error {
	fs := m.newFlagSet("reload", `
Usage: authrelay reload [--nats URL | --context NAME] [--tlsca FILE] [--tlscert FILE --tlskey FILE]

Has every nats-server of the deployment reload its configuration (nats.conf
and the accounts.conf it includes), as 'account add|set|rm' do after their
change: it connects as the system account's admin from secrets.json and
sends each server $SYS.REQ.SERVER.<id>.RELOAD (nats-server 2.10 or later),
with --embedded too. It reaches only the servers of that cluster, never
another nats-server on the host. Exit status 1 when no server answered or
one refused (its configuration is wrong: 'authrelay doctor --offline').

Examples:

  authrelay reload
  authrelay reload --nats nats://10.0.0.5:4222
`)
	dir := m.dirFlag(fs)
	var nf natsFlags
	nf.register(fs, "server to reach the cluster through")
	if err := parseNoArgs(fs, args, "reload"); err != nil {
		return err
	}
	l := deploy.Layout{Dir: *dir}
	if !l.Initialised() {
		return deploy.NotInitialised(*dir)
	}
	res, u, err := m.reloadServers(ctx, l, nf)
	if err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	return m.reportReload(m.Stdout, res, u)
}
