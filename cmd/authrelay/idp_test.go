package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/internal/oidctest"
)

// TestIdpCommandsRefuseBadInput: idp add refuses what a provider cannot
// be, with a usage error saying what to give, and adds nothing.
func TestIdpCommandsRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--audience", "nats"}, "issuer"},
		{[]string{"--issuer", "https://login.example.com"}, "audience"},
		{[]string{"--issuer", "http://login.example.com", "--audience", "nats"}, "https"},
		{[]string{"--issuer", "https://login.example.com", "--audience", "nats", "--create-users"}, "account"},
		{[]string{"--issuer", "https://login.example.com", "--audience", "nats", "--role-map", "admins"}, "VALUE=ROLE"},
		{[]string{"--issuer", "https://login.example.com", "--audience", "nats", "--roles-claim", "groups"}, "role map"},
	} {
		r := run(t, "", append([]string{"idp", "add", "corp", "--dir", dir}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("idp add %v: exit %d, %q; want exit %d naming %q", c.args, r.code, r.stderr, exitUsage, c.want)
		}
	}
	if r := mustRun(t, "", "idp", "list", "--json", "--dir", dir); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("after refused adds, idp list --json = %s, want []", r.stdout)
	}
	if r := run(t, "", "user", "add", "alice", "--idp", "nope", "--dir", dir); r.code != exitFailure || !strings.Contains(r.stderr, "idp add") {
		t.Errorf("user add --idp of no provider: exit %d, %q; want exit 1 saying to 'idp add' it", r.code, r.stderr)
	}
	if r := run(t, "", "idp", "rm", "nope", "--dir", dir); r.code != exitFailure || !strings.Contains(r.stderr, "not found") {
		t.Errorf("idp rm of no provider: exit %d, %q", r.code, r.stderr)
	}
}

// TestIdpLoginThroughTheProgram is the README's commands end to end, in
// the real program with its embedded server: idp add for zitadel/oidc's
// provider on 127.0.0.1, user add --idp, a client-credentials access
// token as the NATS token logs in, idp show lists the user, and idp rm
// closes the connection within a second and refuses the next login.
func TestIdpLoginThroughTheProgram(t *testing.T) {
	s := serveEmbedded(t, true)
	o := oidctest.Start(t)
	mustRun(t, "", "idp", "add", "corp", "--dir", s.dir, "--issuer", o.Issuer, "--audience", oidctest.Audience)
	mustRun(t, "", "user", "add", oidctest.ServiceSubject, "--idp", "corp", "--pub", "svc.>", "--sub", "svc.>", "--sub", "_INBOX.>", "--dir", s.dir)
	closed := make(chan struct{})
	token := o.AccessToken()
	// The running serve learns of the provider within a second.
	var nc *nats.Conn
	var err error
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if nc, err = s.connect("", "", nats.Token(token), nats.ClosedHandler(func(*nats.Conn) { close(closed) })); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("access token as the NATS token, 2s after idp add: %v", err)
	}
	defer nc.Close()
	if err := nc.Publish("svc.hello", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	var shown struct {
		Users []string `json:"users"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "", "idp", "show", "corp", "--json", "--dir", s.dir).stdout), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown.Users) != 1 || shown.Users[0] != oidctest.ServiceSubject {
		t.Errorf("idp show corp: users %v, want [%s]", shown.Users, oidctest.ServiceSubject)
	}
	mustRun(t, "", "idp", "rm", "corp", "--dir", s.dir)
	select {
	case <-closed:
	case <-time.After(1500 * time.Millisecond):
		t.Fatal("the connection made with the removed provider's token is still open")
	}
	if again, err := s.connect("", "", nats.Token(o.AccessToken())); err == nil {
		again.Close()
		t.Fatal("a removed provider's token logged in")
	}
}
