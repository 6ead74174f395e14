package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseScenarios(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"noauth,bcrypt,grant,shipped", "noauth,bcrypt,grant,shipped"},
		{"shipped, a", "noauth,shipped"},
		{"D,c,c", "grant,shipped"},
	} {
		got, err := ParseScenarios(tc.in)
		if err != nil || strings.Join(got, ",") != tc.want {
			t.Errorf("ParseScenarios(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"noauth,nope", ",", ""} {
		var ue *UsageError
		if _, err := ParseScenarios(in); !errors.As(err, &ue) {
			t.Errorf("ParseScenarios(%q): %v, want a usage error", in, err)
		}
	}
}

// parseFlags parses args with the bench's flags.
func parseFlags(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := NewFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f.Config()
}

func TestFlagsShort(t *testing.T) {
	c, err := parseFlags(t, "--short", "--users", "7", "--serve-arg=--workers=8")
	if err != nil {
		t.Fatal(err)
	}
	// --short's defaults, except for the flag given with it.
	if c.Clients != 4 || c.Users != 7 || c.Duration != 1500*time.Millisecond || c.StormClients != 10 || c.StormTimeout != 30*time.Second {
		t.Errorf("--short --users 7: %+v", c)
	}
	if got, want := strings.Join(c.Scenarios, ","), "noauth,bcrypt,grant,shipped"; got != want {
		t.Errorf("scenarios %s, want %s", got, want)
	}
	c.Program = []string{"authrelay", "bench"}
	if got, want := c.resolved(), "authrelay bench --clients 4 --users 7 --duration 1.5s --storm-clients 10 --storm-timeout 30s --admin-writes 1 --scenarios noauth,bcrypt,grant,shipped --serve-arg=--workers=8"; got != want {
		t.Errorf("resolved:\n%s\nwant\n%s", got, want)
	}
	c, err = parseFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	if c.Clients != 16 || c.Users != 2000 || c.Duration != 10*time.Second || c.StormClients != 5000 || c.AdminWrites != 1 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestFlagsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"--scenarios", "noauth,nope"},
		{"--scenarios", ","},
		{"--clients", "0"},
		{"--users", "0"},
		{"--duration", "-1s"},
		{"--storm-clients", "-1"},
		{"--storm-timeout", "0s"},
		{"--admin-writes", "-1"},
		{"--admin-writes", "1001"},
	} {
		var ue *UsageError
		if _, err := parseFlags(t, args...); !errors.As(err, &ue) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
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

// A scenario that did not run is in the report, with its reason, as text
// and as JSON; the ratios leave it out.
func TestReportSkipped(t *testing.T) {
	rep := &Report{
		Command: "authrelay bench", Resolved: "authrelay bench",
		Scenarios: []Scenario{
			{ID: "a", Name: ScenarioNoAuth, Title: "nats-server, no auth", Connects: 10, ConnectsPerSec: 100},
			{ID: "d", Name: ScenarioShipped + "-warm", Title: "authrelay warm reconnects", Connects: 5, ConnectsPerSec: 50},
		},
		Skipped: []Skipped{{ID: "c", Name: ScenarioGrant, Title: grantTitle, Reason: "no authrelay-bench"}},
	}
	rep.computeRatios()
	var text bytes.Buffer
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "\n(c) callout ceiling (grant, no store): skipped: no authrelay-bench\n") {
		t.Errorf("text report lacks the skipped scenario:\n%s", text.String())
	}
	if len(rep.Ratios) != 1 || rep.Ratios[0].Baseline != ScenarioNoAuth || rep.Ratios[0].Ratio != 0.5 {
		t.Errorf("ratios %+v, want warm/noauth 0.5 only", rep.Ratios)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Skipped) != 1 || back.Skipped[0] != rep.Skipped[0] {
		t.Errorf("JSON skipped %+v, want %+v", back.Skipped, rep.Skipped)
	}
}

func TestFindProgram(t *testing.T) {
	beside, onPath := t.TempDir(), t.TempDir()
	write := func(dir, name string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	self := write(beside, "authrelay", 0o755)
	onPathExe := write(onPath, "authrelay-bench", 0o755)
	if got := FindProgram("authrelay-bench", self, onPath); got != onPathExe {
		t.Errorf("on PATH only: %q, want %q", got, onPathExe)
	}
	besideExe := write(beside, "authrelay-bench", 0o755)
	if got := FindProgram("authrelay-bench", self, onPath); got != besideExe {
		t.Errorf("beside and on PATH: %q, want the one beside, %q", got, besideExe)
	}
	if got := FindProgram("authrelay-bench", "", ""); got != "" {
		t.Errorf("neither: %q, want none", got)
	}
	// Not executable: not found.
	write(onPath, "other", 0o644)
	if got := FindProgram("other", self, onPath); got != "" {
		t.Errorf("a file that is not executable: %q, want none", got)
	}
	// Never from the working directory, by an empty or relative entry.
	t.Chdir(onPath)
	for _, list := range []string{"", ".", string(os.PathListSeparator), "./"} {
		if got := FindProgram("authrelay-bench", "", list); got != "" {
			t.Errorf("PATH %q: %q, want none from the working directory", list, got)
		}
	}
	if got := FindProgram("authrelay-bench", "", "."+string(os.PathListSeparator)+onPath); got != onPathExe {
		t.Errorf("PATH .:%s: %q, want %q", onPath, got, onPathExe)
	}
}
