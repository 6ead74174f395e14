package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/deploy"
)

// natsFlags are how a command reaches the NATS servers, with natscli's
// names: --nats (natscli's --server), --context and the TLS files.
type natsFlags struct {
	url, context           string
	tlsCA, tlsCert, tlsKey string
}

func (f *natsFlags) register(fs *flag.FlagSet, what string) {
	fs.StringVar(&f.url, "nats", "", what+" (default: $NATS_URL, else the --context's URL, else the listen address of DIR/nats.conf)")
	fs.StringVar(&f.context, "context", "", "a nats CLI context (~/.config/nats/context/NAME.json) to take the server URL and TLS files from; its user and password are not used")
	fs.StringVar(&f.tlsCA, "tlsca", "", "CA certificate file to verify the server's TLS certificate with")
	fs.StringVar(&f.tlsCert, "tlscert", "", "client TLS certificate file, for a server that asks for one")
	fs.StringVar(&f.tlsKey, "tlskey", "", "private key file of --tlscert")
}

// natsContext is the part of a nats CLI context authrelay reads.
type natsContext struct {
	URL  string `json:"url"`
	CA   string `json:"ca"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// resolve returns the server URL and the TLS options, in natscli's order:
// --nats, then $NATS_URL, then the context's URL, then DIR/nats.conf's
// listen address (or "" when l is nil, for the caller to choose); the TLS
// flags, else the context's files.
func (f natsFlags) resolve(m *Main, l *deploy.Layout) (string, []nats.Option, error) {
	var ctx natsContext
	if f.context != "" {
		var err error
		if ctx, err = m.readNatsContext(f.context); err != nil {
			return "", nil, err
		}
	}
	url := cmp.Or(f.url, m.Getenv("NATS_URL"), ctx.URL)
	if url == "" && l != nil {
		var err error
		if url, err = l.ClientURL(); err != nil {
			return "", nil, fmt.Errorf("%w: give --nats URL", err)
		}
	}
	ca, cert, key := cmp.Or(f.tlsCA, ctx.CA), cmp.Or(f.tlsCert, ctx.Cert), cmp.Or(f.tlsKey, ctx.Key)
	var opts []nats.Option
	if ca != "" {
		if _, err := os.Stat(ca); err != nil {
			return "", nil, usagef("--tlsca %q: %v", ca, err)
		}
		opts = append(opts, nats.RootCAs(ca))
	}
	switch {
	case cert != "" && key != "":
		for _, p := range []string{cert, key} {
			if _, err := os.Stat(p); err != nil {
				return "", nil, usagef("TLS file %q: %v", p, err)
			}
		}
		opts = append(opts, nats.ClientCert(cert, key))
	case cert != "" || key != "":
		return "", nil, usagef("--tlscert and --tlskey go together: give both")
	}
	return url, opts, nil
}

// natsContextPath is where the nats CLI keeps the context name:
// $XDG_CONFIG_HOME/nats/context (default ~/.config/nats/context).
func (m *Main) natsContextPath(name string) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
		return "", usagef("context %q: give the name of a nats CLI context, as 'nats context ls' lists them", name)
	}
	base := m.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		home := m.Getenv("HOME")
		if home == "" {
			return "", errors.New("no $HOME or $XDG_CONFIG_HOME to find nats CLI contexts in")
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "nats", "context", name+".json"), nil
}

// readNatsContext reads the nats CLI context name.
func (m *Main) readNatsContext(name string) (natsContext, error) {
	path, err := m.natsContextPath(name)
	if err != nil {
		return natsContext{}, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return natsContext{}, usagef("--context %q: no %s: save one with 'nats context save %s --server URL'", name, path, name)
	}
	if err != nil {
		return natsContext{}, fmt.Errorf("--context %q: %w", name, err)
	}
	var c natsContext
	if err := json.Unmarshal(b, &c); err != nil {
		return natsContext{}, fmt.Errorf("--context %q: %s is not a nats CLI context: %v", name, path, err)
	}
	return c, nil
}
