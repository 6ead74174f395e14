package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/deploy"
)

// TestSessionsListsWhoIsConnected: two connections of alice and one of
// bob through the relay; 'sessions alice' lists alice's two with account,
// client address and server, not bob's; 'sessions' lists all three users'
// connections; a user with none gets "no connections".
func TestSessionsListsWhoIsConnected(t *testing.T) {
	s := serveEmbedded(t, true)
	s.addUser(t, "alice", "alice-pass-1", "--sub", "x")
	s.addUser(t, "bob", "bob-pass-12", "--sub", "x")
	for _, u := range []struct{ name, pass string }{{"alice", "alice-pass-1"}, {"alice", "alice-pass-1"}, {"bob", "bob-pass-12"}} {
		nc, err := s.connect(u.name, u.pass)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
	}
	r := mustRun(t, "", "sessions", "alice", "--dir", s.dir, "--json")
	var list []deploy.Session
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("sessions --json: %v\n%s", err, r.stdout)
	}
	if len(list) != 2 {
		t.Fatalf("sessions alice = %d connections, want 2:\n%s", len(list), r.stdout)
	}
	for _, c := range list {
		if c.User != "alice" || c.Account != "APP" || !strings.HasPrefix(c.Client, "127.0.0.1:") || c.ServerID == "" || c.Start.IsZero() {
			t.Errorf("session %+v", c)
		}
	}
	r = mustRun(t, "", "sessions", "--dir", s.dir)
	if !strings.Contains(r.stdout, "alice") || !strings.Contains(r.stdout, "bob") || !strings.Contains(r.stdout, "APP") {
		t.Errorf("sessions:\n%s", r.stdout)
	}
	if r := mustRun(t, "", "sessions", "carol", "--dir", s.dir); strings.TrimSpace(r.stdout) != "no connections" {
		t.Errorf("sessions carol: %q", r.stdout)
	}
	if r := run(t, "", "sessions", "a b", "--dir", s.dir); r.code != exitUsage {
		t.Errorf("sessions with a bad name: exit %d", r.code)
	}
}
