package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/deploy"
)

// TestReloadSaysWhatHappened: with the embedded server running, 'reload'
// reloads it and names it; with nats.conf broken, the server answers with
// its reason and reload exits 1; with no server reachable, account add
// still makes its change, exits 0 and warns that nothing was reloaded.
func TestReloadSaysWhatHappened(t *testing.T) {
	s := serveEmbedded(t, true)
	// serve --embedded --listen 127.0.0.1:0 took a port of its own: reload
	// finds it without --nats, and the server's reload keeps it.
	r := mustRun(t, "", "reload", "--dir", s.dir)
	if !strings.Contains(r.stdout, "reloaded nats-server") || !strings.Contains(r.stdout, s.url) {
		t.Errorf("reload: stdout %q, want it to name %s", r.stdout, s.url)
	}
	r = mustRun(t, "", "reload", "--dir", s.dir, "--nats", s.url)
	if !strings.Contains(r.stdout, "reloaded nats-server") {
		t.Errorf("reload --nats: stdout %q", r.stdout)
	}

	conf := filepath.Join(s.dir, deploy.ServerConf)
	good, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, append(append([]byte{}, good...), "\nthis is { not a config\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "reload", "--dir", s.dir, "--nats", s.url)
	if r.code != exitFailure || !strings.Contains(r.stderr, "did not reload") || !strings.Contains(r.stderr, "kept their old configuration") {
		t.Errorf("reload of a broken nats.conf: exit %d, stderr %q; want exit 1 with the server's refusal", r.code, r.stderr)
	}
	if err := os.WriteFile(conf, good, 0o644); err != nil {
		t.Fatal(err)
	}
	// The server kept its configuration and still answers logins.
	s.addUser(t, "alice", "alice-pass-1", "--sub", "x")
	nc, err := s.connect("alice", "alice-pass-1")
	if err != nil {
		t.Fatalf("login after the refused reload: %v", err)
	}
	nc.Close()

	// embedded.conf lives only while serve runs.
	// (It goes just after the server has shut down.)
	s.stop()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := os.Stat(filepath.Join(s.dir, deploy.EmbeddedConf))
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s 5s after serve stopped: %v, want it removed", deploy.EmbeddedConf, err)
			break
		}
	}

	// Nothing listens on the port of this directory's nats.conf (the
	// embedded server took another): the change is made, with a warning.
	other := t.TempDir()
	mustRun(t, "", "init", "--dir", other, "--listen", "127.0.0.1:1")
	r = mustRun(t, "", "account", "add", "ORDERS", "--dir", other)
	if !strings.Contains(r.stderr, "warning") || !strings.Contains(r.stderr, "no server was reloaded") || !strings.Contains(r.stderr, "authrelay reload") {
		t.Errorf("account add with no server: stderr %q", r.stderr)
	}
	if r := mustRun(t, "", "account", "list", "--dir", other); !strings.Contains(r.stdout, "ORDERS") {
		t.Errorf("account add with no server did not add ORDERS:\n%s", r.stdout)
	}
	if r := run(t, "", "reload", "--dir", other); r.code != exitFailure || !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Errorf("reload with no server: exit %d, stderr %q; want exit 1 naming the URL", r.code, r.stderr)
	}
}
