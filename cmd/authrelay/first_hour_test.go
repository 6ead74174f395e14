package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAccountAddRefusesCaseTwin: with SHOP present, 'account add shop'
// exits non-zero naming SHOP and leaves accounts.conf as it was; 'user add
// --account shop' says which account was meant.
func TestAccountAddRefusesCaseTwin(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir, "--account", "APP")
	mustRun(t, "", "account", "add", "SHOP", "--dir", dir)
	conf := filepath.Join(dir, "accounts.conf")
	before, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "account", "add", "shop", "--dir", dir)
	if r.code == 0 || !strings.Contains(r.stderr, `"SHOP"`) {
		t.Errorf("account add shop: exit %d, stderr %q; want a refusal naming SHOP", r.code, r.stderr)
	}
	after, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("accounts.conf changed by the refused add:\n%s", after)
	}
	r = run(t, "pw-123456\n", "user", "add", "bob", "--dir", dir, "--account", "shop", "--password-stdin", "--sub", "x")
	if r.code == 0 || !strings.Contains(r.stderr, `did you mean "SHOP"`) {
		t.Errorf("user add --account shop: exit %d, stderr %q; want a did-you-mean for SHOP", r.code, r.stderr)
	}
	list := mustRun(t, "", "account", "list", "--dir", dir)
	if strings.Contains(list.stdout, "shop") {
		t.Errorf("account list after the refusal:\n%s", list.stdout)
	}
}
