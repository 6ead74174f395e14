package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/authrelay/authrelay/deploy"
)

// TestServeRefusesForeignCallout: 'serve --embedded' refuses a nats.conf
// whose auth_callout does not delegate logins to this relay, with the very
// message doctor fails the same config with: both call
// deploy.CheckCallout.
func TestServeRefusesForeignCallout(t *testing.T) {
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	other, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(string) string
		want string
	}{
		{"issuer of another relay", func(s string) string { return doctorReplaceLine(s, "issuer:", "    issuer: "+other) },
			"auth_callout.issuer " + other + " does not match the relay's issuer key"},
		{"callout account not set", func(s string) string { return doctorReplaceLine(s, "account: AUTH", "") },
			"auth_callout.account is not set, so login requests go to the global account"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := doctorInit(t, "127.0.0.1:4222")
			doctorEdit(t, dir, deploy.ServerConf, c.edit)
			r := runFor(t, 10*time.Second, "serve", "--embedded", "--dir", dir, "--listen", "127.0.0.1:0")
			if r.code != exitFailure || !strings.Contains(r.stderr, c.want) {
				t.Errorf("serve: exit %d, want %d with %q:\n%s", r.code, exitFailure, c.want, r.stderr)
			}
			d, got := doctorJSON(t, "--dir", dir, "--offline")
			if d != exitFailure {
				t.Errorf("doctor: exit %d, want %d", d, exitFailure)
			}
			for _, res := range got {
				if res.Status == "fail" && strings.Contains(r.stderr, res.Message) {
					return
				}
			}
			t.Errorf("serve's refusal %q is none of doctor's failures:\n%s", r.stderr, doctorDump(got))
		})
	}
}
