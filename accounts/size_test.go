package accounts

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

// TestResponseSize checks ResponseSize against the response the relay
// really sends (UserClaims, IssueUserJWT, Respond, Seal with real keys):
// the same size sealed, a little more than unsealed, for grants small and
// large.
func TestResponseSize(t *testing.T) {
	keys, err := GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	relayX, err := NewXKey(keys.XKeySeed)
	if err != nil {
		t.Fatal(err)
	}
	serverX, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	serverXPub, err := serverX.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, n := range []int{0, 1, 100, 2500} {
		var subjects []string
		for i := range n {
			subjects = append(subjects, fmt.Sprintf("orders.region-%04d.%s.>", i, strings.Repeat("x", 60)))
		}
		g := Grant{Name: "alice", Account: "APP", Permissions: Permissions{Pub: Rule{Allow: subjects}, Sub: Rule{Allow: []string{"_INBOX.>"}}}}
		got, err := issuer.ResponseSize(g, now)
		if err != nil {
			t.Fatal(err)
		}
		userKey, serverID := publicKey(t, nkeys.CreateUser), publicKey(t, nkeys.CreateServer)
		uc, err := issuer.UserClaims(g, userKey, now, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		token, err := issuer.IssueUserJWT(uc)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := issuer.Respond(serverID, userKey, token, "")
		if err != nil {
			t.Fatal(err)
		}
		sealed, err := relayX.Seal([]byte(resp), serverXPub)
		if err != nil {
			t.Fatal(err)
		}
		if got != len(sealed) {
			t.Errorf("%d subjects: ResponseSize = %d, the sealed response is %d bytes", n, got, len(sealed))
		}
		if got < len(resp) {
			t.Errorf("%d subjects: ResponseSize = %d, below the unsealed response's %d bytes", n, got, len(resp))
		}
		// Without a session TTL the JWT has no expiry: smaller still.
		uc0, err := issuer.UserClaims(g, userKey, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		token0, err := issuer.IssueUserJWT(uc0)
		if err != nil {
			t.Fatal(err)
		}
		resp0, err := issuer.Respond(serverID, userKey, token0, "")
		if err != nil {
			t.Fatal(err)
		}
		if got < len(resp0)+SealOverhead {
			t.Errorf("%d subjects: ResponseSize = %d, below the sealed response without expiry (%d)", n, got, len(resp0)+SealOverhead)
		}

		size, err := issuer.CheckResponseSize("alice", g, now, got)
		if err != nil || size != got {
			t.Errorf("CheckResponseSize at the limit: %d, %v; want %d, nil", size, err, got)
		}
		_, err = issuer.CheckResponseSize("alice", g, now, got-1)
		var tl *ResponseTooLargeError
		if !errors.As(err, &tl) || tl.Size != got || tl.Limit != got-1 || tl.User != "alice" {
			t.Errorf("CheckResponseSize one byte over: %v, want a ResponseTooLargeError", err)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%d bytes, over the server's max_payload of %d bytes", got, got-1)) {
			t.Errorf("error %q does not give the size and the limit", err)
		}
	}
}

// publicKey makes a key pair with create and returns its public key.
func publicKey(t *testing.T, create func() (nkeys.KeyPair, error)) string {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}
