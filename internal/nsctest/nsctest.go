// Package nsctest runs the real nsc in tests: it builds the nsc that
// internal/tools/nsc pins (a module of its own: nsc needs an older
// golang.org/x/crypto than authrelay's) and scripts the README's steps for
// an operator managed with nsc, in a keystore and store of the test's own.
package nsctest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Nsc is the nsc command with a home of its own: NSC_HOME, NKEYS_PATH
// and the store directory are under Dir, never the user's.
type Nsc struct {
	Bin string
	Dir string
}

// moduleRoot returns authrelay's module root, found from the working
// directory (a package directory while tests run).
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(b), "module github.com/authrelay/authrelay\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("nsctest: no authrelay module root above the working directory")
		}
		dir = parent
	}
}

// goCommand returns the go command of the toolchain running the test.
func goCommand(t testing.TB) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err == nil {
		return goBin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go command: %v", err)
	}
	return goBin
}

// Build builds the pinned nsc into a directory of the test's.
func Build(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "nsc")
	if runtime.GOOS == "windows" {
		out += ".exe"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goCommand(t), "build", "-o", out, "github.com/nats-io/nsc/v2")
	cmd.Dir = filepath.Join(moduleRoot(t), "internal", "tools", "nsc")
	for _, kv := range os.Environ() {
		// A -race in GOFLAGS would slow nsc down for nothing.
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			kv = "GOFLAGS=" + strings.Join(slices.DeleteFunc(strings.Fields(v), func(f string) bool { return f == "-race" }), " ")
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build nsc: %v\n%s", err, b)
	}
	return out
}

// New builds nsc and gives it a fresh home under a directory of the
// test's, with its store there ('nsc env -s').
func New(t testing.TB) *Nsc {
	t.Helper()
	n := &Nsc{Bin: Build(t), Dir: t.TempDir()}
	n.Run(t, "env", "-s", filepath.Join(n.Dir, "stores"))
	return n
}

// Env is the environment nsc runs with: its home and keystore under Dir.
func (n *Nsc) Env() []string {
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "NSC_HOME=") || strings.HasPrefix(kv, "NKEYS_PATH=") || strings.HasPrefix(kv, "HOME=")
	})
	return append(env, "NSC_HOME="+filepath.Join(n.Dir, "home"), "NKEYS_PATH="+filepath.Join(n.Dir, "keys"), "HOME="+n.Dir)
}

// Run runs nsc with args and returns its standard output; a failure ends
// the test with both outputs.
func (n *Nsc) Run(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Bin, args...)
	cmd.Env = n.Env()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nsc %s: %v\n--- stdout\n%s--- stderr\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// Field returns a field of an entity's JWT, as 'nsc describe … --field'
// prints it, without its quotes.
func (n *Nsc) Field(t testing.TB, field string, describe ...string) string {
	t.Helper()
	out := n.Run(t, append(append([]string{"describe"}, describe...), "--field", field)...)
	return strings.Trim(strings.TrimSpace(out), `"`)
}

// Operator is an operator made with nsc as the README's steps make it.
type Operator struct {
	// Relay is the public key of the relay's user in AUTH.
	Relay string
	// Accounts are the application accounts' public keys, by name.
	Accounts map[string]string
}

// NewOperator scripts the README's steps for an operator managed with
// nsc: an operator ACME with a signing key and the system account SYS
// (strict signing keys), the callout account AUTH and the application
// accounts apps, each with a signing key, the relay's user in AUTH, and
// the callout section (the relay's user, the apps allowed, a curve key).
func (n *Nsc) NewOperator(t testing.TB, apps ...string) Operator {
	t.Helper()
	n.Run(t, "add", "operator", "--generate-signing-key", "--sys", "--name", "ACME")
	n.Run(t, "edit", "operator", "--require-signing-keys")
	n.Run(t, "add", "account", "AUTH")
	n.Run(t, "edit", "account", "AUTH", "--sk", "generate")
	op := Operator{Accounts: map[string]string{}}
	for _, a := range apps {
		n.Run(t, "add", "account", a)
		n.Run(t, "edit", "account", a, "--sk", "generate")
		op.Accounts[a] = n.Field(t, "sub", "account", a)
	}
	n.Run(t, "add", "user", "--account", "AUTH", "authrelay")
	op.Relay = n.Field(t, "sub", "user", "--account", "AUTH", "authrelay")
	args := []string{"edit", "authcallout", "--account", "AUTH", "--auth-user", op.Relay, "--curve", "generate"}
	for _, a := range apps {
		args = append(args, "--allowed-account", op.Accounts[a])
	}
	n.Run(t, args...)
	return op
}

// Export writes what authrelay takes from nsc into a new directory, as the
// README's steps do, and returns it.
func (n *Nsc) Export(t testing.TB, extra ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "nsc-export")
	n.Run(t, append([]string{"export", "keys", "--accounts", "--users", "--curves", "--include-jwts", "--dir", dir}, extra...)...)
	n.Run(t, "describe", "operator", "--raw", "--output-file", filepath.Join(dir, "operator.jwt"))
	return dir
}
