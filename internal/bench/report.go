package bench

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Report is the result of a run, for WriteText or WriteJSON.
type Report struct {
	// Command is the command line as given; Resolved the same run with
	// every setting spelled out.
	Command   string       `json:"command"`
	Resolved  string       `json:"resolved_command"`
	Machine   Machine      `json:"machine"`
	Settings  Settings     `json:"settings"`
	Scenarios []Scenario   `json:"scenarios"`
	Storm     *StormResult `json:"storm,omitempty"`
	Ratios    []Ratio      `json:"ratios,omitempty"`
	// Cluster is what scenario (e) measured besides its connect loops.
	Cluster *ClusterResult `json:"cluster,omitempty"`
	// OperatorRatios are the connects/s of (f)'s phases relative to
	// (d)'s, in the same run.
	OperatorRatios []Ratio `json:"operator_ratios,omitempty"`
	// Memory is each relay child's resident set at the end of its
	// scenario, with the users in its store.
	Memory []RelayMemory `json:"memory,omitempty"`
	// Skipped are the scenarios asked for that did not run, and why.
	Skipped []Skipped `json:"skipped,omitempty"`
	Notes   []string  `json:"notes,omitempty"`
}

// Skipped is a scenario that was asked for but did not run.
type Skipped struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Title  string `json:"title"`
	Reason string `json:"reason"`
}

// Machine is the machine and the versions a run measured.
type Machine struct {
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	NATSServer string `json:"nats_server"`
	Authrelay  string `json:"authrelay"`
}

// Settings are the settings of a run.
type Settings struct {
	Clients                int      `json:"clients"`
	Users                  int      `json:"users"`
	DurationS              float64  `json:"duration_s"`
	StormClients           int      `json:"storm_clients"`
	StormTimeoutS          float64  `json:"storm_timeout_s"`
	BcryptCost             int      `json:"bcrypt_cost"`
	Argon2id               string   `json:"argon2id,omitempty"`
	ConnectTimeoutS        float64  `json:"connect_timeout_s"`
	StormReconnectWaitMs   float64  `json:"storm_reconnect_wait_ms"`
	StormReconnectJitterMs float64  `json:"storm_reconnect_jitter_ms"`
	ServeArgs              []string `json:"serve_args,omitempty"`
}

// Scenario is one measured connect loop.
type Scenario struct {
	// ID is the scenario's letter, a to d; Name is noauth, bcrypt, grant,
	// shipped-cold or shipped-warm.
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Title    string  `json:"title"`
	Seconds  float64 `json:"seconds"`
	Connects int64   `json:"connects"`
	Failures int64   `json:"failures"`
	// Errors counts the failures by kind.
	Errors         map[string]int64 `json:"errors,omitempty"`
	ConnectsPerSec float64          `json:"connects_per_s"`
	LatencyMs      Latency          `json:"latency_ms"`
	// ProcessCPUMsPerConnect is the CPU time of the bench process (the
	// server and the clients) per successful connect.
	ProcessCPUMsPerConnect float64     `json:"process_cpu_ms_per_connect"`
	Relay                  *RelayStats `json:"relay,omitempty"`
	// AdminWrites are the admin changes made during the phase (the warm
	// phase with writes of (d)).
	AdminWrites int64  `json:"admin_writes,omitempty"`
	Note        string `json:"note,omitempty"`
}

// Latency is the median, 99th percentile and maximum of a set of
// durations, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// RelayStats is the relay child's use of the machine during a phase.
type RelayStats struct {
	CPUMs float64 `json:"cpu_ms"`
	// Logins are the successful logins it granted in the phase.
	Logins        int64   `json:"logins"`
	CPUMsPerLogin float64 `json:"cpu_ms_per_login"`
	// PeakRSSMiB is the child's peak resident set size so far.
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	LogWarnings int64   `json:"log_warnings"`
	// Verifications are the password verifications the relay ran in the
	// phase, from its metrics; only for the phases of (d).
	Verifications *int64 `json:"verifications,omitempty"`
}

// StormResult is the reconnect storm of (d).
type StormResult struct {
	Clients         int              `json:"clients"`
	Connected       int              `json:"connected"`
	SetupFailed     int64            `json:"setup_failed"`
	SetupErrors     map[string]int64 `json:"setup_errors,omitempty"`
	SetupSeconds    float64          `json:"setup_s"`
	ServerRestartMs float64          `json:"server_restart_ms"`
	// RelayReconnectMs is when the relay logged that it was connected
	// again, after the restart began; 0 if it did not say.
	RelayReconnectMs float64 `json:"relay_reconnect_ms,omitempty"`
	// Back clients were connected and authorised again; GaveUp clients
	// were closed by nats.go; NotBack were neither when the wait ended.
	Back    int  `json:"back"`
	GaveUp  int  `json:"gave_up"`
	NotBack int  `json:"not_back"`
	AllBack bool `json:"all_back"`
	// AllBackSeconds is the time from the restart until the last client
	// was back, when all came back.
	AllBackSeconds float64 `json:"all_back_s,omitempty"`
	WaitedSeconds  float64 `json:"waited_s"`
	TimeToBackMs   Latency `json:"time_to_back_ms"`
	// AuthErrors are the authorization errors the clients received while
	// reconnecting.
	AuthErrors int64 `json:"auth_errors"`
	// RelayDropped, RelayShed and RelayAbandoned are what the relay's log
	// says it did during the storm: requests dropped unanswered, logins
	// denied as overloaded, decisions abandoned past the server's deadline.
	// They are lower bounds where the relay rate-limits those warnings.
	RelayDropped   int64       `json:"relay_dropped"`
	RelayShed      int64       `json:"relay_shed"`
	RelayAbandoned int64       `json:"relay_abandoned"`
	Relay          *RelayStats `json:"relay,omitempty"`
}

// Ratio is the connect rate of a phase of (d) over a baseline's.
type Ratio struct {
	Scenario string  `json:"scenario"`
	Baseline string  `json:"baseline"`
	Ratio    float64 `json:"ratio"`
}

// Find returns the scenario named name (noauth, bcrypt, grant,
// shipped-cold, shipped-warm, shipped-warm-writes), or nil if it did not
// run.
func (r *Report) Find(name string) *Scenario {
	for i := range r.Scenarios {
		if r.Scenarios[i].Name == name {
			return &r.Scenarios[i]
		}
	}
	return nil
}

// computeRatios fills in the ratios of the phases of (d) to (a), (b), (c),
// and of those of (e) to (d).
func (r *Report) computeRatios() {
	if c := r.Cluster; c != nil {
		for _, phase := range []string{"-cold", "-warm"} {
			e, d := r.Find(ScenarioCluster+phase), r.Find(ScenarioShipped+phase)
			if e != nil && d != nil && d.ConnectsPerSec > 0 {
				c.Ratios = append(c.Ratios, Ratio{Scenario: e.Name, Baseline: d.Name, Ratio: e.ConnectsPerSec / d.ConnectsPerSec})
			}
		}
	}
	for _, phase := range []string{"-cold", "-warm"} {
		f, d := r.Find(ScenarioOperator+phase), r.Find(ScenarioShipped+phase)
		if f != nil && d != nil && d.ConnectsPerSec > 0 {
			r.OperatorRatios = append(r.OperatorRatios, Ratio{Scenario: f.Name, Baseline: d.Name, Ratio: f.ConnectsPerSec / d.ConnectsPerSec})
		}
	}
	for _, ph := range shippedPhases {
		d := ph.name
		ds := r.Find(d)
		if ds == nil {
			continue
		}
		bases := []string{ScenarioNoAuth, ScenarioBcrypt, ScenarioGrant}
		if ph.credential {
			// Beside the warm password reconnects of the same run.
			bases = append(bases, ScenarioShipped+"-warm")
		}
		for _, base := range bases {
			bs := r.Find(base)
			if bs == nil || bs.ConnectsPerSec == 0 {
				continue
			}
			r.Ratios = append(r.Ratios, Ratio{Scenario: d, Baseline: base, Ratio: ds.ConnectsPerSec / bs.ConnectsPerSec})
		}
	}
}

// shippedPhases are the phases of (d) the report sets beside the others,
// in its order; the credential phases also beside the warm reconnects.
var shippedPhases = []struct {
	name, label string
	credential  bool
}{
	{ScenarioShipped + "-cold", "cold logins", false},
	{ScenarioShipped + "-warm", "warm reconnects", false},
	{ScenarioShipped + "-nkey", "nkey logins", true},
	{ScenarioShipped + "-token", "token logins", true},
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("bench: write report: %w", err)
	}
	return nil
}

// WriteText writes the report as text: the command lines, the machine and
// method, a table of the scenarios, the storm, the ratios and the notes.
func (r *Report) WriteText(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("authrelay bench: logins on this machine\n")
	p("command:  %s\n", r.Command)
	if r.Resolved != r.Command {
		p("same as:  %s\n", r.Resolved)
	}
	m := r.Machine
	p("machine:  %s/%s, %d CPUs (GOMAXPROCS %d), %s, nats-server %s, authrelay %s\n",
		m.OS, m.Arch, m.CPUs, m.GOMAXPROCS, m.Go, m.NATSServer, m.Authrelay)
	p("method:   nats-server and the clients run in this process, on 127.0.0.1; the relay in a\n")
	p("          child process. %d clients each connect (nats.go over TCP, %gs timeout, no\n", r.Settings.Clients, r.Settings.ConnectTimeoutS)
	p("          reconnect) and close, in a loop, for %gs per scenario. Latency: from the start\n", r.Settings.DurationS)
	p("          of a connect until the client is connected and authorised.\n")
	hashes := fmt.Sprintf("(b) bcrypt cost %d", r.Settings.BcryptCost)
	if r.Settings.Argon2id != "" {
		hashes += fmt.Sprintf("; (d) argon2id %s, the store's policy", r.Settings.Argon2id)
	}
	p("hashes:   %s\n", hashes)
	if len(r.Settings.ServeArgs) > 0 {
		p("serve:    extra arguments for (d): %s\n", ShellJoin(r.Settings.ServeArgs))
	}
	p("\n")

	const titleW = 40
	p("%-*s %9s %7s %10s %9s %9s %9s %11s %11s\n", titleW, "", "", "", "", "", "", "", "relay CPU", "relay peak")
	p("%-*s %9s %7s %10s %9s %9s %9s %11s %11s\n", titleW, "scenario", "connects", "failed", "connects/s", "p50 ms", "p99 ms", "max ms", "per login", "RSS MiB")
	for _, s := range r.Scenarios {
		cpu, rss := "-", "-"
		if s.Relay != nil {
			cpu = fmtMs(s.Relay.CPUMsPerLogin) + " ms"
			rss = fmt.Sprintf("%.1f", s.Relay.PeakRSSMiB)
		}
		p("%-*s %9d %7d %10.1f %9s %9s %9s %11s %11s\n", titleW, "("+s.ID+") "+s.Title,
			s.Connects, s.Failures, s.ConnectsPerSec,
			fmtMs(s.LatencyMs.P50), fmtMs(s.LatencyMs.P99), fmtMs(s.LatencyMs.Max), cpu, rss)
	}
	var cpus []string
	for _, s := range r.Scenarios {
		cpus = append(cpus, fmt.Sprintf("(%s) %s ms", s.ID+phaseSuffix(s.Name), fmtMs(s.ProcessCPUMsPerConnect)))
	}
	if len(cpus) > 0 {
		p("\nCPU of this process (server and clients) per connect: %s\n", strings.Join(cpus, ", "))
	}
	for _, s := range r.Scenarios {
		if len(s.Errors) > 0 {
			p("failures in (%s) %s: %s\n", s.ID, s.Title, fmtCounts(s.Errors))
		}
		if s.Note != "" {
			p("(%s) %s: %s\n", s.ID, s.Title, s.Note)
		}
	}
	for _, s := range r.Skipped {
		p("(%s) %s: skipped: %s\n", s.ID, s.Title, s.Reason)
	}

	if st := r.Storm; st != nil {
		p("\n(d) reconnect storm: %d clients, retrying every %g to %g ms\n", st.Clients,
			r.Settings.StormReconnectWaitMs, r.Settings.StormReconnectWaitMs+r.Settings.StormReconnectJitterMs)
		p("  connected before the restart: %d in %.1f s", st.Connected, st.SetupSeconds)
		if st.SetupFailed > 0 {
			p("; %d failed: %s", st.SetupFailed, fmtCounts(st.SetupErrors))
		}
		p("\n")
		if st.Connected > 0 {
			p("  server restarted in:          %s ms (same port)\n", fmtMs(st.ServerRestartMs))
			if st.RelayReconnectMs > 0 {
				p("  relay reconnected:            %s ms after the restart began\n", fmtMs(st.RelayReconnectMs))
			}
			if st.AllBack {
				p("  back and authorised:          all %d, the last %.2f s after the restart\n", st.Back, st.AllBackSeconds)
			} else {
				p("  back and authorised:          %d of %d\n", st.Back, st.Connected)
			}
			if st.Back > 0 {
				p("  time to back:                 p50 %s ms, p99 %s ms, max %s ms\n",
					fmtMs(st.TimeToBackMs.P50), fmtMs(st.TimeToBackMs.P99), fmtMs(st.TimeToBackMs.Max))
			}
			p("  gave up:                      %d (nats.go gives up after the same authorization error twice)\n", st.GaveUp)
			p("  not back when the wait ended: %d (waited %.1f s, at most --storm-timeout %gs)\n", st.NotBack, st.WaitedSeconds, r.Settings.StormTimeoutS)
			p("  authorization errors seen:    %d\n", st.AuthErrors)
			p("  relay log:                    %d requests dropped unanswered, %d logins shed as overloaded, %d decisions abandoned past the deadline\n", st.RelayDropped, st.RelayShed, st.RelayAbandoned)
			if rl := st.Relay; rl != nil {
				p("                                %s ms CPU, %s ms per client back; peak RSS %.1f MiB\n", fmtMs(rl.CPUMs), fmtMs(rl.CPUMsPerLogin), rl.PeakRSSMiB)
			}
		}
	}

	if c := r.Cluster; c != nil {
		r.writeCluster(w, c)
	}
	if len(r.OperatorRatios) > 0 {
		var parts []string
		for _, x := range r.OperatorRatios {
			parts = append(parts, fmt.Sprintf("%s %s", strings.TrimPrefix(x.Scenario, ScenarioOperator+"-"), fmtRatio(x.Ratio)))
		}
		p("\n(f) operator mode: connects/s relative to config mode (d), same run: %s\n", strings.Join(parts, ", "))
	}

	if len(r.Ratios) > 0 {
		var bases []string
		for _, x := range r.Ratios {
			if !slices.Contains(bases, x.Baseline) {
				bases = append(bases, x.Baseline)
			}
		}
		p("\nconnects/s of (d) relative to the others:\n")
		p("  %-18s", "")
		for _, b := range bases {
			p(" %14s", "("+r.Find(b).ID+") "+b)
		}
		p("\n")
		for _, ph := range shippedPhases {
			d := ph.name
			if r.Find(d) == nil {
				continue
			}
			p("  %-18s", ph.label)
			for _, b := range bases {
				v := "-"
				for _, x := range r.Ratios {
					if x.Scenario == d && x.Baseline == b {
						v = fmtRatio(x.Ratio)
					}
				}
				p(" %14s", v)
			}
			p("\n")
		}
	}
	if len(r.Memory) > 0 {
		p("\nrelay resident set at the end of its scenario (VmRSS, and VmHWM the peak, of the child):\n")
		for _, m := range r.Memory {
			logins := ""
			if m.Logins >= 0 {
				logins = fmt.Sprintf(", %d logins granted", m.Logins)
			}
			p("  %-18s %7d users in its store%s: RSS %.1f MiB, peak %.1f MiB\n", m.Relay, m.Users, logins, m.RSSMiB, m.PeakRSSMiB)
		}
	}
	for _, n := range r.Notes {
		p("note: %s\n", n)
	}
}

// writeCluster writes what (e) measured besides its rows in the table.
func (r *Report) writeCluster(w io.Writer, c *ClusterResult) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n(e) cluster: %d nats-servers in this process, routed on 127.0.0.1, JetStream with the log's %d replicas;\n", c.Nodes, c.Nodes)
	p("  an 'authrelay serve' child per server; the logins of (e) go through %s's server\n", c.Through)
	p("  set up in %.1f s: init n1, its users, cluster enable, init --join of the others (the commands)\n", c.SetupSeconds)
	var ready []string
	for _, n := range c.Ready {
		ready = append(ready, fmt.Sprintf("%s %.2f s", n.Node, n.Seconds))
	}
	if len(ready) > 0 {
		p("  relays caught up and answering, from their start: %s (n1 writes the database into the log)\n", strings.Join(ready, ", "))
	}
	if wu := c.WarmUp; wu != nil {
		done := fmt.Sprintf("until %d passes in a row verified no password", wu.Quiet)
		if !wu.Done {
			done = fmt.Sprintf("ended by its bounds before %d passes in a row verified no password", wu.Quiet)
		}
		p("  warm-up before the warm phase (a login goes to any relay of the queue group, each with its own cache):\n")
		p("    %d passes over the users, %d logins, %d password verifications, %.1f s, %s\n", wu.Passes, wu.Logins, wu.Verifications, wu.Seconds, done)
	}
	if len(c.Ratios) > 0 {
		var parts []string
		for _, x := range c.Ratios {
			parts = append(parts, fmt.Sprintf("%s %s", strings.TrimPrefix(x.Scenario, ScenarioCluster+"-"), fmtRatio(x.Ratio)))
		}
		p("  connects/s of (e) relative to the single node of (d), same run: %s (target: at least 0.9×)\n", strings.Join(parts, ", "))
	}
	if im := c.Import; im != nil {
		p("  import of %d users on n1 ('authrelay import' of a nats.conf with bcrypt users, one admin change):\n", im.Users)
		p("    the command ran %.2f s (%.2f s of CPU); from its start, the relay's copy had them / a login of the last succeeded:\n", im.CommandSeconds, im.CommandCPUSeconds)
		for _, v := range im.Visible {
			p("    %s: %.2f s / %.2f s\n", v.Node, v.AppliedSeconds, v.LoginSeconds)
		}
		p("    visible on every relay %.2f s after the command began\n", im.AllVisibleSeconds)
		if len(im.RelayCPUMs) > 0 {
			var cpu []string
			for _, n := range im.RelayCPUMs {
				cpu = append(cpu, fmt.Sprintf("%s %s ms", n.Node, fmtMs(n.Ms)))
			}
			p("    relay CPU meanwhile: %s; %d warnings in their logs\n", strings.Join(cpu, ", "), im.RelayWarnings)
		}
		if len(im.Pending) > 0 {
			var pend []string
			for _, n := range im.Pending {
				pend = append(pend, fmt.Sprintf("%s %.0f", n.Node, n.Ms))
			}
			p("    revocations pending then (users whose connections a relay has still to look for): %s\n", strings.Join(pend, ", "))
		}
		if len(im.SettleCPUMs) > 0 {
			var cpu []string
			for _, n := range im.SettleCPUMs {
				cpu = append(cpu, fmt.Sprintf("%s %s ms", n.Node, fmtMs(n.Ms)))
			}
			state := "settled"
			if !im.Settled {
				state = "had not settled"
			}
			p("    the relays %s (each under %v of CPU a second: they ask every server for the connections of\n", state, settleIdle)
			p("    each changed user) %.2f s after the command began; their CPU until then: %s\n", im.SettledSeconds, strings.Join(cpu, ", "))
		}
	}
}

// phaseSuffix names the phase of (d) in short lists.
func phaseSuffix(name string) string {
	if _, phase, ok := strings.Cut(name, "-"); ok {
		return " " + phase
	}
	return ""
}

// fmtMs formats milliseconds with three significant digits or so.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func fmtRatio(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f×", v)
	case v >= 10:
		return fmt.Sprintf("%.1f×", v)
	default:
		return fmt.Sprintf("%.3g×", v)
	}
}

// fmtCounts formats counts by kind, most frequent first.
func fmtCounts(c map[string]int64) string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if n := cmp.Compare(c[b], c[a]); n != 0 {
			return n
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d × %s", c[k], k)
	}
	return strings.Join(parts, ", ")
}

// shellSafe matches arguments a shell takes as they are.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=,@%+-]+$`)

// ShellJoin joins args into a command line a POSIX shell reads back as
// args, quoting those that need it.
func ShellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if shellSafe.MatchString(a) {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
