package store

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNewPassword(t *testing.T) {
	cases := []struct {
		name, password string
		min            int
		words          string // "" means accepted
	}{
		{"alice", "correct horse battery", 8, ""},
		{"alice", "s3cret-pass", 8, ""},
		{"alice", "tr0mb0ne-sofa", 8, ""},
		{"alice", "short", 8, "5 characters long, the minimum is 8"},
		{"alice", "ünïcödé", 8, "7 characters long"}, // characters, not bytes
		{"alice", "ünïcödé!", 8, ""},
		{"alice", "Password", 8, "most used"},
		{"alice", "PASSWORD1", 8, "most used"},
		{"alice", "password2026!", 8, "most used"},
		{"alice", "qwertyuiop", 8, "most used"},
		{"alice", "iloveyou", 8, "most used"},
		{"alice", "12345678", 8, "most used"},
		{"alice", "23456789", 8, "sequence"},
		{"alice", "hgfedcba", 8, "sequence"},
		{"alice", "zzzzzzzzzz", 8, "repeated"},
		{"billing-svc", "Billing-Svc", 8, "own name"},
		{"alice", "s3cret-pass", 12, "11 characters long, the minimum is 12"},
		{"alice", "", 8, "empty"},
	}
	for _, c := range cases {
		err := CheckNewPassword(c.name, c.password, c.min)
		switch {
		case c.words == "" && err != nil:
			t.Errorf("CheckNewPassword(%q, %q, %d) = %v, want nil", c.name, c.password, c.min, err)
		case c.words != "" && (err == nil || !strings.Contains(err.Error(), c.words)):
			t.Errorf("CheckNewPassword(%q, %q, %d) = %v, want an error saying %q", c.name, c.password, c.min, err, c.words)
		case err != nil && c.password != "" && strings.Contains(err.Error(), c.password):
			t.Errorf("CheckNewPassword(%q, %q): the error repeats the password: %v", c.name, c.password, err)
		}
		if err != nil && c.password != "" && !errors.Is(err, ErrWeakPassword) {
			t.Errorf("CheckNewPassword(%q, %q) = %v, want ErrWeakPassword", c.name, c.password, err)
		}
	}
}

func TestMinPasswordLenSetting(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	if n, err := db.MinPasswordLen(ctx); err != nil || n != DefaultMinPasswordLen {
		t.Fatalf("MinPasswordLen of a new database = %d, %v; want %d", n, err, DefaultMinPasswordLen)
	}
	for _, bad := range []int{0, -1, MaxMinPasswordLen + 1} {
		if err := db.SetMinPasswordLen(ctx, bad); err == nil {
			t.Errorf("SetMinPasswordLen(%d) succeeded", bad)
		}
	}
	if err := db.SetMinPasswordLen(ctx, 14); err != nil {
		t.Fatal(err)
	}
	// Another handle on the file, as another admin command would open it.
	other := openTest(t, path)
	if n, err := other.MinPasswordLen(ctx); err != nil || n != 14 {
		t.Errorf("MinPasswordLen from another handle = %d, %v; want 14", n, err)
	}
}
