package deploy

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/authrelay/authrelay/accounts"
)

// TestInitJetStream: the nats.conf init writes names the server and
// enables JetStream with its store under DIR (and MQTT when asked), as the
// server itself reads the file.
func TestInitJetStream(t *testing.T) {
	for _, c := range []struct {
		name       string
		o          InitOptions
		wantName   string
		wantMQTTon bool
	}{
		{"defaults", InitOptions{Listen: "127.0.0.1:4333"}, DefaultServerName("127.0.0.1:4333"), false},
		{"named, with mqtt", InitOptions{Listen: "127.0.0.1:4333", ServerName: "node_1-a", MQTTListen: "127.0.0.1:1883"}, "node_1-a", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := Layout{Dir: filepath.Join(t.TempDir(), "data")}
			c.o.Accounts, c.o.BcryptCost = []string{"APP"}, testCost
			if err := Init(t.Context(), l, c.o); err != nil {
				t.Fatal(err)
			}
			opts, err := server.ProcessConfigFile(l.Path(ServerConf))
			if err != nil {
				t.Fatal(err)
			}
			abs, err := filepath.Abs(l.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if opts.ServerName != c.wantName || !opts.JetStream || opts.StoreDir != abs {
				t.Errorf("server_name %q, jetstream %v, store_dir %q; want %q, true, %q", opts.ServerName, opts.JetStream, opts.StoreDir, c.wantName, abs)
			}
			if on := opts.MQTT.Port != 0; on != c.wantMQTTon || (on && (opts.MQTT.Host != "127.0.0.1" || opts.MQTT.Port != 1883)) {
				t.Errorf("mqtt %s:%d, want it %v", opts.MQTT.Host, opts.MQTT.Port, c.wantMQTTon)
			}
		})
	}
}

// TestDefaultServerName: the default is the host's name and the client
// port, which nats-server takes as a server_name.
func TestDefaultServerName(t *testing.T) {
	a, b := DefaultServerName("127.0.0.1:4222"), DefaultServerName("127.0.0.1:4223")
	if a == b || !strings.HasSuffix(a, "-4222") {
		t.Errorf("DefaultServerName = %q and %q, want distinct names ending in the port", a, b)
	}
	for _, n := range []string{a, b} {
		if err := ValidateServerName(n); err != nil {
			t.Errorf("DefaultServerName %q does not validate: %v", n, err)
		}
	}
	for _, in := range []string{"web.example.com", "my host", "ü-host", "--", ""} {
		if got := sanitiseServerName(in); ValidateServerName(got) != nil {
			t.Errorf("sanitiseServerName(%q) = %q, which does not validate", in, got)
		}
	}
}

// TestInitRefusesBadServerName: a server_name nats-server or JetStream
// would refuse is refused, with nothing written.
func TestInitRefusesBadServerName(t *testing.T) {
	for _, o := range []InitOptions{
		{ServerName: "has space"}, {ServerName: "a.b"}, {ServerName: strings.Repeat("n", 65)},
		{MQTTListen: "1883"},
	} {
		l := Layout{Dir: filepath.Join(t.TempDir(), "data")}
		o.Listen = DefaultListen
		err := Init(t.Context(), l, o)
		if err == nil || !strings.Contains(err.Error(), "--server-name") && !strings.Contains(err.Error(), "--mqtt-listen") {
			t.Errorf("Init(%+v) = %v, want an error naming the flag", o, err)
		}
		if _, err := os.Stat(l.Dir); err == nil {
			t.Errorf("Init(%+v) created %s", o, l.Dir)
		}
	}
}

// TestServerConfConflicts: an operator's second jetstream block, a
// server_name in an included file and an application account defined again
// in nats.conf all pass nats-server's parser in silence (one definition
// wins); ServerConfConflicts names each with its file and line.
func TestServerConfConflicts(t *testing.T) {
	l := initDir(t)
	if got, err := l.ServerConfConflicts([]string{"APP"}); err != nil || len(got) != 0 {
		t.Fatalf("fresh directory: conflicts %q, %v; want none", got, err)
	}
	extra := filepath.Join(l.Dir, "extra.conf")
	if err := os.WriteFile(extra, []byte("# the operator's\nserver_name: other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	editConf(t, l, ServerConf, func(s string) string {
		s = strings.Replace(s, `  include "accounts.conf"`, "  APP: { jetstream: enabled }\n  include \"accounts.conf\"", 1)
		return s + "\njetstream { store_dir: \"/elsewhere\" }\ninclude \"extra.conf\"\n"
	})
	if _, err := server.ProcessConfigFile(l.Path(ServerConf)); err != nil {
		t.Fatalf("nats-server refuses the edited file (the test wants one it takes in silence): %v", err)
	}
	got, err := l.ServerConfConflicts([]string{"APP"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lineOf := func(prefix string, nth int) int {
		for i, s := range lines {
			if strings.HasPrefix(strings.TrimSpace(s), prefix) {
				if nth--; nth == 0 {
					return i + 1
				}
			}
		}
		t.Fatalf("no line %q", prefix)
		return 0
	}
	conf := l.Path(ServerConf)
	want := []string{
		conf + ":" + itoa(lineOf("APP:", 1)) + " defines account APP",
		conf + ":" + itoa(lineOf("jetstream", 2)) + " sets jetstream again (first at " + conf + ":" + itoa(lineOf("jetstream", 1)) + ")",
		extra + ":2 sets server_name again (first at " + conf + ":" + itoa(lineOf("server_name", 1)) + ")",
	}
	if len(got) != len(want) {
		t.Fatalf("conflicts:\n%s\nwant %d", strings.Join(got, "\n"), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("conflict %d = %q, want it to start with %q", i, got[i], want[i])
		}
	}
}

// TestRenderAccountsConfJetStreamLimits: the limits are written with the
// keys nats-server's account parser reads, and only those that are set.
func TestRenderAccountsConfJetStreamLimits(t *testing.T) {
	got := string(RenderAccountsConf([]accounts.Account{
		{Name: "A", JetStream: true},
		{Name: "B", JetStream: true, JetStreamLimits: accounts.JetStreamLimits{MaxMemory: 1024, MaxStorage: 2048, MaxStreams: 3, MaxConsumers: 4}},
		{Name: "C", JetStream: true, JetStreamLimits: accounts.JetStreamLimits{MaxStreams: 1}},
	}))
	for _, want := range []string{
		"A: { jetstream: enabled }\n",
		"B: { jetstream: { max_mem: 1024, max_file: 2048, max_streams: 3, max_consumers: 4 } }\n",
		"C: { jetstream: { max_streams: 1 } }\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("accounts.conf lacks %q:\n%s", want, got)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
