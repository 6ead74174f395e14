package cluster

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Defaults of EventsConfig.
const (
	// DefaultEventsBuffer is how many events Publish holds while JetStream
	// cannot take them: about 20 MB of login audit rows at most.
	DefaultEventsBuffer = 65536
	// maxEventsMessage is the most bytes of events one message carries,
	// well below JetStream's 1 MiB default message limit.
	maxEventsMessage = 256 << 10
	// maxEventsPerMessage is the most events one message carries.
	maxEventsPerMessage = 512
	// eventsDuplicates is the window in which JetStream drops a message
	// sent again (a retry after an ack that was lost) by its id.
	eventsDuplicates = 2 * time.Minute
	// maxSendRetry is the longest pause between two tries to send.
	maxSendRetry = 2 * time.Second
	// lostHold is how long Health reports events lost after the last.
	lostHold = 30 * time.Second
	// nodeHeader names the node that sent a message of events.
	nodeHeader = "Authrelay-Node"
)

// EventsConfig says which stream carries one kind of node events and how
// long it keeps them.
type EventsConfig struct {
	// Stream is the JetStream stream's name, Subject the one subject it
	// holds, Description what it is for.
	Stream, Subject, Description string
	// Replicas is how many servers keep the stream (DefaultReplicas).
	Replicas int
	// MaxAge is how long the stream keeps an event (0: forever): what a
	// node that joins, or comes back after longer, can still read.
	// MaxBytes, when positive, bounds its size: the oldest go first.
	MaxAge   time.Duration
	MaxBytes int64
	// Node names this node in the events it sends; empty means the name
	// of the NATS server the connection is on.
	Node string
	// Buffer is how many events Publish holds before it drops
	// (DefaultEventsBuffer).
	Buffer int
	// Timeout bounds every request to JetStream (DefaultTimeout).
	// RetryWait is how long Follow waits after an error (one second).
	Timeout, RetryWait time.Duration
	// Logger gets the errors of sending and following; slog.Default() when
	// nil.
	Logger *slog.Logger
}

func (c EventsConfig) withDefaults() EventsConfig {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Buffer <= 0 {
		c.Buffer = DefaultEventsBuffer
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.RetryWait <= 0 {
		c.RetryWait = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Event is one event of an events stream as Follow delivers it.
type Event struct {
	// Seq is the stream sequence of the message that carried the event:
	// the events of one message share it.
	Seq uint64
	// Node is the node that sent it.
	Node string
	// Data is the event as it was published (JSON).
	Data json.RawMessage
}

// EventStats are the counts of what Publish was given.
type EventStats struct {
	// Sent counts the events JetStream has stored.
	Sent uint64
	// Waiting is how many events are held to be sent.
	Waiting int
	// Lost counts the events never sent: the buffer was full, or they
	// were still unsent when Close ended. Each was logged.
	Lost uint64
}

// Events is one stream of node events in the AUTH account, beside the
// cluster log but outside its order: what each node's logins changed,
// which the other nodes apply to their own copies (the lockout counts, the
// login rows of the audit trail). Publish sends asynchronously from a
// bounded buffer, so that a login never waits on JetStream; Follow applies
// the other nodes' events in the stream's order from a position the
// caller keeps.
type Events struct {
	cfg  EventsConfig
	nc   *nats.Conn
	js   jetstream.JetStream
	node string

	streamMu sync.Mutex
	stream   jetstream.Stream // once created

	// mu guards closed and the closing of ch, as in store.AuditWriter:
	// Publish only tries for the read lock, so it never waits.
	mu      sync.RWMutex
	closed  bool
	ch      chan json.RawMessage
	started atomic.Bool
	cancel  context.CancelFunc
	done    chan struct{}

	sent, lost atomic.Uint64
	inFlight   atomic.Int64
	lastLost   atomic.Int64 // Unix nanoseconds
	loggedLost uint64       // owned by the sending goroutine
	lastLog    time.Time    // owned by the sending goroutine
}

// NewEvents returns the events stream cfg names, on nc's account (the AUTH
// account). It makes no request: the stream is created or updated on the
// first send or follow, and again after an error.
func NewEvents(nc *nats.Conn, cfg EventsConfig) (*Events, error) {
	cfg = cfg.withDefaults()
	if cfg.Stream == "" || cfg.Subject == "" {
		return nil, errors.New("events stream: a stream and a subject are needed")
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("events stream %s: %w", cfg.Stream, err)
	}
	node := cfg.Node
	if node == "" {
		node = nc.ConnectedServerName()
	}
	if node == "" {
		node = nc.ConnectedServerId()
	}
	return &Events{cfg: cfg, nc: nc, js: js, node: node, ch: make(chan json.RawMessage, cfg.Buffer), done: make(chan struct{})}, nil
}

// Node returns the name this node's events carry.
func (e *Events) Node() string { return e.node }

// Stream returns the stream's name.
func (e *Events) Stream() string { return e.cfg.Stream }

// ensure creates the stream, or updates it to the config, once.
func (e *Events) ensure(ctx context.Context) (jetstream.Stream, error) {
	e.streamMu.Lock()
	defer e.streamMu.Unlock()
	if e.stream != nil {
		return e.stream, nil
	}
	tctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	maxBytes := e.cfg.MaxBytes
	if maxBytes <= 0 {
		maxBytes = -1
	}
	s, err := e.js.CreateOrUpdateStream(tctx, jetstream.StreamConfig{
		Name:        e.cfg.Stream,
		Description: e.cfg.Description,
		Subjects:    []string{e.cfg.Subject},
		Storage:     jetstream.FileStorage,
		Replicas:    e.cfg.Replicas,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      e.cfg.MaxAge,
		MaxBytes:    maxBytes,
		Discard:     jetstream.DiscardOld,
		Duplicates:  eventsDuplicates,
		DenyDelete:  true,
	})
	if err != nil {
		return nil, fmt.Errorf("events stream %s: %w", e.cfg.Stream, jsError(tctx, err))
	}
	e.stream = s
	return s, nil
}

// Start starts sending what Publish is given, until Close.
func (e *Events) Start() {
	if !e.started.CompareAndSwap(false, true) {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	go e.run(ctx)
}

// Publish queues one event (JSON) to be sent to the other nodes. It never
// blocks: when the buffer is full, or after Close, the event is dropped
// and counted in Stats().Lost, and logged.
func (e *Events) Publish(data []byte) {
	if !e.mu.TryRLock() {
		e.lose(1)
		return
	}
	defer e.mu.RUnlock()
	if e.closed {
		e.lose(1)
		return
	}
	select {
	case e.ch <- json.RawMessage(data):
	default:
		e.lose(1)
	}
}

func (e *Events) lose(n uint64) {
	e.lost.Add(n)
	e.lastLost.Store(time.Now().UnixNano())
}

// Stats returns the counts of what Publish was given.
func (e *Events) Stats() EventStats {
	return EventStats{Sent: e.sent.Load(), Waiting: len(e.ch) + int(e.inFlight.Load()), Lost: e.lost.Load()}
}

// ErrEventsLost is the error Health wraps when events were lost.
var ErrEventsLost = errors.New("node events lost")

// Health returns an error wrapping ErrEventsLost when events were lost
// within the last 30 seconds: the other nodes will not apply them.
// Events only waiting (JetStream without quorum) are no error: logins go
// on, and the events are sent once JetStream is back.
func (e *Events) Health() error {
	if at := e.lastLost.Load(); at != 0 {
		if ago := time.Since(time.Unix(0, at)); ago < lostHold {
			return fmt.Errorf("%w: events stream %s: %d events not sent to the other nodes (the last %v ago): the buffer of %d was full while JetStream could not take them",
				ErrEventsLost, e.cfg.Stream, e.lost.Load(), ago.Round(time.Second), e.cfg.Buffer)
		}
	}
	return nil
}

// Close stops taking events and sends those still held until ctx ends;
// what is left is counted lost, and Close says how many.
func (e *Events) Close(ctx context.Context) error {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.ch)
	}
	e.mu.Unlock()
	if !e.started.Load() {
		if n := len(e.ch); n > 0 {
			e.lose(uint64(n))
			return fmt.Errorf("close events stream %s: %d events never sent", e.cfg.Stream, n)
		}
		return nil
	}
	before := e.lost.Load()
	select {
	case <-e.done:
	case <-ctx.Done():
		e.cancel()
		<-e.done
	}
	e.cancel()
	if n := e.lost.Load() - before; n > 0 {
		return fmt.Errorf("close events stream %s: %d events never sent: %w", e.cfg.Stream, n, ctx.Err())
	}
	return nil
}

// run sends the events in messages of up to maxEventsPerMessage, trying
// a message again, with its id, until JetStream stores it or ctx ends.
func (e *Events) run(ctx context.Context) {
	defer close(e.done)
	logger := e.cfg.Logger.With("component", "cluster", "stream", e.cfg.Stream)
	var batch []json.RawMessage
	for {
		batch = batch[:0]
		first, ok := <-e.ch
		if !ok {
			return
		}
		batch = append(batch, first)
		size := len(first)
	fill:
		for len(batch) < maxEventsPerMessage && size < maxEventsMessage {
			select {
			case ev, ok := <-e.ch:
				if !ok {
					break fill
				}
				batch = append(batch, ev)
				size += len(ev)
			default:
				break fill
			}
		}
		e.inFlight.Store(int64(len(batch)))
		body, err := json.Marshal(batch)
		if err != nil {
			// An event that is not JSON: a bug of the caller's.
			e.lose(uint64(len(batch)))
			logger.Error("node events not sent: not JSON", "events", len(batch), "err", err)
			e.inFlight.Store(0)
			continue
		}
		id := rand.Text()
		wait := 100 * time.Millisecond
		var since time.Time
		for {
			err := e.send(ctx, id, body)
			if err == nil {
				e.sent.Add(uint64(len(batch)))
				if !since.IsZero() {
					logger.Info("node events sent again", "failed_for", time.Since(since).Round(time.Millisecond))
				}
				break
			}
			if ctx.Err() != nil {
				n := uint64(len(batch) + len(e.ch))
				e.lose(n)
				for range e.ch {
				}
				logger.Error("node events not sent to the other nodes before the relay stopped", "events", n, "err", err)
				e.inFlight.Store(0)
				return
			}
			if since.IsZero() {
				since = time.Now()
			}
			if time.Since(e.lastLog) >= 10*time.Second {
				e.lastLog = time.Now()
				logger.Warn("node events not sent: held and tried again; logins go on", "waiting", e.Stats().Waiting, "lost_total", e.lost.Load(), "err", err)
				e.reportLost(logger)
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			wait = min(wait*2, maxSendRetry)
		}
		e.inFlight.Store(0)
		e.reportLost(logger)
	}
}

// reportLost logs the events lost since it last did. Called from run.
func (e *Events) reportLost(logger *slog.Logger) {
	if l := e.lost.Load(); l > e.loggedLost {
		logger.Error("node events lost: the buffer was full while JetStream could not take them; the other nodes miss them", "events", l-e.loggedLost, "lost_total", l)
		e.loggedLost = l
	}
}

// send publishes one message of events and waits for JetStream's ack.
func (e *Events) send(ctx context.Context, id string, body []byte) error {
	if _, err := e.ensure(ctx); err != nil {
		return err
	}
	m := nats.NewMsg(e.cfg.Subject)
	m.Data = body
	m.Header.Set(nodeHeader, e.node)
	tctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	_, err := e.js.PublishMsg(tctx, m, jetstream.WithMsgID(id), jetstream.WithExpectStream(e.cfg.Stream))
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound {
			e.streamMu.Lock()
			e.stream = nil // created again on the next try
			e.streamMu.Unlock()
		}
		return jsError(tctx, err)
	}
	return nil
}

// Send sends one event (JSON) at once and returns when JetStream has
// stored it, for a change that must not be reported made before every
// node will apply it (an admin's unlock). Without an answer it fails with
// an error wrapping ErrNoQuorum.
func (e *Events) Send(ctx context.Context, data []byte) error {
	body, err := json.Marshal([]json.RawMessage{data})
	if err != nil {
		return fmt.Errorf("send to events stream %s: %w", e.cfg.Stream, err)
	}
	if err := e.send(ctx, rand.Text(), body); err != nil {
		return fmt.Errorf("send to events stream %s: %w: not sent; bring back a majority of the NATS servers that hold the stream (%d of %d), check with 'nats server report jetstream', and run the command again",
			e.cfg.Stream, err, e.cfg.Replicas/2+1, e.cfg.Replicas)
	}
	return nil
}

// maxApply is the most messages Follow applies in one call of apply.
const maxApply = 256

// Follow applies the events of the stream in order as they arrive, from
// the message after the position from returns, until ctx ends: apply is
// given the events of one or more consecutive messages, with the sequence
// of the last, and must record that position with what it applies, in one
// transaction, so that a message is applied once and a restarted node
// resumes after it. Events of every node are given, this node's too
// (Event.Node says whose). When the stream holds less than the position
// (it was replaced), apply is given position 0 and no events: start
// again. After an error Follow logs, waits RetryWait and starts again from
// the position. It returns ctx's error.
func (e *Events) Follow(ctx context.Context, from func(context.Context) (uint64, error), apply func(ctx context.Context, last uint64, evs []Event) error) error {
	logger := e.cfg.Logger.With("component", "cluster", "stream", e.cfg.Stream)
	for {
		err := e.follow(ctx, from, apply)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		logger.Warn("following node events stopped; starting again", "error", err, "retry_in", e.cfg.RetryWait)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(e.cfg.RetryWait):
		}
	}
}

func (e *Events) lastSeq(ctx context.Context) (uint64, error) {
	s, err := e.ensure(ctx)
	if err != nil {
		return 0, err
	}
	tctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	info, err := s.Info(tctx)
	if err != nil {
		return 0, fmt.Errorf("events stream %s: %w", e.cfg.Stream, jsError(tctx, err))
	}
	return info.State.LastSeq, nil
}

func (e *Events) follow(ctx context.Context, from func(context.Context) (uint64, error), apply func(ctx context.Context, last uint64, evs []Event) error) error {
	pos, err := from(ctx)
	if err != nil {
		return err
	}
	last, err := e.lastSeq(ctx)
	if err != nil {
		return err
	}
	if pos > last {
		e.cfg.Logger.Warn("the events stream holds fewer messages than this copy applied: it was replaced; reading it from its start",
			"component", "cluster", "stream", e.cfg.Stream, "applied", pos, "last", last)
		if err := apply(ctx, 0, nil); err != nil {
			return err
		}
		pos = 0
	}
	it, err := e.messages(ctx, pos+1)
	if err != nil {
		return err
	}
	defer func() {
		if it != nil { // nil after a failed restart below
			it.Stop()
		}
	}()
	var evs []Event
	msgs := 0
	var held uint64 // the last message of evs
	for {
		nctx, cancel := context.WithTimeout(ctx, idleCheck)
		msg, err := it.Next(jetstream.NextContext(nctx))
		cancel()
		if err != nil && ctx.Err() == nil && nctx.Err() != nil {
			if msgs > 0 {
				// The messages said more were pending, which did not come.
				if err := apply(ctx, held, evs); err != nil {
					return err
				}
				pos, evs, msgs = held, evs[:0], 0
			}
			// Nothing for a while: a consumer that JetStream lost (its
			// servers restarted) delivers nothing and says nothing.
			last, err := e.lastSeq(ctx)
			if err != nil {
				return err
			}
			if last <= pos {
				continue
			}
			it.Stop()
			if it, err = e.messages(ctx, pos+1); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("read events stream %s: %w", e.cfg.Stream, err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read events stream %s: %w", e.cfg.Stream, err)
		}
		seq := meta.Sequence.Stream
		var batch []json.RawMessage
		if err := json.Unmarshal(msg.Data(), &batch); err != nil {
			// Not a message of events: nothing to apply, but its place is
			// passed.
			e.cfg.Logger.Warn("skipped a message of the events stream that holds no events", "component", "cluster", "stream", e.cfg.Stream, "seq", seq, "err", err)
		}
		node := msg.Headers().Get(nodeHeader)
		for _, d := range batch {
			evs = append(evs, Event{Seq: seq, Node: node, Data: d})
		}
		msgs, held = msgs+1, seq
		if meta.NumPending > 0 && msgs < maxApply {
			continue // more are there: apply them together
		}
		if err := apply(ctx, seq, evs); err != nil {
			return err
		}
		pos, evs, msgs = seq, evs[:0], 0
	}
}

// messages returns an iterator over the stream's messages from seq on.
func (e *Events) messages(ctx context.Context, seq uint64) (jetstream.MessagesContext, error) {
	tctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	cons, err := e.js.OrderedConsumer(tctx, e.cfg.Stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{e.cfg.Subject},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    seq,
	})
	if err != nil {
		return nil, fmt.Errorf("read events stream %s: %w", e.cfg.Stream, jsError(tctx, err))
	}
	it, err := cons.Messages()
	if err != nil {
		return nil, fmt.Errorf("read events stream %s: %w", e.cfg.Stream, err)
	}
	return it, nil
}
