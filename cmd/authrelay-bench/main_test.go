package main

import (
	"bytes"
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
	"testing"
	"time"

	"github.com/authrelay/authrelay/internal/bench"
)

// binDir holds authrelay and authrelay-bench, built by TestMain.
var binDir string

// TestMain builds authrelay and authrelay-bench, side by side, without the
// race detector whatever this test binary was built with: the tests run
// them as a user would, and under -race the relay would verify passwords
// several times slower than it does in use, and its admission control
// would then rightly shed logins that a real build answers.
func TestMain(m *testing.M) {
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "authrelay-bench-test-*")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// go test caches a result by the packages this test binary links
		// and the files it opens; authrelay, which it only runs, is
		// neither: open its sources, so that a change to them runs these
		// tests again.
		srcs, err := filepath.Glob(filepath.Join("..", "authrelay", "*.go"))
		if err != nil || len(srcs) == 0 {
			fmt.Fprintf(os.Stderr, "find authrelay's sources: %v (%d files)\n", err, len(srcs))
			return 1
		}
		for _, src := range srcs {
			if _, err := os.ReadFile(src); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}())
}

// build builds both commands into dir.
func build(dir string) error {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			return fmt.Errorf("no go command to build authrelay with: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", dir+string(filepath.Separator),
		"github.com/authrelay/authrelay/cmd/authrelay", "github.com/authrelay/authrelay/cmd/authrelay-bench")
	for _, kv := range os.Environ() {
		if v, ok := strings.CutPrefix(kv, "GOFLAGS="); ok {
			kv = "GOFLAGS=" + strings.Join(slices.DeleteFunc(strings.Fields(v), func(f string) bool { return f == "-race" }), " ")
		}
		cmd.Env = append(cmd.Env, kv)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return nil
}

// result is what one run of a built binary produced.
type result struct {
	code           int
	stdout, stderr string
}

// runBin runs exe with args, with an empty PATH, so that each binary finds
// the other only beside itself or where a flag says.
func runBin(t *testing.T, exe string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %s: %v", exe, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

// alone copies the binary name from binDir into a directory of its own.
func alone(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(binDir, name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// benchRow matches a scenario row of the text report: the scenario (padded
// with at least two spaces), then connects, failed, connects/s, p50, p99 and
// max latency.
var benchRow = regexp.MustCompile(`(?m)^\(([a-e])\) (.+?)\s{2,}(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s`)

// TestBenchShort is CI's short bench run: every scenario, (c) with
// authrelay-bench as its own grant relay and authrelay found beside it.
func TestBenchShort(t *testing.T) {
	start := time.Now()
	r := runBin(t, filepath.Join(binDir, "authrelay-bench"), "--short")
	t.Logf("authrelay-bench --short took %v\n%s", time.Since(start).Round(time.Millisecond), r.stdout)
	if r.code != exitOK {
		t.Fatalf("authrelay-bench --short: exit %d\n%s", r.code, r.stderr)
	}

	if !strings.HasPrefix(r.stdout, "authrelay bench: logins on this machine\ncommand:  authrelay-bench --short\nsame as:  authrelay-bench --clients 4 ") {
		t.Errorf("report does not begin with the command line:\n%s", r.stdout)
	}
	rows := map[string][]string{}
	for _, m := range benchRow.FindAllStringSubmatch(r.stdout, -1) {
		rows["("+m[1]+") "+m[2]] = m
	}
	want := []string{
		"(a) nats-server, no auth",
		"(b) nats-server, bcrypt cost 11",
		"(c) callout ceiling (grant, no store)",
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
		"(d) reconnect storm: 10 clients",
		"connected before the restart: 10 ",
		"back and authorised:          all 10,",
		"gave up:                      0 ",
		"not back when the wait ended: 0 ",
		"connects/s of (d) relative to the others:",
		"(c) grant",
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
	if strings.Contains(r.stdout, "skipped") {
		t.Errorf("report skips a scenario:\n%s", r.stdout)
	}
	if n := len(benchRow.FindAllString(r.stdout, -1)); n != len(want) {
		t.Errorf("%d scenario rows, want %d", n, len(want))
	}
}

// TestBenchClusterShort is CI's short run of (e): a cluster of three nodes
// made with the commands, its logins through one node beside the single
// node of (d), an import on the first node seen by every relay, and each
// relay's resident set.
func TestBenchClusterShort(t *testing.T) {
	start := time.Now()
	r := runBin(t, filepath.Join(binDir, "authrelay-bench"), "--short", "--cluster", "--scenarios", "shipped", "--storm-clients", "0", "--admin-writes", "0")
	t.Logf("authrelay-bench --short --cluster took %v\n%s", time.Since(start).Round(time.Millisecond), r.stdout)
	if r.code != exitOK {
		t.Fatalf("authrelay-bench --short --cluster: exit %d\n%s", r.code, r.stderr)
	}
	rows := map[string][]string{}
	for _, m := range benchRow.FindAllStringSubmatch(r.stdout, -1) {
		rows["("+m[1]+") "+m[2]] = m
	}
	for _, name := range []string{
		"(d) authrelay cold logins",
		"(d) authrelay warm reconnects",
		"(e) cluster cold logins, through n2",
		"(e) cluster warm reconnects, through n2",
	} {
		m, ok := rows[name]
		if !ok {
			t.Errorf("no row for %s", name)
			continue
		}
		connects, err1 := strconv.Atoi(m[3])
		failed, err2 := strconv.Atoi(m[4])
		if err := errors.Join(err1, err2); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if connects <= 0 || failed != 0 {
			t.Errorf("%s: %d connects, %d failed; want some, none failed", name, connects, failed)
		}
	}
	for _, s := range []string{
		"(e) cluster: 3 nats-servers in this process",
		"relays caught up and answering, from their start: n1 ",
		"until 3 passes in a row verified no password",
		"connects/s of (e) relative to the single node of (d), same run: cold ",
		"import of 500 users on n1",
		"visible on every relay ",
		"    the relays settled (each under 100ms of CPU a second",
		"(d) single node        102 users in its store",
		"(e) cluster n1         602 users in its store",
		"(e) cluster n3         602 users in its store",
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("report lacks %q", s)
		}
	}
	// After the warm-up the relays answer the warm phase from their
	// caches: far fewer verifications than the cold phase's logins.
	verified := regexp.MustCompile(`\(e\) cluster (cold|warm) [^:]*: (?:[^;]*; )?(\d+) password verifications \(n1 \d+, n2 \d+, n3 \d+\)`)
	v := map[string]int{}
	for _, m := range verified.FindAllStringSubmatch(r.stdout, -1) {
		n, err := strconv.Atoi(m[2])
		if err != nil {
			t.Fatalf("verifications %q: %v", m[2], err)
		}
		v[m[1]] = n
	}
	if cold, warm := v["cold"], v["warm"]; cold == 0 || warm*4 > cold {
		t.Errorf("password verifications: cold phase %d, warm phase %d; want some, then at most a quarter of them", cold, warm)
	}
}

// 'authrelay bench' runs (c) with the authrelay-bench beside it, or the one
// --grant-relay names.
func TestAuthrelayBenchRunsGrantRelay(t *testing.T) {
	for _, tc := range []struct {
		name, exe string
		args      []string
	}{
		{"beside", filepath.Join(binDir, "authrelay"), nil},
		{"--grant-relay", alone(t, "authrelay"), []string{"--grant-relay", filepath.Join(binDir, "authrelay-bench")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"bench", "--short", "--json", "--scenarios", "grant", "--duration", "500ms"}, tc.args...)
			r := runBin(t, tc.exe, args...)
			if r.code != exitOK {
				t.Fatalf("authrelay %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
			}
			var rep bench.Report
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("--json output does not parse: %v\n%s", err, r.stdout)
			}
			g := rep.Find(bench.ScenarioGrant)
			if g == nil || len(rep.Skipped) != 0 {
				t.Fatalf("no grant scenario (skipped: %+v)\n%s", rep.Skipped, r.stdout)
			}
			if g.Connects <= 0 || g.Failures != 0 {
				t.Errorf("grant: %d connects, %d failures %v", g.Connects, g.Failures, g.Errors)
			}
			if g.Relay == nil || g.Relay.PeakRSSMiB <= 0 || g.Relay.Logins != g.Connects {
				t.Errorf("grant relay usage %+v, want the child's RSS and logins", g.Relay)
			}
		})
	}
}

// Without authrelay beside it or on PATH, authrelay-bench says how to build
// it; the scenarios that need no authrelay still run.
func TestBenchNeedsAuthrelay(t *testing.T) {
	exe := alone(t, "authrelay-bench")
	r := runBin(t, exe, "--short", "--duration", "200ms")
	want := fmt.Sprintf("build it in authrelay's source tree with 'go build -o %s ./cmd/authrelay', or give --authrelay PATH",
		filepath.Join(filepath.Dir(exe), "authrelay"))
	if r.code != exitFailure || !strings.Contains(r.stderr, "authrelay-bench: no authrelay beside "+exe+" or on PATH") || !strings.Contains(r.stderr, want) {
		t.Errorf("without authrelay: exit %d, want %d and %q\n%s", r.code, exitFailure, want, r.stderr)
	}
	r = runBin(t, exe, "--short", "--duration", "200ms", "--authrelay", filepath.Join(t.TempDir(), "authrelay"))
	if r.code != exitUsage || !strings.Contains(r.stderr, "--authrelay") {
		t.Errorf("--authrelay to nothing: exit %d, want %d\n%s", r.code, exitUsage, r.stderr)
	}
	// Positive control: a run that needs no authrelay.
	r = runBin(t, exe, "--short", "--duration", "200ms", "--scenarios", "noauth")
	if r.code != exitOK || !strings.Contains(r.stdout, "(a) nats-server, no auth") {
		t.Errorf("--scenarios noauth without authrelay: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
}

func TestUsage(t *testing.T) {
	exe := filepath.Join(binDir, "authrelay-bench")
	for _, args := range [][]string{
		{"extra"},
		{"--clients", "0"},
		{"--scenarios", "nope"},
		{bench.GrantRelayCommand},
		{bench.GrantRelayCommand, "--dir", t.TempDir()},
	} {
		if r := runBin(t, exe, args...); r.code != exitUsage {
			t.Errorf("authrelay-bench %s: exit %d, want %d\n%s", strings.Join(args, " "), r.code, exitUsage, r.stderr)
		}
	}
	r := runBin(t, exe, "-h")
	if r.code != exitOK || !strings.Contains(r.stderr, "authrelay-bench --short") || !strings.Contains(r.stderr, "--authrelay") {
		t.Errorf("-h: exit %d\n%s", r.code, r.stderr)
	}
	// The grant relay refuses a directory the bench did not make; its
	// refusals are tested in package grantrelay.
	r = runBin(t, exe, bench.GrantRelayCommand, "--dir", t.TempDir(), "--nats", "nats://127.0.0.1:4222")
	if r.code != exitFailure || !strings.Contains(r.stderr, "runs only on a directory that 'authrelay bench' or authrelay-bench created") {
		t.Errorf("grant-relay on a directory the bench did not make: exit %d\n%s", r.code, r.stderr)
	}
}
