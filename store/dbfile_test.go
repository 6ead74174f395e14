package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/accounts"
)

// A cheap bcrypt hash for users whose password does not matter.
const testBcrypt = "$2a$04$Q.CgCP2Sl9pkcTXEZHazaeMwPaAkSHk7AI51HkyMt5iJQQyUA4qxq"

// TestOpenExistingNeverCreates: only Open creates a database. OpenExisting
// on a path without one fails with ErrNoDatabase and leaves nothing
// behind, so that an admin command on a directory whose database was
// removed cannot put an empty one in its place.
func TestOpenExistingNeverCreates(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "authrelay.db")
	if _, err := OpenExisting(ctx, path); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("OpenExisting of a missing file: %v, want ErrNoDatabase", err)
	}
	assertDirFiles(t, dir)

	// An empty file (touch) is no database either, and stays empty.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenExisting(ctx, path); !errors.Is(err, ErrNoDatabase) {
		t.Fatalf("OpenExisting of an empty file: %v, want ErrNoDatabase", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty file after OpenExisting: %v, %v; want it left empty", fi, err)
	}
	assertDirFiles(t, dir, "authrelay.db")
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	// Open creates; OpenExisting then opens what it created.
	db := openTest(t, path)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	db2, err := OpenExisting(ctx, path)
	if err != nil {
		t.Fatalf("OpenExisting of a created database: %v", err)
	}
	defer db2.Close()
	if names, err := db2.Accounts(ctx); err != nil || !slices.Equal(names, []string{"APP"}) {
		t.Errorf("accounts through OpenExisting: %v, %v; want [APP]", names, err)
	}
}

// assertDirFiles checks that dir holds exactly the files named.
func assertDirFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s holds %q, want %q", dir, got, want)
	}
}

// TestCheckFile: a store notices that its path no longer names the file it
// has open (removed, renamed, replaced by another file), and that it is
// back once the same file is moved back.
func TestCheckFile(t *testing.T) {
	db, path := newTestDB(t)
	if err := db.CheckFile(); err != nil {
		t.Fatalf("CheckFile of a fresh store: %v", err)
	}
	moved := path + ".moved"
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckFile(); !errors.Is(err, ErrFileReplaced) || !strings.Contains(err.Error(), "no longer exists") {
		t.Errorf("CheckFile with the file removed: %v, want ErrFileReplaced saying it no longer exists", err)
	}
	// Another file at the path: a copy of the same bytes is still
	// another file.
	b, err := os.ReadFile(moved)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckFile(); !errors.Is(err, ErrFileReplaced) || !strings.Contains(err.Error(), "another file") {
		t.Errorf("CheckFile with the file replaced: %v, want ErrFileReplaced saying it is another file", err)
	}
	if err := os.Rename(moved, path); err != nil {
		t.Fatal(err)
	}
	if err := db.CheckFile(); err != nil {
		t.Errorf("CheckFile with the file moved back: %v, want nil", err)
	}
}

// walSize returns the size of the database's write-ahead log file.
func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// bigWrite writes about mb MiB in one transaction, then deletes it again.
func bigWrite(t *testing.T, db *DB, mb int) {
	t.Helper()
	ctx := t.Context()
	if _, err := db.sql.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS scratch (b BLOB)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.sql.ExecContext(ctx, `INSERT INTO scratch SELECT randomblob(1 << 20) FROM generate_series(1, ?)`, mb); err != nil {
		// generate_series is an extension; fall back to a recursive CTE.
		if _, err := db.sql.ExecContext(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) INSERT INTO scratch SELECT randomblob(1 << 20) FROM n`, mb); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.sql.ExecContext(ctx, `DELETE FROM scratch`); err != nil {
		t.Fatal(err)
	}
}

// TestWALShrinks: after a burst of writes the write-ahead log gives its
// space back: Checkpoint (which serve runs at start and every minute)
// truncates it to nothing, and the journal size limit cuts it to at most
// JournalSizeLimit at the first write after SQLite's own checkpoint.
// Without them the file kept the size of the largest burst for good.
func TestWALShrinks(t *testing.T) {
	const burst = 3 * JournalSizeLimit >> 20 // MiB
	t.Run("checkpoint", func(t *testing.T) {
		db, path := newTestDB(t)
		bigWrite(t, db, burst)
		before := walSize(t, path)
		if before < JournalSizeLimit {
			t.Fatalf("the write-ahead log after a %d MiB write is %d bytes; want more than %d for the test to mean anything", burst, before, JournalSizeLimit)
		}
		busy, frames, err := db.Checkpoint(t.Context())
		if err != nil || busy {
			t.Fatalf("Checkpoint: busy %v, %v", busy, err)
		}
		if after := walSize(t, path); after != 0 {
			t.Errorf("the write-ahead log after Checkpoint is %d bytes (was %d, %d frames), want 0", after, before, frames)
		}
		t.Logf("write-ahead log: %d bytes after a %d MiB burst, 0 after Checkpoint", before, burst)
	})
	t.Run("journal size limit", func(t *testing.T) {
		db, path := newTestDB(t)
		bigWrite(t, db, burst)
		before := walSize(t, path)
		// What SQLite's automatic checkpoint does, then one small write,
		// which starts the log over.
		if _, err := db.sql.ExecContext(t.Context(), `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			t.Fatal(err)
		}
		if err := db.AddAccount(t.Context(), "APP"); err != nil {
			t.Fatal(err)
		}
		if after := walSize(t, path); after > JournalSizeLimit {
			t.Errorf("the write-ahead log after a checkpoint and a small write is %d bytes (was %d), want at most the limit %d", after, before, JournalSizeLimit)
		}
	})
}

// TestRestoreAfterCrash reproduces the fault of the old restore procedure
// (stop serve, copy the backup over DIR/authrelay.db): a relay killed with
// SIGKILL leaves its write-ahead log and index beside the database, SQLite
// applies that log to the copied file, and the restored view is corrupt
// or not the backup's. Restore moves the log aside with the database it
// belongs to: the restored database is the backup's, whole, and the
// replaced one, with its log, still opens with every write in it.
func TestRestoreAfterCrash(t *testing.T) {
	ctx := t.Context()
	live := filepath.Join(t.TempDir(), "authrelay.db")
	db := openTest(t, live)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := db.AddUserWithHash(ctx, accounts.User{Name: fmt.Sprintf("before-%d", i), Account: "APP"}, testBcrypt); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	wantUsers := userNames(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// A relay writes after the backup and is killed.
	crashChild(t, "write", live)
	if fi, err := os.Stat(live + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("after SIGKILL the write-ahead log is %v, %v; want it left behind with frames", fi, err)
	}

	t.Run("copy over the database (the old procedure)", func(t *testing.T) {
		dst := copyCrashImage(t, live)
		b, err := os.ReadFile(backup)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
		problem := restoredView(t, dst, wantUsers)
		if problem == "" {
			t.Fatal("copying the backup over a crashed database gave the backup's view; the test no longer reproduces the fault")
		}
		t.Logf("the old procedure: %s", problem)
	})
	t.Run("Restore", func(t *testing.T) {
		dst := copyCrashImage(t, live)
		now := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
		res, err := Restore(ctx, backup, dst, now)
		if err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if problem := restoredView(t, dst, wantUsers); problem != "" {
			t.Fatalf("after Restore: %s", problem)
		}
		aside := dst + ".replaced-20261201T230000Z"
		if !slices.Equal(res.Aside, []string{aside, aside + "-wal"}) || !slices.Equal(res.Removed, []string{dst + "-shm"}) {
			t.Errorf("Restore result: aside %q, removed %q; want the database and its log aside, the index removed", res.Aside, res.Removed)
		}
		if res.Users != len(wantUsers) || res.Schema != res.Latest {
			t.Errorf("Restore result: %d users, schema %d of %d; want %d users at the current schema", res.Users, res.Schema, res.Latest, len(wantUsers))
		}
		// Nothing is lost: the replaced database opens with its log
		// and holds the writes made after the backup.
		old, err := OpenExisting(ctx, aside)
		if err != nil {
			t.Fatalf("open the replaced database: %v", err)
		}
		defer old.Close()
		if names := userNames(t, old); !slices.Contains(names, "after-0") || len(names) != len(wantUsers)+crashUsers {
			t.Errorf("the replaced database has %d users, want %d with after-0", len(names), len(wantUsers)+crashUsers)
		}
		// The backup is only read.
		if fi, err := os.Stat(backup + "-wal"); err == nil {
			t.Errorf("Restore left %s (%d bytes) beside the backup", backup+"-wal", fi.Size())
		}
	})
}

// crashUsers is how many users the "write" child adds before it is killed.
const crashUsers = 300

// userNames lists the names of db's users.
func userNames(t *testing.T, db *DB) []string {
	t.Helper()
	users, err := db.Users(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	return names
}

// copyCrashImage copies the database at path with its -wal and -shm files,
// as a crash left them, into a new directory and returns the copy's path.
func copyCrashImage(t *testing.T, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(path + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// restoredView opens the database at path as the next relay would and says
// what is wrong with it, or "" when it passes the integrity check and has
// exactly the users want.
func restoredView(t *testing.T, path string, want []string) string {
	t.Helper()
	db, err := OpenExisting(t.Context(), path)
	if err != nil {
		return fmt.Sprintf("open: %v", err)
	}
	defer db.Close()
	var check string
	if err := db.sql.QueryRowContext(t.Context(), "PRAGMA integrity_check").Scan(&check); err != nil {
		return fmt.Sprintf("integrity check: %v", err)
	}
	if check != "ok" {
		return "integrity check: " + check
	}
	users, err := db.Users(t.Context())
	if err != nil {
		return fmt.Sprintf("list users: %v", err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if !slices.Equal(names, want) {
		return fmt.Sprintf("%d users, not the backup's %d", len(names), len(want))
	}
	return ""
}

// crashChild runs this test binary as a child process that opens the
// database at path and does what mode says ("write": adds crashUsers
// users; "lock": takes the serve lock), then SIGKILLs it once it has.
func crashChild(t *testing.T, mode, path string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
	cmd.Env = append(os.Environ(), "AUTHRELAY_TEST_CHILD="+mode, "AUTHRELAY_TEST_CHILD_DB="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child %s: %q, %v", mode, line, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	go io.Copy(io.Discard, out)
	if err := cmd.Wait(); err == nil {
		t.Fatal("the child exited normally, want killed")
	}
}

// TestCrashChild is the child process of crashChild; run alone it does
// nothing.
func TestCrashChild(t *testing.T) {
	mode, path := os.Getenv("AUTHRELAY_TEST_CHILD"), os.Getenv("AUTHRELAY_TEST_CHILD_DB")
	if mode == "" {
		return
	}
	switch mode {
	case "write":
		db, err := OpenExisting(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range crashUsers {
			u := accounts.User{Name: fmt.Sprintf("after-%d", i), Account: "APP",
				Permissions: accounts.Permissions{Pub: accounts.Rule{Allow: []string{strings.Repeat("x", 200) + fmt.Sprint(i)}}}}
			if err := db.AddUserWithHash(t.Context(), u, testBcrypt); err != nil {
				t.Fatal(err)
			}
		}
	case "lock":
		if _, err := LockServing(t.Context(), path); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown child mode %q", mode)
	}
	fmt.Println("ready")
	time.Sleep(time.Minute) // until killed
}

// TestRestoreRefusesWhileServing: Restore refuses, changing nothing, while
// a relay holds the serve lock, and a relay killed with SIGKILL leaves no
// stale lock behind.
func TestRestoreRefusesWhileServing(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	lock, err := LockServing(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	// A second relay serves the same database beside the first.
	lock2, err := LockServing(ctx, path)
	if err != nil {
		t.Fatalf("a second relay's LockServing: %v", err)
	}
	if serving, err := Serving(path); err != nil || !serving {
		t.Errorf("Serving while relays hold the lock: %v, %v; want true", serving, err)
	}
	if _, err := Restore(ctx, backup, path, time.Now()); !errors.Is(err, ErrInUse) {
		t.Fatalf("Restore while relays serve: %v, want ErrInUse", err)
	}
	if err := db.CheckFile(); err != nil {
		t.Fatalf("the refused Restore changed the database file: %v", err)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, backup, path, time.Now()); !errors.Is(err, ErrInUse) {
		t.Fatalf("Restore while one relay still serves: %v, want ErrInUse", err)
	}
	if err := lock2.Release(); err != nil {
		t.Fatal(err)
	}

	crashChild(t, "lock", path)
	if serving, err := Serving(path); err != nil || serving {
		t.Errorf("Serving after the relay was killed: %v, %v; want false", serving, err)
	}
	if _, err := Restore(ctx, backup, path, time.Now()); err != nil {
		t.Fatalf("Restore after the relay was killed: %v", err)
	}
}

// TestRestoreRefusesBadBackup: a file that is not a whole authrelay
// database at a schema this code can open is refused, and the database
// is left as it was.
func TestRestoreRefusesBadBackup(t *testing.T) {
	ctx := t.Context()
	db, path := newTestDB(t)
	if err := db.AddAccount(ctx, "APP"); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(t.TempDir(), "good.db")
	if err := db.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A backup whose pages were damaged after the header.
	damaged := slices.Clone(goodBytes)
	for i := 4096 + 100; i < len(damaged) && i < 4096*6; i++ {
		damaged[i] ^= 0x5a
	}
	foreign := write("foreign.db", nil)
	fdb, err := Open(ctx, foreign)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fdb.sql.ExecContext(ctx, `PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	fdb.Close()
	plain := filepath.Join(dir, "plain.db")
	pdb, err := Open(ctx, plain)
	if err != nil {
		t.Fatal(err)
	}
	// A SQLite database with a schema version but not authrelay's tables.
	for _, stmt := range []string{`PRAGMA foreign_keys = off`, `DROP TABLE users`, `PRAGMA user_version = 1`} {
		if _, err := pdb.sql.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	pdb.Close()
	liveCopy := write("live.db", goodBytes)
	write("live.db-wal", []byte("frames"))

	for _, c := range []struct {
		name, file string
		want       error
	}{
		{"not sqlite", write("text.db", []byte(strings.Repeat("not a database\n", 500))), ErrNotBackup},
		{"truncated", write("truncated.db", goodBytes[:len(goodBytes)/2]), ErrNotBackup},
		{"damaged", write("damaged.db", damaged), ErrNotBackup},
		{"schema too new", foreign, ErrSchemaTooNew},
		{"not authrelay", plain, ErrNotBackup},
		{"log beside it", liveCopy, ErrNotBackup},
		{"the database itself", path, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Restore(ctx, c.file, path, time.Now())
			if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
				t.Fatalf("Restore: %v, want %v", err, c.want)
			}
			t.Logf("refused: %v", err)
			if err := db.CheckFile(); err != nil {
				t.Errorf("the refused Restore changed the database file: %v", err)
			}
			if names, err := db.Accounts(ctx); err != nil || !slices.Equal(names, []string{"APP"}) {
				t.Errorf("the database after a refused Restore: %v, %v", names, err)
			}
			ents, err := os.ReadDir(filepath.Dir(path))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				if strings.Contains(e.Name(), "restore") || strings.Contains(e.Name(), "replaced") {
					t.Errorf("a refused Restore left %s behind", e.Name())
				}
			}
		})
	}
}
