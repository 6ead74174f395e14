package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// The kinds and results of audit entries.
const (
	// AuditLogin is the kind of an entry for a login decision.
	AuditLogin = "login"
	// AuditAdmin is the kind of an entry for an admin change.
	AuditAdmin = "admin"
	// AuditAllowed is the result of a login that was allowed.
	AuditAllowed = "allowed"
	// AuditDenied is the result of a login that was denied.
	AuditDenied = "denied"
)

// Defaults for the zero fields of AuditOptions.
const (
	DefaultAuditBuffer     = 8192
	DefaultAuditBatchSize  = 256
	DefaultAuditFlushEvery = 200 * time.Millisecond
	// DefaultAuditBacklog is the most rows kept to be written while the
	// database cannot be written: about 20 MB at most.
	DefaultAuditBacklog = 65536
	// DefaultAuditAggregateEvery is the interval over which identical
	// cheap denials and identical allowed logins are counted into one row.
	DefaultAuditAggregateEvery = time.Minute
	// DefaultAuditAggregateKeys is the most distinct (reason, address,
	// name) keys of cheap denials kept apart in one interval.
	DefaultAuditAggregateKeys = 256
	// DefaultAuditAllowedKeys is the most distinct (user, address,
	// account, connection type) keys of allowed logins counted in one
	// interval.
	DefaultAuditAllowedKeys = 4096
	// DefaultAuditLogEvery is the shortest time between two log lines
	// about the same trouble (failed writes, dropped events).
	DefaultAuditLogEvery = 10 * time.Second
	// DefaultAuditDropHold is how long Health still reports events
	// dropped after the last drop.
	DefaultAuditDropHold = 30 * time.Second
)

// defaultAuditRetry are the pauses before each further attempt to write a
// batch that failed; the last is repeated for as long as the writes fail.
// Each attempt may itself wait up to the busy timeout for the write lock.
var defaultAuditRetry = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second}

// AuditOptions configure an AuditWriter. Zero fields take the defaults.
type AuditOptions struct {
	// Buffer is how many events may wait for the writer to take them;
	// Record drops what does not fit. Default DefaultAuditBuffer.
	Buffer int
	// Backlog is how many rows the writer keeps to be written while the
	// database cannot be written (a full disk, a read-only file): they are
	// written, oldest first, once it can. Events past it are dropped and
	// counted. Default DefaultAuditBacklog.
	Backlog int
	// BatchSize is the most events written in one transaction. Default
	// DefaultAuditBatchSize.
	BatchSize int
	// FlushEvery is the longest an event waits before the writer writes the
	// batch it is in, if the batch does not fill first. Default
	// DefaultAuditFlushEvery.
	FlushEvery time.Duration
	// OnDrop, when set, is told how many events were dropped (buffer or
	// backlog full, or the writes still failing as Close ends) since it
	// was last called. The writer calls it from its own goroutine, at most
	// once per FlushEvery and once more as Close ends; while it runs
	// nothing is written, so it should be quick. Events dropped by Record
	// after Close are only counted in Dropped.
	OnDrop func(n int)
	// OnWrite, when set, is given the login rows of each batch once they
	// are written (in cluster mode, to send them to the other nodes). The
	// writer calls it from its own goroutine: it must not block.
	OnWrite func(rows []AuditRecord)
	// AggregateEvery is the interval over which cheap denials (events
	// with Malformed set that were denied) and allowed logins are
	// aggregated: the first of each key in an interval is written at once
	// with count 1, its repeats as one row with their count when the
	// interval ends. An allowed login whose key had logins in the last
	// interval too is no first login: it is counted with the repeats, so
	// that a client that logs in all the time costs one row an interval. The key of a cheap denial is its reason, client
	// address and name; that of an allowed login its user, client
	// address, account and connection type. Every other denial is a row
	// of its own. Default DefaultAuditAggregateEvery.
	AggregateEvery time.Duration
	// AggregateKeys is the most distinct keys of cheap denials kept apart
	// in one interval; the cheap denials past it are counted into one row
	// per reason with the user and client address empty, so that a flood
	// of distinct names costs bounded memory and rows. Default
	// DefaultAuditAggregateKeys.
	AggregateKeys int
	// AllowedKeys is the most distinct keys of allowed logins counted in
	// one interval; allowed logins past it are written as rows of their
	// own, so that no allowed login loses its user. Negative: every
	// allowed login is a row of its own. Default DefaultAuditAllowedKeys.
	AllowedKeys int
	// Logger receives the writer's warnings (writes failing, kept to be
	// written) and errors (events dropped), each kind at most once per
	// DefaultAuditLogEvery with the counts since the last; nil discards
	// them.
	Logger *slog.Logger

	// retry overrides defaultAuditRetry, logEvery DefaultAuditLogEvery,
	// for tests.
	retry    []time.Duration
	logEvery time.Duration
}

// AuditWriter writes login events to the audit table in batches, from one
// goroutine, so that recording an event never waits for the database. It
// satisfies the relay's Auditor interface. While the database cannot be
// written, rows wait in a bounded backlog and are written when it can
// again; every recorded event is either written or counted in Dropped,
// and logged: none is lost silently. Health says whether the trail is
// being written.
type AuditWriter struct {
	db         *DB
	ch         chan accounts.LoginEvent
	backlog    int
	batchSize  int
	flushEvery time.Duration
	aggEvery   time.Duration
	aggKeys    int
	allowKeys  int
	onDrop     func(n int)
	onWrite    func(rows []AuditRecord)
	retry      []time.Duration
	logEvery   time.Duration
	log        *slog.Logger

	// mu guards closed and the closing of ch. Record only ever tries for
	// the read lock, and Close is the only holder of the write lock, so
	// Record never waits: it drops when Close holds or wants the lock.
	mu     sync.RWMutex
	closed bool

	dropped  atomic.Uint64
	lastDrop atomic.Int64 // Unix nanoseconds of the last drop, 0 if none
	waiting  atomic.Int64 // rows in the backlog
	// closing is set once Close has begun: batches that fail after it
	// make Close return an error.
	closing atomic.Bool

	// state is the outcome of the last write, for Health.
	stateMu sync.Mutex
	state   writeState

	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the writer goroutine until done is closed.
	reported    uint64 // dropped events already passed to onDrop
	logged      uint64 // dropped events already logged
	lastDropLog time.Time
	lostOnClose uint64
	errOnClose  error
}

// writeState is whether the audit writes are failing, since when and why.
type writeState struct {
	failing  bool
	since    time.Time
	attempts int
	err      error
	lastLog  time.Time
}

// NewAuditWriter starts a writer of login events into db's audit table. Call
// Close to write what is buffered and stop it.
func (db *DB) NewAuditWriter(opts AuditOptions) *AuditWriter {
	if opts.Buffer <= 0 {
		opts.Buffer = DefaultAuditBuffer
	}
	if opts.Backlog <= 0 {
		opts.Backlog = DefaultAuditBacklog
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultAuditBatchSize
	}
	if opts.FlushEvery <= 0 {
		opts.FlushEvery = DefaultAuditFlushEvery
	}
	if opts.AggregateEvery <= 0 {
		opts.AggregateEvery = DefaultAuditAggregateEvery
	}
	if opts.AggregateKeys <= 0 {
		opts.AggregateKeys = DefaultAuditAggregateKeys
	}
	switch {
	case opts.AllowedKeys == 0:
		opts.AllowedKeys = DefaultAuditAllowedKeys
	case opts.AllowedKeys < 0:
		opts.AllowedKeys = 0
	}
	if opts.retry == nil {
		opts.retry = defaultAuditRetry
	}
	if opts.logEvery <= 0 {
		opts.logEvery = DefaultAuditLogEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &AuditWriter{
		db:         db,
		ch:         make(chan accounts.LoginEvent, opts.Buffer),
		backlog:    opts.Backlog,
		batchSize:  opts.BatchSize,
		flushEvery: opts.FlushEvery,
		aggEvery:   opts.AggregateEvery,
		aggKeys:    opts.AggregateKeys,
		allowKeys:  opts.AllowedKeys,
		onDrop:     opts.OnDrop,
		onWrite:    opts.OnWrite,
		retry:      opts.retry,
		logEvery:   opts.logEvery,
		log:        opts.Logger.With("component", "audit"),
		cancel:     cancel,
		done:       make(chan struct{}),
	}
	go w.run(ctx)
	return w
}

// Record queues e to be written. It never blocks: when the buffer is full,
// or the writer is closing or closed, it drops e and counts it in Dropped. An
// event without a time gets the store's current time.
func (w *AuditWriter) Record(e accounts.LoginEvent) {
	if e.Time.IsZero() {
		e.Time = w.db.now()
	}
	if !w.mu.TryRLock() {
		w.drop(1) // Close holds or wants the lock
		return
	}
	defer w.mu.RUnlock()
	if w.closed {
		w.drop(1)
		return
	}
	select {
	case w.ch <- e:
	default:
		w.drop(1)
	}
}

// drop counts n events dropped.
func (w *AuditWriter) drop(n uint64) {
	w.dropped.Add(n)
	w.lastDrop.Store(w.db.now().UnixNano())
}

// Dropped returns how many events were recorded but will never be written:
// the buffer or the backlog was full, they came after Close, or the writes
// still failed as Close ended.
func (w *AuditWriter) Dropped() uint64 {
	return w.dropped.Load()
}

// Waiting returns how many events wait to be written: in the buffer, and
// rows in the backlog.
func (w *AuditWriter) Waiting() int {
	return len(w.ch) + int(w.waiting.Load())
}

// ErrAuditFailing is the error Health wraps when the audit trail is not
// being written.
var ErrAuditFailing = errors.New("audit trail failing")

// Health returns nil while the audit trail is being written, and an error
// wrapping ErrAuditFailing that says why otherwise: the last write failed
// (since when, how many events wait), or events were dropped within the
// last DefaultAuditDropHold. It holds again by itself once a write
// succeeds and no event has been dropped for that long.
func (w *AuditWriter) Health() error {
	w.stateMu.Lock()
	st := w.state
	w.stateMu.Unlock()
	if st.failing {
		return fmt.Errorf("%w: writes failing since %s (%d attempts), %d events waiting, %d dropped in all: %w",
			ErrAuditFailing, st.since.UTC().Format(time.RFC3339), st.attempts, w.Waiting(), w.Dropped(), st.err)
	}
	if at := w.lastDrop.Load(); at != 0 {
		if ago := w.db.now().Sub(time.Unix(0, at)); ago < DefaultAuditDropHold {
			return fmt.Errorf("%w: events dropped %v ago, %d in all: the buffer was full", ErrAuditFailing, ago.Round(time.Second), w.Dropped())
		}
	}
	return nil
}

// Close stops accepting events, writes every event still buffered, and stops
// the writer. If ctx ends first, Close returns ctx's error at once and the
// writer stops soon after, counting what it did not write in Dropped. Close
// also returns an error when the last events could not be written: while
// closing, the writer tries a failing write once more after each pause of
// its retry schedule, then gives up. Calling Close again waits for the same
// end.
func (w *AuditWriter) Close(ctx context.Context) error {
	w.closing.Store(true)
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.ch)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.cancel()
		return fmt.Errorf("close audit writer: %w: events not yet written are dropped", ctx.Err())
	}
	w.cancel()
	if w.lostOnClose > 0 {
		return fmt.Errorf("close audit writer: %d events could not be written: %w", w.lostOnClose, w.errOnClose)
	}
	return nil
}

// backlogQueue is the rows waiting to be written, oldest first. Only the
// writer goroutine uses it.
type backlogQueue struct {
	rows []loginRow
	head int
}

func (q *backlogQueue) len() int { return len(q.rows) - q.head }

// next returns up to n of the oldest rows, without removing them.
func (q *backlogQueue) next(n int) []loginRow {
	return q.rows[q.head : q.head+min(n, q.len())]
}

// remove removes the n oldest rows.
func (q *backlogQueue) remove(n int) {
	clear(q.rows[q.head : q.head+n]) // let the strings go
	q.head += n
	switch {
	case q.head == len(q.rows):
		q.rows, q.head = q.rows[:0], 0
	case q.head > len(q.rows)/2 && q.head >= 1024:
		n := copy(q.rows, q.rows[q.head:])
		clear(q.rows[n:])
		q.rows, q.head = q.rows[:n], 0
	}
}

// run is the writer goroutine: it collects events into the backlog and
// writes a batch when one is full or FlushEvery has passed, until Close
// closes ch and ch is drained. While writes fail it keeps taking events
// into the backlog, and tries again after each pause of the retry
// schedule.
func (w *AuditWriter) run(ctx context.Context) {
	defer close(w.done)
	tick := time.NewTicker(w.flushEvery)
	defer tick.Stop()
	aggTick := time.NewTicker(w.aggEvery)
	defer aggTick.Stop()
	agg := newAggregator(w.aggKeys, w.allowKeys)
	var q backlogQueue
	var retry <-chan time.Time // set while writes fail
	failures := 0
	add := func(r loginRow) {
		if q.len() >= w.backlog {
			w.drop(uint64(max(r.count, 1)))
			return
		}
		q.rows = append(q.rows, r)
	}
	// flush writes batches while there are at least least rows, and
	// reports whether the writes succeed.
	flush := func(least int) bool {
		for q.len() >= max(least, 1) {
			batch := q.next(w.batchSize)
			if err := w.db.insertLoginRows(ctx, batch); err != nil {
				failures++
				w.failed(err, q.len())
				return false
			}
			w.written(batch)
			q.remove(len(batch))
			if failures > 0 {
				failures = 0
				w.recovered()
			}
		}
		return true
	}
	pause := func() time.Duration { return w.retry[min(failures, len(w.retry))-1] }
	defer func() { w.waiting.Store(int64(q.len())) }()
	for {
		w.waiting.Store(int64(q.len()))
		select {
		case e, ok := <-w.ch:
			if !ok {
				for _, r := range agg.flush() {
					add(r)
				}
				w.closeOut(ctx, &q, flush, &failures)
				w.reportDrops(true)
				return
			}
			if !agg.take(e) {
				add(loginRow{LoginEvent: e, count: 1})
			}
			if retry == nil && q.len() >= w.batchSize && !flush(w.batchSize) {
				retry = time.After(pause())
			}
		case <-aggTick.C:
			for _, r := range agg.flush() {
				add(r)
			}
		case <-retry:
			retry = nil
			if !flush(1) {
				retry = time.After(pause())
			}
		case <-tick.C:
			if retry == nil && !flush(1) {
				retry = time.After(pause())
			}
			w.reportDrops(false)
		}
	}
}

// closeOut writes the backlog as the writer closes: a failing write is
// tried again after each pause of the retry schedule, then what is left is
// dropped and reported by Close.
func (w *AuditWriter) closeOut(ctx context.Context, q *backlogQueue, flush func(int) bool, failures *int) {
	tries := 0
	for !flush(1) {
		if tries == len(w.retry) || ctx.Err() != nil {
			n := uint64(0)
			for _, r := range q.next(q.len()) {
				n += uint64(max(r.count, 1))
			}
			q.remove(q.len())
			w.drop(n)
			w.lostOnClose += n
			w.stateMu.Lock()
			w.errOnClose = w.state.err
			w.stateMu.Unlock()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.retry[tries]):
		}
		tries++
	}
}

// written passes the rows just written to OnWrite.
func (w *AuditWriter) written(rows []loginRow) {
	if w.onWrite == nil {
		return
	}
	recs := make([]AuditRecord, len(rows))
	for i, r := range rows {
		result := AuditDenied
		if r.Allowed {
			result = AuditAllowed
		}
		recs[i] = AuditRecord{Time: r.Time.UTC(), User: r.User, Account: r.Account, Host: r.Host, ServerID: r.ServerID,
			ClientID: r.ClientID, ConnType: r.ConnType, Result: result, Reason: r.Reason,
			LatencyNS: int64(r.Latency), Count: max(r.count, 1)}
	}
	w.onWrite(recs)
}

// failed notes a failed write, and logs it at the first failure and then
// at most once per logEvery.
func (w *AuditWriter) failed(err error, waiting int) {
	now := w.db.now()
	w.stateMu.Lock()
	st := &w.state
	first := !st.failing
	if first {
		st.failing, st.since, st.attempts = true, now, 0
	}
	st.attempts++
	st.err = err
	logIt := first || now.Sub(st.lastLog) >= w.logEvery
	if logIt {
		st.lastLog = now
	}
	since, attempts := st.since, st.attempts
	w.stateMu.Unlock()
	if logIt {
		w.log.Warn("audit trail not written: rows kept to be written when the database can be written again",
			"waiting", waiting, "backlog_max", w.backlog, "failing_since", since, "attempts", attempts, "err", err)
	}
}

// recovered notes a write that succeeded after failures, and logs it.
func (w *AuditWriter) recovered() {
	w.stateMu.Lock()
	st := w.state
	w.state = writeState{}
	w.stateMu.Unlock()
	if st.failing {
		w.log.Info("audit trail written again", "failed_for", w.db.now().Sub(st.since).Round(time.Millisecond),
			"attempts", st.attempts, "dropped_total", w.Dropped())
	}
}

// loginRow is one audit row of login decisions: an event and how many
// identical ones it stands for.
type loginRow struct {
	accounts.LoginEvent
	count int64
}

// aggKey is what makes cheap denials, or allowed logins, identical.
type aggKey struct {
	allowed                         bool
	reason, host, user, acct, ctype string
}

// aggregator counts the repeats of cheap denials and allowed logins within
// one interval. It holds at most max keys of denials plus one row per
// reason, and maxAllowed keys of allowed logins, so its memory is bounded
// however many distinct names a flood uses. Only the writer goroutine uses
// it.
type aggregator struct {
	max, maxAllowed int
	denied          int                  // keys of denials in keys
	keys            map[aggKey]*loginRow // count 0: seen once, written at once
	overflow        map[string]*loginRow // by reason, past max keys
	// prev holds the keys of allowed logins of the last interval: their
	// first login in this one is counted, not written at once, as it is
	// no first login.
	prev map[aggKey]bool
}

func newAggregator(max, maxAllowed int) *aggregator {
	return &aggregator{max: max, maxAllowed: maxAllowed, keys: map[aggKey]*loginRow{},
		overflow: map[string]*loginRow{}, prev: map[aggKey]bool{}}
}

// take reports whether it has counted e, to be written by flush, or e is to
// be written now as a row of its own: any denial but a cheap one, the
// first of each key in the interval (for an allowed login, unless its key
// had logins in the last interval too), and allowed logins past
// maxAllowed keys.
func (a *aggregator) take(e accounts.LoginEvent) bool {
	if e.Allowed {
		return a.takeAllowed(e)
	}
	if !e.Malformed {
		return false
	}
	k := aggKey{reason: e.Reason, host: e.Host, user: e.User}
	if r, ok := a.keys[k]; ok {
		a.count(r, e)
		return true
	}
	if a.denied < a.max {
		a.keys[k] = &loginRow{}
		a.denied++
		return false
	}
	r, ok := a.overflow[e.Reason]
	if !ok {
		if len(a.overflow) >= a.max {
			return false // not reached: reasons are a handful of constants
		}
		e.User, e.Host, e.ClientID = "", "", 0
		r = &loginRow{LoginEvent: e}
		a.overflow[e.Reason] = r
	}
	r.count++
	return true
}

// takeAllowed is take for an allowed login.
func (a *aggregator) takeAllowed(e accounts.LoginEvent) bool {
	k := aggKey{allowed: true, host: e.Host, user: e.User, acct: e.Account, ctype: e.ConnType}
	if r, ok := a.keys[k]; ok {
		a.count(r, e)
		return true
	}
	if len(a.keys)-a.denied >= a.maxAllowed {
		return false
	}
	r := &loginRow{}
	a.keys[k] = r
	if a.prev[k] {
		a.count(r, e) // the key is still active: no first login
		return true
	}
	return false
}

// count counts e as a repeat into r: the row keeps the first repeat's
// time, client and latency.
func (a *aggregator) count(r *loginRow, e accounts.LoginEvent) {
	if r.count == 0 {
		r.LoginEvent = e
	}
	r.count++
}

// flush returns the rows of the repeats counted in this interval, oldest
// first, and starts the next interval.
func (a *aggregator) flush() []loginRow {
	var out []loginRow
	for _, r := range a.keys {
		if r.count > 0 {
			out = append(out, *r)
		}
	}
	for _, r := range a.overflow {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(x, y loginRow) int { return x.Time.Compare(y.Time) })
	clear(a.prev)
	for k := range a.keys {
		if k.allowed {
			a.prev[k] = true
		}
	}
	clear(a.keys)
	clear(a.overflow)
	a.denied = 0
	return out
}

// reportDrops passes to OnDrop the events dropped since it last did, and
// logs them at most once per logEvery (or now, when final).
func (w *AuditWriter) reportDrops(final bool) {
	d := w.dropped.Load()
	if w.onDrop != nil && d > w.reported {
		n := d - w.reported
		w.reported = d
		w.onDrop(int(min(n, math.MaxInt)))
	}
	now := w.db.now()
	if d > w.logged && (final || now.Sub(w.lastDropLog) >= w.logEvery) {
		w.stateMu.Lock()
		err := w.state.err
		w.stateMu.Unlock()
		attrs := []any{"events", d - w.logged, "dropped_total", d, "waiting", w.Waiting(), "backlog_max", w.backlog}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		w.log.Error("audit events dropped", attrs...)
		w.logged, w.lastDropLog = d, now
	}
}

// insertLogins writes login events as audit rows in one transaction, one
// row each.
func (db *DB) insertLogins(ctx context.Context, events []accounts.LoginEvent) error {
	rows := make([]loginRow, len(events))
	for i, e := range events {
		rows[i] = loginRow{LoginEvent: e, count: 1}
	}
	return db.insertLoginRows(ctx, rows)
}

// insertLoginRows writes login rows in one transaction.
func (db *DB) insertLoginRows(ctx context.Context, events []loginRow) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	defer tx.Rollback()
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit
		(time, kind, user, account, client_host, server_id, client_id, conn_type, result, reason, latency_ns, count)
		VALUES (?, 'login', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	defer stmt.Close()
	for _, e := range events {
		result := AuditDenied
		if e.Allowed {
			result = AuditAllowed
		}
		// client_id keeps the id's bits: SQLite integers are signed.
		_, err := stmt.ExecContext(ctx, unixNanos(e.Time), e.User, e.Account, e.Host, e.ServerID,
			int64(e.ClientID), e.ConnType, result, e.Reason, int64(e.Latency), max(e.count, 1))
		if err != nil {
			return fmt.Errorf("write audit: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write audit: %w", err)
	}
	return nil
}

// AuditAdmin records an admin change, synchronously: actor is who made it
// (the OS user running the command), action what kind of change it was
// ("user add"), and detail what changed, as JSON or text, such as
// {"user":"alice","fields":["pub","expires"]}. When detail is a JSON object
// with a string "user" member, the entry's User is that name, so that the
// audit of a user shows the changes made to it.
//
// The audit trail is not secret: detail must name the fields that changed,
// never hold a password, a password hash or a key. AuditAdmin refuses a
// detail that holds something that looks like a password hash, but it cannot
// recognise a password.
//
// AuditAdmin writes the row on its own, after the change: a change that
// must not happen without its row goes through Admin instead.
func (db *DB) AuditAdmin(ctx context.Context, actor, action, detail string) error {
	if action == "" {
		return errors.New("audit admin change: the action is empty")
	}
	if db.clustered() && adminOf(ctx) == nil {
		// One audit trail: the row reaches every node through the log.
		return db.Admin(ctx, actor, action, func(context.Context) (string, error) { return detail, nil })
	}
	return db.insertAdmin(ctx, db.q(ctx), actor, action, detail)
}

// insertAdmin writes the audit row of an admin change on q.
func (db *DB) insertAdmin(ctx context.Context, q querier, actor, action, detail string) error {
	if looksLikeHash(detail) {
		return fmt.Errorf("audit %s: the detail holds what looks like a password hash: record which fields changed, not their values", action)
	}
	_, err := q.ExecContext(ctx, `INSERT INTO audit (time, kind, user, actor, action, detail)
		VALUES (?, 'admin', ?, ?, ?, ?)`,
		unixNanos(db.now()), detailUser(detail), actor, action, detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// looksLikeHash reports whether s holds the start of an argon2 PHC string or
// a bcrypt hash, the formats the store keeps passwords in.
func looksLikeHash(s string) bool {
	for _, marker := range []string{"$argon2", "$2a$", "$2b$", "$2y$"} {
		if strings.Contains(s, marker) {
			return true
		}
	}
	return false
}

// detailUser returns the "user" member of detail if detail is a JSON object
// that has one, or "".
func detailUser(detail string) string {
	if !strings.HasPrefix(strings.TrimSpace(detail), "{") {
		return ""
	}
	var d struct {
		User string `json:"user"`
	}
	if err := json.Unmarshal([]byte(detail), &d); err != nil {
		return ""
	}
	return d.User
}

// AuditEntry is one row of the audit trail: a login decision (Kind
// AuditLogin, Result AuditAllowed or AuditDenied, Actor, Action and Detail
// empty) or an admin change (Kind AuditAdmin, Result empty, the client fields
// empty, User the user the change names, if any).
type AuditEntry struct {
	// ID increases in the order entries were written and is never reused,
	// even after PruneAudit.
	ID       int64
	Time     time.Time
	Kind     string
	User     string
	Account  string
	Host     string
	ServerID string
	ClientID uint64
	ConnType string
	Result   string
	Reason   string
	Latency  time.Duration
	Actor    string
	Action   string
	Detail   string
	// Count is how many identical decisions the row stands for: more than
	// 1 only for aggregated cheap denials (AuditOptions.AggregateEvery).
	Count int64
	// Node is the cluster node a login row came from, when another node
	// sent it (cluster mode); empty for the rows this node wrote.
	Node string
}

// AuditFilter selects audit entries; its zero value selects all of them.
type AuditFilter struct {
	// User keeps the entries of that user.
	User string
	// Since keeps the entries at or after that time.
	Since time.Time
	// Result keeps the logins with that result: "", AuditAllowed or
	// AuditDenied.
	Result string
	// Kind keeps the entries of that kind: "", AuditLogin or AuditAdmin.
	Kind string
	// AfterID keeps the entries with a greater ID, for following the
	// trail: pass the highest ID seen, which need not be the last entry's,
	// as entries come in time order.
	AfterID int64
	// Limit, when positive, is the most entries returned: the newest ones
	// by time, or with AfterID the lowest IDs after it, so that a follower
	// paging forward with the highest ID seen never skips an entry.
	Limit int
}

// LastAuditID returns the highest ID of the audit trail, or 0 if it is
// empty: a follower that starts from it (AuditFilter.AfterID) sees only the
// entries written after, as tail -f does.
func (db *DB) LastAuditID(ctx context.Context) (int64, error) {
	var id int64
	if err := db.sql.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM audit`).Scan(&id); err != nil {
		return 0, fmt.Errorf("read last audit id: %w", err)
	}
	return id, nil
}

// Audit returns the audit entries f selects, oldest first: by time, then by
// ID. ID order is the order entries were written, which is not quite time
// order: a login is written up to a FlushEvery (longer while the database is
// locked) after its time, after admin changes made meanwhile.
func (db *DB) Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var where []string
	var args []any
	if f.User != "" {
		where, args = append(where, "user = ?"), append(args, f.User)
	}
	if !f.Since.IsZero() {
		where, args = append(where, "time >= ?"), append(args, unixNanos(f.Since))
	}
	switch f.Result {
	case "":
	case AuditAllowed, AuditDenied:
		where, args = append(where, "result = ?"), append(args, f.Result)
	default:
		return nil, fmt.Errorf("read audit: result %q: want %s or %s", f.Result, AuditAllowed, AuditDenied)
	}
	switch f.Kind {
	case "":
	case AuditLogin, AuditAdmin:
		where, args = append(where, "kind = ?"), append(args, f.Kind)
	default:
		return nil, fmt.Errorf("read audit: kind %q: want %s or %s", f.Kind, AuditLogin, AuditAdmin)
	}
	if f.AfterID > 0 {
		where, args = append(where, "id > ?"), append(args, f.AfterID)
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("read audit: limit %d is negative", f.Limit)
	}

	const cols = `id, time, kind, user, account, client_host, server_id, client_id, conn_type,
		result, reason, latency_ns, actor, action, detail, count, node`
	q := `SELECT ` + cols + ` FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	newest := f.Limit > 0 && f.AfterID <= 0
	switch {
	case newest:
		q += " ORDER BY time DESC, id DESC LIMIT ?"
		args = append(args, f.Limit)
	case f.Limit > 0:
		// The lowest IDs after AfterID, in time order: a page chosen by
		// time could hold a higher ID than an entry it leaves out, and
		// the next page, after the highest ID seen, would skip that one.
		q = `SELECT ` + cols + ` FROM (` + q + ` ORDER BY id LIMIT ?) ORDER BY time, id`
		args = append(args, f.Limit)
	default:
		q += " ORDER BY time, id"
	}

	rows, err := db.sql.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	entries := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at, cid, latency int64
		if err := rows.Scan(&e.ID, &at, &e.Kind, &e.User, &e.Account, &e.Host, &e.ServerID, &cid, &e.ConnType,
			&e.Result, &e.Reason, &latency, &e.Actor, &e.Action, &e.Detail, &e.Count, &e.Node); err != nil {
			return nil, fmt.Errorf("read audit: %w", err)
		}
		e.Time = time.Unix(0, at).UTC()
		e.ClientID = uint64(cid)
		e.Latency = time.Duration(latency)
		entries = append(entries, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read audit: %w", err)
	}
	if newest {
		slices.Reverse(entries)
	}
	return entries, nil
}

// pruneChunk is how many rows PruneAudit deletes per statement.
const pruneChunk = 1000

// PruneAudit deletes the audit entries older than before and returns how many
// it deleted. It deletes in chunks, each its own short transaction, and
// pauses between chunks for as long as the last one took, so that logins
// being written and admin changes never wait long for the write lock. If ctx
// ends or a chunk fails, it returns what it deleted so far with the error.
func (db *DB) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		start := time.Now()
		res, err := db.sql.ExecContext(ctx,
			`DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < ? LIMIT ?)`,
			unixNanos(before), pruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune audit: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune audit: %w", err)
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
		select {
		case <-ctx.Done():
			return total, fmt.Errorf("prune audit: %w", ctx.Err())
		case <-time.After(max(time.Since(start), time.Millisecond)):
		}
	}
}

// unixNanos returns t as Unix nanoseconds, clamped to the int64 range (where
// t.UnixNano is undefined), so that the zero time sorts before every other.
func unixNanos(t time.Time) int64 {
	switch {
	case t.Before(minNanoTime):
		return math.MinInt64
	case t.After(maxNanoTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)
