package relay

// These tests measure what nats-server (the version in go.mod) does with
// limits on users it authorised through auth callout in config mode. They
// assert the measured behaviour, so a server upgrade that changes it fails
// here first; the README and --help repeat these facts.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
)

// startTestResponder answers auth callout requests in place of the relay:
// it puts every client into APP with the claims the Issuer builds, shaped
// by mutate, so a test can see what the server does with claims the relay
// never issues.
func (h *harness) startTestResponder(t *testing.T, mutate func(*jwt.UserClaims)) {
	t.Helper()
	nc := h.mustConnect(t, "auth", "auth-pw").nc
	_, err := nc.Subscribe(Subject, func(m *nats.Msg) {
		serverXKey, sealed := m.Header.Get(XKeyHeader), len(m.Header.Values(XKeyHeader)) > 0
		rc, err := decodeRequest(h.xkey, m.Data, sealed, serverXKey, time.Now(), DefaultMaxClockSkew)
		if err != nil {
			t.Errorf("test responder: %v", err)
			return
		}
		// Everything, explicitly: a grant with no allow would be closed.
		all := accounts.Rule{Allow: []string{accounts.AllSubjects}}
		g := accounts.Grant{Name: rc.ConnectOptions.Username, Account: "APP", Permissions: accounts.Permissions{Pub: all, Sub: all}}
		uc, err := h.issuer.UserClaims(g, rc.UserNkey, time.Now(), 0)
		if err != nil {
			t.Errorf("test responder: %v", err)
			return
		}
		mutate(uc)
		token, err := h.issuer.IssueUserJWT(uc)
		if err != nil {
			t.Errorf("test responder: %v", err)
			return
		}
		resp, err := h.issuer.Respond(rc.Server.ID, rc.UserNkey, token, "")
		if err != nil {
			t.Errorf("test responder: %v", err)
			return
		}
		out := []byte(resp)
		if sealed {
			if out, err = h.xkey.Seal(out, serverXKey); err != nil {
				t.Errorf("test responder: %v", err)
				return
			}
		}
		if err := m.Respond(out); err != nil {
			t.Errorf("test responder: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// subscribeTwice subscribes c to two subjects and returns how many
// subscriptions the server holds for it afterwards.
func subscribeTwice(t *testing.T, h *harness, c *client) uint32 {
	t.Helper()
	for _, subj := range []string{"app.one", "app.two"} {
		if _, err := c.nc.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return h.connInfo(t, c.nc).NumSubs
}

// bigPayload is larger than the 16-byte payload limits below.
var bigPayload = bytes.Repeat([]byte("p"), 100)

// TestServerIgnoresPerUserLimitsForCalloutUsers: a callout user JWT's
// limits (subs, payload, src) have no effect. nats-server drops the JWT
// after reading permissions and connection types from it
// (buildInternalNkeyUser) and applies only account and server limits.
func TestServerIgnoresPerUserLimitsForCalloutUsers(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, e)
			h.startTestResponder(t, func(uc *jwt.UserClaims) {
				uc.Limits.Subs = 1
				uc.Limits.Payload = 16
				uc.Limits.Src = jwt.CIDRList{"10.0.0.0/8"}
			})
			// Src 10.0.0.0/8 does not stop a client from 127.0.0.1.
			c := h.mustConnect(t, "limited", "limited-pw-1a1a")

			if n := subscribeTwice(t, h, c); n != 2 {
				t.Errorf("server holds %d subscriptions, want 2: the user jwt's subs limit of 1 is now enforced", n)
			}
			sub, err := c.nc.SubscribeSync("app.big")
			if err != nil {
				t.Fatal(err)
			}
			if err := c.nc.Publish("app.big", bigPayload); err != nil {
				t.Fatal(err)
			}
			if m, err := sub.NextMsg(3 * time.Second); err != nil || len(m.Data) != len(bigPayload) {
				t.Errorf("100-byte publish: %v; want it delivered: the user jwt's payload limit of 16 is now enforced", err)
			}
			select {
			case err := <-c.errs:
				t.Errorf("async error %v, want none", err)
			default:
			}
			if !c.nc.IsConnected() {
				t.Error("connection closed")
			}
		})
	}
}

// TestServerEnforcesAllowedConnectionTypesForCalloutUsers: unlike the
// limits, allowed_connection_types in a callout user JWT is enforced: a TCP
// client whose JWT allows only WEBSOCKET is refused by the server itself.
func TestServerEnforcesAllowedConnectionTypesForCalloutUsers(t *testing.T) {
	h := newHarness(t, envs()[0])
	h.startTestResponder(t, func(uc *jwt.UserClaims) {
		uc.AllowedConnectionTypes = jwt.StringList{jwt.ConnectionTypeWebsocket}
	})
	reasons := h.authErrors(t)
	if c, err := h.connect(t, "wsonly", "wsonly-pw-2b2b"); !errors.Is(err, nats.ErrAuthorization) {
		if err == nil {
			c.nc.Close()
		}
		t.Fatalf("connect: %v, want Authorization Violation", err)
	}
	// The server's own reason names the callout account, not the target.
	if got, want := recv(t, reasons), `Authorized user on account "AUTH" not allowed to use connection type`; got != want {
		t.Errorf("auth error reason = %q, want %q", got, want)
	}
}

// TestServerEnforcesAccountLimitsForCalloutUsers: the limits block of the
// account a callout user is placed in is enforced, through the relay, the
// same as for static users.
func TestServerEnforcesAccountLimitsForCalloutUsers(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessConf(t, e, serverConf{app: `limits: { max_subs: 1, max_payload: 16, max_connections: 2 }`})
			h.startRelay(nil)
			reasons := h.authErrors(t)

			t.Run("max_subs", func(t *testing.T) {
				c := h.mustConnect(t, "alice", "alice-pw-7f3a")
				if n := subscribeTwice(t, h, c); n != 1 {
					t.Errorf("server holds %d subscriptions, want 1", n)
				}
				c.waitErr(t, nats.ErrMaxSubscriptionsExceeded, "")
				if !c.nc.IsConnected() {
					t.Error("connection closed; want it kept with one subscription")
				}
				c.nc.Close()
			})

			t.Run("max_payload", func(t *testing.T) {
				// The server announces the account's max_payload in an INFO
				// sent after the PONG that ends the login: once it has
				// arrived (a flush later), nats.go refuses the publish itself.
				c := h.mustConnect(t, "alice", "alice-pw-7f3a")
				if err := c.nc.Flush(); err != nil {
					t.Fatal(err)
				}
				if got := c.nc.MaxPayload(); got != 16 {
					t.Errorf("client sees max payload %d, want 16", got)
				}
				if err := c.nc.Publish("app.big", bigPayload); !errors.Is(err, nats.ErrMaxPayload) {
					t.Errorf("publish: %v, want nats.ErrMaxPayload", err)
				}
				c.nc.Close()
				// A client that ignores the INFO is refused by the server,
				// which closes the connection.
				got := rawSession(t, h, "alice", "alice-pw-7f3a", "PUB app.big 100\r\n"+string(bigPayload)+"\r\nPING\r\n")
				if !strings.Contains(got, "-ERR 'Maximum Payload Violation'") || !strings.HasSuffix(got, "EOF") {
					t.Errorf("server answered %q; want Maximum Payload Violation and the connection closed", got)
				}
			})

			t.Run("max_connections", func(t *testing.T) {
				// The relay allows the third connect; the server refuses it
				// when it binds the user to the account, tells the client
				// why, and reports it as an auth error too.
				app, err := h.srv.LookupAccount("APP")
				if err != nil {
					t.Fatal(err)
				}
				waitFor(t, func() bool { return app.NumConnections() == 0 }, "earlier connections gone")
				h.mustConnect(t, "alice", "alice-pw-7f3a")
				h.mustConnect(t, "alice", "alice-pw-7f3a")
				if c, err := h.connect(t, "alice", "alice-pw-7f3a"); !errors.Is(err, nats.ErrMaxAccountConnectionsExceeded) {
					if err == nil {
						c.nc.Close()
					}
					t.Fatalf("third connect: %v, want nats.ErrMaxAccountConnectionsExceeded", err)
				}
				if got, want := recv(t, reasons), "Could not register auth callout user: maximum account active connections exceeded"; got != want {
					t.Errorf("auth error reason = %q, want %q", got, want)
				}
			})
		})
	}
}

// rawSession logs in over a bare TCP connection, sends proto and returns
// everything the server sends after the login, ending in "EOF" when the
// server closed the connection (or "timeout").
func rawSession(t *testing.T, h *harness, user, password, proto string) string {
	t.Helper()
	conn, err := net.Dial("tcp", h.srv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	connect, err := json.Marshal(map[string]any{"user": user, "pass": password, "verbose": false, "protocol": 1})
	if err != nil {
		t.Fatal(err)
	}
	h.users.remember(password)
	if _, err := fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		if strings.HasPrefix(line, "-ERR") {
			t.Fatalf("login: %s", line)
		}
		if strings.HasPrefix(line, "PONG") {
			break
		}
	}
	if _, err := io.WriteString(conn, proto); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	for {
		line, err := r.ReadString('\n')
		if strings.HasPrefix(line, "INFO ") {
			continue
		}
		out.WriteString(line)
		switch {
		case errors.Is(err, io.EOF):
			return out.String() + "EOF"
		case errors.Is(err, os.ErrDeadlineExceeded):
			return out.String() + "timeout"
		case err != nil:
			t.Fatal(err)
		}
	}
}

// TestServerReloadReconnectsCalloutUsers: in config mode every config
// reload, even one that changes nothing, closes every connection that auth
// callout authorised (the server finds no static user of that name and
// treats it as moved to another account); the clients reconnect and are
// authorised again. Static users keep their connections. Account limits
// changed by the reload therefore reach the callout users' connections at
// once, as do changes to their permissions in the store.
func TestServerReloadReconnectsCalloutUsers(t *testing.T) {
	h := newHarness(t, envs()[0])
	h.startRelay(nil)
	callout := h.mustConnect(t, "alice", "alice-pw-7f3a")
	static := h.mustConnect(t, "probe", "probe-pw")
	cid := func(c *client) uint64 {
		id, err := c.nc.GetClientID()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	staticCID := cid(static)
	if n := subscribeTwice(t, h, callout); n != 2 {
		t.Fatalf("no limit yet: %d subscriptions, want 2", n)
	}

	step := func(what string, sc serverConf, wantSubs uint32) {
		t.Helper()
		was := cid(callout)
		h.reload(t, sc)
		recv(t, callout.reconnected)
		if err := callout.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if now := cid(callout); now == was {
			t.Errorf("%s: callout connection kept cid %d; want it closed and reconnected", what, now)
		}
		if n := h.connInfo(t, callout.nc).NumSubs; n != wantSubs {
			t.Errorf("%s: reconnected client holds %d subscriptions, want %d", what, n, wantSubs)
		}
		if n := subscribeTwice(t, h, h.mustConnect(t, "alice", "alice-pw-7f3a")); n != wantSubs {
			t.Errorf("%s: new connection holds %d subscriptions, want %d", what, n, wantSubs)
		}
		if now := cid(static); now != staticCID {
			t.Errorf("%s: static user's connection went from cid %d to %d; want it kept", what, staticCID, now)
		}
	}
	step("reload with nothing changed", serverConf{}, 2)
	step("reload adding max_subs 1", serverConf{app: `limits: { max_subs: 1 }`}, 1)
	step("reload removing the limit", serverConf{}, 2)
}
