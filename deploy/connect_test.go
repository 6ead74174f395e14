package deploy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/nats-io/nats-server/v2/server"
)

// initServed initialises a directory listening at a free loopback
// address and runs a stock server from its nats.conf, until the test ends.
func initServed(t *testing.T) (Layout, *server.Server) {
	t.Helper()
	l := Layout{Dir: filepath.Join(t.TempDir(), "data")}
	if err := Init(t.Context(), l, InitOptions{Accounts: []string{"APP"}, Listen: loopback.Addr(t), BcryptCost: testCost}); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(l.Path(ServerConf))
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	return l, ns
}

// TestConnectAdmin: the connection is the system admin's, under the name
// given; a failure names the URL without its password, and the user.
func TestConnectAdmin(t *testing.T) {
	l, _ := initServed(t)
	url, err := l.ClientURL()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := l.ConnectAdmin(url, "authrelay test", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Only the system account answers a server ping; connz names the
	// connection.
	if _, err := nc.Request("$SYS.REQ.SERVER.PING", nil, 2*time.Second); err != nil {
		t.Errorf("ConnectAdmin's connection is not the system admin's: %v", err)
	}
	msg, err := nc.Request("$SYS.REQ.SERVER.PING.CONNZ", []byte(`{"user":"admin"}`), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(msg.Data), `"name":"authrelay test"`) {
		t.Errorf("connz does not list the connection's name: %s", msg.Data)
	}

	closed := "nats://someone:url-secret@" + loopback.Addr(t)
	_, cerr := l.ConnectAdmin(closed, "authrelay test", time.Second)
	if cerr == nil || strings.Contains(cerr.Error(), "url-secret") || !strings.Contains(cerr.Error(), "someone:xxxxx@") || !strings.Contains(cerr.Error(), " as admin") {
		t.Fatalf("ConnectAdmin to a closed port: %v; want the URL with its password replaced, and the user", cerr)
	}
	s, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cerr.Error(), s.AdminPassword) {
		t.Errorf("the error holds the admin's password: %v", cerr)
	}
	if _, err := (Layout{Dir: t.TempDir()}).ConnectAdmin(url, "x", time.Second); err == nil || !strings.Contains(err.Error(), SecretsFile) {
		t.Errorf("ConnectAdmin without secrets.json: %v", err)
	}
}
