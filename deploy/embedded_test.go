package deploy

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/loopback"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// lockedBuffer is a bytes.Buffer safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStartEmbedded: the server runs the directory's nats.conf on the
// address asked, after the check saw the parsed config, takes no signals,
// logs through the logger, and the admin login of secrets.json works on
// it with no relay running (static auth outside the callout).
func TestStartEmbedded(t *testing.T) {
	l := initDir(t)
	s, err := l.LoadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	// What the check saw, copied: the server updates the options it runs.
	var checkedHost string
	checkedPort, checkedCallout := 0, false
	ns, opts, err := StartEmbedded(l, EmbeddedOptions{
		Listen: "127.0.0.1:0",
		Check: func(o *server.Options) error {
			checkedHost, checkedPort, checkedCallout = o.Host, o.Port, o.AuthCallout != nil
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	if !checkedCallout || checkedHost != "127.0.0.1" || checkedPort != server.RANDOM_PORT {
		t.Errorf("check saw %s:%d (auth_callout %v), want nats.conf's auth_callout on 127.0.0.1, any port", checkedHost, checkedPort, checkedCallout)
	}
	if !opts.NoSigs {
		t.Error("embedded server takes signals: it would act on the process's SIGHUP itself")
	}
	addr := ns.Addr().(*net.TCPAddr)
	if addr.Port == 4222 || addr.Port <= 0 {
		t.Errorf("server listens on port %d, want a free one", addr.Port)
	}

	nc, err := nats.Connect(ns.ClientURL(), nats.UserInfo(s.AdminUser, s.AdminPassword), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("admin login on the embedded server: %v", err)
	}
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "Server is ready") {
		t.Errorf("the server's log did not reach the logger:\n%s", logs.String())
	}
}

// TestStartEmbeddedRefuses: a config the check refuses, a start without a
// check, a bad listen address and a config the server cannot read never
// run a server.
func TestStartEmbeddedRefuses(t *testing.T) {
	l := initDir(t)
	port := loopback.Port(t)
	listen := "127.0.0.1:" + strconv.Itoa(port)
	refused := errors.New("auth_callout.issuer is not the relay's")

	ns, _, err := StartEmbedded(l, EmbeddedOptions{Listen: listen, Check: func(*server.Options) error { return refused }})
	if !errors.Is(err, refused) || !strings.HasPrefix(err.Error(), l.Path(ServerConf)+": ") || ns != nil {
		t.Errorf("check refuses: %v, %v; want the check's error after the file's path and no server", ns, err)
	}
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Errorf("something listens on %s after a refused start", listen)
	}

	ns, _, err = StartEmbedded(l, EmbeddedOptions{Listen: listen})
	if err == nil || ns != nil {
		t.Errorf("no check: %v, %v; want a refusal", ns, err)
	}

	ns, _, err = StartEmbedded(l, EmbeddedOptions{Listen: "127.0.0.1", Check: func(*server.Options) error { return nil }})
	if !errors.Is(err, ErrInvalid) || ns != nil {
		t.Errorf("listen without a port: %v, %v; want ErrInvalid", ns, err)
	}

	editConf(t, l, ServerConf, func(s string) string { return s + "\nlisten: {{{\n" })
	ns, _, err = StartEmbedded(l, EmbeddedOptions{Listen: listen, Check: func(*server.Options) error { return nil }})
	if err == nil || !strings.HasPrefix(err.Error(), "load "+l.Path(ServerConf)+": ") || ns != nil {
		t.Errorf("broken nats.conf: %v, %v; want a load error naming the file", ns, err)
	}
}

// TestStartEmbeddedPortInUse: a port another process listens on fails the
// start at once, with the server's reason, not after the ready timeout.
func TestStartEmbeddedPortInUse(t *testing.T) {
	l := initDir(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	start := time.Now()
	ns, _, err := StartEmbedded(l, EmbeddedOptions{Listen: taken.Addr().String(), Check: func(*server.Options) error { return nil }})
	if err == nil {
		ns.Shutdown()
		t.Fatal("StartEmbedded on a port in use succeeded")
	}
	if took := time.Since(start); took > embeddedReady/2 {
		t.Errorf("StartEmbedded took %v to fail, want at once", took)
	}
	if !strings.Contains(err.Error(), "address already in use") || !strings.Contains(err.Error(), "--listen") {
		t.Errorf("err = %v, want the server's reason and what to do", err)
	}
	if _, err := os.Stat(l.Path(EmbeddedConf)); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", EmbeddedConf, err)
	}
}
