package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/bench"
)

// benchTestExeEnv, when set in a relay child's environment, names an
// authrelay binary for TestMain to run in the child's place.
const benchTestExeEnv = "AUTHRELAY_BENCH_TEST_EXE"

// TestMain lets this test binary stand in for the authrelay binary as the
// children of 'authrelay bench' ('authrelay init', 'authrelay serve'):
// under go test, os.Executable names the test binary, and bench starts it
// with bench.ChildEnv set and authrelay's command line as its arguments. The child runs authrelay's main in this
// binary, or, when a test has built authrelay without the race detector,
// execs that binary (in the same process, whose CPU time and RSS bench
// reads), so that the relay runs at its real speed.
func TestMain(m *testing.M) {
	if os.Getenv(bench.ChildEnv) != "" {
		if exe := os.Getenv(benchTestExeEnv); exe != "" {
			err := syscall.Exec(exe, append([]string{exe}, os.Args[1:]...), os.Environ())
			fmt.Fprintf(os.Stderr, "exec %s: %v\n", exe, err)
			os.Exit(exitFailure)
		}
		main()
		return
	}
	os.Exit(m.Run())
}

// buildBenchRelay builds authrelay without the race detector, whatever the
// test binary was built with, and makes it the relay child of the benches
// this test runs. Under -race the relay would verify passwords several
// times slower than it does in use, and its admission control would then
// rightly shed logins that a real build answers.
func buildBenchRelay(t *testing.T) {
	t.Helper()
	goBin := goCommand(t)
	exe := filepath.Join(t.TempDir(), "authrelay")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", exe, ".")
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			kv = "GOFLAGS=" + strings.Join(slices.DeleteFunc(strings.Fields(v), func(f string) bool { return f == "-race" }), " ")
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Setenv(benchTestExeEnv, exe)
}

// goCommand returns the go command of the toolchain that built this test,
// else the one on PATH.
func goCommand(t *testing.T) string {
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

// benchRow matches a scenario row of the text report: the scenario (padded
// with at least two spaces), then connects, failed, connects/s, p50, p99 and
// max latency.
var benchRow = regexp.MustCompile(`(?m)^\(([a-d])\) (.+?)\s{2,}(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s`)

// Without authrelay-bench (not beside this program, no PATH), 'authrelay
// bench --short' runs every scenario but (c), reports (c) as skipped with
// how to get it, and exits 0. The full short run, (c) included, is
// TestBenchShort in cmd/authrelay-bench.
func TestBenchShortWithoutGrantRelay(t *testing.T) {
	buildBenchRelay(t)
	start := time.Now()
	r := mustRun(t, "", "bench", "--short")
	t.Logf("bench --short took %v\n%s", time.Since(start).Round(time.Millisecond), r.stdout)

	if !strings.HasPrefix(r.stdout, "authrelay bench: logins on this machine\ncommand:  authrelay bench --short\nsame as:  authrelay bench --clients 4 ") {
		t.Errorf("report does not begin with the command line:\n%s", r.stdout)
	}
	rows := map[string][]string{}
	for _, m := range benchRow.FindAllStringSubmatch(r.stdout, -1) {
		rows["("+m[1]+") "+m[2]] = m
	}
	want := []string{
		"(a) nats-server, no auth",
		"(b) nats-server, bcrypt cost 4", // run sets BcryptCost 4
		"(d) authrelay cold logins",
		"(d) authrelay warm reconnects",
		"(d) authrelay nkey logins",
		"(d) authrelay API token logins",
		"(d) authrelay warm, 1 admin write/s",
	}
	for _, name := range want {
		m, ok := rows[name]
		if !ok {
			t.Errorf("no row for %s", name)
			continue
		}
		connects, err1 := strconv.Atoi(m[3])
		failed, err2 := strconv.Atoi(m[4])
		rate, err3 := strconv.ParseFloat(m[5], 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if connects <= 0 || rate <= 0 {
			t.Errorf("%s: %d connects at %v/s, want some", name, connects, rate)
		}
		if failed != 0 {
			t.Errorf("%s: %d connects failed, want none", name, failed)
		}
	}
	for _, s := range []string{
		"(c) callout ceiling (grant, no store): skipped: no authrelay-bench beside ",
		"go build -o ",
		"/authrelay-bench ./cmd/authrelay-bench', or give --grant-relay PATH\n",
		"(d) reconnect storm: 10 clients",
		"connected before the restart: 10 ",
		"back and authorised:          all 10,",
		"gave up:                      0 ",
		"not back when the wait ended: 0 ",
		"connects/s of (d) relative to the others:",
		"cold logins",
		"nkey logins",
		"token logins",
		// An unrelated admin write re-verifies no cached user.
		"a user no client is;",
		"; 0 password verifications (warm phase: 0)",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	if n := len(benchRow.FindAllString(r.stdout, -1)); n != len(want) {
		t.Errorf("%d scenario rows, want %d", n, len(want))
	}
	if strings.Contains(r.stdout, "(c) grant") {
		t.Errorf("ratios name (c), which did not run:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "bench: (c) skipped: no authrelay-bench") {
		t.Errorf("progress does not say (c) is skipped:\n%s", r.stderr)
	}
}

func TestBenchJSON(t *testing.T) {
	r := mustRun(t, "", "bench", "--short", "--json", "--scenarios", "noauth,grant", "--duration", "500ms")
	var rep bench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	if rep.Command != "authrelay bench --short --json --scenarios noauth,grant --duration 500ms" {
		t.Errorf("command %q", rep.Command)
	}
	if rep.Machine.Authrelay != version {
		t.Errorf("machine.authrelay %q, want %q", rep.Machine.Authrelay, version)
	}
	var names []string
	for _, s := range rep.Scenarios {
		names = append(names, s.Name)
		if s.Connects <= 0 || s.ConnectsPerSec <= 0 || s.LatencyMs.Max <= 0 {
			t.Errorf("%s: %d connects at %v/s, max latency %v ms: want numbers above 0", s.Name, s.Connects, s.ConnectsPerSec, s.LatencyMs.Max)
		}
		if s.Failures != 0 {
			t.Errorf("%s: %d failures %v", s.Name, s.Failures, s.Errors)
		}
	}
	if got, want := strings.Join(names, ","), "noauth"; got != want {
		t.Errorf("scenarios %s, want %s", got, want)
	}
	if len(rep.Skipped) != 1 || rep.Skipped[0].Name != bench.ScenarioGrant || !strings.Contains(rep.Skipped[0].Reason, "go build -o ") {
		t.Errorf("skipped %+v, want grant, with how to build authrelay-bench", rep.Skipped)
	}
	if rep.Find(bench.ScenarioNoAuth).Relay != nil {
		t.Errorf("noauth reports relay usage, but has no relay")
	}
	if rep.Storm != nil || len(rep.Ratios) != 0 {
		t.Errorf("storm %+v, ratios %+v without (d)", rep.Storm, rep.Ratios)
	}
}

// TestBenchOperator: --operator adds (f), (d)'s cold and warm phases in
// operator mode, beside (d) in the same run, and their ratio to (d).
func TestBenchOperator(t *testing.T) {
	buildBenchRelay(t)
	r := mustRun(t, "", "bench", "--short", "--json", "--scenarios", "shipped", "--storm-clients", "0", "--admin-writes", "0", "--operator")
	var rep bench.Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	var names []string
	for _, s := range rep.Scenarios {
		names = append(names, s.Name)
		if s.Connects <= 0 || s.ConnectsPerSec <= 0 || s.Failures != 0 {
			t.Errorf("%s: %d connects at %v/s, %d failures %v: want connects and no failure", s.Name, s.Connects, s.ConnectsPerSec, s.Failures, s.Errors)
		}
	}
	if got, want := strings.Join(names, ","), "shipped-cold,shipped-warm,shipped-nkey,shipped-token,operator-cold,operator-warm"; got != want {
		t.Errorf("scenarios %s, want %s", got, want)
	}
	if w := rep.Find(bench.ScenarioOperator + "-warm"); w == nil || w.Relay == nil || w.Relay.Verifications == nil || *w.Relay.Verifications != 0 {
		t.Errorf("operator warm phase: %+v, want 0 password verifications (the cache)", w)
	}
	if len(rep.OperatorRatios) != 2 || rep.OperatorRatios[0].Baseline != "shipped-cold" || rep.OperatorRatios[1].Ratio <= 0 {
		t.Errorf("operator ratios %+v, want cold and warm relative to (d)", rep.OperatorRatios)
	}
}

func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{
		{"bench", "--scenarios", "noauth,nope"},
		{"bench", "--scenarios", ","},
		{"bench", "--clients", "0"},
		{"bench", "--duration", "-1s"},
		{"bench", "--storm-clients", "-1"},
		{"bench", "--admin-writes", "-1"},
		{"bench", "extra"},
		{"bench", "--grant-relay", filepath.Join(t.TempDir(), "authrelay-bench")},
		// The grant relay is not in authrelay: its command line is extra
		// arguments to bench.
		{"bench", bench.GrantRelayCommand, "--dir", t.TempDir(), "--nats", "nats://127.0.0.1:4222"},
	} {
		if r := run(t, "", args...); r.code != exitUsage {
			t.Errorf("authrelay %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
	r := run(t, "", "bench", "-h")
	if r.code != exitOK || !strings.Contains(r.stderr, "authrelay bench --short") || !strings.Contains(r.stderr, "go build -o DIR/authrelay-bench ./cmd/authrelay-bench") {
		t.Errorf("bench -h: exit %d\n%s", r.code, r.stderr)
	}
}

// TestGrantRelayNotLinked: the grant-everything responder must not ship in
// the binary that guards logins. Its package is not among authrelay's
// dependencies, and is among authrelay-bench's (so that the test cannot
// pass by naming a package that does not exist).
func TestGrantRelayNotLinked(t *testing.T) {
	const grantRelay = "github.com/authrelay/authrelay/internal/bench/grantrelay"
	deps := func(pkg string) []string {
		t.Helper()
		cmd := exec.Command(goCommand(t), "list", "-deps", pkg)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
		}
		return strings.Fields(string(out))
	}
	if d := deps("."); !slices.Contains(d, "github.com/authrelay/authrelay/internal/bench") {
		t.Fatalf("go list -deps . lacks internal/bench: %v", d)
	} else if slices.Contains(d, grantRelay) {
		t.Errorf("authrelay links %s, the grant-everything responder", grantRelay)
	}
	if d := deps("../authrelay-bench"); !slices.Contains(d, grantRelay) {
		t.Errorf("authrelay-bench does not link %s: %v", grantRelay, d)
	}
}
