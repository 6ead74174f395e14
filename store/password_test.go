package store

import (
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

func TestDefaultArgon2Params(t *testing.T) {
	// OWASP Password Storage Cheat Sheet: argon2id, m=19456 (19 MiB), t=2, p=1.
	want := Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
	if got := DefaultArgon2Params; got != want {
		t.Errorf("DefaultArgon2Params = %+v, want %+v", got, want)
	}
}

func TestHashPasswordPHC(t *testing.T) {
	const password = "correct horse battery staple"
	hash, err := HashPassword(password, DefaultArgon2Params)
	if err != nil {
		t.Fatal(err)
	}
	phc := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !phc.MatchString(hash) {
		t.Fatalf("HashPassword = %q, want a PHC string matching %s", hash, phc)
	}
	h, err := parseArgon2id(hash)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.params, DefaultArgon2Params; got != want {
		t.Errorf("parsed params = %+v, want %+v", got, want)
	}
	// The stored key is argon2id of the password and the stored salt.
	key := argon2.IDKey([]byte(password), h.salt, 2, 19456, 1, 32)
	if got, want := formatArgon2id(h.params, h.salt, key), hash; got != want {
		t.Errorf("recomputed hash = %q, want %q", got, want)
	}

	for _, tc := range []struct {
		password string
		want     bool
	}{
		{password, true},
		{password + " ", false},
		{"Correct horse battery staple", false},
		{"x", false},
	} {
		got, err := VerifyPassword(hash, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("VerifyPassword(hash, %q) = %v, %v; want %v, nil", tc.password, got, err, tc.want)
		}
	}

	again, err := HashPassword(password, DefaultArgon2Params)
	if err != nil {
		t.Fatal(err)
	}
	if again == hash {
		t.Error("two hashes of the same password are equal: the salt is not random")
	}
}

func TestHashPasswordParams(t *testing.T) {
	p := Argon2Params{Memory: 256, Time: 3, Threads: 2, SaltLen: 8, KeyLen: 16}
	hash, err := HashPassword("pw", p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hash[:len("$argon2id$v=19$m=256,t=3,p=2$")], "$argon2id$v=19$m=256,t=3,p=2$"; got != want {
		t.Errorf("hash prefix = %q, want %q", got, want)
	}
	if ok, err := VerifyPassword(hash, "pw"); !ok || err != nil {
		t.Errorf("VerifyPassword = %v, %v; want true, nil", ok, err)
	}

	for _, bad := range []Argon2Params{
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32}, // argon2 would panic
		{Memory: 7, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
		{},
	} {
		if _, err := HashPassword("pw", bad); err == nil {
			t.Errorf("HashPassword with %+v: no error", bad)
		}
	}
}

// Vectors from the argon2 reference implementation (phc-winner-argon2,
// src/test.c): password "password", salt "somesalt".
func TestVerifyPasswordArgon2idReference(t *testing.T) {
	for _, tc := range []struct {
		password, hash string
	}{
		{"password", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"},
		{"password", "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc"},
		{"password", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"},
		{"differentpassword", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$C4TWUs9rDEvq7w3+J4umqA32aWKB1+DSiRuBfYxFj94"},
	} {
		if ok, err := VerifyPassword(tc.hash, tc.password); !ok || err != nil {
			t.Errorf("VerifyPassword(%q, %q) = %v, %v; want true, nil", tc.hash, tc.password, ok, err)
		}
		if ok, err := VerifyPassword(tc.hash, "wrong"); ok || err != nil {
			t.Errorf("VerifyPassword(%q, wrong) = %v, %v; want false, nil", tc.hash, ok, err)
		}
	}
}

func TestVerifyPasswordBcrypt(t *testing.T) {
	t.Run("generated", func(t *testing.T) {
		b, err := bcrypt.GenerateFromPassword([]byte("s3cret"), 4)
		if err != nil {
			t.Fatal(err)
		}
		// The Go package writes $2a$; $2b$ and $2y$ name the same algorithm
		// for passwords of at most 72 bytes.
		for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
			hash := prefix + string(b[4:])
			if ok, err := VerifyPassword(hash, "s3cret"); !ok || err != nil {
				t.Errorf("VerifyPassword(%s…, right) = %v, %v; want true, nil", prefix, ok, err)
			}
			if ok, err := VerifyPassword(hash, "s3cret!"); ok || err != nil {
				t.Errorf("VerifyPassword(%s…, wrong) = %v, %v; want false, nil", prefix, ok, err)
			}
			if got, err := hashScheme(hash); got != SchemeBcrypt || err != nil {
				t.Errorf("hashScheme(%s…) = %q, %v; want %q, nil", prefix, got, err, SchemeBcrypt)
			}
		}
	})
	// Hashes made by other implementations.
	for _, tc := range []struct {
		name, hash, password string
	}{
		// nats-server test/auth_test.go, made with `nats server passwd`.
		{"nats cost 4", "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq", "IW@$6v(y1(t@fhPDvf!5^%"},
		// nats-server server/configs/srv_a_bcrypt.conf.
		{"nats cost 10", "$2a$10$LoRPzN3GtF2pNX5QgCBBHeUr6/zVN./RVGOu5U8SpHyg2sfzvfXji", "bar"},
		// BCrypt.Net at its default cost 11, the cost `nats server passwd` uses.
		{"cost 11", "$2a$11$pEoTgibSddiyXg9i/lQ5tuJNfurx4G4CtHjBLFDmWJX1iYCjc13pa", "admin"},
		// PHP's crypt() documentation.
		{"php 2y", "$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq", "rasmuslerdorf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if ok, err := VerifyPassword(tc.hash, tc.password); !ok || err != nil {
				t.Errorf("VerifyPassword(%q, %q) = %v, %v; want true, nil", tc.hash, tc.password, ok, err)
			}
			if ok, err := VerifyPassword(tc.hash, tc.password+"x"); ok || err != nil {
				t.Errorf("VerifyPassword(%q, wrong) = %v, %v; want false, nil", tc.hash, ok, err)
			}
		})
	}
}

func TestVerifyPasswordBcryptOver72Bytes(t *testing.T) {
	p72 := strings.Repeat("0123456789ab", 6) // 72 bytes
	b, err := bcrypt.GenerateFromPassword([]byte(p72), 4)
	if err != nil {
		t.Fatal(err)
	}
	hash := string(b)
	// bcrypt itself only looks at the first 72 bytes: these would all match.
	if err := bcrypt.CompareHashAndPassword(b, []byte(p72+"tail")); err != nil {
		t.Fatalf("bcrypt no longer truncates (%v): revisit this test", err)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{
		{p72, true},
		{p72 + "a", false},
		{p72 + "b", false},
		{p72 + strings.Repeat("z", 100), false},
	} {
		got, err := VerifyPassword(hash, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("VerifyPassword(hash of 72 bytes, %d bytes) = %v, %v; want %v, nil", len(tc.password), got, err, tc.want)
		}
	}
}

func TestVerifyPasswordOverMaxLen(t *testing.T) {
	// A hash of an over-long password cannot come from HashPassword; make
	// one by hand to show that such a password never verifies.
	long := strings.Repeat("p", MaxPasswordLen+1)
	salt := []byte("somesalt")
	p := Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 8, KeyLen: 32}
	hash := formatArgon2id(p, salt, argon2.IDKey([]byte(long), salt, p.Time, p.Memory, p.Threads, p.KeyLen))
	if ok, err := VerifyPassword(hash, long); ok || err != nil {
		t.Errorf("VerifyPassword(over-long) = %v, %v; want false, nil", ok, err)
	}

	max := strings.Repeat("p", MaxPasswordLen)
	hash, err := HashPassword(max, p)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(hash, max); !ok || err != nil {
		t.Errorf("VerifyPassword(MaxPasswordLen bytes) = %v, %v; want true, nil", ok, err)
	}
}

func TestVerifyPasswordBadHash(t *testing.T) {
	const plain = "hunter2-plaintext"
	for _, hash := range []string{
		"",
		plain,
		"$" + plain,
		"$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$FK6NoBr+qHAMI1jc73xTWNkCEoK9iGY6RWL1n7dNIu4",
		"$argon2d$v=16$m=8,t=1,p=1$ICAgICAgICA$X54KZYxUSfMUihzebb70sKbheabHilo8gsUldrVU4IU",
		"$argon2id$v=16$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$t=2,m=256,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=0,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=0$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=4,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=4294967295,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=1$c29t$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQ",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4=",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4$x",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNh!HQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qx",
		"$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxqq",
		"$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4q+q",
		"$2a$03$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$2a$31$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$2a$x4$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$2x$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$2$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$6$rounds=5000$saltsalt$" + plain,
	} {
		ok, err := VerifyPassword(hash, "password")
		if ok || err == nil {
			t.Errorf("VerifyPassword(%q) = %v, %v; want false and an error", hash, ok, err)
			continue
		}
		if _, err := hashScheme(hash); err == nil {
			t.Errorf("hashScheme(%q): no error", hash)
		}
		if msg := err.Error(); strings.Contains(msg, plain) || (len(hash) > 12 && strings.Contains(msg, hash[7:])) {
			t.Errorf("VerifyPassword(%q) error %q quotes the hash", hash, msg)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, tc := range []struct {
		password string
		ok       bool
	}{
		{"a", true},
		{"pässwörd with spaces", true},
		{strings.Repeat("x", MaxPasswordLen), true},
		{"", false},
		{strings.Repeat("x", MaxPasswordLen+1), false},
		{"bad\xffutf8", false},
	} {
		err := ValidatePassword(tc.password)
		if got := err == nil; got != tc.ok {
			t.Errorf("ValidatePassword(%d bytes) = %v, want ok %v", len(tc.password), err, tc.ok)
		}
		if _, err := HashPassword(tc.password, testParams); (err == nil) != tc.ok {
			t.Errorf("HashPassword(%d bytes) = %v, want ok %v", len(tc.password), err, tc.ok)
		}
	}
}

// secretToken stands for the secret part of a hash in FuzzVerifyPassword: no
// error message may contain it.
const secretToken = "Zq9xK7wPv"

// FuzzVerifyPassword checks that no hash string makes the parsers panic, that
// VerifyPassword and hashScheme agree on which hashes are valid, and that no
// error quotes the hash.
func FuzzVerifyPassword(f *testing.F) {
	for _, seed := range []string{
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$2y$05$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR",
		"$6$x$y",
		"",
		secretToken,
		"$" + secretToken + "$",
		"$2a$04$" + secretToken + "CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq",
		"$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$" + secretToken,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, hash string) {
		scheme, err := hashScheme(hash)
		if err != nil {
			if strings.Contains(err.Error(), secretToken) {
				t.Errorf("error %q quotes the hash", err)
			}
			if _, verr := VerifyPassword(hash, "password"); verr == nil {
				t.Errorf("hashScheme refuses %q (%v) but VerifyPassword accepts it", hash, err)
			}
			return
		}
		// Keep the fuzzer's memory and time in check: only verify cheap
		// hashes.
		switch scheme {
		case SchemeArgon2id:
			h, err := parseArgon2id(hash)
			if err != nil {
				t.Fatalf("hashScheme accepts %q but parseArgon2id does not: %v", hash, err)
			}
			if h.params.Memory > 1024 || h.params.Time > 4 || h.params.Threads > 4 {
				return
			}
		case SchemeBcrypt:
			if hash[4:6] > "06" {
				return
			}
		}
		if _, err := VerifyPassword(hash, "password"); err != nil {
			t.Errorf("hashScheme accepts %q but VerifyPassword fails: %v", hash, err)
		}
	})
}
