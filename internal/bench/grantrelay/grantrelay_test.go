package grantrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/deploy"
	"github.com/authrelay/authrelay/internal/bench"
)

// The grant relay answers yes to every login, so it must refuse to run
// anywhere but on a directory the bench made, as the bench's child, and
// for a server on loopback. It refuses before it connects anywhere.
func TestRefuses(t *testing.T) {
	dir := t.TempDir()
	loopback := "nats://127.0.0.1:4222"
	for _, tc := range []struct {
		name, token, url string
		want             error
	}{
		{"no token file, no token", "", loopback, ErrNotBench},
		{"no token file", "tok", loopback, ErrNotBench},
	} {
		err := Run(t.Context(), Config{Dir: dir, URL: tc.url, Token: tc.token})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, bench.TokenFile), []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token, url string
		want             error
	}{
		{"no token", "", loopback, ErrNotBench},
		{"the wrong token", "other", loopback, ErrNotBench},
		{"a longer token", "tok2", loopback, ErrNotBench},
		{"a server not on loopback", "tok", "nats://10.1.2.3:4222", ErrNotLoopback},
		{"a host name", "tok", "nats://localhost:4222", ErrNotLoopback},
		{"no host", "tok", "nats://:4222", ErrNotLoopback},
	} {
		err := Run(t.Context(), Config{Dir: dir, URL: tc.url, Token: tc.token})
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Positive control: with the token and a loopback server, it passes
	// both checks and goes on to read the directory's keys (there are none
	// here).
	err := Run(t.Context(), Config{Dir: dir, URL: loopback, Token: "tok"})
	if err == nil || errors.Is(err, ErrNotBench) || errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), "secrets.json") {
		t.Errorf("with the token, on loopback: %v, want it to get as far as reading secrets.json", err)
	}
}

// On a directory the bench made, the grant relay grants any name and
// password, as bench.User(name): the APP account with bench's permissions.
func TestGrantsAnyLogin(t *testing.T) {
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	xkey, err := accounts.NewXKey(keys.XKeySeed)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sec, err := json.Marshal(deploy.Secrets{Keys: keys, RelayUser: "authrelay", RelayPassword: "relay-pw"})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, data string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("secrets.json", string(sec))
	write(bench.TokenFile, "tok")
	write("nats.conf", fmt.Sprintf(`listen: "127.0.0.1:-1"
accounts {
	AUTH { users: [ {user: authrelay, password: relay-pw} ] }
	APP {}
	SYS {}
}
system_account: SYS
authorization {
	auth_callout {
		issuer: %q
		account: AUTH
		auth_users: [ authrelay ]
		xkey: %q
	}
}
`, issuer.PublicKey(), xkey.PublicKey()))
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(5 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Config{Dir: dir, URL: srv.ClientURL(), Token: "tok"}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	var nc *nats.Conn
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err = nats.Connect(srv.ClientURL(), nats.UserInfo("anyone-at-all", "any password"), nats.Timeout(2*time.Second))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("connect as anyone: %v", err)
	}
	defer nc.Close()
	// The grant is bench.User's: it may use bench.> and is in APP.
	sub, err := nc.SubscribeSync("bench.x")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("bench.x", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Errorf("bench.x round trip: %v", err)
	}
	cz, err := srv.Connz(&server.ConnzOptions{Username: true})
	if err != nil {
		t.Fatal(err)
	}
	var acct string
	for _, c := range cz.Conns {
		if c.AuthorizedUser == "anyone-at-all" {
			acct = c.Account
		}
	}
	if acct != bench.Account {
		t.Errorf("granted into account %q, want %q", acct, bench.Account)
	}
}
