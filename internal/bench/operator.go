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
	s, err := b.serve(ctx, dir, "authrelay serve (operator mode)", password)
	if err != nil {
		return err
	}
	defer s.stop()
	if _, _, err := b.coldWarm(ctx, s, "f", ScenarioOperator, operatorTitle+", cold", operatorTitle+", warm", names, password); err != nil {
		return err
	}
	var logins int64
	for _, sc := range b.rep.Scenarios {
		if sc.ID == "f" {
			logins += sc.Connects
		}
	}
	b.recordMemory("(f) operator mode", s.child, len(names)+2, logins)
	return s.stop()
}
