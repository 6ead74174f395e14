package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authrelay/authrelay/accounts"
)

// TestAccountJetStreamLimitsCommands: the --js-max-* flags of account
// add|set are stored, shown by account list (text and JSON) and written
// into accounts.conf; a limit without JetStream is refused with what to
// do, with nothing changed; --jetstream=false removes the limits with it.
func TestAccountJetStreamLimitsCommands(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	list := func() []accounts.Account {
		t.Helper()
		var got []accounts.Account
		if err := json.Unmarshal([]byte(mustRun(t, "", "account", "list", "--json", "--dir", dir).stdout), &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	accountsConf := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "accounts.conf"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	// Refused without JetStream, in add and in set.
	for _, args := range [][]string{
		{"account", "add", "IOT", "--js-max-streams", "5"},
		{"account", "set", "APP", "--js-max-storage", "1024"},
	} {
		r := run(t, "", append(args, "--dir", dir, "--no-reload")...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "is a JetStream limit, and JetStream is not enabled in the account: add --jetstream") {
			t.Errorf("authrelay %s: exit %d, stderr %q; want %d and what to do", strings.Join(args, " "), r.code, r.stderr, exitUsage)
		}
	}
	if got := list(); len(got) != 1 || got[0].JetStream || !got[0].JetStreamLimits.IsZero() {
		t.Fatalf("after the refusals: %+v, want APP unchanged", got)
	}

	r := mustRun(t, "", "account", "add", "IOT", "--jetstream", "--js-max-memory", "1048576", "--js-max-storage", "1073741824",
		"--js-max-streams", "20", "--js-max-consumers", "100", "--dir", dir, "--no-reload")
	t.Logf("account add IOT: %s", r.stdout)
	mustRun(t, "", "account", "set", "IOT", "--js-max-streams", "0", "--js-max-consumers", "200", "--dir", dir, "--no-reload")
	want := accounts.JetStreamLimits{MaxMemory: 1048576, MaxStorage: 1073741824, MaxConsumers: 200}
	if got := list(); len(got) != 2 || got[1].Name != "IOT" || !got[1].JetStream || got[1].JetStreamLimits != want {
		t.Errorf("account list --json: %+v, want IOT with JetStream and %+v", got, want)
	}
	var raw bytes.Buffer
	if err := json.Compact(&raw, []byte(mustRun(t, "", "account", "list", "--json", "--dir", dir).stdout)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw.String(), `"jetstream":true,"jetstream_limits":{"max_memory":1048576,"max_storage":1073741824,"max_consumers":200}`) {
		t.Errorf("account list --json: %s, want IOT's jetstream_limits object", raw.String())
	}
	if text := mustRun(t, "", "account", "list", "--dir", dir).stdout; !strings.Contains(text, "enabled js_max_memory=1048576 js_max_storage=1073741824 js_max_consumers=200") {
		t.Errorf("account list:\n%s\nwant IOT's JetStream limits", text)
	}
	if c := accountsConf(); !strings.Contains(c, "IOT: { jetstream: { max_mem: 1048576, max_file: 1073741824, max_consumers: 200 } }\n") {
		t.Errorf("accounts.conf:\n%s\nwant IOT's jetstream block", c)
	}

	// Off removes the limits; on again starts with none.
	mustRun(t, "", "account", "set", "IOT", "--jetstream=false", "--dir", dir, "--no-reload")
	mustRun(t, "", "account", "set", "IOT", "--jetstream", "--dir", dir, "--no-reload")
	if got := list(); !got[1].JetStream || !got[1].JetStreamLimits.IsZero() {
		t.Errorf("after --jetstream=false and --jetstream: %+v, want JetStream without limits", got[1])
	}
	if c := accountsConf(); !strings.Contains(c, "IOT: { jetstream: enabled }\n") {
		t.Errorf("accounts.conf:\n%s\nwant 'IOT: { jetstream: enabled }'", c)
	}
}

// TestAccountJetStreamRefusedByNATSConf: account set --jetstream refuses,
// with nothing changed, a nats.conf that would not give the account
// JetStream: one from before init wrote a jetstream block (the message
// says what to add), one where the operator defines the account again
// (file and line), and one that does not parse (the server's file:line).
func TestAccountJetStreamRefusedByNATSConf(t *testing.T) {
	for _, c := range []struct {
		name string
		edit func(string) string
		want []string
	}{{
		name: "no jetstream block",
		edit: func(s string) string {
			i := strings.Index(s, "\njetstream {")
			j := i + 1 + strings.Index(s[i+1:], "}\n")
			return s[:i] + s[j+1:]
		},
		want: []string{"nats.conf has JetStream off, so the account would have none: add server_name: ", "and jetstream { store_dir: ", "README: Upgrading"},
	}, {
		name: "the account again in nats.conf",
		edit: func(s string) string {
			return strings.Replace(s, `  include "accounts.conf"`, "  APP: { jetstream: enabled }\n  include \"accounts.conf\"", 1)
		},
		want: []string{"nats.conf:", "defines account APP, which authrelay defines in accounts.conf", "authrelay account set APP"},
	}, {
		name: "a line the server cannot parse",
		edit: func(s string) string { return s + "\njetstream {\n" },
		want: []string{"JetStream needs a server config that loads", "nats.conf: Parse error on line "},
	}} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			mustRun(t, "", "init", "--dir", dir, "--account", "APP")
			conf := filepath.Join(dir, "nats.conf")
			b, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte(c.edit(string(b))), 0o644); err != nil {
				t.Fatal(err)
			}
			r := run(t, "", "account", "set", "APP", "--jetstream", "--dir", dir, "--no-reload")
			t.Logf("account set APP --jetstream: exit %d, %s", r.code, r.stderr)
			if r.code == exitOK {
				t.Fatal("account set APP --jetstream succeeded")
			}
			for _, w := range append(c.want, "nothing changed") {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if out := mustRun(t, "", "account", "list", "--dir", dir).stdout; !strings.Contains(out, "APP   0      -") {
				t.Errorf("account list after the refusal:\n%s\nwant APP without JetStream", out)
			}
		})
	}
}
