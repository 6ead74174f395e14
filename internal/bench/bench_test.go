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
	if c.Clients != 16 || c.Users != 2000 || c.Duration != 10*time.Second || c.StormClients != 5000 || c.AdminWrites != 1 || c.Cluster || c.ImportUsers != 10000 {
		t.Errorf("defaults: %+v", c)
	}
	// --cluster is spelled out with its import; --short imports 500.
	c, err = parseFlags(t, "--short", "--cluster", "--scenarios", "shipped")
	if err != nil {
		t.Fatal(err)
	}
	c.Program = []string{"authrelay-bench"}
	if got, want := c.resolved(), "authrelay-bench --clients 4 --users 100 --duration 1.5s --storm-clients 10 --storm-timeout 30s --admin-writes 1 --scenarios shipped --cluster --import-users 500"; got != want {
		t.Errorf("resolved:\n%s\nwant\n%s", got, want)
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
		{"--import-users", "-1"},
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

// The cluster's section of the text report: its ratios to the single node
// of the same run, the warm-up, the import and each relay's memory.
func TestReportCluster(t *testing.T) {
	verified := int64(0)
	rep := &Report{
		Command: "authrelay-bench --cluster", Resolved: "authrelay-bench --cluster",
		Scenarios: []Scenario{
			{ID: "d", Name: ScenarioShipped + "-cold", Title: "authrelay cold logins", Connects: 100, ConnectsPerSec: 40},
			{ID: "d", Name: ScenarioShipped + "-warm", Title: "authrelay warm reconnects", Connects: 1000, ConnectsPerSec: 800},
			{ID: "e", Name: ScenarioCluster + "-cold", Title: "cluster cold logins, through n2", Connects: 90, ConnectsPerSec: 36},
			{ID: "e", Name: ScenarioCluster + "-warm", Title: "cluster warm reconnects, through n2", Connects: 1000, ConnectsPerSec: 760,
				Relay: &RelayStats{Verifications: &verified}},
		},
		Cluster: &ClusterResult{Nodes: 3, Through: "n2", SetupSeconds: 1.5,
			Ready:  []NodeTime{{"n1", 5}, {"n2", 1}, {"n3", 1.2}},
			WarmUp: &WarmUp{Passes: 8, Logins: 200, Verifications: 50, Seconds: 2.4, Quiet: 3, Done: true},
			Import: &ImportResult{Users: 10000, CommandSeconds: 11, CommandCPUSeconds: 4.5, AllVisibleSeconds: 13.5,
				Visible:        []NodeVisible{{"n1", 11, 11.1}, {"n2", 13.1, 13.2}, {"n3", 13.4, 13.5}},
				SettledSeconds: 30.5, Settled: true, SettleCPUMs: []NodeMs{{"n1", 9000}, {"n2", 9500}, {"n3", 9100}}}},
		Memory: []RelayMemory{{Relay: "(d) single node", Users: 2002, Logins: 1100, RSSMiB: 40, PeakRSSMiB: 130},
			{Relay: "(e) cluster n2", Users: 12002, Logins: -1, RSSMiB: 55.5, PeakRSSMiB: 170}},
	}
	rep.computeRatios()
	if got := rep.Cluster.Ratios; len(got) != 2 || got[0].Ratio != 0.9 || got[1].Ratio != 0.95 {
		t.Errorf("cluster ratios %+v, want cold 0.9 and warm 0.95", got)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range []string{
		"connects/s of (e) relative to the single node of (d), same run: cold 0.9×, warm 0.95× (target: at least 0.9×)\n",
		"    8 passes over the users, 200 logins, 50 password verifications, 2.4 s, until 3 passes in a row verified no password\n",
		"  import of 10000 users on n1",
		"    the command ran 11.00 s (4.50 s of CPU); ",
		"    n3: 13.40 s / 13.50 s\n",
		"    visible on every relay 13.50 s after the command began\n",
		"    each changed user) 30.50 s after the command began; their CPU until then: n1 9000 ms, n2 9500 ms, n3 9100 ms\n",
		"  (d) single node       2002 users in its store, 1100 logins granted: RSS 40.0 MiB, peak 130.0 MiB\n",
		"  (e) cluster n2       12002 users in its store: RSS 55.5 MiB, peak 170.0 MiB\n",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Cluster == nil || back.Cluster.Import == nil || back.Cluster.Import.Visible[2] != rep.Cluster.Import.Visible[2] || len(back.Memory) != 2 {
		t.Errorf("JSON cluster %+v, memory %+v", back.Cluster, back.Memory)
	}
}
