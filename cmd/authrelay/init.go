package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
)

const initUsage = `
Usage: authrelay init [--dir DIR] [--account NAME]... [--listen HOST:PORT]

Creates an authrelay directory: the SQLite user database, secrets.json
(mode 0600: the issuer and xkey seeds, the relay's NATS password and the
system account's admin password) and nats.conf, a complete config that a
stock nats-server runs unedited, with accounts.conf for the application
accounts. init never overwrites an existing directory's keys.

Examples:

  authrelay init --dir ./data
  authrelay init --dir /var/lib/authrelay --account ORDERS --account BILLING --listen 0.0.0.0:4222
`

func (m *Main) runInit(ctx context.Context, args []string) error {
	fs := m.newFlagSet("init", initUsage)
	dir := m.dirFlag(fs)
	var accts stringList
	fs.Var(&accts, "account", "application account to create (repeatable; default APP)")
	listen := fs.String("listen", defaultListen, "client listen address written into nats.conf")
	if err := parseNoArgs(fs, args, "init"); err != nil {
		return err
	}
	if len(accts) == 0 {
		accts = stringList{"APP"}
	}
	l := Layout{Dir: *dir}
	if err := initDir(ctx, l, accts, *listen, m.bcryptCost()); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "initialised %s\n", *dir)
	fmt.Fprintf(m.Stdout, "  %-14s users (SQLite)\n", databaseFile)
	fmt.Fprintf(m.Stdout, "  %-14s seeds and passwords (mode 0600: keep it secret)\n", secretsFile)
	fmt.Fprintf(m.Stdout, "  %-14s server config: nats-server -c %s\n", serverConf, l.Path(serverConf))
	fmt.Fprintf(m.Stdout, "  %-14s application accounts: %v\n", accountsConf, []string(accts))
	fmt.Fprintf(m.Stdout, "next: authrelay serve --dir %s --nats nats://%s\n", *dir, *listen)
	return nil
}

// initDir creates the directory's files. It refuses to touch a directory
// that already holds any of them, and removes what it wrote if a step fails.
func initDir(ctx context.Context, l Layout, accts []string, listen string, cost int) (err error) {
	if err := validateListen(listen, false); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range accts {
		if err := accounts.ValidateAccount(a); err != nil {
			return &usageError{msg: err.Error()}
		}
		if a == authAccount || a == systemAccount {
			return usagef("account %q is reserved for authrelay's own use: pick another name", a)
		}
		if seen[a] {
			return usagef("account %q given twice", a)
		}
		seen[a] = true
	}
	for _, name := range []string{secretsFile, serverConf, accountsConf, databaseFile} {
		if _, err := os.Stat(l.Path(name)); err == nil {
			return fmt.Errorf("%s already holds %s: init never overwrites an existing directory's keys or users; use another --dir, or remove the directory to start over", l.Dir, name)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("init: create directory: %w", err)
	}
	var written []string
	defer func() {
		if err != nil {
			for _, p := range written {
				os.Remove(p)
			}
		}
	}()

	s, err := newSecrets()
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	conf, err := renderServerConf(s, listen, l.Path(serverConf), cost)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}

	dbPath := l.Path(databaseFile)
	written = append(written, dbPath, dbPath+"-wal", dbPath+"-shm")
	db, err := store.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	db.ReservedAccounts = func() ([]string, error) { return []string{authAccount, systemAccount}, nil } // those of conf
	for _, a := range accts {
		if err := db.AddAccount(ctx, a); err != nil {
			db.Close()
			return fmt.Errorf("init: %w", err)
		}
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("init: close database: %w", err)
	}

	b, err := marshalSecrets(s)
	if err != nil {
		return fmt.Errorf("init: %w", err)
	}
	files := []struct {
		name string
		data []byte
		perm os.FileMode
	}{
		{secretsFile, b, 0o600},
		{accountsConf, renderAccountsConf(appAccounts(accts)), 0o644},
		{serverConf, conf, 0o644},
	}
	for _, f := range files {
		p := l.Path(f.name)
		written = append(written, p)
		if err := writeFileAtomic(p, f.data, f.perm); err != nil {
			return fmt.Errorf("init: write %s: %w", f.name, err)
		}
	}
	return nil
}

// appAccounts turns account names into accounts without limits.
func appAccounts(names []string) []accounts.Account {
	out := make([]accounts.Account, len(names))
	for i, n := range names {
		out[i] = accounts.Account{Name: n}
	}
	return out
}

// validateListen checks a HOST:PORT listen address. Port 0, meaning any free
// port, is allowed only where anyPort is set.
func validateListen(listen string, anyPort bool) error {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return usagef("--listen %q: want HOST:PORT, such as 127.0.0.1:4222", listen)
	}
	if host == "" {
		return usagef("--listen %q: give a host, such as 127.0.0.1 or 0.0.0.0", listen)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 || (n == 0 && !anyPort) {
		return usagef("--listen %q: port must be a number from 1 to 65535", listen)
	}
	return nil
}
