package relay

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/nats.go"
)

// leastPrivilegeConf is a server with a websocket listener, and MQTT with
// the JetStream it needs in the application account.
func leastPrivilegeConf(t *testing.T) serverConf {
	t.Helper()
	return serverConf{
		extra: wsConf + fmt.Sprintf(`
jetstream { store_dir: %q, max_memory_store: 64MB, max_file_store: 64MB }
mqtt { listen: "127.0.0.1:-1" }
`, t.TempDir()),
		app: "jetstream: enabled",
	}
}

// Users of the least-privilege tests; their passwords are the names with
// "-pw-3a7c" appended.
func putLeastPrivilegeUsers(h *harness) {
	rules := func(pub, sub []string) accounts.Permissions {
		return accounts.Permissions{Pub: accounts.Rule{Allow: pub}, Sub: accounts.Rule{Allow: sub}}
	}
	// The README's dashboard: a role that only reads.
	h.users.putRole(accounts.Role{Name: "reader", Permissions: accounts.Permissions{
		Sub: accounts.Rule{Allow: []string{"metrics.>"}, Deny: []string{"metrics.secret.>"}},
	}})
	h.users.put("reader-pw-3a7c", accounts.User{Name: "reader", Account: "APP", Roles: []string{"reader"}})
	h.users.put("writer-pw-3a7c", accounts.User{Name: "writer", Account: "APP", Permissions: rules([]string{"metrics.>"}, nil)})
	h.users.put("all-pw-3a7c", accounts.User{Name: "all", Account: "APP", Permissions: rules([]string{">"}, []string{">"})})
	// A service that only subscribes and answers requests.
	svc := rules(nil, []string{"svc.>"})
	svc.Resp = &accounts.ResponsePermission{}
	h.users.put("svc-pw-3a7c", accounts.User{Name: "svc", Account: "APP", Permissions: svc})
	h.users.put("req-pw-3a7c", accounts.User{Name: "req", Account: "APP", Permissions: rules([]string{"svc.>"}, []string{"_INBOX.>"})})
	// Only denies: nothing is allowed, so nothing is granted.
	// Subscribes at QoS 0 only: a deny of $MQTT.> catches nats-server's
	// internal subjects for QoS 1 and 2.
	h.users.put("mqttdeny-pw-3a7c", accounts.User{Name: "mqttdeny", Account: "APP", Permissions: accounts.Permissions{
		Sub: accounts.Rule{Allow: []string{"metrics.>"}, Deny: []string{"$MQTT.>"}},
	}})
	h.users.put("denier-pw-3a7c", accounts.User{Name: "denier", Account: "APP", Permissions: accounts.Permissions{
		Pub: accounts.Rule{Deny: []string{"secret.>"}}, Sub: accounts.Rule{Deny: []string{"secret.>"}},
	}})
}

// mustNotPublish publishes to subj as c and waits for the server's
// Permissions Violation.
func mustNotPublish(t *testing.T, c *client, subj string) {
	t.Helper()
	if err := c.nc.Publish(subj, []byte("forged")); err != nil {
		t.Fatal(err)
	}
	c.waitErr(t, nats.ErrPermissionViolation, `Publish to "`+subj+`"`)
}

// mustNotSubscribe subscribes to subj as c and waits for the server's
// Permissions Violation.
func mustNotSubscribe(t *testing.T, c *client, subj string) {
	t.Helper()
	sub, err := c.nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	c.waitErr(t, nats.ErrPermissionViolation, `Subscription to "`+subj+`"`)
}

// mustReceive subscribes to subj as sub, publishes to it as pub and checks
// that the message arrives.
func mustReceive(t *testing.T, sub, pub *client, subj string) {
	t.Helper()
	s, err := sub.nc.SubscribeSync(subj)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Unsubscribe()
	if err := sub.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := pub.nc.Publish(subj, []byte("real")); err != nil {
		t.Fatal(err)
	}
	if err := pub.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := s.NextMsg(3 * time.Second)
	if err != nil {
		t.Fatalf("%q published by one user, subscribed by another: %v", subj, err)
	}
	if string(m.Data) != "real" {
		t.Fatalf("%q: got %q, want the control message", subj, m.Data)
	}
}

// TestLeastPrivilege: after roles and the user's own rules are merged, a
// direction (publish, subscribe) with no allow permits nothing, through the
// real server, over NATS, WebSocket and MQTT.
func TestLeastPrivilege(t *testing.T) {
	for _, e := range envs() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			testLeastPrivilege(t, e)
		})
	}
}

func testLeastPrivilege(t *testing.T, e env) {
	h := newHarnessConf(t, e, leastPrivilegeConf(t))
	putLeastPrivilegeUsers(h)
	h.startRelay(nil)
	connect := func(t *testing.T, url, name string) *client {
		t.Helper()
		return h.mustConnectURL(t, url, name, name+"-pw-3a7c")
	}
	tcp, ws := h.srv.ClientURL(), h.srv.WebsocketURL()

	t.Run("a user with only subscribe rules cannot publish", func(t *testing.T) {
		reader, writer, all := connect(t, tcp, "reader"), connect(t, tcp, "writer"), connect(t, tcp, "all")
		for _, subj := range []string{"svc.billing.cancel", "metrics.x", "$JS.API.INFO", "_INBOX.x"} {
			mustNotPublish(t, reader, subj)
		}
		// Its subscribe grant works, and a user granted '>' publishes.
		mustReceive(t, reader, writer, "metrics.cpu")
		mustReceive(t, all, all, "svc.billing.cancel")
		mustNotSubscribe(t, reader, "metrics.secret.x")
	})

	t.Run("a user with only publish rules cannot subscribe", func(t *testing.T) {
		reader, writer, all := connect(t, tcp, "reader"), connect(t, tcp, "writer"), connect(t, tcp, "all")
		for _, subj := range []string{"metrics.cpu", ">", "_INBOX.>", "$JS.API.>"} {
			mustNotSubscribe(t, writer, subj)
		}
		mustReceive(t, reader, writer, "metrics.cpu")
		mustReceive(t, all, all, "anything.at.all")
		mustNotPublish(t, writer, "svc.billing.cancel")
	})

	t.Run("only denies grant nothing", func(t *testing.T) {
		denier := connect(t, tcp, "denier")
		mustNotPublish(t, denier, "public.x")
		mustNotSubscribe(t, denier, "public.x")
	})

	t.Run("a subscribe-only service answers requests with --allow-responses", func(t *testing.T) {
		svc, req := connect(t, tcp, "svc"), connect(t, tcp, "req")
		s, err := svc.nc.Subscribe("svc.echo", func(m *nats.Msg) {
			if err := m.Respond(append([]byte("echo: "), m.Data...)); err != nil {
				t.Errorf("respond: %v", err)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Unsubscribe()
		if err := svc.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			m, err := req.nc.Request("svc.echo", []byte(strconv.Itoa(i)), 3*time.Second)
			if err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
			if got, want := string(m.Data), "echo: "+strconv.Itoa(i); got != want {
				t.Errorf("reply %q, want %q", got, want)
			}
		}
		// Beyond replies its publish direction is closed.
		mustNotPublish(t, svc, "svc.echo")
		mustNotPublish(t, svc, "_INBOX.unasked")
	})

	t.Run("websocket", func(t *testing.T) {
		reader, writer, all := connect(t, ws, "reader"), connect(t, ws, "writer"), connect(t, tcp, "all")
		if ci := h.connInfo(t, reader.nc); ci.Type != "websocket" {
			t.Fatalf("reader's connection type %q, want websocket", ci.Type)
		}
		mustNotPublish(t, reader, "svc.billing.cancel")
		mustNotSubscribe(t, writer, "metrics.cpu")
		mustReceive(t, reader, writer, "metrics.cpu")
		mustReceive(t, all, connect(t, ws, "all"), "svc.billing.cancel")
	})

	t.Run("mqtt", func(t *testing.T) {
		v, err := h.srv.Varz(nil)
		if err != nil {
			t.Fatal(err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(v.MQTT.Port))
		clients := 0
		dial := func(t *testing.T, name string) *mqttClient {
			t.Helper()
			// A client id of its own: a second connection with an id in
			// use takes the session over and closes the first.
			clients++
			c, rc := mqttDial(t, addr, fmt.Sprintf("lp-%s-%s-%d", e.name, name, clients), name, name+"-pw-3a7c")
			if rc != 0 {
				t.Fatalf("mqtt login as %s: CONNACK return code %d, want 0", name, rc)
			}
			return c
		}
		watcher := connect(t, tcp, "all")
		forgedSub, err := watcher.nc.SubscribeSync("svc.billing.cancel")
		if err != nil {
			t.Fatal(err)
		}
		if err := watcher.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		mreader, mwriter, mall := dial(t, "reader"), dial(t, "writer"), dial(t, "all")

		// The reader subscribes at QoS 1, which nats-server serves from a
		// JetStream consumer delivering on $MQTT.sub.<id>: that internal
		// subject needs no grant, and is not caught by the closed publish.
		if got := mreader.subscribe("metrics/+", 1); got != 1 {
			t.Fatalf("reader's QoS 1 subscription to metrics/+: SUBACK %#x, want 1", got)
		}
		if got := mreader.subscribe("svc/#", 0); got != mqttSubFailure {
			t.Errorf("reader's subscription to svc/#: SUBACK %#x, want %#x (refused)", got, mqttSubFailure)
		}
		if got := mwriter.subscribe("metrics/#", 1); got != mqttSubFailure {
			t.Errorf("writer's subscription to metrics/#: SUBACK %#x, want %#x (refused)", got, mqttSubFailure)
		}
		mwriter.publish("metrics/cpu", "from mqtt writer")
		m, err := mreader.next(5 * time.Second)
		if err != nil {
			t.Fatalf("reader over mqtt, writer over mqtt: %v", err)
		}
		if m.topic != "metrics/cpu" || m.payload != "from mqtt writer" || m.qos != 1 {
			t.Errorf("reader got %+v, want metrics/cpu at QoS 1 from the writer", m)
		}

		// QoS 2 both ways: the exchange runs on $MQTT.deliver.pubrel.<id>
		// and JetStream, none of which needs a grant.
		mreader2 := dial(t, "reader")
		if got := mreader2.subscribe("metrics/q2", 2); got != 2 {
			t.Fatalf("reader's QoS 2 subscription to metrics/q2: SUBACK %#x, want 2", got)
		}
		mwriter.publish2("metrics/q2", "qos 2")
		if m, err := mreader2.next(5 * time.Second); err != nil || m.payload != "qos 2" || m.qos != 2 {
			t.Fatalf("reader's QoS 2 message: %+v, %v", m, err)
		}
		mreader2.await(mqttPubRel)

		// '#' also matches the parent topic: metrics/# needs metrics as
		// well as metrics.>, which the reader lacks.
		if got := mreader.subscribe("metrics/#", 1); got != mqttSubFailure {
			t.Errorf("reader's subscription to metrics/#: SUBACK %#x, want %#x (metrics itself is not granted)", got, mqttSubFailure)
		}
		mdeny := dial(t, "mqttdeny")
		if got := mdeny.subscribe("metrics/cpu", 0); got != 0 {
			t.Errorf("mqttdeny's QoS 0 subscription: SUBACK %#x, want 0", got)
		}
		if got := mdeny.subscribe("metrics/mem", 1); got != mqttSubFailure {
			t.Errorf("mqttdeny's QoS 1 subscription: SUBACK %#x, want %#x: its deny of $MQTT.> should catch $MQTT.sub.", got, mqttSubFailure)
		}

		// The reader's publish is dropped (nats-server still acknowledges
		// it); the next message on the subject is the control's.
		mreader.publish("svc/billing/cancel", "forged")
		mreader.publish2("svc/billing/cancel", "forged at QoS 2")
		mreader.ping()
		mall.publish("svc/billing/cancel", "real")
		got, err := forgedSub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("control publish over mqtt: %v", err)
		}
		if string(got.Data) != "real" {
			t.Errorf("the first message on svc.billing.cancel is %q: the reader, who may only subscribe, published over MQTT", got.Data)
		}
	})
}
