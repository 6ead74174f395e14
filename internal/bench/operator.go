package bench

import (
	"context"
	"fmt"
	"path/filepath"
)

// ScenarioOperator is scenario (f): (d)'s cold and warm phases against a
// directory in operator mode ('authrelay init --operator': account JWTs
// in a full resolver, the default sentinel), in the same run as (d).
const ScenarioOperator = "operator"

// operatorTitle is the report's title of (f)'s phases.
const operatorTitle = "authrelay operator mode"

// runOperator is scenario (f): a directory made with 'init --operator',
// its users hashed as in (d), a nats-server in this process from its
// nats.conf and 'authrelay serve' in a child; each user logs in once
// (cold), then again (warm, with the password verifications the relay
// ran).
func (b *bench) runOperator(ctx context.Context, names []string, password string) error {
	dir := filepath.Join(b.tmp, "operator")
	b.progress("initialising %s (operator mode)", dir)
	if b.cfg.Init != nil {
		if err := b.cfg.Init(ctx, dir, true); err != nil {
			return fmt.Errorf("bench: %w", err)
		}
	} else if err := b.runAuthrelay(ctx, "init", "--operator", "--dir", dir, "--account", Account); err != nil {
		return err
	}
	if _, err := b.addUsers(ctx, dir, names, password); err != nil {
		return err
	}
	srv, err := startBenchServer(filepath.Join(dir, serverConf), 0)
	if err != nil {
		return err
	}
	defer srv.stop()
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	args := append([]string{"serve", "--dir", dir, "--nats", srv.url(), "--http", metricsAddr}, b.cfg.ServeArgs...)
	child, err := b.startRelay(ctx, b.cfg.Authrelay, "authrelay serve (operator mode)", nil, args...)
	if err != nil {
		return err
	}
	defer child.stop()
	if err := child.awaitReady(ctx, srv.url(), probeUser, password); err != nil {
		return err
	}

	title := operatorTitle + ", cold"
	b.progress("(f) %s: %d clients for %v, %d users", title, b.cfg.Clients, b.cfg.Duration, len(names))
	res := b.measure(ctx, child, connectLoad{url: srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: once(names, password), collect: true})
	res.ID, res.Name, res.Title = "f", ScenarioOperator+"-cold", title
	if res.exhausted {
		res.Note = fmt.Sprintf("all %d users had logged in after %.1fs: the phase ended early (give more --users)", len(names), res.Seconds)
	}
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	warm := res.authorised
	if len(warm) == 0 {
		b.rep.Notes = append(b.rep.Notes, "(f) no cold login succeeded: its warm phase was skipped")
		return child.stop()
	}
	title = operatorTitle + ", warm"
	b.progress("(f) %s: %d clients for %v, %d users", title, b.cfg.Clients, b.cfg.Duration, len(warm))
	res, err = b.measureVerified(ctx, child, metricsAddr, connectLoad{url: srv.url(), clients: b.cfg.Clients, duration: b.cfg.Duration,
		creds: cycle(warm, password)})
	if err != nil {
		return err
	}
	res.ID, res.Name, res.Title = "f", ScenarioOperator+"-warm", title
	res.Note = fmt.Sprintf("the %d users of the cold phase, again", len(warm))
	if res.Relay != nil && res.Relay.Verifications != nil {
		res.Note += fmt.Sprintf("; %d password verifications", *res.Relay.Verifications)
	}
	b.rep.Scenarios = append(b.rep.Scenarios, res.Scenario)
	b.recordMemory("(f) operator mode", child, len(names)+2, res.Connects)
	return child.stop()
}
