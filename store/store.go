// Package store keeps authrelay's users, roles and accounts in SQLite, and
// owns password hashing and verification. It runs the schema migrations,
// translates driver errors into its own sentinel errors, and is safe to use
// from several goroutines and from several processes on the same database
// file: the database runs in WAL mode, so authentication reads never wait for
// an admin's write.
//
// Lists the store returns are never nil: no users, no roles, a user without
// roles, source networks or connection types all come back as empty slices,
// which encoding/json writes as [].
package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authrelay/authrelay/accounts"
	"github.com/mattn/go-sqlite3"
)

// Errors that callers branch on with errors.Is. The store wraps them with the
// operation and the name involved.
var (
	// ErrNotFound means the user, role or account does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a user, role or account of that name already exists.
	ErrExists = errors.New("already exists")
	// ErrUnknownAccount means a user names an account that authrelay does
	// not know: add the account first.
	ErrUnknownAccount = errors.New("unknown account")
	// ErrAccountInUse means an account cannot be removed because users
	// still belong to it.
	ErrAccountInUse = errors.New("account in use")
	// ErrUnknownRole means a user names a role that authrelay does not
	// know: add the role first. It is accounts.ErrUnknownRole, so that
	// errors.Is holds for either.
	ErrUnknownRole = accounts.ErrUnknownRole
	// ErrRoleInUse means a role cannot be removed because users hold it.
	// RemoveRole returns it inside a *RoleInUseError.
	ErrRoleInUse = errors.New("role in use")
	// ErrSchemaTooNew means the database was written by a newer authrelay
	// whose schema this code does not know.
	ErrSchemaTooNew = errors.New("database schema is newer than this authrelay")
	// ErrNoDatabase means OpenExisting found no authrelay database at the
	// path: no file, or a file no authrelay has ever written to.
	ErrNoDatabase = errors.New("no database")
	// ErrReservedAccount means an account is one of DB.ReservedAccounts:
	// the store never creates it nor places a user in it.
	ErrReservedAccount = errors.New("reserved account")
)

// dsnParams are the per-connection settings: WAL so that readers and the
// writer do not block each other, a busy timeout so that writers queue up
// instead of failing, foreign keys on, and BEGIN IMMEDIATE for every
// transaction so that a read-modify-write never has to upgrade its lock (which
// SQLite refuses at once with "database is locked").
const dsnParams = "_journal_mode=WAL&_busy_timeout=5000&_foreign_keys=on&_txlock=immediate"

// JournalSizeLimit is the size, in bytes, that SQLite truncates the
// write-ahead log file back to whenever a checkpoint lets it start the log
// over: without a limit the file keeps the size of the largest write burst
// it ever held, and a small volume stays full after the data is gone.
const JournalSizeLimit = 16 << 20

// DB is authrelay's store: a SQLite database of accounts and users. Its
// methods are safe for concurrent use; set Now and Params before that starts.
type DB struct {
	// Now is the clock for the created and updated times. It defaults to
	// time.Now.
	Now func() time.Time
	// Params are the argon2id parameters for new password hashes, for
	// rehashing at login, and for the dummy verification of unknown users.
	// Open loads them from the database's hash policy (see HashPolicy);
	// SetHashPolicy changes both. Setting Params directly affects this
	// handle only, and stops it rehashing unless they equal the policy.
	// In cluster mode, once the cluster log brings a hash policy (or an
	// admin change finds one stored), that policy replaces Params.
	Params Argon2Params
	// OnRehash, if set, is called after Rehash has tried to rehash
	// a password at Params, with a nil error if the new hash is stored.
	// The login succeeds either way. It must not block.
	OnRehash func(name string, err error)
	// OnPolicy, if set, is called in cluster mode when an entry of the
	// cluster log changed the hash policy (another node's 'hash set'),
	// with the policy new passwords are now hashed at, or with the error
	// that kept the previous one (a stored policy outside the ceiling).
	// It must not block.
	OnPolicy func(p Argon2Params, err error)
	// ReservedAccounts, when set, returns the accounts this store never
	// creates and never places a user in: the callout and system accounts
	// of the server the relay serves (a user there could read every login
	// request, passwords included, or control the server). AddUser,
	// AddUserWithHash, UpdateUser, AddAccount and AddAccountWithLimits
	// refuse them with ErrReservedAccount, and fail with its error when it
	// fails, so that a write never goes unchecked; reads never call it. Set
	// it right after Open, before the handle is shared; authrelay sets it
	// to read its directory's nats.conf wherever it opens a store.
	ReservedAccounts func() ([]string, error)

	sql *sql.DB
	// repl is set in cluster mode (Replicate).
	repl *replication
	// sendUnlock sends an unlock to every node, in cluster mode
	// (SendUnlocks).
	sendUnlock func(ctx context.Context, e LockoutEvent) error
	// policy is the hash policy as the cluster log last brought it (an
	// entry with a settings row, applied or skipped), nil before: it
	// replaces Params from then on (see params).
	policy atomic.Pointer[Argon2Params]
	// unusable caches the hash of a random secret given to users created
	// on first login (CreateIdentityUser), so that no login hashes one.
	unusable unusableHash
	// rehashes are the rehashes at login waiting to be made as admin
	// changes, in cluster mode (see RehashLoop).
	rehashes rehashQueue
	// closers run after the database is closed (CloseWith).
	closers []func()
	// parts holds the parts of a multi-part log entry until its last
	// (see Apply).
	parts partBuffer
	// path is the absolute path the database was opened at, and file the
	// file it named then: CheckFile compares them.
	path string
	file os.FileInfo
	// stmts are the statements on the path of every login decision,
	// prepared once; see prepare.
	stmts stmts

	dummyMu     sync.Mutex
	dummyParams Argon2Params
	dummyHash   string
	// dummyVerifies counts verifications against the dummy hash, so that
	// tests can see that an unknown user costs a password verification.
	dummyVerifies atomic.Int64
}

// Open opens the store at path, creating the file if it does not exist, and
// migrates its schema to the current version. It refuses, with
// ErrSchemaTooNew, a database whose schema is newer than this code.
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, true)
}

// OpenExisting opens the store at path like Open, but never creates one:
// where no file exists, or the file holds no authrelay schema (an empty
// file), it returns an error wrapping ErrNoDatabase and leaves nothing
// behind. Everything but creating a deployment opens its store this way,
// so that a removed database is never silently replaced by an empty one.
func OpenExisting(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, false)
}

func open(ctx context.Context, path string, create bool) (*DB, error) {
	if path == "" {
		return nil, errors.New("open store: the database path is empty")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("open store %s: directory %s: %w", path, filepath.Dir(abs), err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("open store %s: %s is not a directory", path, filepath.Dir(abs))
	}
	dsn := "file:" + escapeURIPath(abs) + "?" + dsnParams
	if !create {
		// mode=rw: SQLite opens the file read-write and fails rather
		// than create it, with no window between a check and the open.
		dsn += "&mode=rw"
		fi, err := os.Stat(abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("open store %s: %w: the file does not exist", path, ErrNoDatabase)
		case err == nil && fi.Size() == 0:
			// SQLite would write a header into it on the first pragma.
			return nil, fmt.Errorf("open store %s: %w: the file is empty", path, ErrNoDatabase)
		}
	}
	sqldb := sql.OpenDB(connector{dsn: dsn, drv: &sqlite3.SQLiteDriver{ConnectHook: connectHook}})
	// Keep enough idle connections for the relay's concurrent decisions:
	// database/sql's default of two would close and reopen connections
	// (and re-prepare their statements) under load.
	sqldb.SetMaxIdleConns(max(8, 4*runtime.GOMAXPROCS(0)))
	db := &DB{Now: time.Now, Params: DefaultArgon2Params, sql: sqldb, path: abs}
	if !create {
		if err := db.checkExisting(ctx); err != nil {
			sqldb.Close()
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	if err := db.initRetry(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// The file SQLite opened for init's queries, which it keeps open.
	if db.file, err = os.Stat(abs); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if db.Params, err = db.HashPolicy(ctx); err != nil {
		sqldb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := db.stmts.prepare(ctx, sqldb); err != nil {
		db.stmts.close()
		sqldb.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return db, nil
}

// checkExisting refuses, with ErrNoDatabase, a database that no authrelay
// has migrated: OpenExisting must not give an empty file a schema.
func (db *DB) checkExisting(ctx context.Context) error {
	var v int
	err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v)
	var se sqlite3.Error
	switch {
	case errors.As(err, &se) && se.Code == sqlite3.ErrCantOpen:
		return fmt.Errorf("%w: the file does not exist", ErrNoDatabase)
	case err != nil:
		return fmt.Errorf("read schema version: %w", err)
	case v == 0:
		return fmt.Errorf("%w: the file holds no authrelay schema", ErrNoDatabase)
	}
	return nil
}

// connector opens SQLite connections with connectHook, without registering
// a driver in database/sql's global registry.
type connector struct {
	dsn string
	drv *sqlite3.SQLiteDriver
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }

// connectHook sets what the DSN cannot on each new connection: the journal
// size limit (a per-connection setting).
func connectHook(conn *sqlite3.SQLiteConn) error {
	if _, err := conn.Exec(fmt.Sprintf("PRAGMA journal_size_limit = %d", JournalSizeLimit), nil); err != nil {
		return fmt.Errorf("set journal size limit: %w", err)
	}
	return nil
}

// initRetry runs init, retrying while SQLite reports the database busy, for
// as long as the busy timeout. When two processes open a new database at the
// same moment, one of them converts it to WAL; the other's first connection
// can then fail at once with "database is locked", because SQLite does not
// wait (or call the busy handler) to upgrade a read lock to a write lock.
func (db *DB) initRetry(ctx context.Context) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := db.init(ctx)
		if err == nil || !isBusy(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// escapeURIPath escapes the characters that end or change the path part of a
// SQLite URI filename.
func escapeURIPath(p string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(p)
}

func (db *DB) init(ctx context.Context) error {
	var mode string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, not wal: keep the database on a local filesystem that supports WAL", mode)
	}
	var fk bool
	if err := db.sql.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
		return fmt.Errorf("read foreign_keys: %w", err)
	}
	if !fk {
		return errors.New("foreign keys are not enforced by this SQLite build")
	}
	migs, err := loadMigrations(migrationFS)
	if err != nil {
		return err
	}
	return db.migrate(ctx, migs)
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmts.close()
	err := db.sql.Close()
	for _, f := range db.closers {
		f()
	}
	db.closers = nil
	return err
}

// CloseWith has Close call f after it closes the database: what the store
// was opened with, such as the connection of its cluster log. Call it
// before the handle is shared.
func (db *DB) CloseWith(f func()) { db.closers = append(db.closers, f) }

// stmts are the read-only statements every login decision runs, prepared
// once per DB (database/sql then prepares each on a connection the first
// time it runs there), so a decision does not parse SQL.
type stmts struct {
	generation *sql.Stmt // Generation
	user       *sql.Stmt // Authenticate: the hash and the user
	roles      *sql.Stmt // RolesNamed
	locked     *sql.Stmt // Lockouts.Locked and Reserve: the state of the keys
	clearable  *sql.Stmt // Lockouts.Succeeded: anything to clear?
	lastChange *sql.Stmt // LastUserChange
	positions  *sql.Stmt // Positions
	// userVersion and userPositions serve UserVersion and UserPositions.
	userVersion, userPositions *sql.Stmt
	credUser, credVersion      *sql.Stmt // CredentialUser, CredentialVersion
	idpUser                    *sql.Stmt // CredentialUser of CredOIDC
}

// prepare prepares every statement of s on db.
func (s *stmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst   **sql.Stmt
		query string
	}{
		{&s.generation, generationQuery},
		{&s.user, authenticateQuery},
		{&s.roles, rolesNamedQuery},
		{&s.locked, stateQuery},
		{&s.clearable, clearableQuery},
		{&s.lastChange, lastUserChangeQuery},
		{&s.positions, positionsQuery},
		{&s.userVersion, userVersionQuery},
		{&s.userPositions, userPositionsQuery},
		{&s.credUser, credentialUserQuery},
		{&s.credVersion, credentialVersionQuery},
		{&s.idpUser, idpUserQuery},
	} {
		st, err := db.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare statement: %w", err)
		}
		*p.dst = st
	}
	return nil
}

// close closes the statements that were prepared.
func (s *stmts) close() {
	for _, st := range []*sql.Stmt{s.generation, s.user, s.roles, s.locked, s.clearable, s.lastChange, s.positions, s.userVersion, s.userPositions, s.credUser, s.credVersion, s.idpUser} {
		if st != nil {
			st.Close()
		}
	}
}

//go:embed migrations/*.sql
var migrationFS embed.FS

// A migration is one embedded SQL file; version is the number its name starts
// with, and the value of PRAGMA user_version once it has run.
type migration struct {
	version int
	name    string
	sql     string
}

// loadMigrations reads migrations/NNNN_name.sql from fsys in order and checks
// that they are numbered 1, 2, 3… without gaps.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	migs := make([]migration, 0, len(names))
	for i, name := range names {
		num, _, _ := strings.Cut(path.Base(name), "_")
		if v, err := strconv.Atoi(num); err != nil || v != i+1 {
			return nil, fmt.Errorf("migration %s: want a name starting with %04d_", name, i+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		migs = append(migs, migration{version: i + 1, name: path.Base(name), sql: string(b)})
	}
	return migs, nil
}

// migrate runs the migrations that the database has not seen yet, each in its
// own transaction that also sets user_version.
func (db *DB) migrate(ctx context.Context, migs []migration) error {
	var v int
	if err := db.sql.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > len(migs) {
		return schemaTooNew(v, len(migs))
	}
	for _, m := range migs[v:] {
		if err := db.runMigration(ctx, m, len(migs)); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
	}
	return nil
}

func schemaTooNew(have, known int) error {
	return fmt.Errorf("%w: it has schema version %d, this authrelay knows up to %d: run a newer authrelay", ErrSchemaTooNew, have, known)
}

func (db *DB) runMigration(ctx context.Context, m migration, latest int) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Read the version again under the write lock: another process may
	// have migrated the database since migrate looked.
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	switch {
	case v > latest:
		return schemaTooNew(v, latest)
	case v >= m.version:
		return nil
	case v != m.version-1:
		return fmt.Errorf("schema version is %d, want %d", v, m.version-1)
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.version)); err != nil {
		return err
	}
	return tx.Commit()
}

// now returns the current time in UTC.
func (db *DB) now() time.Time {
	if db.Now == nil {
		return time.Now().UTC()
	}
	return db.Now().UTC()
}

// timeFormat is how times are stored: UTC, fixed width, so that they sort as
// text and round-trip to the nanosecond.
const timeFormat = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string {
	return t.UTC().Format(timeFormat)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("stored time %q: %w", s, err)
	}
	return t, nil
}

// constraint returns the extended SQLite result code of a constraint
// violation in err, or 0.
func constraint(err error) sqlite3.ErrNoExtended {
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrConstraint {
		return se.ExtendedCode
	}
	return 0
}

// isBusy reports whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrBusy
}

// isDuplicate reports whether err is a primary key or unique violation.
func isDuplicate(err error) bool {
	c := constraint(err)
	return c == sqlite3.ErrConstraintPrimaryKey || c == sqlite3.ErrConstraintUnique
}

// isForeignKey reports whether err is a foreign key violation.
func isForeignKey(err error) bool {
	return constraint(err) == sqlite3.ErrConstraintForeignKey
}
