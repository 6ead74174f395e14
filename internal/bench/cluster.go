package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/authrelay/authrelay/deploy"
)

// ScenarioCluster is scenario (e), which --cluster adds.
const ScenarioCluster = "cluster"

// Settings of (e) that are not flags. They are printed in the report.
const (
	// clusterNodes is the number of nodes of (e), the smallest cluster
	// with a JetStream quorum that survives a node.
	clusterNodes = 3
	// clusterThrough is the node (1-based) the logins of (e) go through:
	// one that joined, whose copy came from the log.
	clusterThrough = 2
	// clusterReady bounds the wait for a cluster relay to catch up with
	// the log and answer: the first writes the database into the log.
	clusterReady = 5 * time.Minute
	// importBcryptCost is the bcrypt cost of the users of the import
	// file of (e): the lowest, so that the login that shows an imported
	// user is visible costs little beside the propagation it measures.
	// The import copies a hash as it is, whatever its cost.
	importBcryptCost = bcrypt.MinCost
	// importPoll is how often the import of (e) reads each relay's
	// position in the log (from its /metrics, which costs the relay a
	// little CPU each time).
	importPoll = 5 * time.Millisecond
	// importTimeout bounds the wait for an import to reach every relay.
	importTimeout = 2 * time.Minute
	// After an import is visible the relays still work through it: each
	// asks every server for the connections of each changed user, to close
	// them. The import has settled once every relay used less than
	// settleIdle of CPU in a settleWindow; the wait is at most settleMax.
	settleWindow = time.Second
	settleIdle   = 100 * time.Millisecond
	settleMax    = 3 * time.Minute
)

// clusterNode is one node of (e): its directory, its nats-server in this
// process and its relay child.
type clusterNode struct {
	name                  string // n1, n2, n3
	dir                   string
	listen, clusterListen string // 127.0.0.1:PORT
	srv                   *benchServer
	relay                 *relayProc
	metrics               string // the relay's --http address
}

// ClusterResult is what (e) measured besides its connect loops.
type ClusterResult struct {
	Nodes int `json:"nodes"`
	// Through is the node the logins of (e) went through.
	Through string `json:"through"`
	// SetupSeconds is the time of init, the users, cluster enable and the
	// joins, run as the commands.
	SetupSeconds float64 `json:"setup_s"`
	// Ready is, per relay, the time from its start until it had caught up
	// with the log and answered a login; the first relay writes the
	// database into the log meanwhile.
	Ready []NodeTime `json:"ready"`
	// Ratios are the connect rates of (e) over those of (d), the same
	// run's single node.
	Ratios []Ratio `json:"ratios,omitempty"`
	// WarmUp is what it took before the warm phase of (e) for every relay
	// to have each user cached.
	WarmUp *WarmUp       `json:"warm_up,omitempty"`
	Import *ImportResult `json:"import,omitempty"`
}

// NodeTime is a time measured on one node, in seconds.
type NodeTime struct {
	Node    string  `json:"node"`
	Seconds float64 `json:"seconds"`
}

// ImportResult is the import of (e): Users users imported on the first
// node in one 'authrelay import', and when each relay could log one of the
// last in.
type ImportResult struct {
	Users int `json:"users"`
	// CommandSeconds is the import command's run, from its start to its
	// exit: its change is in the log and in the first node's copy then.
	CommandSeconds float64 `json:"command_s"`
	// CommandCPUSeconds is the CPU time (user and system) the command
	// used: on a loaded machine, a steadier figure than its run.
	CommandCPUSeconds float64 `json:"command_cpu_s"`
	// Visible is, per node, the time from the command's start until the
	// node's relay had applied the change (its position in the log, from
	// its /metrics, read every importPoll) and a login of the last user
	// imported through the node's server had succeeded.
	Visible []NodeVisible `json:"visible"`
	// AllVisibleSeconds is the last of the Visible times.
	AllVisibleSeconds float64 `json:"all_visible_s"`
	// RelayCPUMs is, per node, the CPU time its relay used from the
	// command's start until the change was visible on every relay, and
	// RelayWarnings the WARN and ERROR lines the relays logged meanwhile.
	RelayCPUMs    []NodeMs `json:"relay_cpu_ms"`
	RelayWarnings int64    `json:"relay_warnings"`
	// SettledSeconds is the time from the command's start until every
	// relay used less than settleIdle of CPU in a settleWindow (the start
	// of that window), and SettleCPUMs each relay's CPU time from the
	// command's start until then; Settled is false when settleMax ended
	// the wait first.
	// Pending is, per node, its relay's authrelay_revocations_pending (the
	// users whose connections it has still to look for) once the import was
	// visible on every relay.
	Pending        []NodeMs `json:"revocations_pending"`
	SettledSeconds float64  `json:"settled_s"`
	SettleCPUMs    []NodeMs `json:"settle_cpu_ms"`
	Settled        bool     `json:"settled"`
}

// NodeMs is a time measured on one node, in milliseconds.
type NodeMs struct {
	Node string  `json:"node"`
	Ms   float64 `json:"ms"`
}

// NodeVisible is when an import became visible on one node.
type NodeVisible struct {
	Node string `json:"node"`
	// AppliedSeconds is when the relay's copy had the change, LoginSeconds
	// when the login that followed succeeded, both from the import
	// command's start.
	AppliedSeconds float64 `json:"applied_s"`
	LoginSeconds   float64 `json:"login_s"`
}

// RelayMemory is a relay child's resident set at the end of its scenario.
type RelayMemory struct {
	Relay string `json:"relay"`
	// Users are the users in the relay's copy of the store.
	Users int `json:"users"`
	// Logins are the logins the relay child granted in the phases it was
	// measured in, which fill its credential cache; -1 when not known (a
	// relay of a cluster, which answers a share of a node's logins).
	Logins     int64   `json:"logins"`
	RSSMiB     float64 `json:"rss_mib"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
}

// recordMemory adds child's resident set now and at its peak to the
// report.
func (b *bench) recordMemory(relay string, child *relayProc, users int, logins int64) {
	m := RelayMemory{Relay: relay, Users: users, Logins: logins}
	if rss, err := procRSS(child.pid()); err == nil {
		m.RSSMiB = float64(rss) / (1 << 20)
	}
	if rss, err := procPeakRSS(child.pid()); err == nil {
		m.PeakRSSMiB = float64(rss) / (1 << 20)
	}
	b.rep.Memory = append(b.rep.Memory, m)
}

// freeLoopbackPorts returns n distinct 127.0.0.1 addresses with ports that
// were free a moment ago.
func freeLoopbackPorts(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("bench: find a free port: %w", err)
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// runCluster is scenario (e): three nodes made with the commands an
// operator runs — the first a single node with the users of (d), made the
// first node of a cluster by 'cluster enable', the others 'init --join' —
// their nats-servers in this process, routed on 127.0.0.1 with JetStream,
// and an 'authrelay serve' child per server; cold logins and warm
// reconnects through one node, as in (d); then an import on the first
// node and the time until every relay can log one of its users in.
func (b *bench) runCluster(ctx context.Context, names []string, password string) error {
	addrs, err := freeLoopbackPorts(2 * clusterNodes)
	if err != nil {
		return err
	}
	nodes := make([]*clusterNode, clusterNodes)
	var routes []string
	for i := range nodes {
		nodes[i] = &clusterNode{name: fmt.Sprintf("n%d", i+1), dir: filepath.Join(b.tmp, fmt.Sprintf("n%d", i+1)),
			listen: addrs[i], clusterListen: addrs[clusterNodes+i]}
		routes = append(routes, "nats://"+addrs[clusterNodes+i])
	}
	res := &ClusterResult{Nodes: clusterNodes, Through: nodes[clusterThrough-1].name}
	b.rep.Cluster = res
	defer func() {
		for _, n := range nodes {
			if n.relay != nil {
				n.relay.stop()
			}
			if n.srv != nil {
				n.srv.stop()
			}
		}
	}()

	setup := time.Now()
	first := nodes[0]
	b.progress("(e) initialising %s with %d users, then cluster enable", first.name, len(names))
	if err := b.runAuthrelay(ctx, "init", "--dir", first.dir, "--account", Account, "--listen", first.listen); err != nil {
		return err
	}
	if _, err := b.addUsers(ctx, first.dir, names, password); err != nil {
		return err
	}
	if err := b.runAuthrelay(ctx, "cluster", "enable", "--dir", first.dir, "--cluster-listen", first.clusterListen, "--routes", strings.Join(routes, ",")); err != nil {
		return err
	}
	for _, n := range nodes[1:] {
		b.progress("(e) initialising %s: init --join %s", n.name, filepath.Join(first.name, deploy.SecretsFile))
		if err := b.runAuthrelay(ctx, "init", "--dir", n.dir, "--join", filepath.Join(first.dir, deploy.SecretsFile),
			"--listen", n.listen, "--cluster-listen", n.clusterListen, "--routes", strings.Join(routes, ",")); err != nil {
			return err
		}
	}
	res.SetupSeconds = time.Since(setup).Seconds()

	for _, n := range nodes {
		_, port, err := net.SplitHostPort(n.listen)
		if err != nil {
			return fmt.Errorf("bench: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return fmt.Errorf("bench: port of %s: %w", n.listen, err)
		}
		if n.srv, err = startBenchServer(filepath.Join(n.dir, serverConf), p); err != nil {
			return err
		}
	}
	// The first relay writes the database into the empty log; the others
	// then catch up from it.
	ready := make([]float64, clusterNodes)
	if ready[0], err = b.startClusterRelay(ctx, first); err != nil {
		return err
	}
	errs := make([]error, clusterNodes)
	var wg sync.WaitGroup
	for i, n := range nodes[1:] {
		wg.Go(func() { ready[i+1], errs[i+1] = b.startClusterRelay(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, n := range nodes {
		res.Ready = append(res.Ready, NodeTime{Node: n.name, Seconds: ready[i]})
	}

	through := nodes[clusterThrough-1]
	title := fmt.Sprintf("cluster cold logins, through %s", through.name)
	b.progress("(e) %s: %d clients for %v, %d users", title, b.cfg.Clients, b.cfg.Duration, len(names))
	cold, err := b.measureCluster(ctx, nodes, connectLoad{url: through.srv.url(), clients: b.cfg.Clients,
		duration: b.cfg.Duration, creds: once(names, password), collect: true})
	if err != nil {
		return err
	}
	cold.ID, cold.Name, cold.Title = "e", ScenarioCluster+"-cold", title
	if cold.exhausted {
		cold.Note += fmt.Sprintf("; all %d users had logged in after %.1fs: the phase ended early (give more --users)", len(names), cold.Seconds)
	}
	b.rep.Scenarios = append(b.rep.Scenarios, cold.Scenario)
	if warm := cold.authorised; len(warm) > 0 {
		wu, err := b.clusterWarmUp(ctx, nodes, through, warm, password)
		if err != nil {
			return err
		}
		res.WarmUp = wu
		title = fmt.Sprintf("cluster warm reconnects, through %s", through.name)
		b.progress("(e) %s: %d clients for %v, %d users", title, b.cfg.Clients, b.cfg.Duration, len(warm))
		w, err := b.measureCluster(ctx, nodes, connectLoad{url: through.srv.url(), clients: b.cfg.Clients,
			duration: b.cfg.Duration, creds: cycle(warm, password)})
		if err != nil {
			return err
		}
		w.ID, w.Name, w.Title = "e", ScenarioCluster+"-warm", title
		w.Note = fmt.Sprintf("the %d users of the cluster's cold phase, again, after the warm-up; %s", len(warm), w.Note)
		b.rep.Scenarios = append(b.rep.Scenarios, w.Scenario)
	} else {
		b.rep.Notes = append(b.rep.Notes, "(e) no cold login succeeded: warm reconnects were skipped")
	}

	users := len(names) + 2
	if b.cfg.ImportUsers > 0 && ctx.Err() == nil {
		imp, err := b.clusterImport(ctx, nodes)
		if err != nil {
			return err
		}
		res.Import = imp
		users += imp.Users
	}
	for _, n := range nodes {
		b.recordMemory("(e) cluster "+n.name, n.relay, users, -1)
	}
	var stopErrs []error
	for _, n := range nodes {
		stopErrs = append(stopErrs, n.relay.stop())
	}
	return errors.Join(stopErrs...)
}

// clusterLoad is a measured phase of (e), with the password
// verifications each relay ran in it.
type clusterLoad struct {
	loadResult
	verified []int64
}

// measureCluster runs l, reading every relay's CPU time and password
// verifications before and after: a login through one node's server is
// answered by any relay of the queue group. The relay figures of the
// phase are the three relays' CPU time per login, their verifications and
// the largest peak RSS.
func (b *bench) measureCluster(ctx context.Context, nodes []*clusterNode, l connectLoad) (clusterLoad, error) {
	read := func() ([]benchSample, []int64, error) {
		s := make([]benchSample, len(nodes))
		v := make([]int64, len(nodes))
		for i, n := range nodes {
			var err error
			if v[i], err = verifications(ctx, n.metrics); err != nil {
				return nil, nil, err
			}
			s[i] = b.sample(n.relay)
		}
		return s, v, nil
	}
	before, vBefore, err := read()
	if err != nil {
		return clusterLoad{}, err
	}
	res := b.measure(ctx, nil, l)
	after, vAfter, err := read()
	if err != nil {
		return clusterLoad{}, err
	}
	out := clusterLoad{loadResult: res, verified: make([]int64, len(nodes))}
	rs := &RelayStats{Logins: res.Connects}
	var total, shed, dropped, abandoned int64
	var per []string
	for i, n := range nodes {
		shed += after[i].relayLog.shed - before[i].relayLog.shed
		dropped += after[i].relayLog.dropped - before[i].relayLog.dropped
		abandoned += after[i].relayLog.abandoned - before[i].relayLog.abandoned
		u := relayUsage(n.relay, before[i], after[i], res.Connects)
		rs.CPUMs += u.CPUMs
		rs.PeakRSSMiB = max(rs.PeakRSSMiB, u.PeakRSSMiB)
		rs.LogWarnings += u.LogWarnings
		out.verified[i] = vAfter[i] - vBefore[i]
		total += out.verified[i]
		per = append(per, fmt.Sprintf("%s %d", n.name, out.verified[i]))
	}
	if res.Connects > 0 {
		rs.CPUMsPerLogin = rs.CPUMs / float64(res.Connects)
	}
	rs.Verifications = &total
	out.Relay = rs
	out.Note = fmt.Sprintf("%d password verifications (%s); relay CPU: the three relays'", total, strings.Join(per, ", "))
	if shed+dropped+abandoned > 0 {
		out.Note += fmt.Sprintf("; the relays' logs: %d logins shed as overloaded, %d requests dropped, %d decisions abandoned past the deadline", shed, dropped, abandoned)
	}
	return out, nil
}

// Bounds of the warm-up of (e).
const (
	// warmUpQuiet is the passes in a row that must verify no password to
	// end the warm-up: a pass sends each user to one relay, chosen at
	// random, so one quiet pass may leave a user that a relay has not
	// cached; after warmUpQuiet quiet passes few are left, if any.
	warmUpQuiet  = 3
	warmUpPasses = 60
	warmUpMax    = 5 * time.Minute
)

// WarmUp is the warm-up of (e): passes over the users of the cold phase,
// each user once a pass, until warmUpQuiet passes in a row made no relay
// verify a password, so that every relay has (nearly) every user in its
// credential cache, as the one relay of (d) has after its cold phase.
type WarmUp struct {
	Passes        int     `json:"passes"`
	Logins        int64   `json:"logins"`
	Verifications int64   `json:"verifications"`
	Seconds       float64 `json:"seconds"`
	// Quiet is the passes in a row without a verification that end it.
	Quiet int `json:"quiet_passes"`
	// Done is false when the bounds ended it first.
	Done bool `json:"done"`
}

// clusterWarmUp runs the warm-up of (e) through node through.
func (b *bench) clusterWarmUp(ctx context.Context, nodes []*clusterNode, through *clusterNode, users []string, password string) (*WarmUp, error) {
	b.progress("(e) warm-up: logging the %d users in again until every relay has them cached", len(users))
	wu := &WarmUp{Quiet: warmUpQuiet}
	start := time.Now()
	quiet := 0
	for wu.Passes < warmUpPasses && time.Since(start) < warmUpMax && ctx.Err() == nil {
		res, err := b.measureCluster(ctx, nodes, connectLoad{url: through.srv.url(), clients: b.cfg.Clients,
			duration: warmUpMax, creds: once(users, password)})
		if err != nil {
			return nil, err
		}
		wu.Passes++
		wu.Logins += res.Connects
		v := *res.Relay.Verifications
		wu.Verifications += v
		if v != 0 || res.Failures != 0 {
			quiet = 0
			continue
		}
		if quiet++; quiet == warmUpQuiet {
			wu.Done = true
			break
		}
	}
	wu.Seconds = time.Since(start).Seconds()
	return wu, nil
}

// startClusterRelay starts n's relay and waits until it has caught up with
// the log and answers a login through n's server, and returns how long
// that took, in seconds.
func (b *bench) startClusterRelay(ctx context.Context, n *clusterNode) (float64, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return 0, err
	}
	n.metrics = addr
	args := append([]string{"serve", "--dir", n.dir, "--nats", n.srv.url(), "--http", addr}, b.cfg.ServeArgs...)
	start := time.Now()
	if n.relay, err = b.startRelay(ctx, b.cfg.Authrelay, "authrelay serve "+n.name, nil, args...); err != nil {
		return 0, err
	}
	b.progress("(e) waiting for %s's relay to catch up with the cluster log", n.name)
	// A login through n's server may be answered by another node's relay:
	// n's is ready once it says it caught up.
	deadline := time.Now().Add(clusterReady)
	for !n.relay.log.counts().caughtUp {
		select {
		case <-n.relay.exited:
			return 0, fmt.Errorf("bench: %s exited before it caught up with the cluster log (%v):\n%s", n.relay.name, n.relay.err, n.relay.log.tail())
		default:
		}
		if ctx.Err() != nil {
			return 0, fmt.Errorf("bench: %w", ctx.Err())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bench: %s did not catch up with the cluster log within %v:\n%s", n.relay.name, clusterReady, n.relay.log.tail())
		}
		sleepCtx(ctx, 20*time.Millisecond)
	}
	if err := n.relay.awaitReady(ctx, n.srv.url(), probeUser, b.password); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

// importUserName is the name of user i of the import file of (e).
func importUserName(i int) string { return fmt.Sprintf("imp%06d", i) }

// writeImportFile writes a nats.conf whose authorization block has n
// users, all with one bcrypt hash of password, as a stock nats-server's
// would be.
func writeImportFile(path string, n int, password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), importBcryptCost)
	if err != nil {
		return fmt.Errorf("bench: bcrypt: %w", err)
	}
	var conf bytes.Buffer
	fmt.Fprintf(&conf, "# (e) %d users of a stock nats-server to import, written by 'authrelay bench'\n", n)
	conf.WriteString("authorization {\n  users: [\n")
	for i := range n {
		fmt.Fprintf(&conf, "    { user: %q, password: %q }\n", importUserName(i), hash)
	}
	conf.WriteString("  ]\n}\n")
	if err := os.WriteFile(path, conf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// clusterImport imports b.cfg.ImportUsers users on the first node, in one
// 'authrelay import' (one admin change, one atomic batch in the log), and
// measures when each relay can log the last of them in.
func (b *bench) clusterImport(ctx context.Context, nodes []*clusterNode) (*ImportResult, error) {
	n := b.cfg.ImportUsers
	file := filepath.Join(b.tmp, "import.conf")
	if err := writeImportFile(file, n, b.password); err != nil {
		return nil, err
	}
	res := &ImportResult{Users: n}
	last := importUserName(n - 1)
	before := make([]float64, len(nodes))
	for i, nd := range nodes {
		v, err := readMetric(ctx, nd.metrics, "authrelay_cluster_applied_seq")
		if err != nil {
			return nil, err
		}
		before[i] = v
	}
	b.progress("(e) importing %d users on %s", n, nodes[0].name)
	samples := make([]benchSample, len(nodes))
	for i, nd := range nodes {
		samples[i] = b.sample(nd.relay)
	}
	pctx, cancel := context.WithTimeout(ctx, importTimeout)
	defer cancel()
	t0 := time.Now()
	visible := make([]NodeVisible, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, nd := range nodes {
		wg.Go(func() {
			visible[i], errs[i] = awaitImported(pctx, nd, before[i], t0, last, b.password)
		})
	}
	out, cpu, err := b.authrelayOutput(ctx, "import", file, "--dir", nodes[0].dir, "--account", Account, "--json")
	res.CommandSeconds, res.CommandCPUSeconds = time.Since(t0).Seconds(), cpu.Seconds()
	if err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	var rep struct {
		Summary struct {
			UsersImported int `json:"users_imported"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		cancel()
		wg.Wait()
		return nil, fmt.Errorf("bench: authrelay import --json: %w", err)
	}
	if rep.Summary.UsersImported != n {
		cancel()
		wg.Wait()
		return nil, fmt.Errorf("bench: authrelay import imported %d users of %d", rep.Summary.UsersImported, n)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res.Visible = visible
	for _, v := range visible {
		res.AllVisibleSeconds = max(res.AllVisibleSeconds, v.LoginSeconds)
	}
	for i, nd := range nodes {
		after := b.sample(nd.relay)
		res.RelayCPUMs = append(res.RelayCPUMs, NodeMs{Node: nd.name, Ms: ms(after.relayCPU - samples[i].relayCPU)})
		res.RelayWarnings += after.relayLog.warnings - samples[i].relayLog.warnings
	}
	for _, nd := range nodes {
		v, err := readMetric(ctx, nd.metrics, "authrelay_revocations_pending")
		if err != nil {
			return nil, err
		}
		res.Pending = append(res.Pending, NodeMs{Node: nd.name, Ms: v})
	}
	b.progress("(e) waiting for the relays to settle after the import")
	prev := make([]benchSample, len(nodes))
	for i, nd := range nodes {
		prev[i] = b.sample(nd.relay)
	}
	for deadline := time.Now().Add(settleMax); time.Now().Before(deadline) && ctx.Err() == nil; {
		start := time.Since(t0)
		sleepCtx(ctx, settleWindow)
		quiet := true
		for i, nd := range nodes {
			s := b.sample(nd.relay)
			quiet = quiet && s.relayOK && s.relayCPU-prev[i].relayCPU < settleIdle
			prev[i] = s
		}
		if quiet {
			res.Settled, res.SettledSeconds = true, start.Seconds()
			break
		}
	}
	if !res.Settled {
		res.SettledSeconds = time.Since(t0).Seconds()
	}
	for i, nd := range nodes {
		// The last window is idle, or the wait ended: count it.
		res.SettleCPUMs = append(res.SettleCPUMs, NodeMs{Node: nd.name, Ms: ms(prev[i].relayCPU - samples[i].relayCPU)})
	}
	return res, nil
}

// awaitImported waits until nd's relay has applied a change beyond
// position before, then logs user in through nd's server. It logs in only
// once the copy has the change, so that no refused login counts towards a
// lockout.
func awaitImported(ctx context.Context, nd *clusterNode, before float64, t0 time.Time, user, password string) (NodeVisible, error) {
	v := NodeVisible{Node: nd.name}
	for {
		applied, err := readMetric(ctx, nd.metrics, "authrelay_cluster_applied_seq")
		if ctx.Err() != nil {
			return v, fmt.Errorf("bench: %s's relay had not applied the import after %v", nd.name, time.Since(t0).Round(time.Millisecond))
		}
		if err != nil {
			return v, err
		}
		if applied > before {
			v.AppliedSeconds = time.Since(t0).Seconds()
			break
		}
		sleepCtx(ctx, importPoll)
	}
	nc, err := nats.Connect(nd.srv.url(), nats.UserInfo(user, password), nats.Timeout(connectTimeout), nats.NoReconnect())
	if err != nil {
		return v, fmt.Errorf("bench: log %s in through %s once its relay had the import: %w", user, nd.name, err)
	}
	nc.Close()
	v.LoginSeconds = time.Since(t0).Seconds()
	return v, nil
}

// authrelayOutput runs the authrelay executable with args to completion and
// returns its standard output and the CPU time it used, or an error with
// its output if it fails.
func (b *bench) authrelayOutput(ctx context.Context, args ...string) ([]byte, time.Duration, error) {
	cmd := exec.CommandContext(ctx, b.cfg.Authrelay, args...)
	cmd.Env = append(os.Environ(), ChildEnv+"=1")
	var stdout bytes.Buffer
	stderr := &childLog{}
	cmd.Stdout, cmd.Stderr = &stdout, stderr
	cmd.SysProcAttr = childSysProcAttr()
	if err := cmd.Run(); err != nil {
		return nil, 0, fmt.Errorf("bench: authrelay %s: %w:\n%s", args[0], err, stderr.tail())
	}
	return stdout.Bytes(), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}
