package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/authrelay/authrelay/deploy"
)

// TestFullDiskWithoutTraffic serves a directory on a small tmpfs and fills
// the disk while no client logs in: nothing else writes, yet /readyz fails
// within seconds naming the write check and SQLite's full disk error, and
// passes again by itself once the disk has room. Before, it stayed 200
// until a login or an audit flush failed.
func TestFullDiskWithoutTraffic(t *testing.T) {
	dir := smallDisk(t, 16<<20)
	mustRun(t, "", "init", "--dir", dir)
	s := serveOn(t, dir, "--http", "127.0.0.1:0")
	s.readyz(t, http.StatusOK, 5*time.Second)

	free := fillDisk(t, deploy.Layout{Dir: dir}.Path(deploy.DatabaseFile), dir)
	body := s.readyz(t, http.StatusServiceUnavailable, 15*time.Second)
	if !strings.Contains(body, "database writable") || !strings.Contains(body, "database or disk is full") {
		t.Errorf("/readyz on a full disk = %q, want the write check and the full disk named", body)
	}
	free()
	s.readyz(t, http.StatusOK, 15*time.Second)
}
