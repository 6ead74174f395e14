package relay

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

// fuzzXKeySeed is the relay xkey of the fuzz target and of the sealed seeds
// in testdata/fuzz/FuzzDecodeRequest. Test-only.
const fuzzXKeySeed = "SXANQBBPKGSRV4CV4GCLPVEBQGOP4V75B33KAX3YRUHIRBHYP6TO6IC55M"

// fuzzNow is the clock of the fuzz target: before any seed was captured, so
// the captured requests never expire.
var fuzzNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// fuzzSkew is the clock skew the fuzz target tolerates: the seeds were
// captured after fuzzNow, so their issue times lie months in its future.
const fuzzSkew = 100 * 365 * 24 * time.Hour

// fakeServer signs (and seals) auth requests the way nats-server does.
type fakeServer struct {
	kp  nkeys.KeyPair
	id  string
	xkp nkeys.KeyPair
	xk  string
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	kp, err := nkeys.CreateServer()
	if err != nil {
		t.Fatal(err)
	}
	id, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	xkp, err := nkeys.CreateCurveKeys()
	if err != nil {
		t.Fatal(err)
	}
	xk, err := xkp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeServer{kp: kp, id: id, xkp: xkp, xk: xk}
}

// newUserNkey returns a fresh public user nkey, as the server makes one per
// connection.
func newUserNkey(t testing.TB) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// claims returns request claims as nats-server builds them, for a
// connection with user and password, expiring exp after now.
func (fs *fakeServer) claims(t testing.TB, user, password string, now time.Time, exp time.Duration) *jwt.AuthorizationRequestClaims {
	t.Helper()
	rc := jwt.NewAuthorizationRequestClaims("ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA")
	rc.Audience = requestAudience
	rc.UserNkey = newUserNkey(t)
	rc.Server = jwt.ServerID{Name: "fake", Host: "127.0.0.1", ID: fs.id, Version: "2.15.2"}
	rc.Expires = now.Add(exp).Unix()
	rc.ClientInformation = jwt.ClientInformation{Host: "127.0.0.1", ID: 7, Kind: "Client", Type: "nats"}
	rc.ConnectOptions = jwt.ConnectOptions{Username: user, Password: password, Protocol: 1}
	return rc
}

// encode signs rc with signer (the server's key when nil).
func (fs *fakeServer) encode(t testing.TB, rc *jwt.AuthorizationRequestClaims, signer nkeys.KeyPair) []byte {
	t.Helper()
	if signer == nil {
		signer = fs.kp
	}
	// Encode stamps iat with the wall clock; exp and nbf are kept.
	tok, err := rc.Encode(signer)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(tok)
}

// seal seals data from the server's xkey to the relay's public xkey; the
// sealed claims must name fs.xk as Server.XKey.
func (fs *fakeServer) seal(t testing.TB, data []byte, relayXKey string) []byte {
	t.Helper()
	out, err := fs.xkp.Seal(data, relayXKey)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signRaw encodes and signs rc with any key, bypassing the jwt encoder's
// check that only a server key signs an auth request.
func signRaw(t testing.TB, rc *jwt.AuthorizationRequestClaims, kp nkeys.KeyPair) []byte {
	t.Helper()
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	rc.Issuer = pub
	rc.Type = jwt.AuthorizationRequestClaim
	rc.AuthorizationRequest.Version = 2
	payload, err := json.Marshal(rc)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"typ":"JWT","alg":"ed25519-nkey"}`)) + "." + enc.EncodeToString(payload)
	sig, err := kp.Sign([]byte(signing))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(signing + "." + enc.EncodeToString(sig))
}

func mustXKey(t testing.TB, seed string) *accounts.XKey {
	t.Helper()
	xk, err := accounts.NewXKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return xk
}

func TestDecodeRequest(t *testing.T) {
	now := time.Now()
	relayX := mustXKey(t, fuzzXKeySeed)
	fs := newFakeServer(t)
	other := newFakeServer(t)

	type input struct {
		xk     *accounts.XKey
		data   []byte
		sealed bool
		hdr    string
	}
	unsealed := func(mod func(*jwt.AuthorizationRequestClaims)) input {
		rc := fs.claims(t, "alice", "pw", now, 2*time.Second)
		if mod != nil {
			mod(rc)
		}
		return input{data: fs.encode(t, rc, nil)}
	}
	sealedIn := func(mod func(*jwt.AuthorizationRequestClaims)) input {
		rc := fs.claims(t, "alice", "pw", now, 2*time.Second)
		rc.Server.XKey = fs.xk
		if mod != nil {
			mod(rc)
		}
		return input{xk: relayX, data: fs.seal(t, fs.encode(t, rc, nil), relayX.PublicKey()), sealed: true, hdr: fs.xk}
	}

	tests := []struct {
		name    string
		in      input
		wantErr string // "" means the request is accepted
	}{
		{"unsealed", unsealed(nil), ""},
		{"sealed", sealedIn(nil), ""},
		{"issuer is not server id", func() input {
			rc := fs.claims(t, "alice", "pw", now, 2*time.Second)
			rc.Server.ID = other.id
			return input{data: fs.encode(t, rc, nil)}
		}(), "is not the server id"},
		{"signed by an account key", func() input {
			akp, err := nkeys.CreateAccount()
			if err != nil {
				t.Fatal(err)
			}
			rc := fs.claims(t, "alice", "pw", now, 2*time.Second)
			return input{data: signRaw(t, rc, akp)}
		}(), "decode request"},
		{"tampered signature", func() input {
			in := unsealed(nil)
			in.data[len(in.data)-2] ^= 1
			return in
		}(), "decode request"},
		{"wrong audience", unsealed(func(rc *jwt.AuthorizationRequestClaims) { rc.Audience = "nats-authorization-response" }), "audience"},
		{"expired", unsealed(func(rc *jwt.AuthorizationRequestClaims) { rc.Expires = now.Add(-2 * time.Second).Unix() }), "expired"},
		{"no expiry", unsealed(func(rc *jwt.AuthorizationRequestClaims) { rc.Expires = 0 }), "no expiry"},
		{"not yet valid", unsealed(func(rc *jwt.AuthorizationRequestClaims) { rc.NotBefore = now.Add(time.Minute).Unix() }), "not yet valid"},
		{"no user nkey", unsealed(func(rc *jwt.AuthorizationRequestClaims) { rc.UserNkey = "" }), "invalid claims"},
		{"user nkey is a server key", unsealed(func(rc *jwt.AuthorizationRequestClaims) { rc.UserNkey = other.id }), "invalid claims"},
		{"garbage", input{data: []byte("not a jwt at all")}, "decode request"},
		{"empty", input{}, "decode request"},
		{"sealed but relay has no xkey", func() input {
			in := sealedIn(nil)
			in.xk = nil
			return in
		}(), "relay has no xkey"},
		{"unsealed but relay has xkey", func() input {
			in := unsealed(nil)
			in.xk = relayX
			return in
		}(), "lacks auth_callout.xkey"},
		{"header xkey not a curve key", func() input {
			in := sealedIn(nil)
			in.hdr = fs.id
			return in
		}(), "not a public curve key"},
		{"header xkey empty", func() input {
			in := sealedIn(nil)
			in.hdr = ""
			return in
		}(), "not a public curve key"},
		{"sealed by another server", func() input {
			in := sealedIn(nil)
			in.hdr = other.xk
			return in
		}(), "open sealed request"},
		{"header xkey differs from claims", func() input {
			rc := fs.claims(t, "alice", "pw", now, 2*time.Second)
			rc.Server.XKey = other.xk
			return input{xk: relayX, data: fs.seal(t, fs.encode(t, rc, nil), relayX.PublicKey()), sealed: true, hdr: fs.xk}
		}(), "is not the server's xkey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc, err := decodeRequest(tt.in.xk, tt.in.data, tt.in.sealed, tt.in.hdr, now, DefaultMaxClockSkew)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("decodeRequest: %v", err)
				}
				if got, want := rc.ConnectOptions.Username, "alice"; got != want {
					t.Errorf("username = %q, want %q", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("decodeRequest accepted the request, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %q, want it to contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error %q may contain the password", err)
			}
		})
	}
}

func TestClip(t *testing.T) {
	long := strings.Repeat("x", 1000)
	if got := clip(long); len(got) > maxLogField+len("…") {
		t.Errorf("clip returned %d bytes, want at most %d", len(got), maxLogField+len("…"))
	}
	if got, want := clip("short"), "short"; got != want {
		t.Errorf("clip(%q) = %q, want %q", "short", got, want)
	}
}

// FuzzDecodeRequest feeds random bytes and header values through the
// open+decode+validate path, with and without a relay xkey. Whatever it
// accepts must satisfy every promise decodeRequest makes.
func FuzzDecodeRequest(f *testing.F) {
	xk := mustXKey(f, fuzzXKeySeed)
	f.Add([]byte("eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.AAAA"), "")
	f.Add([]byte{0x78, 0x6b, 0x76, 0x31, 0, 1, 2}, "XDYKEYJS6VUNMIUU23SXKBJNO4LETXO2UB5CRLEFWWF52HVSL2EHJFQK")
	f.Fuzz(func(t *testing.T, data []byte, hdr string) {
		for _, c := range []struct {
			xk     *accounts.XKey
			sealed bool
		}{{nil, false}, {nil, true}, {xk, false}, {xk, true}} {
			rc, err := decodeRequest(c.xk, data, c.sealed, hdr, fuzzNow, fuzzSkew)
			if err != nil {
				if rc != nil && !errors.Is(err, errClockSkew) {
					t.Fatalf("decodeRequest returned claims and error %v", err)
				}
				continue
			}
			switch {
			case c.sealed != (c.xk != nil):
				t.Fatalf("accepted sealed=%v with xkey=%v", c.sealed, c.xk != nil)
			case !nkeys.IsValidPublicServerKey(rc.Issuer) || rc.Issuer != rc.Server.ID:
				t.Fatalf("accepted issuer %q for server id %q", rc.Issuer, rc.Server.ID)
			case rc.Audience != requestAudience:
				t.Fatalf("accepted audience %q", rc.Audience)
			case rc.IssuedAt == 0 || rc.Expires < rc.IssuedAt:
				t.Fatalf("accepted iat %d exp %d", rc.IssuedAt, rc.Expires)
			case time.Unix(rc.IssuedAt, 0).Sub(fuzzNow).Abs() > fuzzSkew+time.Second:
				t.Fatalf("accepted iat %d beyond the skew tolerance at %d", rc.IssuedAt, fuzzNow.Unix())
			case !nkeys.IsValidPublicUserKey(rc.UserNkey):
				t.Fatalf("accepted user nkey %q", rc.UserNkey)
			case c.sealed && rc.Server.XKey != hdr:
				t.Fatalf("accepted header xkey %q for server xkey %q", hdr, rc.Server.XKey)
			}
		}
	})
}

// fuzzSeed is one entry of testdata/fuzz/FuzzDecodeRequest.
type fuzzSeed struct {
	data []byte
	hdr  string
}

// readFuzzSeed parses a file in the go test fuzz v1 corpus format holding a
// []byte and a string.
func readFuzzSeed(t *testing.T, path string) fuzzSeed {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) != 3 || lines[0] != "go test fuzz v1" ||
		!strings.HasPrefix(lines[1], "[]byte(") || !strings.HasPrefix(lines[2], "string(") {
		t.Fatalf("%s: not a go test fuzz v1 file with a []byte and a string", path)
	}
	data, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	hdr, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "string("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fuzzSeed{data: []byte(data), hdr: hdr}
}

// writeFuzzSeed writes s to dir/name in the go test fuzz v1 format.
func writeFuzzSeed(t *testing.T, dir, name string, s fuzzSeed) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nstring(%q)\n", s.data, s.hdr)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFuzzSeeds checks that the real requests in the seed corpus still pass
// decodeRequest at fuzzNow, so the fuzzer starts from deep inside the
// validation path rather than from the first check.
func TestFuzzSeeds(t *testing.T) {
	xk := mustXKey(t, fuzzXKeySeed)
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRequest")
	for _, c := range []struct {
		file string
		xk   *accounts.XKey
	}{
		{"real-sealed", xk},
		{"real-unsealed", nil},
	} {
		s := readFuzzSeed(t, filepath.Join(dir, c.file))
		if _, err := decodeRequest(c.xk, s.data, s.hdr != "", s.hdr, fuzzNow, fuzzSkew); err != nil {
			t.Errorf("%s: decodeRequest: %v", c.file, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		readFuzzSeed(t, filepath.Join(dir, e.Name()))
	}
}

// TestWriteFuzzSeeds captures real auth requests from nats-server (sealed to
// fuzzXKeySeed, and unsealed) and writes them, with garbage variants, into
// testdata/fuzz/FuzzDecodeRequest. It runs only with
// AUTHRELAY_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("AUTHRELAY_WRITE_FUZZ_SEEDS") != "1" {
		t.Skip("set AUTHRELAY_WRITE_FUZZ_SEEDS=1 to rewrite the fuzz seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeRequest")
	keys, err := accounts.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	issuer, err := accounts.NewIssuer(keys.IssuerSeed, nil)
	if err != nil {
		t.Fatal(err)
	}
	xk := mustXKey(t, fuzzXKeySeed)
	capture := func(xk *accounts.XKey) *nats.Msg {
		srv, _ := runServer(t, serverConf{}.text(issuer.PublicKey(), xk))
		nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("auth", "auth-pw"))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		sub, err := nc.SubscribeSync(Subject)
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		go func() {
			// Denied after the auth timeout, since nobody answers.
			if c, err := nats.Connect(srv.ClientURL(), nats.UserInfo("fuzz-user", "fuzz-pw")); err == nil {
				c.Close()
			}
		}()
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	sealed := capture(xk)
	plain := capture(nil)
	other := newFakeServer(t)

	seeds := map[string]fuzzSeed{
		"real-sealed":            {data: sealed.Data, hdr: sealed.Header.Get(XKeyHeader)},
		"real-unsealed":          {data: plain.Data},
		"real-sealed-other-xkey": {data: sealed.Data, hdr: other.xk},
		"truncated-jwt":          {data: plain.Data[:len(plain.Data)/2]},
		"garbage":                {data: []byte("\x00\xffnot a request\r\n")},
		"garbage-sealed":         {data: []byte("xkv1\x01\x02\x03"), hdr: sealed.Header.Get(XKeyHeader)},
		"bad-header":             {data: sealed.Data, hdr: "not-an-xkey"},
	}
	for name, s := range seeds {
		writeFuzzSeed(t, dir, name, s)
	}
}

func TestDecodeRequestRefusesOversized(t *testing.T) {
	big := make([]byte, MaxRequestSize+1)
	for i := range big {
		big[i] = 'e'
	}
	_, err := decodeRequest(nil, big, false, "", time.Now(), DefaultMaxClockSkew)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized request: %v, want a size error", err)
	}
}
