package bench

import (
	"context"
	"encoding/json"
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
)

// benchTestExeEnv, when set in a relay child's environment, names an
// authrelay binary for TestMain to run in the child's place.
const benchTestExeEnv = "AUTHRELAY_BENCH_TEST_EXE"

// TestMain lets this test binary stand in for the authrelay binary as the
// relay child of 'authrelay bench': under go test, os.Executable names the
// test binary, and bench starts it with benchChildEnv set and authrelay's
// command line as its arguments. The child runs authrelay's main in this
// binary, or, when a test has built authrelay without the race detector,
// execs that binary (in the same process, whose CPU time and RSS bench
// reads), so that the relay runs at its real speed.
func TestMain(m *testing.M) {
	if os.Getenv(benchChildEnv) != "" {
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
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to build authrelay with: %v", err)
		}
	}
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

// benchRow matches a scenario row of the text report: the scenario (padded
// with at least two spaces), then connects, failed, connects/s, p50, p99 and
// max latency.
var benchRow = regexp.MustCompile(`(?m)^\(([a-d])\) (.+?)\s{2,}(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s`)

func TestBenchShort(t *testing.T) {
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
		"(c) callout ceiling (grant, no store)",
		"(d) authrelay cold logins",
		"(d) authrelay warm reconnects",
		"(d) authrelay warm, 1 admin write/s",
	}
	for _, name := range want {
		m, ok := rows[name]
		if !ok {
			t.Errorf("no row for %s", name)
			continue
		}
		connects, _ := strconv.Atoi(m[3])
		failed, _ := strconv.Atoi(m[4])
		rate, _ := strconv.ParseFloat(m[5], 64)
		if connects <= 0 || rate <= 0 {
			t.Errorf("%s: %d connects at %v/s, want some", name, connects, rate)
		}
		if failed != 0 {
			t.Errorf("%s: %d connects failed, want none", name, failed)
		}
	}
	for _, s := range []string{
		"(d) reconnect storm: 10 clients",
		"connected before the restart: 10 ",
		"back and authorised:          all 10,",
		"gave up:                      0 ",
		"not back when the wait ended: 0 ",
		"connects/s of (d) relative to the others:",
		"cold logins",
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
}

func TestBenchJSON(t *testing.T) {
	r := mustRun(t, "", "bench", "--short", "--json", "--scenarios", "noauth,grant", "--duration", "500ms")
	var rep Report
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
	}
	if rep.Command != "authrelay bench --short --json --scenarios noauth,grant --duration 500ms" {
		t.Errorf("command %q", rep.Command)
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
	if got, want := strings.Join(names, ","), "noauth,grant"; got != want {
		t.Errorf("scenarios %s, want %s", got, want)
	}
	if g := rep.scenario(scenarioGrant); g != nil {
		if g.Relay == nil || g.Relay.PeakRSSMiB <= 0 || g.Relay.Logins != g.Connects {
			t.Errorf("grant relay usage %+v, want the child's RSS and logins", g.Relay)
		}
	}
	if rep.scenario(scenarioNoAuth).Relay != nil {
		t.Errorf("noauth reports relay usage, but has no relay")
	}
	if rep.Storm != nil || len(rep.Ratios) != 0 {
		t.Errorf("storm %+v, ratios %+v without (d)", rep.Storm, rep.Ratios)
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
	} {
		if r := run(t, "", args...); r.code != exitUsage {
			t.Errorf("authrelay %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
	r := run(t, "", "bench", "-h")
	if r.code != exitOK || !strings.Contains(r.stderr, "authrelay bench --short") {
		t.Errorf("bench -h: exit %d\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, benchGrantRelayCmd) || strings.Contains(mainUsage, benchGrantRelayCmd) {
		t.Errorf("usage names the internal %s", benchGrantRelayCmd)
	}
}

func TestParseScenarios(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"noauth,bcrypt,grant,shipped", "noauth,bcrypt,grant,shipped"},
		{"shipped, a", "noauth,shipped"},
		{"D,c,c", "grant,shipped"},
	} {
		got, err := parseScenarios(tc.in)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("parseScenarios(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// The grant relay answers yes to every login, so it must refuse to run
// anywhere but on a directory bench made, as bench's child.
func TestBenchGrantRelayRefuses(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, "", "init", "--dir", dir)
	args := []string{"bench", benchGrantRelayCmd, "--dir", dir, "--nats", "nats://127.0.0.1:4222"}
	r := run(t, "", args...)
	if r.code != exitFailure || !strings.Contains(r.stderr, "runs only on a directory that 'authrelay bench' created") {
		t.Errorf("grant relay on an init'ed directory: exit %d\n%s", r.code, r.stderr)
	}
	// With the token file and the token, but a server that is not on
	// loopback.
	if err := os.WriteFile(filepath.Join(dir, benchTokenFile), []byte("tok"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMain()
	var out syncBuffer
	m.Stdout, m.Stderr = &out, &out
	m.Getenv = func(k string) string {
		if k == benchTokenEnv {
			return "tok"
		}
		return ""
	}
	err := m.Run(t.Context(), []string{"bench", benchGrantRelayCmd, "--dir", dir, "--nats", "nats://10.1.2.3:4222"})
	if err == nil || !strings.Contains(err.Error(), "only a server on a loopback address") {
		t.Errorf("grant relay for a non-loopback server: %v", err)
	}
	m.Getenv = func(string) string { return "other" }
	err = m.Run(t.Context(), args)
	if err == nil || !strings.Contains(err.Error(), "runs only on a directory") {
		t.Errorf("grant relay with the wrong token: %v", err)
	}
}

func TestLatencyStats(t *testing.T) {
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	got := latencyStats(lat)
	if want := (Latency{P50: 50, P99: 99, Max: 100}); got != want {
		t.Errorf("latencyStats = %+v, want %+v", got, want)
	}
	if got := latencyStats(nil); got != (Latency{}) {
		t.Errorf("latencyStats(nil) = %+v", got)
	}
}

func TestShellJoin(t *testing.T) {
	got := ShellJoin([]string{"authrelay", "bench", "--serve-arg=--workers=8", "a b", "it's"})
	if want := `authrelay bench --serve-arg=--workers=8 'a b' 'it'\''s'`; got != want {
		t.Errorf("ShellJoin = %s, want %s", got, want)
	}
}
