package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/authrelay/authrelay/store"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of Config.
const (
	DefaultStream   = "AUTHRELAY"
	DefaultSubject  = "authrelay.state"
	DefaultReplicas = 3
	DefaultTimeout  = 2 * time.Second
	// DefaultElectionWait covers nats-server's election after the loss
	// of a stream's leader: its followers call one 4 to 9 s after the
	// leader's last heartbeat (sent every second), and the vote takes
	// moments.
	DefaultElectionWait = 15 * time.Second
)

// ErrNoQuorum means JetStream did not answer for the cluster log: no stream
// leader, because fewer than a majority of the servers that hold the stream
// are up (2 of 3 with the default replicas), or no JetStream at all.
var ErrNoQuorum = errors.New("the cluster has no JetStream quorum")

// Config says which stream holds the cluster log and how to reach it.
type Config struct {
	// Stream is the JetStream stream's name (DefaultStream).
	Stream string
	// Subject is the one subject the stream holds (DefaultSubject).
	Subject string
	// Replicas is how many servers keep the stream (DefaultReplicas): it
	// survives the loss of fewer than half of them.
	Replicas int
	// Timeout bounds every request to JetStream (DefaultTimeout): a write
	// that gets no answer within it fails with ErrNoQuorum.
	Timeout time.Duration
	// ElectionWait bounds how long a change (Check) and Open wait for
	// the log's stream to elect a leader while a majority of the servers
	// that hold it is reachable (DefaultElectionWait); with fewer
	// reachable they fail at once.
	ElectionWait time.Duration
	// RetryWait is how long Follow waits after an error before it starts
	// again (one second by default).
	RetryWait time.Duration
	// Logger gets Follow's errors; slog.Default() when nil.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.ElectionWait <= 0 {
		c.ElectionWait = DefaultElectionWait
	}
	if c.RetryWait <= 0 {
		c.RetryWait = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Log is the cluster log: one JetStream stream of committed store changes,
// in order. It implements store.Replicator.
type Log struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream
	// peers are the names of the servers that hold the stream, as its
	// last stream info named them (nil before one): what the
	// reachability probe counts.
	peers atomic.Pointer[[]string]
}

var (
	_ store.Replicator = (*Log)(nil)
	_ store.LogChecker = (*Log)(nil)
)

// Open creates the stream of the cluster log, or updates it to cfg, on the
// JetStream of nc's account (authrelay's AUTH account, so that the
// password hashes in it are readable only there). A stream that already
// has cfg's settings is only read (one stream info, answered by its
// leader), not updated. While the stream elects a leader, and a majority
// of its servers is reachable, Open waits for it, up to cfg.ElectionWait.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	if cfg.Replicas < 1 || cfg.Replicas > 5 {
		return nil, fmt.Errorf("open cluster log: replicas %d: give 1 to 5 (3 survives the loss of one server, 5 of two)", cfg.Replicas)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("open cluster log: %w", err)
	}
	want := jetstream.StreamConfig{
		Name:        cfg.Stream,
		Description: "authrelay's cluster log: the ordered committed changes of its identity store",
		Subjects:    []string{cfg.Subject},
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		// No limits, and no deleting or purging of entries: a copy is
		// only right if it has applied every entry in order.
		DenyDelete: true,
		DenyPurge:  true,
		// A change larger than one message goes in as an atomic batch.
		AllowAtomicPublish: true,
	}
	l := &Log{cfg: cfg, js: js}
	err = l.withElection(ctx, func(ctx context.Context) error {
		tctx, cancel := l.timeout(ctx)
		defer cancel()
		stream, err := js.Stream(tctx, cfg.Stream)
		if err == nil && sameConfig(stream.CachedInfo().Config, want) {
			l.stream = stream
			l.notePeers(stream.CachedInfo())
			return nil
		}
		if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			return jsError(tctx, err)
		}
		if stream, err = js.CreateOrUpdateStream(tctx, want); err != nil {
			return jsError(tctx, err)
		}
		l.stream = stream
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open cluster log %s: %w", cfg.Stream, err)
	}
	return l, nil
}

// sameConfig reports whether the stream's config has every setting of want
// that Open sets.
func sameConfig(got, want jetstream.StreamConfig) bool {
	return slices.Equal(got.Subjects, want.Subjects) && got.Description == want.Description &&
		got.Storage == want.Storage && got.Replicas == want.Replicas && got.Retention == want.Retention &&
		got.DenyDelete == want.DenyDelete && got.DenyPurge == want.DenyPurge &&
		got.AllowAtomicPublish == want.AllowAtomicPublish
}

// notePeers keeps the names of the servers that hold the stream, from its
// info, for the reachability probe.
func (l *Log) notePeers(info *jetstream.StreamInfo) {
	if info == nil || info.Cluster == nil {
		return
	}
	var peers []string
	if info.Cluster.Leader != "" {
		peers = append(peers, info.Cluster.Leader)
	}
	for _, r := range info.Cluster.Replicas {
		if r.Name != "" && !slices.Contains(peers, r.Name) {
			peers = append(peers, r.Name)
		}
	}
	if len(peers) > 0 {
		l.peers.Store(&peers)
	}
}

// probeSubject is the account-scoped server ping that nats-server imports
// into every account: each server the request reaches answers (with
// include_unused, even one without a connection in the account), with its
// name. A server whose routes are down does not: the answers are the
// servers this one reaches now, known as soon as a route closes, where
// JetStream's own view (its raft heartbeats) takes seconds to change.
//
// Once the stream's servers are known by name (notePeers), the probe asks
// each by name (exact_match), one answer per request: after a config
// reload (which authrelay has the server make on every account change)
// nats-server 2.15 passes only the first answer to a request through this
// import, so that a request to every server would find one.
const probeSubject = "$SYS.REQ.ACCOUNT.PING.STATZ"

// probeWait bounds how long the probe waits for each server's answer.
const probeWait = 250 * time.Millisecond

// probeTries is how many times the probe asks a server that has not
// answered: an answer may be lost; a route that is down is down each time.
const probeTries = 2

// electionPoll is how often a change waiting for the stream's leader asks
// again.
const electionPoll = 200 * time.Millisecond

// reach is what the probe found.
type reach struct {
	// known is whether some server answered: without an answer (server
	// events disabled) the probe tells nothing.
	known bool
	// servers are the stream's servers that answered (any JetStream
	// server while the stream's servers are not known yet), need how many
	// make a majority of its replicas.
	servers []string
	need    int
}

func (r reach) majority() bool { return !r.known || len(r.servers) >= r.need }

// probe finds which of the stream's servers this one reaches now
// (probeSubject): each by name once their names are known, else by one
// request to all (which finds fewer than there are after a config reload:
// see probeSubject).
func (l *Log) probe(ctx context.Context) reach {
	r := reach{need: l.cfg.Replicas/2 + 1}
	p := l.peers.Load()
	if p == nil {
		r.servers, r.known = l.ask(ctx, "", r.need)
		return r
	}
	// Each server asked at once; done as soon as a majority answered.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan []string, len(*p))
	var wg sync.WaitGroup
	for _, name := range *p {
		wg.Go(func() {
			for range probeTries {
				if got, ok := l.ask(pctx, name, 1); ok {
					answers <- got
					return
				}
				if pctx.Err() != nil {
					break
				}
			}
			answers <- nil
		})
	}
	for range *p {
		got := <-answers
		if got != nil {
			r.known = true
			r.servers = append(r.servers, got...)
		}
		if len(r.servers) >= r.need {
			break
		}
	}
	cancel()
	wg.Wait()
	slices.Sort(r.servers)
	if !r.known {
		// None answered, this node's server included: maybe no server
		// events here; the probe tells nothing, unless it answers a
		// request to all.
		r.servers, r.known = l.ask(ctx, "", r.need)
		r.servers = slices.DeleteFunc(r.servers, func(n string) bool { return !slices.Contains(*p, n) })
	}
	return r
}

// ask sends one probe, to the server called name or, with name empty, to
// all, and returns the JetStream servers that answered within probeWait
// (stopping at want), and whether any server answered.
func (l *Log) ask(ctx context.Context, name string, want int) (servers []string, answered bool) {
	nc := l.js.Conn()
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, false
	}
	defer sub.Unsubscribe()
	body := []byte(`{"include_unused":true}`)
	if name != "" {
		if body, err = json.Marshal(map[string]any{"server_name": name, "exact_match": true, "include_unused": true}); err != nil {
			return nil, false
		}
	}
	if err := nc.PublishRequest(probeSubject, inbox, body); err != nil {
		return nil, false
	}
	deadline := time.Now().Add(probeWait)
	for len(servers) < want {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		mctx, cancel := context.WithTimeout(ctx, left)
		msg, err := sub.NextMsgWithContext(mctx)
		cancel()
		if err != nil {
			break
		}
		var a struct {
			Server struct {
				Name      string `json:"name"`
				JetStream bool   `json:"jetstream"`
			} `json:"server"`
		}
		if json.Unmarshal(msg.Data, &a) != nil || a.Server.Name == "" || slices.Contains(servers, a.Server.Name) {
			continue
		}
		answered = true
		if a.Server.JetStream && (name == "" || a.Server.Name == name) {
			servers = append(servers, a.Server.Name)
		}
	}
	return servers, answered
}

// withElection runs op, a request that needs the stream's leader, and runs
// it again every electionPoll while it fails for want of one (an error
// wrapping ErrNoQuorum: no answer, no leader, a leader hearing from too few
// replicas) and a majority of the stream's servers is reachable (probe):
// the stream is electing a leader, which takes nats-server seconds after
// its leader's server went. It gives up after Config.ElectionWait. With
// fewer than a majority reachable, it fails at once: no leader can be
// elected. Once the stream's servers are known, the probe comes first, so
// that a leader that lost its peers but has not noticed yet (its view of
// them is seconds old) takes no change; before, op comes first, and the
// probe only when it fails.
func (l *Log) withElection(ctx context.Context, op func(ctx context.Context) error) error {
	logger := l.cfg.Logger.With("component", "cluster", "stream", l.cfg.Stream)
	deadline := time.Now().Add(l.cfg.ElectionWait)
	var waiting time.Time
	minority := func(r reach) error {
		names := make([]string, len(r.servers))
		for i, n := range r.servers {
			names[i] = accounts.ClientText(n) // a server's own name, or a relay's word for it
		}
		return fmt.Errorf("%w (%d of the %d servers that hold the stream answer: %s)", ErrNoQuorum, len(r.servers), l.cfg.Replicas, strings.Join(names, ", "))
	}
	for {
		if l.peers.Load() == nil {
			l.learnPeers(ctx)
		}
		var r reach
		var err error
		if l.peers.Load() != nil {
			if r = l.probe(ctx); !r.majority() {
				err = minority(r)
			} else {
				err = op(ctx)
			}
		} else if err = op(ctx); errors.Is(err, ErrNoQuorum) {
			if r = l.probe(ctx); !r.majority() {
				err = fmt.Errorf("%w; %w", err, minority(r))
			}
		}
		switch {
		case err == nil:
			if !waiting.IsZero() {
				logger.Info("the cluster log's stream has a leader again", "waited", time.Since(waiting).Round(time.Millisecond))
			}
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !errors.Is(err, ErrNoQuorum) || !r.known || !r.majority():
			return err
		case time.Now().After(deadline):
			return fmt.Errorf("%w; no leader within %v, although %d of the %d servers that hold the stream answer", err, l.cfg.ElectionWait, len(r.servers), l.cfg.Replicas)
		}
		if waiting.IsZero() {
			waiting = time.Now()
			logger.Warn("the cluster log's stream has no leader, but a majority of its servers answers: waiting for its election", "err", err, "up_to", l.cfg.ElectionWait)
		}
		if err := sleep(ctx, electionPoll); err != nil {
			return err
		}
	}
}

// peersSubject is where the relays answer with the names of the servers
// that hold the stream (AnswerPeers): a new process (an admin command)
// whose first stream info goes unanswered learns them there, without
// JetStream, so that it can probe each by name.
func (l *Log) peersSubject() string { return "authrelay.cluster." + l.cfg.Stream + ".peers" }

// Bounds of an answer on peersSubject: it comes from the AUTH account,
// where only relays have users, but is read as untrusted.
const (
	maxPeers        = 16
	maxPeerNameSize = 256
)

// AnswerPeers answers requests on peersSubject with the names of the
// servers that hold the stream, as this Log last saw them (nothing before
// it has), until the returned stop is called. A relay runs it for the
// commands of its node.
func (l *Log) AnswerPeers() (stop func(), err error) {
	sub, err := l.js.Conn().Subscribe(l.peersSubject(), func(m *nats.Msg) {
		p := l.peers.Load()
		if p == nil || m.Reply == "" {
			return
		}
		if b, err := json.Marshal(*p); err == nil {
			m.Respond(b)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("answer for the cluster log's servers: %w", err)
	}
	return func() { sub.Unsubscribe() }, nil
}

// learnPeers asks the relays (AnswerPeers) for the names of the stream's
// servers, and keeps a well-formed answer.
func (l *Log) learnPeers(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	m, err := l.js.Conn().RequestWithContext(rctx, l.peersSubject(), nil)
	if err != nil {
		return
	}
	var peers []string
	if json.Unmarshal(m.Data, &peers) != nil || len(peers) == 0 || len(peers) > maxPeers {
		return
	}
	for _, p := range peers {
		if p == "" || len(p) > maxPeerNameSize {
			return
		}
	}
	if l.peers.Load() == nil {
		l.peers.Store(&peers)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Attach puts db in cluster mode on l (store.DB.Replicate): its admin
// changes are appended to l, and catching up applies l to it.
func (l *Log) Attach(db *store.DB) {
	db.Replicate(l, func(ctx context.Context) error { return l.CatchUp(ctx, db) })
}

// jsError turns an error of a JetStream request into one that says what
// happened: ErrNoQuorum for no answer, store.ErrBehind for a wrong last
// sequence.
func jsError(ctx context.Context, err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return fmt.Errorf("%w (%v)", store.ErrBehind, err)
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsClusterNotAvailable:
		return fmt.Errorf("%w (%v)", ErrNoQuorum, err)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil,
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, jetstream.ErrNoStreamResponse):
		return fmt.Errorf("%w (no answer: %v)", ErrNoQuorum, err)
	}
	return err
}

// jsClusterNotAvailable is JetStream's "JetStream system temporarily
// unavailable" (JSClusterNotAvailErr), its answer while it has no leader.
const jsClusterNotAvailable jetstream.ErrorCode = 10008

// timeout returns ctx bounded by l's Timeout.
func (l *Log) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.cfg.Timeout)
}

// Append appends the parts of one change to the log as the entries after
// the entry numbered after, and returns the number of the last. Several
// parts go in one JetStream atomic batch: the log holds all of them,
// consecutive, or none. It fails with an error wrapping store.ErrBehind
// when the log's last entry is another (JetStream's expected-last-sequence
// check, made by the stream leader), and with one wrapping ErrNoQuorum when
// no stream leader answered within the timeout.
func (l *Log) Append(ctx context.Context, after uint64, parts ...[]byte) (uint64, error) {
	if ctx.Err() != nil {
		return 0, fmt.Errorf("append to the cluster log: %w", ctx.Err())
	}
	if len(parts) == 0 {
		return 0, errors.New("append to the cluster log: no entry")
	}
	tctx, cancel := l.timeout(ctx)
	defer cancel()
	var seq uint64
	var err error
	if len(parts) == 1 {
		var ack *jetstream.PubAck
		ack, err = l.js.Publish(tctx, l.cfg.Subject, parts[0],
			jetstream.WithExpectStream(l.cfg.Stream), jetstream.WithExpectLastSequence(after))
		if err == nil {
			seq = ack.Sequence
		}
	} else {
		seq, err = l.appendBatch(tctx, after, parts)
	}
	size := 0
	for _, p := range parts {
		size = max(size, len(p))
	}
	switch {
	case err == nil:
		return seq, nil
	case ctx.Err() != nil:
		return 0, fmt.Errorf("append to the cluster log: %w", ctx.Err())
	case errors.Is(err, nats.ErrMaxPayload):
		return 0, fmt.Errorf("append to the cluster log: an entry is %d bytes, more than the servers' max_payload: raise max_payload to 1 MiB at least", size)
	}
	timedOut := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
	err = jsError(tctx, err)
	switch {
	case errors.Is(err, ErrNoQuorum) && timedOut:
		// A stream leader that has lost its quorum may still hold the
		// entry, uncommitted, and commit it when its peers are back:
		// no answer is not a refusal.
		return 0, fmt.Errorf("append to the cluster log %s: %w: the change is not made on this node, and not confirmed: should the stream's leader hold it, every node applies it once the servers are back; bring back a majority of the NATS servers that hold the stream (%d of %d), check with 'nats server report jetstream', then check whether the change is there before running the command again",
			l.cfg.Stream, err, l.cfg.Replicas/2+1, l.cfg.Replicas)
	case errors.Is(err, ErrNoQuorum):
		return 0, fmt.Errorf("append to the cluster log %s: %w: the change is not made; bring back a majority of the NATS servers that hold the stream (%d of %d), check with 'nats server report jetstream', and run the command again",
			l.cfg.Stream, err, l.cfg.Replicas/2+1, l.cfg.Replicas)
	}
	return 0, fmt.Errorf("append to the cluster log %s: %w", l.cfg.Stream, err)
}

// maxBatch is the most parts one change may have: nats-server's default
// limit on an atomic batch (1,000 messages), at store.MaxEntrySize each.
const maxBatch = 1000

// appendBatch publishes parts as one atomic batch (headers Nats-Batch-Id,
// Nats-Batch-Sequence, and Nats-Batch-Commit on the last), the first
// carrying the expected last sequence, and returns the last part's
// number.
func (l *Log) appendBatch(ctx context.Context, after uint64, parts [][]byte) (uint64, error) {
	if len(parts) > maxBatch {
		return 0, fmt.Errorf("the change has %d parts of up to %d bytes, more than an atomic batch holds (%d): make it in smaller steps", len(parts), store.MaxEntrySize, maxBatch)
	}
	id := rand.Text() // 26 characters; the server takes up to 64
	nc := l.js.Conn()
	for i, p := range parts {
		m := nats.NewMsg(l.cfg.Subject)
		m.Data = p
		m.Header.Set(jetstream.ExpectedStreamHeader, l.cfg.Stream)
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		if i == 0 {
			m.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(after, 10))
		}
		last := i == len(parts)-1
		if last {
			m.Header.Set("Nats-Batch-Commit", "1")
		}
		// Every part is a request: the leader answers each (empty until
		// the commit), which paces the batch and stops it at the first
		// refusal.
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if errors.Is(err, nats.ErrNoResponders) {
			return 0, jetstream.ErrNoStreamResponse
		}
		if err != nil {
			return 0, err
		}
		if len(resp.Data) == 0 && !last {
			continue
		}
		var ack struct {
			*jetstream.PubAck
			Error *jetstream.APIError `json:"error,omitempty"`
		}
		if err := json.Unmarshal(resp.Data, &ack); err != nil {
			return 0, fmt.Errorf("batch part %d: %w", i+1, jetstream.ErrInvalidJSAck)
		}
		if ack.Error != nil {
			return 0, fmt.Errorf("batch part %d: %w", i+1, ack.Error)
		}
		if last {
			if ack.PubAck == nil || ack.Stream == "" {
				return 0, fmt.Errorf("batch commit: %w", jetstream.ErrInvalidJSAck)
			}
			return ack.Sequence, nil
		}
	}
	return 0, errors.New("batch: no commit") // not reached: the last part returns
}

// peerSilence is how long a stream replica may go unheard by the leader
// and still count towards the quorum: JetStream's leader hears from each
// every second when all is well.
const peerSilence = 3 * time.Second

// Check returns the number of the log's last entry, or an error wrapping
// ErrNoQuorum, which says that the change is not made, when the log cannot
// take a change now. store.DB.Admin asks before each change
// (store.LogChecker).
//
//   - Fewer than a majority of the stream's servers reachable from this
//     one (the probe: the servers that answer a ping through their routes,
//     which close as soon as a server dies): no leader can be elected; it
//     fails at once, within probeWait.
//   - The stream's leader answers and hears from a majority of its
//     replicas (itself included): the change can go in.
//   - Otherwise, with a majority reachable, the stream is electing a new
//     leader (its leader's server went; no answer, or its members answer
//     with no leader): Check waits for the election, up to
//     Config.ElectionWait, so that a write goes on through the loss of one
//     server rather than fail for the seconds the election takes.
//
// Without the first rule a leader that has lost its quorum but not yet
// noticed (JetStream waits seconds) would hold the change, uncommitted,
// until Append gives up, and perhaps commit it later.
func (l *Log) Check(ctx context.Context) (uint64, error) {
	var last uint64
	err := l.withElection(ctx, func(ctx context.Context) error {
		tctx, cancel := l.timeout(ctx)
		defer cancel()
		info, err := l.stream.Info(tctx)
		if err != nil {
			return jsError(tctx, err)
		}
		l.notePeers(info)
		if info.Cluster == nil {
			last = info.State.LastSeq // a single server's JetStream
			return nil
		}
		healthy, total := 0, len(info.Cluster.Replicas)
		if info.Cluster.Leader != "" {
			healthy++
			total++
		}
		for _, r := range info.Cluster.Replicas {
			if r.Current && !r.Offline && r.Active < peerSilence {
				healthy++
			}
		}
		total = max(total, info.Config.Replicas)
		switch {
		case info.Cluster.Leader == "":
			return fmt.Errorf("%w (the stream has no leader: its servers are electing one)", ErrNoQuorum)
		case healthy <= total/2:
			return fmt.Errorf("%w (the stream's leader %q hears from %d of its %d replicas)", ErrNoQuorum, info.Cluster.Leader, healthy, total)
		}
		last = info.State.LastSeq
		return nil
	})
	if err == nil {
		return last, nil
	}
	if ctx.Err() != nil {
		return 0, fmt.Errorf("check the cluster log: %w", ctx.Err())
	}
	return 0, fmt.Errorf("cluster log %s: %w: the change is not made; bring back a majority of the NATS servers that hold the stream (%d of %d), check with 'nats server report jetstream', and run the command again",
		l.cfg.Stream, err, l.cfg.Replicas/2+1, l.cfg.Replicas)
}

// LastSeq returns the number of the log's last entry, 0 if it is empty.
func (l *Log) LastSeq(ctx context.Context) (uint64, error) {
	tctx, cancel := l.timeout(ctx)
	defer cancel()
	info, err := l.stream.Info(tctx)
	if err != nil {
		return 0, fmt.Errorf("read cluster log %s: %w", l.cfg.Stream, jsError(tctx, err))
	}
	l.notePeers(info)
	return info.State.LastSeq, nil
}

// Behind returns how many entries of the log db's copy has not applied.
func (l *Log) Behind(ctx context.Context, db *store.DB) (uint64, error) {
	// The copy's position first: an entry applied after it is read is in
	// the log's last sequence read after.
	applied, err := db.AppliedSeq(ctx)
	if err != nil {
		return 0, err
	}
	last, err := l.LastSeq(ctx)
	if err != nil {
		return 0, err
	}
	if applied > last {
		return 0, l.foreign(applied, last)
	}
	return last - applied, nil
}

func (l *Log) foreign(applied, last uint64) error {
	return fmt.Errorf("this copy holds cluster log entries up to %d, but the log %s ends at %d: the stream was replaced, and this copy belongs to another log; start the node from an empty database", applied, l.cfg.Stream, last)
}

// CatchUp applies to db every entry of the log up to the log's last entry
// when CatchUp begins: what a relay waits for before it answers logins, so
// that it never grants from a copy it knows is behind.
func (l *Log) CatchUp(ctx context.Context, db *store.DB) error {
	// The copy's position first, as in Behind: Follow may apply entries
	// meanwhile.
	applied, err := db.AppliedSeq(ctx)
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	last, err := l.LastSeq(ctx)
	if err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	if applied > last {
		return fmt.Errorf("catch up: %w", l.foreign(applied, last))
	}
	if applied == last {
		return nil
	}
	if err := l.applyFrom(ctx, db, applied+1, func(seq uint64) bool { return seq >= last }); err != nil {
		return fmt.Errorf("catch up to entry %d: %w", last, err)
	}
	return nil
}

// idleCheck is how long applyFrom waits for an entry before it asks the
// log whether one is due: a consumer that JetStream lost (its servers
// restarted) delivers nothing and says nothing.
const idleCheck = 2 * time.Second

// applyFrom applies the log's entries to db from seq on, in order, until
// done says the one just applied (or db's position, when no entry comes)
// was the last wanted, ctx ends, or an error.
// When no entry comes within idleCheck while the log has more than db, it
// starts reading again from db's position.
func (l *Log) applyFrom(ctx context.Context, db *store.DB, seq uint64, done func(seq uint64) bool) error {
	it, err := l.messages(ctx, seq)
	if err != nil {
		return err
	}
	defer func() {
		if it != nil {
			it.Stop()
		}
	}()
	for {
		nctx, cancel := context.WithTimeout(ctx, idleCheck)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil && ctx.Err() == nil && nctx.Err() != nil {
			applied, err := db.AppliedSeq(ctx)
			if err != nil {
				return err
			}
			if done(applied) {
				// Another reader of the log (Follow, or a command on this
				// node) applied what was wanted: this reader, restarted
				// after it, would wait for those entries in vain.
				return nil
			}
			behind, berr := l.Behind(ctx, db)
			if berr != nil {
				return berr
			}
			if behind == 0 {
				continue
			}
			if applied, err = db.AppliedSeq(ctx); err != nil {
				return err
			}
			it.Stop()
			if it, err = l.messages(ctx, applied+1); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read cluster log %s: %w", l.cfg.Stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read cluster log %s: %w", l.cfg.Stream, err)
		}
		seq := meta.Sequence.Stream
		if err := db.Apply(ctx, seq, msg.Data()); err != nil {
			return err
		}
		if done(seq) {
			return nil
		}
	}
}

// messages returns an iterator over the log's entries from seq on. The
// consumer it reads through is made by JetStream's meta leader: while the
// meta group elects a new one (its server died), with a majority of the
// stream's servers reachable, it waits as Check does.
func (l *Log) messages(ctx context.Context, seq uint64) (jetstream.MessagesContext, error) {
	var cons jetstream.Consumer
	err := l.withElection(ctx, func(ctx context.Context) error {
		tctx, cancel := l.timeout(ctx)
		defer cancel()
		var err error
		cons, err = l.js.OrderedConsumer(tctx, l.cfg.Stream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{l.cfg.Subject},
			DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
			OptStartSeq:    seq,
		})
		if err != nil {
			return jsError(tctx, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read cluster log %s: %w", l.cfg.Stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("read cluster log %s: %w", l.cfg.Stream, err)
	}
	return it, nil
}

// Follow applies the log's entries to db in order as they arrive, from the
// first db has not applied, until ctx ends. After an error (JetStream gone,
// the database busy) it logs, waits Config.RetryWait and starts again from
// db's position, so that no entry is skipped. It returns ctx's error.
func (l *Log) Follow(ctx context.Context, db *store.DB) error {
	logger := l.cfg.Logger.With("component", "cluster", "stream", l.cfg.Stream)
	for {
		err := l.follow(ctx, db)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("following the cluster log stopped; starting again", "error", err, "retry_in", l.cfg.RetryWait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(l.cfg.RetryWait):
		}
	}
}

func (l *Log) follow(ctx context.Context, db *store.DB) error {
	applied, err := db.AppliedSeq(ctx)
	if err != nil {
		return err
	}
	return l.applyFrom(ctx, db, applied+1, func(uint64) bool { return false })
}

// Bootstrap makes db the first node of a cluster: it appends a snapshot of
// every replicated row of db (store.DB.Bootstrap) to the log, which must be
// empty, and returns the last entry's number. Every user keeps its password
// hash. A node that joins later starts from an empty database and catches
// up.
func (l *Log) Bootstrap(ctx context.Context, db *store.DB) (uint64, error) {
	last, err := l.LastSeq(ctx)
	if err != nil {
		return 0, fmt.Errorf("bootstrap: %w", err)
	}
	if last != 0 {
		return 0, fmt.Errorf("bootstrap: the cluster log %s holds %d entries already: only an empty log takes a snapshot; to join this cluster, start from an empty database and catch up", l.cfg.Stream, last)
	}
	seq, err := db.Bootstrap(ctx, l)
	if err != nil {
		return 0, fmt.Errorf("bootstrap: %w", err)
	}
	return seq, nil
}
