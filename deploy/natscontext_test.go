package deploy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// envOf is a getenv over a map.
func envOf(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// writeContext writes a nats CLI context file name under home's
// ~/.config/nats/context.
func writeContext(t *testing.T, home, name, body string) string {
	t.Helper()
	dir := filepath.Join(home, ".config", "nats", "context")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestResolveOrder: the URL comes from the target's URL, else $NATS_URL,
// else the context's URL, else the listen address of nats.conf, as
// natscli orders them; the context's TLS files count unless the target
// gives its own; without a layout there is no last resort.
func TestResolveOrder(t *testing.T) {
	l := Layout{Dir: filepath.Join(t.TempDir(), "data")}
	if err := Init(t.Context(), l, InitOptions{Accounts: []string{"APP"}, Listen: "127.0.0.1:4999", BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	ca := filepath.Join(home, "ca.pem")
	if err := os.WriteFile(ca, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeContext(t, home, "prod", `{"url":"nats://ctx.example:4222","ca":"`+ca+`","user":"ignored","password":"ignored"}`)
	env := map[string]string{"HOME": home}
	cases := []struct {
		name    string
		t       NATSTarget
		l       *Layout
		natsURL string
		want    string
		tls     int
	}{
		{"nats.conf", NATSTarget{}, &l, "", "nats://127.0.0.1:4999", 0},
		{"no layout", NATSTarget{}, nil, "", "", 0},
		{"context", NATSTarget{Context: "prod"}, &l, "", "nats://ctx.example:4222", 1},
		{"NATS_URL over the context", NATSTarget{Context: "prod"}, &l, "nats://env:4222", "nats://env:4222", 1},
		{"URL over all", NATSTarget{URL: "nats://flag:4222", Context: "prod"}, &l, "nats://env:4222", "nats://flag:4222", 1},
		{"NATS_URL over nats.conf", NATSTarget{}, &l, "nats://env:4222", "nats://env:4222", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env["NATS_URL"] = c.natsURL
			url, opts, err := c.t.Resolve(c.l, envOf(env))
			if err != nil || url != c.want || len(opts) != c.tls {
				t.Errorf("%q, %d TLS options, %v; want %q, %d", url, len(opts), err, c.want, c.tls)
			}
		})
	}
}

// TestResolveRefuses: each refusal says what is wrong; those about what
// the caller gave match ErrInvalid, a broken context file does not.
func TestResolveRefuses(t *testing.T) {
	home := t.TempDir()
	writeContext(t, home, "broken", `{"url":`)
	cert := filepath.Join(home, "cert.pem")
	if err := os.WriteFile(cert, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"HOME": home})
	noDir := Layout{Dir: filepath.Join(t.TempDir(), "none")}
	cases := []struct {
		name    string
		t       NATSTarget
		l       *Layout
		want    string
		invalid bool
	}{
		{"missing context", NATSTarget{Context: "nope"}, nil, "nats context save nope --server URL", true},
		{"context with a path", NATSTarget{Context: "../prod"}, nil, "give the name of a nats CLI context", true},
		{"broken context", NATSTarget{Context: "broken"}, nil, "is not a nats CLI context", false},
		{"missing CA", NATSTarget{URL: "nats://x:4222", CA: filepath.Join(home, "no-ca.pem")}, nil, "--tlsca", true},
		{"cert without key", NATSTarget{URL: "nats://x:4222", Cert: cert}, nil, "--tlscert and --tlskey go together", true},
		{"key without cert", NATSTarget{URL: "nats://x:4222", Key: cert}, nil, "--tlscert and --tlskey go together", true},
		{"missing key file", NATSTarget{URL: "nats://x:4222", Cert: cert, Key: filepath.Join(home, "no-key.pem")}, nil, "no-key.pem", true},
		{"no nats.conf", NATSTarget{}, &noDir, "give --nats URL", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			url, opts, err := c.t.Resolve(c.l, env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Resolve = %q, %d options, %v; want an error containing %q", url, len(opts), err, c.want)
			}
			if got := errors.Is(err, ErrInvalid); got != c.invalid {
				t.Errorf("errors.Is(%v, ErrInvalid) = %v, want %v", err, got, c.invalid)
			}
		})
	}
}

// TestNATSContextPath follows the nats CLI: $XDG_CONFIG_HOME first, else
// ~/.config; a name is a name, never a path.
func TestNATSContextPath(t *testing.T) {
	cases := []struct {
		env  map[string]string
		name string
		want string
	}{
		{map[string]string{"HOME": "/home/a"}, "prod", "/home/a/.config/nats/context/prod.json"},
		{map[string]string{"HOME": "/home/a", "XDG_CONFIG_HOME": "/xdg"}, "prod", "/xdg/nats/context/prod.json"},
	}
	for _, c := range cases {
		got, err := NATSContextPath(c.name, envOf(c.env))
		if err != nil || got != filepath.FromSlash(c.want) {
			t.Errorf("NATSContextPath(%q) with %v = %q, %v; want %q", c.name, c.env, got, err, c.want)
		}
	}
	for _, name := range []string{"", ".", "..", "a/b", `a\b`, "../etc/passwd"} {
		if p, err := NATSContextPath(name, envOf(map[string]string{"HOME": "/home/a"})); !errors.Is(err, ErrInvalid) {
			t.Errorf("NATSContextPath(%q) = %q, %v; want ErrInvalid", name, p, err)
		}
	}
	if p, err := NATSContextPath("prod", envOf(nil)); err == nil || !strings.Contains(err.Error(), "$HOME") {
		t.Errorf("NATSContextPath without $HOME = %q, %v; want an error naming $HOME", p, err)
	}
}

// TestSaveAdminContext: the saved context is mode 0600, names the
// server's listen address, and logs the system admin in to a real server
// running the directory's nats.conf; it never replaces a file.
func TestSaveAdminContext(t *testing.T) {
	l, _ := initServed(t)
	url, err := l.ClientURL()
	if err != nil {
		t.Fatal(err)
	}
	env := envOf(map[string]string{"HOME": t.TempDir()})
	path, err := NATSContextPath("authrelay-admin", env)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SaveAdminContext(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("context mode %v, want 0600: it holds the admin's password", fi.Mode().Perm())
	}
	c, err := ReadNATSContext("authrelay-admin", env)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != url {
		t.Errorf("context URL %q, want %s", c.URL, url)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var saved struct{ User, Password string }
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(c.URL, nats.UserInfo(saved.User, saved.Password))
	if err != nil {
		t.Fatalf("log in with the saved context: %v", err)
	}
	defer nc.Close()
	// Only the system account answers a server ping.
	if _, err := nc.Request("$SYS.REQ.SERVER.PING", nil, 2*time.Second); err != nil {
		t.Errorf("the saved context's user is not the system admin: %v", err)
	}

	if err := os.WriteFile(path, []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.SaveAdminContext(path); err == nil {
		t.Error("SaveAdminContext replaced an existing file")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "mine\n" {
		t.Errorf("the existing context is now %q, %v", b, err)
	}
}
