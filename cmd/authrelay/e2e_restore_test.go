package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/authrelay/authrelay/deploy"
)

// TestEndToEndRestoreAfterSIGKILL is issue 10's item 4 with real
// processes: a relay killed with SIGKILL leaves its write-ahead log beside
// the database. The README's old procedure (copy the backup over
// DIR/authrelay.db) lets SQLite apply that log to the copy; 'authrelay
// restore' refuses while the relay runs, finds no stale lock once it is
// killed, moves the log aside with the database it belongs to, and the
// next relay serves exactly the backup.
func TestEndToEndRestoreAfterSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs real binaries; skipped with -short")
	}
	bin := buildE2EBinaries(t)
	e := newE2E(t, bin)
	e.authrelay(t, "", "init", "--dir", e.dir, "--listen", e.addr).wantCode(t, exitOK)
	ns := e.start(t, "nats-server", bin.natsServer, "-c", e.conf)
	e.waitTCP(t, ns)
	for i := range 20 {
		name := fmt.Sprintf("before-%d", i)
		e.authrelay(t, "pw-"+name+"\n", "user", "add", name, "--dir", e.dir, "--password-stdin", "--pub", "a").wantCode(t, exitOK)
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	e.authrelay(t, "", "backup", backup, "--dir", e.dir).wantCode(t, exitOK)

	relay := func(name string) *e2eProcess {
		p := e.start(t, name, bin.authrelay, "serve", "--dir", e.dir, "--nats", e.url)
		e.waitFor(t, 20*time.Second, name+" to answer logins", func() error {
			p.mustRun(t)
			if !stderrHas(p, "relay ready") {
				return errors.New("not ready")
			}
			return nil
		})
		return p
	}
	login := func(name string) error {
		nc, err := e.connect(name, "pw-"+name)
		if err == nil {
			nc.Close()
		}
		return err
	}
	r := relay("relay")
	// Writes after the backup, through admin commands and the relay's
	// own audit trail, while the relay keeps the database open.
	for i := range 20 {
		name := fmt.Sprintf("after-%d", i)
		e.authrelay(t, "pw-"+name+"\n", "user", "add", name, "--dir", e.dir, "--password-stdin", "--pub", "a").wantCode(t, exitOK)
		if err := login(name); err != nil {
			t.Fatalf("%s's login: %v", name, err)
		}
	}
	res := e.authrelay(t, "", "restore", backup, "--dir", e.dir)
	res.wantCode(t, exitFailure)
	res.wantOutput(t, "a relay is serving the database")

	r.kill(t) // SIGKILL
	db := filepath.Join(e.dir, deploy.DatabaseFile)
	if fi, err := os.Stat(db + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("after SIGKILL the write-ahead log is %v, %v; want it left behind", fi, err)
	}

	// The old procedure, on a copy of the directory as the crash left it.
	old := filepath.Join(t.TempDir(), "data")
	if err := os.CopyFS(old, os.DirFS(e.dir)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, deploy.DatabaseFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	oldList := e.authrelay(t, "", "user", "list", "--json", "--dir", old)
	if oldList.code == 0 && strings.Count(oldList.stdout, `"name": "before-`) == 20 && !strings.Contains(oldList.stdout, `"after-`) {
		t.Errorf("copying the backup over the crashed database gave the backup's view; the test no longer reproduces the fault")
	}
	t.Logf("the old procedure: exit %d: %.300s", oldList.code, strings.TrimSpace(oldList.stderr+oldList.stdout))

	// restore: no stale lock from the killed relay.
	res = e.authrelay(t, "", "restore", backup, "--dir", e.dir)
	res.wantCode(t, exitOK)
	res.wantOutput(t, "write-ahead log aside to "+db+".replaced-")
	res.wantOutput(t, "removed the stale "+db+"-shm")
	t.Logf("restore:\n%s", res.stdout)

	r2 := relay("relay after restore")
	if err := login("before-3"); err != nil {
		t.Errorf("before-3's login after restore: %v", err)
	}
	if err := login("after-3"); err == nil {
		t.Error("after-3, added after the backup, logs in after restore")
	}
	e.authrelay(t, "", "doctor", "--dir", e.dir, "--offline").wantCode(t, exitOK)
	if code := r2.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("relay exited %d after SIGTERM", code)
	}
}
