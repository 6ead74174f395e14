package main

import (
	"flag"

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

// resolve returns the server URL and the TLS options the flags give
// (deploy.NATSTarget.Resolve), with DIR/nats.conf's listen address as the
// last resort unless l is nil.
func (f natsFlags) resolve(m *Main, l *deploy.Layout) (string, []nats.Option, error) {
	t := deploy.NATSTarget{URL: f.url, Context: f.context, CA: f.tlsCA, Cert: f.tlsCert, Key: f.tlsKey}
	return t.Resolve(l, m.Getenv)
}
