package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
)

// credFlags are the flags of user add and set for the credentials beside
// a password: nkeys and TLS client certificate bindings.
type credFlags struct {
	nkeys, subjects, fingerprints stringList
	generate                      bool
	nkeyFile                      string
	clearNkeys, clearTLS          bool
	idp                           string
}

func (c *credFlags) register(fs *flag.FlagSet, set bool) {
	fs.Var(&c.nkeys, "nkey", "a public user nkey (U…) the user logs in with, signing the server's nonce (nats --nkey SEEDFILE); repeatable")
	fs.BoolVar(&c.generate, "generate-nkey", false, "make an nkey for the user: its seed goes to --nkey-file, or is printed once")
	fs.StringVar(&c.nkeyFile, "nkey-file", "", "with --generate-nkey: write the seed to this new file (mode 0600)")
	fs.Var(&c.subjects, "tls-subject", "the subject, in RFC 2253 form ('CN=svc,O=acme'), of a client certificate the user logs in with (tls { verify: true }); repeatable")
	fs.Var(&c.fingerprints, "tls-fingerprint", "the SHA-256, in hex, of the public key of a client certificate the user logs in with; repeatable")
	if !set {
		fs.StringVar(&c.idp, "idp", "", "bind the user to this identity provider ('authrelay idp add'): it logs in with the provider's token whose username claim is NAME")
	}
	if set {
		fs.BoolVar(&c.clearNkeys, "clear-nkeys", false, "remove the user's nkeys (before --nkey adds any)")
		fs.BoolVar(&c.clearTLS, "clear-tls", false, "remove the user's certificate bindings (before --tls-subject and --tls-fingerprint add any)")
	}
}

// edit returns the credentials to add and the kinds to remove, with a
// generated nkey's seed (nil without --generate-nkey).
func (c *credFlags) edit() ([]accounts.StoredCredential, []accounts.CredentialKind, []byte, error) {
	if c.nkeyFile != "" && !c.generate {
		return nil, nil, nil, usagef("--nkey-file goes with --generate-nkey (an nkey given with --nkey has its seed already)")
	}
	add, clear, seed, err := accounts.CredentialEdit{Nkeys: c.nkeys, Subjects: c.subjects, Fingerprints: c.fingerprints,
		GenerateNkey: c.generate, Provider: c.idp, ClearNkeys: c.clearNkeys, ClearTLS: c.clearTLS}.Check()
	if err != nil {
		return nil, nil, nil, &usageError{msg: err.Error()}
	}
	return add, clear, seed, nil
}

// saveSeed writes a generated seed to --nkey-file, a new file of mode
// 0600, before the change that adds its key: if the file cannot be
// written, nothing changes.
func (c *credFlags) saveSeed(seed []byte) error {
	if seed == nil || c.nkeyFile == "" {
		return nil
	}
	if err := deploy.WriteNewSecret(c.nkeyFile, append(seed, '\n')); err != nil {
		return fmt.Errorf("write the nkey seed: %w; nothing changed", err)
	}
	return nil
}

// dropSeed removes the seed file of a change that failed.
func (c *credFlags) dropSeed() {
	if c.generate && c.nkeyFile != "" {
		os.Remove(c.nkeyFile)
	}
}

// handOver tells the admin where a generated seed is, or prints it once,
// alone on its line.
func (m *Main) handOver(c *credFlags, seed []byte) {
	switch {
	case seed == nil:
	case c.nkeyFile != "":
		fmt.Fprintf(m.Stdout, "nkey seed written to %s (mode 0600): connect with nats --nkey %s\n", c.nkeyFile, c.nkeyFile)
	default:
		fmt.Fprintf(m.Stdout, "%s\n", seed)
		fmt.Fprintln(m.Stderr, "the line above is the user's nkey seed, shown only this once: save it to a file (mode 0600) for nats --nkey")
	}
}
