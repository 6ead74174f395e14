package store

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer is a log destination safe for the watch's goroutine and the
// test to share.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestWatchFile: with the database file moved away under an open store,
// WatchFile logs the fault once within a couple of seconds (not every
// second while it lasts), and says so when the file is back.
func TestWatchFile(t *testing.T) {
	t.Parallel()
	db, path := newTestDB(t)
	var logs logBuffer
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		db.WatchFile(ctx, slog.New(slog.NewTextHandler(&logs, nil)))
	}()
	defer func() { cancel(); <-done }()

	waitLog := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(logs.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("the log does not say %q within 5s:\n%s", want, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(1200 * time.Millisecond) // a check with the file in place
	if s := logs.String(); s != "" {
		t.Fatalf("logged with the file in place:\n%s", s)
	}
	moved := path + ".moved"
	if err := os.Rename(path, moved); err != nil {
		t.Fatal(err)
	}
	waitLog("DATABASE FILE REMOVED OR REPLACED")
	time.Sleep(1200 * time.Millisecond) // at least one more check
	if n := strings.Count(logs.String(), "DATABASE FILE REMOVED OR REPLACED"); n != 1 {
		t.Errorf("the fault was logged %d times within two checks, want once (then once a minute)", n)
	}
	if err := os.Rename(moved, path); err != nil {
		t.Fatal(err)
	}
	waitLog("database file is back at its path")
}

// TestTruncateWAL: TruncateWAL empties a write-ahead log that a burst left
// above WALTruncateAbove, and WALSize reports the sizes.
func TestTruncateWAL(t *testing.T) {
	db, path := newTestDB(t)
	bigWrite(t, db, 2*WALTruncateAbove>>20)
	before, err := db.WALSize()
	if err != nil {
		t.Fatal(err)
	}
	if want := walSize(t, path); before != want || before <= WALTruncateAbove {
		t.Fatalf("WALSize after the burst = %d, want the file's %d, above %d", before, want, WALTruncateAbove)
	}
	var logs logBuffer
	db.TruncateWAL(t.Context(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if after, err := db.WALSize(); err != nil || after != 0 {
		t.Errorf("WALSize after TruncateWAL = %d, %v; want 0 (was %d)", after, err, before)
	}
	if s := logs.String(); s != "" {
		t.Errorf("TruncateWAL logged on success:\n%s", s)
	}
}
