package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/store"
)

const hashUsage = `
Usage: authrelay hash <subcommand> [flags]

Subcommands:

  show        print the password hash policy new passwords are hashed with
  set         change the policy (argon2id memory, time, threads)
  calibrate   measure this machine and suggest a policy for a target time

The policy is kept in the database, so every relay and admin command uses
the same one. A user whose stored hash is weaker than the policy (bcrypt
from an imported nats.conf, or older argon2id parameters) is rehashed to it
at their next successful login.

Examples:

  authrelay hash calibrate --target 50ms
  authrelay hash set --memory 65536 --time 2 --threads 1
  authrelay hash show
`

func (m *Main) runHash(ctx context.Context, args []string) error {
	return m.dispatch(ctx, "hash", hashUsage, []subcommand{
		{[]string{"show"}, m.runHashShow},
		{[]string{"set"}, m.runHashSet},
		{[]string{"calibrate"}, m.runHashCalibrate},
	}, args)
}

func (m *Main) runHashShow(ctx context.Context, args []string) error {
	fs := m.newFlagSet("hash show", `
Usage: authrelay hash show [--json]

Prints the hash policy new and rehashed passwords use, and the shortest
password 'user add' and 'user passwd' accept.

Example:

  authrelay hash show
`)
	dir := m.dirFlag(fs)
	asJSON := fs.Bool("json", false, "print a JSON object")
	if err := parseNoArgs(fs, args, "hash show"); err != nil {
		return err
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := db.HashPolicy(ctx)
	if err != nil {
		return err
	}
	minLen, err := db.MinPasswordLen(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(m.Stdout, map[string]any{"scheme": "argon2id", "memory_kib": p.Memory, "time": p.Time, "threads": p.Threads,
			"min_password_length": minLen})
	}
	fmt.Fprintln(m.Stdout, p)
	fmt.Fprintf(m.Stdout, "new passwords: at least %d characters, none of the most used\n", minLen)
	return nil
}

func (m *Main) runHashSet(ctx context.Context, args []string) error {
	fs := m.newFlagSet("hash set", `
Usage: authrelay hash set [--memory KIB] [--time N] [--threads N]
                          [--min-password-length N]

Changes the argon2id policy. Flags not given keep their value. New
passwords use it at once; existing users are rehashed at their next
successful login. Every login costs one hash when its user is not cached,
so measure first with 'authrelay hash calibrate'.

Limits: --memory 7168 to 1048576 KiB (7 MiB to 1 GiB), --time 1 to 10,
--threads 1 to 16, and memory × time from 35840 KiB passes (OWASP's
minimum: 19456 × 2, 12288 × 3, 9216 × 4, 7168 × 5) to 2097152. Every
concurrent login holds the memory: 'serve' refuses to start when
--hash-workers × memory exceeds 4 GiB.

--min-password-length (default 8, as NIST SP 800-63B asks; 1 to 64) is the
shortest password, in characters, 'user add' and 'user passwd' accept from
an admin; they also refuse the most used passwords, runs such as 12345678,
and the user's own name. Passwords already set, generated ones and those
brought in by 'import' are not checked.

Example:

  authrelay hash set --memory 65536 --time 3
`)
	dir := m.dirFlag(fs)
	memory := fs.Uint("memory", 0, "memory per hash in KiB (OWASP: at least 19456)")
	tcost := fs.Uint("time", 0, "passes over the memory (at least 1)")
	threads := fs.Uint("threads", 0, "parallel lanes per hash")
	minLen := fs.Int("min-password-length", store.DefaultMinPasswordLen, "shortest password, in characters, an admin may set (1 to 64)")
	if err := parseNoArgs(fs, args, "hash set"); err != nil {
		return err
	}
	set := setFlags(fs)
	e := store.PolicyEdit{Memory: ifSet(set, "memory", *memory), Time: ifSet(set, "time", *tcost),
		Threads: ifSet(set, "threads", *threads), MinPasswordLen: ifSet(set, "min-password-length", *minLen)}
	if err := e.CheckFlags(); err != nil {
		return policyError(err)
	}
	db, err := m.openStore(ctx, *dir)
	if err != nil {
		return err
	}
	defer db.Close()
	p, hashChange, err := deploy.SetHashPolicy(ctx, db, m.actor(), e)
	if errors.Is(err, store.ErrBadPolicy) {
		return policyError(err)
	} else if err != nil {
		return err
	}
	if hashChange {
		fmt.Fprintf(m.Stdout, "hash policy: %s\nexisting users are rehashed at their next successful login\n", p)
	}
	if set["min-password-length"] {
		fmt.Fprintf(m.Stdout, "new passwords: at least %d characters; passwords already set are not checked again\n", *minLen)
	}
	return nil
}

func (m *Main) runHashCalibrate(ctx context.Context, args []string) error {
	fs := m.newFlagSet("hash calibrate", `
Usage: authrelay hash calibrate [--target DURATION] [--memory KIB] [--threads N]

Measures argon2id on this machine and suggests the time cost that makes one
hash take about --target at the given memory. It changes nothing; apply the
suggestion with 'authrelay hash set'. Keep the target well inside the
server's authorization timeout: a cold login waits for one hash, and a
reconnect storm for many.

Example:

  authrelay hash calibrate --target 50ms --memory 19456
`)
	target := fs.Duration("target", 50*time.Millisecond, "how long one hash should take")
	memory := fs.Uint("memory", 19456, "memory per hash in KiB")
	threads := fs.Uint("threads", 1, "parallel lanes per hash")
	if err := parseNoArgs(fs, args, "hash calibrate"); err != nil {
		return err
	}
	if *target <= 0 || *target > time.Minute {
		return usagef("--target %v: give a duration such as 50ms", *target)
	}
	if *threads < 1 || *threads > store.MaxPolicyThreads || *memory < store.MinPolicyMemory || *memory > store.MaxPolicyMemory {
		return usagef("--memory must be %d..%d KiB (7 MiB to 1 GiB) and --threads 1..%d", store.MinPolicyMemory, store.MaxPolicyMemory, store.MaxPolicyThreads)
	}
	p, took, err := store.Calibrate(*target, uint32(*memory), uint8(*threads))
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "suggested: %s — one hash took %v here (target %v)\n", p, took.Round(100*time.Microsecond), *target)
	fmt.Fprintf(m.Stdout, "apply: authrelay hash set --memory %d --time %d --threads %d\n", p.Memory, p.Time, p.Threads)
	return nil
}

// policyError is a refused hash policy edit, as a usage error.
func policyError(err error) error {
	return &usageError{msg: "hash set: " + strings.TrimPrefix(err.Error(), store.ErrBadPolicy.Error()+": ")}
}
