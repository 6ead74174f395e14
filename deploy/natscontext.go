package deploy

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
)

// NATSTarget is how a command reaches the NATS servers, with natscli's
// names: a URL (natscli's --server), a nats CLI context, and TLS files.
// Empty fields are not given.
type NATSTarget struct {
	URL, Context  string
	CA, Cert, Key string
}

// NATSContext is the part of a nats CLI context authrelay reads: the
// server URL and the TLS files. Its user and password are never used.
type NATSContext struct {
	URL  string `json:"url"`
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// Resolve returns the server URL and the TLS options of t, in natscli's
// order: t.URL, then $NATS_URL, then the context's URL, then the listen
// address of l's nats.conf (or "" when l is nil, for the caller to
// choose); the TLS files of t, else the context's. getenv reads the
// environment ($NATS_URL, and $XDG_CONFIG_HOME or $HOME to find the
// context). A TLS file that does not exist, half a certificate pair, or a
// context name that is not one matches ErrInvalid.
func (t NATSTarget) Resolve(l *Layout, getenv func(string) string) (string, []nats.Option, error) {
	var c NATSContext
	if t.Context != "" {
		var err error
		if c, err = ReadNATSContext(t.Context, getenv); err != nil {
			return "", nil, err
		}
	}
	url := cmp.Or(t.URL, getenv("NATS_URL"), c.URL)
	if url == "" && l != nil {
		var err error
		if url, err = l.ClientURL(); err != nil {
			return "", nil, fmt.Errorf("%w: give --nats URL", err)
		}
	}
	ca, cert, key := cmp.Or(t.CA, c.CA), cmp.Or(t.Cert, c.Cert), cmp.Or(t.Key, c.Key)
	var opts []nats.Option
	if ca != "" {
		if _, err := os.Stat(ca); err != nil {
			return "", nil, invalidf("--tlsca %q: %v", ca, err)
		}
		opts = append(opts, nats.RootCAs(ca))
	}
	switch {
	case cert != "" && key != "":
		for _, p := range []string{cert, key} {
			if _, err := os.Stat(p); err != nil {
				return "", nil, invalidf("TLS file %q: %v", p, err)
			}
		}
		opts = append(opts, nats.ClientCert(cert, key))
	case cert != "" || key != "":
		return "", nil, invalidf("--tlscert and --tlskey go together: give both")
	}
	return url, opts, nil
}

// NATSContextPath is where the nats CLI keeps the context name:
// $XDG_CONFIG_HOME/nats/context/NAME.json, by default under
// $HOME/.config. A name that is empty or holds a path separator matches
// ErrInvalid.
func NATSContextPath(name string, getenv func(string) string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", invalidf("context %q: give the name of a nats CLI context, as 'nats context ls' lists them", name)
	}
	base := getenv("XDG_CONFIG_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("no $HOME or $XDG_CONFIG_HOME to find nats CLI contexts in")
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "nats", "context", name+".json"), nil
}

// ReadNATSContext reads the nats CLI context name (see NATSContextPath).
// A context that does not exist matches ErrInvalid.
func ReadNATSContext(name string, getenv func(string) string) (NATSContext, error) {
	path, err := NATSContextPath(name, getenv)
	if err != nil {
		return NATSContext{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return NATSContext{}, invalidf("--context %q: no %s: save one with 'nats context save %s --server URL'", name, path, name)
	}
	if err != nil {
		return NATSContext{}, fmt.Errorf("--context %q: %w", name, err)
	}
	var c NATSContext
	if err := json.Unmarshal(b, &c); err != nil {
		return NATSContext{}, fmt.Errorf("--context %q: %s is not a nats CLI context: %v", name, path, err)
	}
	return c, nil
}

// SaveAdminContext writes a nats CLI context for l's system admin at path
// (see NATSContextPath), with the server's client URL and the admin's user
// and password, mode 0600 since it holds that password. It never replaces
// an existing file and leaves no partial one behind.
func (l Layout) SaveAdminContext(path string) error {
	s, err := l.LoadSecrets()
	if err != nil {
		return err
	}
	url, err := l.ClientURL()
	if err != nil {
		return err
	}
	ctx := map[string]string{
		"description": "authrelay system admin of " + l.Dir,
		"url":         url, "user": s.AdminUser, "password": s.AdminPassword,
	}
	if s.Operator != nil {
		// Operator mode: the admin logs in with a user JWT, from a
		// credentials file beside secrets.json, as secret as it.
		creds, err := l.adminCreds(s)
		if err != nil {
			return err
		}
		p, err := filepath.Abs(l.Path(AdminCreds))
		if err != nil {
			return fmt.Errorf("save nats context: %w", err)
		}
		if err := WriteFileAtomic(p, creds, 0o600); err != nil {
			return fmt.Errorf("save nats context: write %s: %w", AdminCreds, err)
		}
		ctx = map[string]string{"description": ctx["description"], "url": url, "creds": p}
	}
	b, err := json.MarshalIndent(ctx, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save nats context: %w", err)
	}
	if err := WriteNewSecret(path, append(b, '\n')); err != nil {
		return fmt.Errorf("save nats context: %w", err)
	}
	return nil
}

// WriteNewSecret writes data to a new file at path, mode 0600; it refuses
// a path that exists, and leaves nothing behind when the write fails.
func WriteNewSecret(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// NewNATSContextPath is NATSContextPath for a context to be made: it
// refuses, wrapping ErrInvalid, a name whose file exists.
func NewNATSContextPath(name string, getenv func(string) string) (string, error) {
	p, err := NATSContextPath(name, getenv)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(p); err == nil {
		return "", invalidf("--nats-context %q: %s exists; choose another name (nothing written)", name, p)
	}
	return p, nil
}
