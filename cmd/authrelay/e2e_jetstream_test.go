package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/loopback"
	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestEndToEndJetStream runs JetStream, KV and MQTT with the real binaries
// on a stock nats-server started unedited from the nats.conf that init
// wrote: a relay-authorised user of an account with --jetstream puts and
// gets a KV value with the nats CLI, within the account's own limits as
// the server reports and enforces them; the same user in an account without
// --jetstream is refused JetStream; an MQTT client publishes into the
// JetStream account and a NATS subscriber there receives it, while an MQTT
// client in the other account is disconnected by the server.
func TestEndToEndJetStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	mqttAddr := loopback.Addr(t)
	e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr, "--mqtt-listen", mqttAddr,
		"--account", "APP", "--account", "OPS").wantCode(t, exitOK)
	// Set before the server starts: it reads accounts.conf at start.
	// MQTT makes five streams of its own in APP, so the stream limit is
	// tried in an account of its own.
	r := e.authrelay(t, "", "account", "set", "APP", "--jetstream",
		"--js-max-memory", "1048576", "--js-max-storage", "67108864", "--js-max-consumers", "50", "--dir", e.dir, "--no-reload")
	r.wantCode(t, exitOK)
	r.wantOutput(t, "jetstream enabled js_max_memory=1048576 js_max_storage=67108864 js_max_consumers=50")
	e.authrelay(t, "", "account", "add", "FEW", "--jetstream", "--js-max-streams", "1", "--dir", e.dir, "--no-reload").wantCode(t, exitOK)
	e.run(t, "", bin.natsServer, "-t", "-c", e.conf).wantCode(t, 0)
	ns := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, ns)
	serve := e.start(t, "authrelay serve", bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url)
	t.Cleanup(func() {
		if code := serve.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("authrelay serve exited %d after SIGTERM", code)
		}
	})
	for _, u := range []struct{ name, account string }{{"kv-user", "APP"}, {"ops-user", "OPS"}, {"few-user", "FEW"}} {
		e.authrelay(t, u.name+"-pass\n", "user", "add", u.name, "--dir", e.dir, "--account", u.account,
			"--password-stdin", "--pub", ">", "--sub", ">").wantCode(t, exitOK)
	}
	e.waitFor(t, 20*time.Second, "the relay to answer logins", func() error {
		serve.mustRun(t)
		nc, err := e.connect("kv-user", "kv-user-pass")
		if err != nil {
			return err
		}
		nc.Close()
		return nil
	})
	as := func(user string, args ...string) e2eResult {
		t.Helper()
		return e.nats(t, append([]string{"--user", user, "--password", user + "-pass"}, args...)...)
	}

	t.Run("kv put and get", func(t *testing.T) {
		as("kv-user", "kv", "add", "CONFIG").wantCode(t, 0)
		as("kv-user", "kv", "put", "CONFIG", "colour", "blue").wantCode(t, 0)
		r := as("kv-user", "kv", "get", "CONFIG", "colour", "--raw")
		r.wantCode(t, 0)
		if got := strings.TrimSpace(r.stdout); got != "blue" {
			t.Errorf("nats kv get CONFIG colour = %q, want \"blue\"\n%s", got, r)
		}
	})

	t.Run("the account's limits hold", func(t *testing.T) {
		// The server's own account info: the limits of accounts.conf,
		// -1 (no limit) for those not given.
		for _, c := range []struct {
			user string
			want [4]int64
		}{{"kv-user", [4]int64{1048576, 67108864, -1, 50}}, {"few-user", [4]int64{-1, -1, 1, -1}}} {
			if got := jsAccountLimits(t, e, c.user); got != c.want {
				t.Errorf("%s: JetStream account limits (memory, storage, streams, consumers) %v, want %v", c.user, got, c.want)
			}
		}
		// One stream is allowed in FEW; a second is refused by the server.
		as("few-user", "kv", "add", "FIRST").wantCode(t, 0)
		r := as("few-user", "kv", "add", "SECOND")
		r.wantFailure(t)
		r.wantOutput(t, "maximum number of streams reached")
	})

	t.Run("no JetStream without --jetstream", func(t *testing.T) {
		// The positive control is kv-user above, with the same grants.
		r := as("ops-user", "kv", "add", "CONFIG")
		t.Logf("nats kv add as ops-user in OPS: exit %d, output %q", r.code, r.output())
		r.wantFailure(t)
		r.wantOutput(t, "jetstream not enabled for account")
	})

	t.Run("mqtt", func(t *testing.T) {
		nc, err := e.connect("kv-user", "kv-user-pass")
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		sub, err := nc.SubscribeSync("sensors.t1")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		c, err := mqttConnect(mqttAddr, "kv-user", "kv-user-pass")
		if err != nil {
			t.Fatalf("MQTT connect as kv-user (APP, JetStream): %v", err)
		}
		defer c.Disconnect(250)
		if tok := c.Publish("sensors/t1", 1, false, "21.5"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("MQTT publish QoS 1 to sensors/t1: done %v, %v", tok.WaitTimeout(0), tok.Error())
		}
		msg, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("NATS subscriber on sensors.t1: %v", err)
		}
		if string(msg.Data) != "21.5" {
			t.Errorf("NATS subscriber got %q, want \"21.5\"", msg.Data)
		}

		// ops-user's login is granted (the same grants as kv-user's),
		// and the server closes the MQTT connection: OPS has no
		// JetStream.
		_, err = mqttConnect(mqttAddr, "ops-user", "ops-user-pass")
		t.Logf("MQTT connect as ops-user (OPS, no JetStream): %v", err)
		if err == nil {
			t.Fatal("MQTT connect as ops-user in OPS (no JetStream) succeeded, want the server to close it")
		}
		// The server's reason, which shows the relay placed the client in
		// OPS (a refused login never reaches MQTT's session streams).
		const why = `"ops-user-client" - unable to connect: lookup sessions stream for account "OPS": JetStream not enabled for account`
		e.waitFor(t, 5*time.Second, "the server's log of the MQTT refusal", func() error {
			if !strings.Contains(ns.stderr.String(), why) {
				return fmt.Errorf("nats-server logged no %q", why)
			}
			return nil
		})
	})
}

// jsAccountLimits returns the JetStream limits the server reports to user
// ($JS.API.INFO): max memory, storage, streams and consumers.
func jsAccountLimits(t *testing.T, e *e2e, user string) [4]int64 {
	t.Helper()
	nc, err := e.connect(user, user+"-pass")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	m, err := nc.Request("$JS.API.INFO", nil, 5*time.Second)
	if err != nil {
		t.Fatalf("$JS.API.INFO as %s: %v", user, err)
	}
	var info struct {
		Limits struct {
			MaxMemory    int64 `json:"max_memory"`
			MaxStorage   int64 `json:"max_storage"`
			MaxStreams   int64 `json:"max_streams"`
			MaxConsumers int64 `json:"max_consumers"`
		} `json:"limits"`
	}
	if err := json.Unmarshal(m.Data, &info); err != nil {
		t.Fatalf("account info %s: %v", m.Data, err)
	}
	l := info.Limits
	return [4]int64{l.MaxMemory, l.MaxStorage, l.MaxStreams, l.MaxConsumers}
}

// mqttConnect connects a real MQTT 3.1.1 client with username and password,
// and returns the error of CONNECT (the server's refusal or its closing the
// connection), or the connected client.
func mqttConnect(addr, user, pass string) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(user + "-client").
		SetUsername(user).SetPassword(pass).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(10 * time.Second).SetCleanSession(true).SetProtocolVersion(4)
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, errors.New("no CONNACK within 15s")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	return c, nil
}
