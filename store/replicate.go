package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Cluster mode. The design is written down in the cluster package's
// comment; what the store does for it:
//
//   - capture: in an admin change (Admin), TEMP triggers on every replicated
//     table record, in order, the key of each row the change touches;
//   - commit: before Admin commits, it reads the touched rows' values in its
//     transaction (a row that is gone is a delete), encodes them as one
//     change and appends it to the cluster log (a Replicator) after the
//     entry this copy last applied; only when the log has it does the
//     transaction commit, with the new position;
//   - apply: Apply writes another node's change into this copy, in one
//     transaction, so that the triggers fill the derived tables (the change
//     feed, user versions, the generation) exactly as on the writer;
//   - snapshot: Bootstrap appends every replicated row of an existing
//     database to an empty log, so that it becomes the first node.

// Replicator is the cluster log a store in cluster mode appends its admin
// changes to (the cluster package's Log). Append stores the parts of one
// change (one part unless the change is larger than MaxEntrySize) as the
// entries that follow the entry numbered after, all or none, and returns
// the number of the last: it fails with an error wrapping ErrBehind when
// the log's last entry is not after (another node's change came first), and
// with another error when the log cannot take it; the change is then not in
// the log.
type Replicator interface {
	Append(ctx context.Context, after uint64, parts ...[]byte) (last uint64, err error)
}

// LogChecker is what a Replicator may also implement: Check returns the
// number of the log's last entry, or an error that says why the log cannot
// take a change now (no quorum). Admin asks before it begins a change, so
// that with the log's quorum gone it fails at once, for certain, and without
// taking the database's write lock (which failed logins wait for while
// Append waits on the log); and so that it catches up first when the copy
// is behind, and the change sees every change the log held when it began,
// whichever node made it.
type LogChecker interface {
	Check(ctx context.Context) (last uint64, err error)
}

// ErrBehind means the cluster log holds changes this copy has not applied
// yet: catch up, then make the change again.
var ErrBehind = errors.New("the cluster log has changes this node has not applied yet")

// ErrClusterWrite means a write to replicated state was asked for outside
// an admin change in cluster mode, where it would change this node's copy
// alone.
var ErrClusterWrite = errors.New("in cluster mode the replicated state changes only through an admin change (store.Admin), which the cluster log orders")

// adminRetries is how many times Admin makes a change in cluster mode when
// other nodes' changes keep coming first.
const adminRetries = 8

// changeVersion is the format of a change; Apply refuses another.
const changeVersion = 1

// MaxEntrySize is the most one entry of the log holds, in bytes, well below
// JetStream's default message limit of 1 MiB: a larger change is appended
// in parts, and a snapshot (Bootstrap) in entries of this size.
const MaxEntrySize = 512 << 10

// A tableSpec says how cluster mode treats one table of the schema. Every
// table of the schema has one (a test checks it): a migration that adds a
// table must decide.
type tableSpec struct {
	name string
	// replicated tables are captured and applied; the others are local.
	replicated bool
	// key are the columns that name a row (its primary key); empty for
	// an append-only table, whose rows are named by rowid while captured
	// and applied as new rows.
	key []string
	// local are columns of a replicated table that the log never carries:
	// each node keeps its own.
	local []string
	// rewritten are columns the log carries that each node then sets
	// to a value of its own; StateDigest leaves them out.
	rewritten []string
	// replace applies a present row as delete then insert instead of an
	// upsert: user_roles has UNIQUE (user, position), which a reordering
	// of a user's roles breaks row by row.
	replace bool
	// when restricts the capture of an append-only table's inserts.
	when string
	// why a local table is local.
	why string
}

// tables lists every table of the schema, replicated ones in the order a
// snapshot carries them: parents before children, so that each snapshot
// entry satisfies the foreign keys on its own.
var tables = []tableSpec{
	{name: "accounts", replicated: true, key: []string{"name"}},
	{name: "roles", replicated: true, key: []string{"name"}},
	{name: "settings", replicated: true, key: []string{"key"}},
	// rehashes counts this node's rehashes at login (0005): carried, a
	// differing count would hide an applied change from the users
	// triggers (WHEN NEW.rehashes IS OLD.rehashes); a change marked as a
	// rehash (change.Rehash) increments it on the node applying it.
	{name: "users", replicated: true, key: []string{"name"}, local: []string{"rehashes"}},
	{name: "user_roles", replicated: true, key: []string{"user", "role"}, replace: true},
	{name: "credentials", replicated: true, key: []string{"kind", "value"}},
	{name: "identity_providers", replicated: true, key: []string{"name"}},
	{name: "user_idps", replicated: true, key: []string{"user"}},
	// mark names a row of this node's change feed: Apply sets it to the
	// row its own users trigger wrote (see applyGraces).
	{name: "password_graces", replicated: true, key: []string{"user"}, rewritten: []string{"mark"}},
	// Admin rows are replicated as appends; login rows travel as node
	// events (the cluster package), marked with their node, which the log
	// never carries (an admin row's is always '').
	{name: "audit", replicated: true, when: "NEW.kind = 'admin'", local: []string{"node"}},

	{name: "generation", why: "derived: the triggers of 0005 bump it on every node"},
	{name: "user_changes", why: "derived: the triggers of 0006 write it on every node, which is what closes connections there"},
	{name: "user_versions", why: "derived: the triggers of 0010"},
	{name: "user_version_seq", why: "derived: the triggers of 0010"},
	{name: "lockouts", why: "each node applies every node's failed logins, successes, locks and unlocks, sent as node events outside the log (Lockouts.ApplyRemote)"},
	{name: "known_addrs", why: "with lockouts: a node event"},
	{name: "event_positions", why: "this node's position in each events stream"},
	{name: "write_probe", why: "this node's readiness probe"},
	{name: "cluster_log", why: "this node's position in the log"},
	{name: "sqlite_sequence", why: "SQLite's AUTOINCREMENT counters; ids are local"},
}

// specOf returns the spec of a replicated table, or false.
func specOf(name string) (tableSpec, bool) {
	for _, t := range tables {
		if t.name == name && t.replicated {
			return t, true
		}
	}
	return tableSpec{}, false
}

// replication is a store's cluster mode: its log and how to catch up.
type replication struct {
	log     Replicator
	catchUp func(ctx context.Context) error
}

// Replicate puts db in cluster mode: every admin change (Admin) is appended
// to log before it commits, and applied by the other nodes. When log says
// the change came after another node's (ErrBehind), Admin rolls back, calls
// catchUp, which must apply the log up to its end (cluster.Log.CatchUp), and
// makes the change again, so that fn may run more than once: it must do
// nothing but call db's methods. Outside Admin, the write methods of
// replicated state fail with ErrClusterWrite, AuditAdmin goes through Admin,
// and a login's rehash is queued for RehashLoop to store as an admin
// change. Call it right after Open, before the handle is shared.
func (db *DB) Replicate(log Replicator, catchUp func(ctx context.Context) error) {
	db.repl = &replication{log: log, catchUp: catchUp}
}

// clustered reports whether db is in cluster mode.
func (db *DB) clustered() bool { return db.repl != nil }

// localKey marks a context whose writes are the same on every node and stay
// local in cluster mode (EndGraces: each node ends a grace at its time).
type localKey struct{}

// localWrite returns ctx marked as making a node-local write.
func localWrite(ctx context.Context) context.Context {
	return context.WithValue(ctx, localKey{}, true)
}

// checkClusterWrite refuses, in cluster mode, a write method called outside
// an admin change.
func (db *DB) checkClusterWrite(ctx context.Context) error {
	if !db.clustered() || adminOf(ctx) != nil || ctx.Value(localKey{}) != nil {
		return nil
	}
	return ErrClusterWrite
}

// AppliedSeq returns the sequence of the last cluster log entry this copy
// holds, 0 if none.
func (db *DB) AppliedSeq(ctx context.Context) (uint64, error) {
	seq, err := appliedSeq(ctx, db.q(ctx))
	if err != nil {
		return 0, fmt.Errorf("read cluster log position: %w", err)
	}
	return seq, nil
}

func appliedSeq(ctx context.Context, q querier) (uint64, error) {
	var seq int64
	if err := q.QueryRowContext(ctx, `SELECT applied FROM cluster_log WHERE id = 0`).Scan(&seq); err != nil {
		return 0, err
	}
	return uint64(seq), nil
}

func setApplied(ctx context.Context, q querier, seq uint64) error {
	_, err := q.ExecContext(ctx, `UPDATE cluster_log SET applied = ? WHERE id = 0`, int64(seq))
	return err
}

// installCapture creates, on the connection of tx, the capture table and
// the TEMP triggers that fill it (they live as long as the connection), and
// empties the table: rows that other writes on this connection left there
// are not part of this change.
func installCapture(ctx context.Context, tx *sql.Tx) error {
	stmts := []string{`CREATE TEMP TABLE IF NOT EXISTS cluster_capture (
		n   INTEGER PRIMARY KEY,
		tbl TEXT NOT NULL,
		key TEXT NOT NULL)`}
	for _, t := range tables {
		if !t.replicated {
			continue
		}
		rec := func(row string) string {
			if len(t.key) == 0 {
				return fmt.Sprintf(`INSERT INTO temp.cluster_capture (tbl, key) VALUES ('%s', json_array(%s.rowid));`, t.name, row)
			}
			cols := make([]string, len(t.key))
			for i, k := range t.key {
				cols[i] = row + "." + quoteIdent(k)
			}
			return fmt.Sprintf(`INSERT INTO temp.cluster_capture (tbl, key) VALUES ('%s', json_array(%s));`, t.name, strings.Join(cols, ", "))
		}
		if len(t.key) == 0 {
			// Append-only: only inserts are part of a change.
			when := ""
			if t.when != "" {
				when = " WHEN " + t.when
			}
			stmts = append(stmts, fmt.Sprintf(`CREATE TEMP TRIGGER IF NOT EXISTS cluster_capture_%s_insert AFTER INSERT ON main.%s%s BEGIN %s END`,
				t.name, quoteIdent(t.name), when, rec("NEW")))
			continue
		}
		stmts = append(stmts,
			fmt.Sprintf(`CREATE TEMP TRIGGER IF NOT EXISTS cluster_capture_%s_insert AFTER INSERT ON main.%s BEGIN %s END`, t.name, quoteIdent(t.name), rec("NEW")),
			fmt.Sprintf(`CREATE TEMP TRIGGER IF NOT EXISTS cluster_capture_%s_update AFTER UPDATE ON main.%s BEGIN %s %s END`, t.name, quoteIdent(t.name), rec("OLD"), rec("NEW")),
			fmt.Sprintf(`CREATE TEMP TRIGGER IF NOT EXISTS cluster_capture_%s_delete AFTER DELETE ON main.%s BEGIN %s END`, t.name, quoteIdent(t.name), rec("OLD")))
	}
	stmts = append(stmts, `DELETE FROM temp.cluster_capture`)
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("capture changes for the cluster log: %w", err)
		}
	}
	return nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// change is one entry of the cluster log: the rows one admin change left,
// in the order it first touched them.
type change struct {
	V int `json:"v"`
	// Part and Parts number the parts of a change larger than
	// MaxEntrySize, from 1; both are 0 for a change in one entry.
	Part  int        `json:"part,omitempty"`
	Parts int        `json:"parts,omitempty"`
	Rows  []rowValue `json:"rows"`
	// Rehash says that the change's users rows only rehash passwords at
	// login (RehashLoop): a node applying it counts each as a rehash, so
	// that its triggers let it pass as the writer's did (no change feed
	// row, no new generation or user version), the credential being the
	// same. An older node ignores it and takes the row for a change.
	Rehash bool `json:"rehash,omitempty"`
}

// chunkRows splits rows into runs whose encoding stays below MaxEntrySize.
func chunkRows(rows []rowValue) ([][]rowValue, error) {
	var chunks [][]rowValue
	var cur []rowValue
	size := 0
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		n := len(b) + 1
		if n+entryOverhead > MaxEntrySize {
			return nil, fmt.Errorf("a row of %s is %d bytes, more than an entry of the cluster log holds (%d)", r.Table, len(b), MaxEntrySize)
		}
		if size+n+entryOverhead > MaxEntrySize {
			chunks, cur, size = append(chunks, cur), nil, 0
		}
		cur = append(cur, r)
		size += n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks, nil
}

// entryOverhead bounds what an entry holds besides its rows.
const entryOverhead = 128

// rowValue is a row as a change carries it: for a present row every column
// but the local ones (and the rowid of an append-only table), for a deleted
// one its key columns.
type rowValue struct {
	Table  string   `json:"t"`
	Delete bool     `json:"d,omitempty"`
	Cols   []string `json:"c"`
	Vals   []value  `json:"v"`
}

// value is one SQLite value with its type: at most one field is set, none
// for NULL. Blobs travel as base64, so any bytes are safe.
type value struct {
	I *int64   `json:"i,omitempty"`
	R *float64 `json:"r,omitempty"`
	S *string  `json:"s,omitempty"`
	B *[]byte  `json:"b,omitempty"`
}

func toValue(v any) (value, error) {
	switch x := v.(type) {
	case nil:
		return value{}, nil
	case int64:
		return value{I: &x}, nil
	case float64:
		return value{R: &x}, nil
	case string:
		return value{S: &x}, nil
	case []byte:
		b := bytes.Clone(x)
		return value{B: &b}, nil
	case bool:
		var i int64
		if x {
			i = 1
		}
		return value{I: &i}, nil
	}
	return value{}, fmt.Errorf("a value of type %T", v)
}

func (v value) arg() any {
	switch {
	case v.I != nil:
		return *v.I
	case v.R != nil:
		return *v.R
	case v.S != nil:
		return *v.S
	case v.B != nil:
		return *v.B
	}
	return nil
}

// captured reads the keys the capture triggers recorded, first touch first,
// each once.
func captured(ctx context.Context, tx *sql.Tx) ([]capturedKey, error) {
	rows, err := tx.QueryContext(ctx, `SELECT tbl, key FROM temp.cluster_capture ORDER BY n`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var keys []capturedKey
	seen := map[[2]string]bool{}
	for rows.Next() {
		var k capturedKey
		var raw string
		if err := rows.Scan(&k.table, &raw); err != nil {
			return nil, err
		}
		if seen[[2]string{k.table, raw}] {
			continue
		}
		seen[[2]string{k.table, raw}] = true
		d := json.NewDecoder(strings.NewReader(raw))
		d.UseNumber()
		var vals []any
		if err := d.Decode(&vals); err != nil {
			return nil, fmt.Errorf("captured key %s: %w", raw, err)
		}
		for i, v := range vals {
			if n, ok := v.(json.Number); ok {
				if vals[i], err = n.Int64(); err != nil {
					return nil, fmt.Errorf("captured key %s: %w", raw, err)
				}
			}
		}
		k.vals = vals
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

type capturedKey struct {
	table string
	vals  []any
}

// readRows reads the rows of spec's table that match where, as a change
// carries them.
func readRows(ctx context.Context, q querier, spec tableSpec, where string, args ...any) ([]rowValue, error) {
	query := `SELECT * FROM main.` + quoteIdent(spec.name)
	if len(spec.key) == 0 {
		query = `SELECT rowid AS cluster_rowid, * FROM main.` + quoteIdent(spec.name)
	}
	if where != "" {
		query += " WHERE " + where
	}
	if len(spec.key) == 0 {
		query += " ORDER BY rowid"
	}
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []rowValue
	for rows.Next() {
		raw := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range raw {
			ptrs[i] = &raw[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		r := rowValue{Table: spec.name}
		for i, c := range cols {
			// The rowid of an append-only table, and its id column
			// (the same), are this node's.
			if len(spec.key) == 0 && (i == 0 || c == "id") || slices.Contains(spec.local, c) {
				continue
			}
			v, err := toValue(raw[i])
			if err != nil {
				return nil, fmt.Errorf("column %s of %s: %w", c, spec.name, err)
			}
			r.Cols = append(r.Cols, c)
			r.Vals = append(r.Vals, v)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// keyWhere is the WHERE clause that names one row of spec by its key, or by
// rowid for an append-only table.
func keyWhere(spec tableSpec) string {
	if len(spec.key) == 0 {
		return "rowid = ?"
	}
	parts := make([]string, len(spec.key))
	for i, k := range spec.key {
		parts[i] = quoteIdent(k) + " = ?"
	}
	return strings.Join(parts, " AND ")
}

// encodeChange reads the rows the capture recorded in tx and encodes them
// as a change, in parts if it is large; it returns nil when the
// transaction touched no replicated row.
func encodeChange(ctx context.Context, tx *sql.Tx, rehash bool) ([][]byte, error) {
	keys, err := captured(ctx, tx)
	if err != nil {
		return nil, fmt.Errorf("read captured changes: %w", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	c := change{V: changeVersion}
	for _, k := range keys {
		spec, ok := specOf(k.table)
		if !ok {
			return nil, fmt.Errorf("captured a change of table %q, which is not replicated", k.table)
		}
		rows, err := readRows(ctx, tx, spec, keyWhere(spec), k.vals...)
		if err != nil {
			return nil, fmt.Errorf("read changed row of %s: %w", spec.name, err)
		}
		switch {
		case len(rows) == 1:
			c.Rows = append(c.Rows, rows[0])
		case len(spec.key) == 0:
			// An appended row removed in the same change: nothing.
		default:
			d := rowValue{Table: spec.name, Delete: true, Cols: spec.key}
			for _, v := range k.vals {
				val, err := toValue(v)
				if err != nil {
					return nil, fmt.Errorf("key of %s: %w", spec.name, err)
				}
				d.Vals = append(d.Vals, val)
			}
			c.Rows = append(c.Rows, d)
		}
	}
	if len(c.Rows) == 0 {
		return nil, nil
	}
	chunks, err := chunkRows(c.Rows)
	if err != nil {
		return nil, err
	}
	parts := make([][]byte, len(chunks))
	for i, rows := range chunks {
		p := change{V: changeVersion, Rows: rows, Rehash: rehash}
		if len(chunks) > 1 {
			p.Part, p.Parts = i+1, len(chunks)
		}
		if parts[i], err = json.Marshal(p); err != nil {
			return nil, err
		}
	}
	return parts, nil
}

// commitReplicated appends the change tx holds to the cluster log, after
// the entry this copy held when the admin change began (start), and records
// the new position in tx. It returns an error wrapping ErrBehind if the
// copy or the log moved on since start.
func (db *DB) commitReplicated(ctx context.Context, tx *sql.Tx, start uint64, rehash bool) error {
	parts, err := encodeChange(ctx, tx, rehash)
	if err != nil || parts == nil {
		return err
	}
	applied, err := appliedSeq(ctx, tx)
	if err != nil {
		return fmt.Errorf("read cluster log position: %w", err)
	}
	if applied != start {
		// Changes were applied while fn ran: what it read before its
		// first write may be older than what it wrote on.
		return fmt.Errorf("%w (entry %d arrived during the change)", ErrBehind, applied)
	}
	seq, err := db.repl.log.Append(ctx, applied, parts...)
	if err != nil {
		return err
	}
	if err := setApplied(ctx, tx, seq); err != nil {
		return fmt.Errorf("record cluster log position %d: %w", seq, err)
	}
	return nil
}

// Apply writes entry seq of the cluster log, a change another node made (or
// a snapshot entry), into this copy in one transaction and records seq as
// applied. An entry at or before the applied one is skipped, so that it is
// safe to apply an entry twice; one after the next is refused, since the
// entries must be applied in order. Rows are upserted (INSERT … ON CONFLICT
// DO UPDATE), so that the triggers fire as on the writer: the change feed
// closes the user's connections here, and the user's version moves.
func (db *DB) Apply(ctx context.Context, seq uint64, entry []byte) error {
	var c change
	if err := json.Unmarshal(entry, &c); err != nil {
		return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
	}
	if c.V != changeVersion {
		return fmt.Errorf("apply cluster log entry %d: format %d, this authrelay knows %d: upgrade this node", seq, c.V, changeVersion)
	}
	if c.Parts < 0 || c.Part < 0 || c.Part > c.Parts || c.Parts > 0 && c.Part == 0 || uint64(c.Part) > seq {
		return fmt.Errorf("apply cluster log entry %d: part %d of %d", seq, c.Part, c.Parts)
	}
	if hasTable(c.Rows, "settings") {
		// The hash policy may have changed (a 'hash set' on any node):
		// read it once the entry is in the copy, whether this Apply wrote
		// it or found it there (this node's own change, or another
		// reader's), so that new passwords are hashed at it from now on,
		// without a restart. Deferred before the transaction's Rollback,
		// it runs after it.
		defer db.reloadPolicy(context.WithoutCancel(ctx))
	}
	// One Apply at a time (Follow and CatchUp may both run), so that a
	// change's parts are taken once; SQLite serialises the writes anyway.
	db.parts.mu.Lock()
	defer db.parts.mu.Unlock()
	first := seq // the first entry of the change
	if c.Parts > 1 {
		first = seq - uint64(c.Part) + 1
		applied, err := db.AppliedSeq(ctx)
		if err != nil {
			return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
		}
		if seq <= applied {
			return nil
		}
		if c.Part < c.Parts {
			// Kept until the last part arrives; the log holds the
			// parts of a change together (an atomic batch).
			db.parts.put(seq, c)
			return nil
		}
		rows, err := db.parts.take(first, seq, c)
		if err != nil {
			return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
		}
		c.Rows = rows
	}
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
	}
	defer tx.Rollback()
	applied, err := appliedSeq(ctx, tx)
	if err != nil {
		return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
	}
	switch {
	case seq <= applied:
		return nil
	case first != applied+1:
		return fmt.Errorf("apply cluster log entry %d: this copy holds entries up to %d, and entries apply in order", first, applied)
	}
	if applied == 0 {
		// The log's first entry: this copy must hold nothing the log
		// does not, or it would differ from the others for good.
		if own, err := hasReplicatedRows(ctx, tx); err != nil {
			return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
		} else if own != "" {
			return fmt.Errorf("apply cluster log entry %d: this copy holds rows of its own (in %s) that are not in the cluster log: a node joins a cluster with an empty database; an existing database becomes the first node by bootstrapping an empty log", seq, own)
		}
	}
	// The rows of a change arrive in the order they were first touched,
	// not in an order the foreign keys accept row by row.
	if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
		return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
	}
	if err := applyRows(ctx, tx, c.Rows, c.Rehash); err != nil {
		return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
	}
	if err := setApplied(ctx, tx, seq); err != nil {
		return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("apply cluster log entry %d: %w", seq, err)
	}
	return nil
}

// hasTable reports whether one of rows is of table.
func hasTable(rows []rowValue, table string) bool {
	return slices.ContainsFunc(rows, func(r rowValue) bool { return r.Table == table })
}

// hasReplicatedRows returns the first replicated table that holds a row,
// or "".
func hasReplicatedRows(ctx context.Context, q querier) (string, error) {
	for _, spec := range tables {
		if !spec.replicated {
			continue
		}
		where := ""
		if spec.when != "" {
			where = " WHERE " + strings.ReplaceAll(spec.when, "NEW.", "")
		}
		var n int
		if err := q.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM main.`+quoteIdent(spec.name)+where+` LIMIT 1)`).Scan(&n); err != nil {
			return "", err
		}
		if n > 0 {
			return spec.name, nil
		}
	}
	return "", nil
}

// applyRows writes rows: deletes (and the first half of a replace) first,
// then the present rows.
func applyRows(ctx context.Context, tx *sql.Tx, rows []rowValue, rehash bool) error {
	// A large change repeats a few statements thousands of times.
	stmts := map[string]*sql.Stmt{}
	defer func() {
		for _, st := range stmts {
			st.Close()
		}
	}()
	exec := func(query string, args ...any) error {
		st, ok := stmts[query]
		if !ok {
			var err error
			if st, err = tx.PrepareContext(ctx, query); err != nil {
				return err
			}
			stmts[query] = st
		}
		_, err := st.ExecContext(ctx, args...)
		return err
	}
	columns := map[string]map[string]bool{}
	known := func(table string) (map[string]bool, error) {
		if cols, ok := columns[table]; ok {
			return cols, nil
		}
		rs, err := tx.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		cols := map[string]bool{}
		for rs.Next() {
			var n string
			if err := rs.Scan(&n); err != nil {
				return nil, err
			}
			cols[n] = true
		}
		columns[table] = cols
		return cols, rs.Err()
	}
	check := func(r rowValue) (tableSpec, error) {
		spec, ok := specOf(r.Table)
		if !ok {
			return spec, fmt.Errorf("table %q is not replicated here: upgrade this node", r.Table)
		}
		if len(r.Cols) != len(r.Vals) || len(r.Cols) == 0 {
			return spec, fmt.Errorf("a row of %s with %d columns and %d values", r.Table, len(r.Cols), len(r.Vals))
		}
		cols, err := known(spec.name)
		if err != nil {
			return spec, err
		}
		for _, c := range r.Cols {
			if !cols[c] || slices.Contains(spec.local, c) || len(spec.key) == 0 && c == "id" {
				return spec, fmt.Errorf("column %q of %s is not one this node takes from the log: upgrade this node", c, r.Table)
			}
		}
		return spec, nil
	}
	// keyArgs returns the values of spec's key columns in r.
	keyArgs := func(spec tableSpec, r rowValue) ([]any, error) {
		args := make([]any, len(spec.key))
		for i, k := range spec.key {
			j := slices.Index(r.Cols, k)
			if j < 0 {
				return nil, fmt.Errorf("a row of %s without its key column %s", r.Table, k)
			}
			args[i] = r.Vals[j].arg()
		}
		return args, nil
	}
	for _, r := range rows {
		spec, err := check(r)
		if err != nil {
			return err
		}
		if !r.Delete && !spec.replace {
			continue
		}
		if len(spec.key) == 0 {
			return fmt.Errorf("a delete of a row of %s, whose rows are only appended", r.Table)
		}
		args, err := keyArgs(spec, r)
		if err != nil {
			return err
		}
		if err := exec(`DELETE FROM main.`+quoteIdent(spec.name)+` WHERE `+keyWhere(spec), args...); err != nil {
			return fmt.Errorf("delete from %s: %w", spec.name, err)
		}
	}
	var graces [][]any
	for _, r := range rows {
		if r.Delete {
			continue
		}
		spec, _ := specOf(r.Table)
		quoted := make([]string, len(r.Cols))
		args := make([]any, len(r.Cols))
		for i, c := range r.Cols {
			quoted[i] = quoteIdent(c)
			args[i] = r.Vals[i].arg()
		}
		query := fmt.Sprintf(`INSERT INTO main.%s (%s) VALUES (%s)`, quoteIdent(spec.name),
			strings.Join(quoted, ", "), strings.TrimSuffix(strings.Repeat("?, ", len(r.Cols)), ", "))
		if len(spec.key) > 0 && !spec.replace {
			var set []string
			for _, c := range r.Cols {
				if !slices.Contains(spec.key, c) {
					set = append(set, quoteIdent(c)+" = excluded."+quoteIdent(c))
				}
			}
			quotedKey := make([]string, len(spec.key))
			for i, k := range spec.key {
				quotedKey[i] = quoteIdent(k)
			}
			if rehash && spec.name == "users" {
				set = append(set, `"rehashes" = "rehashes" + 1`)
			}
			if len(set) == 0 {
				query += fmt.Sprintf(" ON CONFLICT (%s) DO NOTHING", strings.Join(quotedKey, ", "))
			} else {
				query += fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", strings.Join(quotedKey, ", "), strings.Join(set, ", "))
			}
		}
		if err := exec(query, args...); err != nil {
			return fmt.Errorf("write a row of %s: %w", spec.name, err)
		}
		if spec.name == "password_graces" {
			k, err := keyArgs(spec, r)
			if err != nil {
				return err
			}
			graces = append(graces, k)
		}
	}
	return applyGraces(ctx, tx, graces)
}

// applyGraces points each password grace just written at the change-feed
// row this node's users trigger wrote for the replacement, and makes that
// row quiet while the grace runs, as SetPasswordGrace does on the writer:
// the previous password's connections stay open until EndGraces, which
// every node runs, closes those granted before the mark.
func applyGraces(ctx context.Context, tx *sql.Tx, users [][]any) error {
	for _, u := range users {
		if _, err := tx.ExecContext(ctx, `UPDATE password_graces
			SET mark = (SELECT coalesce(max(id), 0) FROM user_changes WHERE user = ?1) WHERE user = ?1`, u[0]); err != nil {
			return fmt.Errorf("mark password grace: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE user_changes SET quiet = 1
			WHERE id = (SELECT mark FROM password_graces WHERE user = ?1 AND ended = 0)`, u[0]); err != nil {
			return fmt.Errorf("mark password grace: %w", err)
		}
	}
	return nil
}

// partBuffer holds the parts of multi-part changes until their last part,
// by entry number. Follow and CatchUp may both deliver the same entries:
// the number says which part an entry is, whoever delivered it. Apply holds
// mu throughout.
type partBuffer struct {
	mu    sync.Mutex
	parts map[uint64]change
}

// put keeps part seq.
func (b *partBuffer) put(seq uint64, c change) {
	if b.parts == nil {
		b.parts = map[uint64]change{}
	}
	b.parts[seq] = c
}

// take returns the rows of the change whose parts are entries first to
// last, last being c, and forgets every part up to last.
func (b *partBuffer) take(first, last uint64, c change) ([]rowValue, error) {
	var rows []rowValue
	for seq := first; seq < last; seq++ {
		p, ok := b.parts[seq]
		if !ok || p.Parts != c.Parts || p.Part != int(seq-first)+1 {
			return nil, fmt.Errorf("part %d of the change in entries %d to %d is missing: read the log again from entry %d", seq-first+1, first, last, first)
		}
		rows = append(rows, p.Rows...)
	}
	for seq := range b.parts {
		if seq <= last {
			delete(b.parts, seq)
		}
	}
	return append(rows, c.Rows...), nil
}

// maxSnapshotBatch is the most entries of a snapshot that Bootstrap appends
// as one atomic batch (nats-server's default limit on a batch); a larger
// snapshot goes in entry by entry.
const maxSnapshotBatch = 1000

// Bootstrap appends a snapshot of every replicated row of db to log, which
// must be empty, in entries of at most MaxEntrySize bytes (all of them in
// one atomic batch, up to maxSnapshotBatch), and records the last as
// applied: db becomes the first node of a cluster with nothing lost
// (each user keeps its password hash), and a node that applies the log
// from the start gets the same rows. It holds the write lock throughout,
// so that no change slips between the snapshot and the position. It fails
// if db has applied entries already. Past maxSnapshotBatch entries, an error
// after the first leaves a partial snapshot in the log: the error says so.
func (db *DB) Bootstrap(ctx context.Context, log Replicator) (last uint64, err error) {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("bootstrap cluster log: %w", err)
	}
	defer tx.Rollback()
	applied, err := appliedSeq(ctx, tx)
	if err != nil {
		return 0, fmt.Errorf("bootstrap cluster log: %w", err)
	}
	if applied != 0 {
		return 0, fmt.Errorf("bootstrap cluster log: this database already holds cluster log entries up to %d: it is a node of a cluster", applied)
	}
	var all []rowValue
	for _, spec := range tables {
		if !spec.replicated {
			continue
		}
		where := ""
		if spec.when != "" {
			where = strings.ReplaceAll(spec.when, "NEW.", "")
		}
		rows, err := readRows(ctx, tx, spec, where)
		if err != nil {
			return 0, fmt.Errorf("bootstrap cluster log: read %s: %w", spec.name, err)
		}
		all = append(all, rows...)
	}
	// Each entry a change of its own, in the order of tables: parents
	// before children.
	chunks, err := chunkRows(all)
	if err != nil {
		return 0, fmt.Errorf("bootstrap cluster log: %w", err)
	}
	entries := make([][]byte, len(chunks))
	for i, rows := range chunks {
		if entries[i], err = json.Marshal(change{V: changeVersion, Rows: rows}); err != nil {
			return 0, fmt.Errorf("bootstrap cluster log: %w", err)
		}
	}
	if len(entries) > 1 && len(entries) <= maxSnapshotBatch {
		// One atomic batch: the log holds the whole snapshot or none of
		// it, so that a node that joins meanwhile never takes part of it
		// for the cluster's state. Each entry stays a change of its own.
		if last, err = log.Append(ctx, 0, entries...); err != nil {
			return 0, fmt.Errorf("bootstrap cluster log: %w", err)
		}
		entries = nil
	}
	for _, b := range entries {
		seq, err := log.Append(ctx, last, b)
		if err != nil {
			if last > 0 {
				return 0, fmt.Errorf("bootstrap cluster log: %w: the log now holds a partial snapshot (entries 1 to %d): delete the stream and bootstrap again", err, last)
			}
			return 0, fmt.Errorf("bootstrap cluster log: %w", err)
		}
		last = seq
	}
	if err := setApplied(ctx, tx, last); err != nil {
		return 0, fmt.Errorf("bootstrap cluster log: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("bootstrap cluster log: record position %d: %w", last, err)
	}
	return last, nil
}

// StateDigest returns a SHA-256 digest, in hex, of every replicated row of
// db in key order (admin audit rows in the order they were appended): two
// nodes that have applied the same log entries give the same digest, and a
// node whose copy diverged gives another.
func (db *DB) StateDigest(ctx context.Context) (string, error) {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, spec := range tables {
		if !spec.replicated {
			continue
		}
		where := "1"
		if spec.when != "" {
			where = strings.ReplaceAll(spec.when, "NEW.", "")
		}
		if len(spec.key) > 0 {
			quoted := make([]string, len(spec.key))
			for i, k := range spec.key {
				quoted[i] = quoteIdent(k)
			}
			where += " ORDER BY " + strings.Join(quoted, ", ")
		}
		rows, err := readRows(ctx, db.q(ctx), spec, where)
		if err != nil {
			return "", fmt.Errorf("digest replicated state: %s: %w", spec.name, err)
		}
		for _, r := range rows {
			for _, c := range spec.rewritten {
				if i := slices.Index(r.Cols, c); i >= 0 {
					r.Vals[i] = value{}
				}
			}
			if err := enc.Encode(r); err != nil {
				return "", fmt.Errorf("digest replicated state: %w", err)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
